#!/usr/bin/env bash
# The main job, for now: explain what CrossCLR does to a batch with planted semantic duplicates
# (paper mode, then the authors' released code), evaluate retrieval on its similarities, then make
# a synthetic demo project, train CrossCLR on it and evaluate the run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --locked --release
bin=target/release/crossclr
echo "== CrossCLR, paper mode: which negatives of anchor 0 are pruned =="
"$bin" loss --batch assets/example_batch.safetensors --anchor 0
echo "== the same batch as the released code computes it (official mode) =="
"$bin" loss --batch assets/example_batch.safetensors --mode official | head -n 4
echo "== retrieval on the batch's video→text similarities =="
"$bin" eval --similarity assets/example_similarity.safetensors
"$bin" eval --similarity assets/example_similarity.safetensors --transpose
echo "== a demo project: synthetic features with planted semantic duplicates =="
demo="${CROSSCLR_DEMO_DIR:-target/demo-project}"
rm -rf "$demo"
"$bin" synth "$demo" --kind duplicates --seed 0
echo "== train the coot head with CrossCLR (paper mode), then report on the test split =="
"$bin" train "$demo" --epochs 12
"$bin" eval "$demo"
