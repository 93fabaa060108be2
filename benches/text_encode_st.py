"""sentence-transformers twin of benches/text_encode.rs: encodes the same captions with the same
all-MiniLM-L6-v2 folder on the CPU at each batch size and prints one JSON line:
{"threads": n, "version": "...", "rates": {"<batch>": [sentences/s per round, ...]}}.
"""
import argparse
import json
import time

import torch
from sentence_transformers import SentenceTransformer, __version__


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--sentences", required=True, help="a JSON list of strings")
    parser.add_argument("--batch-sizes", required=True, help="comma-separated")
    parser.add_argument("--rounds", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    with open(args.sentences) as f:
        sentences = json.load(f)
    model = SentenceTransformer(args.model, device="cpu")
    rates = {}
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        model.encode(sentences[:batch], batch_size=batch)
        rates[str(batch)] = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            for at in range(0, len(sentences), batch):
                model.encode(sentences[at:at + batch], batch_size=batch)
            rates[str(batch)].append(len(sentences) / (time.perf_counter() - start))
    print(json.dumps({"threads": torch.get_num_threads(), "version": __version__, "rates": rates}))


if __name__ == "__main__":
    main()
