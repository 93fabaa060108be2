#!/usr/bin/env bash
# The main job: `crossclr` with no arguments. It opens the explorer on the demo project, which it
# makes on first start (rendered captioned videos of moving shapes, ingested, trained with
# CrossCLR) in the user's data directory ($CROSSCLR_DATA_DIR, else ~/.local/share/crossclr/demo),
# with a progress bar. Without a display it says so and prints the demo's retrieval table and a
# few typed searches instead.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --locked --release
exec target/release/crossclr "$@"
