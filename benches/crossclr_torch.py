"""PyTorch CPU twin of benches/loss_step.rs: one CrossCLR (paper mode, no queue) forward+backward.

Reads the inputs the Rust bench wrote (raw little-endian f32), times the same math, prints one JSON
line: {"loss": ..., "median_ms": ..., "samples_per_s": ..., "threads": ..., "torch": ...}.
Connectivity uses the same O(B·D) identity as the Rust code, so both sides do the same work.
"""
import argparse
import json
import math
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F


def crossclr_paper(v, t, xv, xt, tau, kappa, lam, gamma):
    batch = v.shape[0]
    vn, tn = F.normalize(v, dim=1), F.normalize(t, dim=1)
    eye = torch.eye(batch, dtype=torch.bool)
    with torch.no_grad():
        def connectivity(x):
            x = x.double()
            return (x @ x.sum(0) - (x * x).sum(1)) / batch

        def influential(c):
            top = c.max()
            if top <= 0:
                return torch.zeros_like(c, dtype=torch.bool)
            return c / top > gamma

        def weights(c):
            total = c.sum()
            if total <= 0:
                return torch.full_like(c, 1.0 / batch)
            return torch.softmax(c / total / kappa, 0)

        c_v, c_t = connectivity(xv), connectivity(xt)

    def direction(anchors, others, c):
        cross = anchors @ others.T / tau
        intra = anchors @ anchors.T / tau + math.log(lam)
        infl = influential(c)[None, :]
        cross = cross.masked_fill(infl & ~eye, float("-inf"))
        intra = intra.masked_fill(infl | eye, float("-inf"))
        logits = torch.cat([cross, intra], 1)
        per_sample = -torch.log_softmax(logits, 1).diagonal()
        return (weights(c).to(per_sample.dtype) * per_sample).sum()

    return 0.5 * (direction(vn, tn, c_v) + direction(tn, vn, c_t))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--dim", type=int, required=True)
    p.add_argument("--video-dim", type=int, required=True)
    p.add_argument("--text-dim", type=int, required=True)
    p.add_argument("--iterations", type=int, default=50)
    p.add_argument("--warmup", type=int, default=10)
    a = p.parse_args()

    def load(name, cols):
        data = np.fromfile(f"{a.dir}/{name}.f32", dtype="<f4").reshape(a.batch, cols)
        return torch.from_numpy(data.copy())

    v0, t0 = load("video_emb", a.dim), load("text_emb", a.dim)
    xv, xt = load("video_in", a.video_dim), load("text_in", a.text_dim)
    params = dict(tau=0.03, kappa=0.0035, lam=0.8, gamma=0.9)
    times = []
    loss_value = None
    for i in range(a.warmup + a.iterations):
        v = v0.clone().requires_grad_(True)
        t = t0.clone().requires_grad_(True)
        start = time.perf_counter()
        loss = crossclr_paper(v, t, xv, xt, **params)
        loss.backward()
        elapsed = time.perf_counter() - start
        if i >= a.warmup:
            times.append(elapsed)
        loss_value = float(loss)
    median = statistics.median(times)
    print(json.dumps({
        "loss": loss_value,
        "median_ms": median * 1e3,
        "times_ms": [t * 1e3 for t in times],
        "samples_per_s": a.batch / median,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
