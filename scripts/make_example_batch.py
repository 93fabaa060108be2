"""Writes assets/example_batch.safetensors, one CrossCLR batch with planted semantic duplicates, and
assets/example_similarity.safetensors, the video→text cosine similarities of its embeddings.

24 video-text pairs drawn from 6 latent topics of unequal size (8, 5, 4, 3, 2, 2). Samples of one
topic are semantic duplicates: false negatives for InfoNCE. Input features (what CrossCLR measures
proximity with) are non-negative, as post-ReLU encoder features are; the embeddings imitate a
half-trained model: the latent plus noise. Needs only numpy; the output is committed.

    python3 scripts/make_example_batch.py
"""
import json
import struct
from pathlib import Path

import numpy as np

rng = np.random.default_rng(2021)
sizes = [8, 5, 4, 3, 2, 2]
topics = np.repeat(np.arange(len(sizes)), sizes)
d, dv, dt = 32, 64, 48
latent_centres = rng.standard_normal((len(sizes), d))

def equal_norm_centres(count, dim):
    # Sparse non-negative centres of equal norm: topics overlap little, and connectivity (an
    # unnormalised dot product) then grows with a topic's size rather than its feature norm.
    centres = np.abs(rng.standard_normal((count, dim))) * (rng.random((count, dim)) < 0.3)
    return 4.0 * centres / np.linalg.norm(centres, axis=1, keepdims=True)


video_centres = equal_norm_centres(len(sizes), dv)
text_centres = equal_norm_centres(len(sizes), dt)

latent = latent_centres[topics] + 0.35 * rng.standard_normal((len(topics), d))
tensors = {
    "video_emb": latent + 0.6 * rng.standard_normal(latent.shape),
    "text_emb": latent + 0.6 * rng.standard_normal(latent.shape),
    "video_in": np.maximum(video_centres[topics] + 0.25 * rng.standard_normal((len(topics), dv)), 0),
    "text_in": np.maximum(text_centres[topics] + 0.25 * rng.standard_normal((len(topics), dt)), 0),
}



def write_safetensors(path, arrays, metadata):
    header, blobs, offset = {}, [], 0
    for name, array in arrays.items():
        data = np.ascontiguousarray(array, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    header["__metadata__"] = metadata
    encoded = json.dumps(header).encode()
    encoded += b" " * ((8 - len(encoded) % 8) % 8)
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + b"".join(blobs))
    print(f"wrote {path}")


assets = Path(__file__).resolve().parent.parent / "assets"
metadata = {"topics": json.dumps(topics.tolist())}
write_safetensors(assets / "example_batch.safetensors", tensors, metadata)
unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
similarity = unit(tensors["video_emb"]) @ unit(tensors["text_emb"]).T
write_safetensors(assets / "example_similarity.safetensors", {"similarity": similarity}, metadata)
