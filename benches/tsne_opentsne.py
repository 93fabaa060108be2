"""openTSNE on the data the t-SNE bench wrote: prints one JSON line with the fit time, and writes
the layout (float32, N×2) beside the data for the bench to score the same way as ours.

usage: tsne_opentsne.py DATA.f32 N D SEED OUT.f32
"""
import json
import sys
import time

import numpy as np
from openTSNE import TSNE

path, n, d, seed, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
x = np.fromfile(path, dtype=np.float32).reshape(n, d)
started = time.perf_counter()
layout = TSNE(
    perplexity=30,
    n_jobs=2,
    random_state=seed,
    negative_gradient_method="fft",
).fit(x)
seconds = time.perf_counter() - started
np.asarray(layout, dtype=np.float32).tofile(out)
import openTSNE

print(json.dumps({"seconds": seconds, "version": openTSNE.__version__}))
