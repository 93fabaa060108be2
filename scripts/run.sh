#!/usr/bin/env bash
# The main job: `crossclr` with no arguments. On first run it renders the demo collection
# (captioned videos of moving shapes) into the user's data directory ($CROSSCLR_DATA_DIR, else
# ~/.local/share/crossclr/demo), ingests it, trains the coot head with CrossCLR, then prints the
# retrieval table and a few typed searches; later runs reuse the demo. (The explorer app will
# open on it once it exists.)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --locked --release
exec target/release/crossclr "$@"
