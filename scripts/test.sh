#!/usr/bin/env bash
# The test command: set-up, formatting, lints, then every test. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The explorer's snapshots were rendered by Mesa's software Vulkan driver (lavapipe); wgpu would
# otherwise pick whichever backend it finds first, and another rasteriser draws other pixels.
if [[ $(uname -s) == Linux ]]; then
  export WGPU_BACKEND="${WGPU_BACKEND:-vulkan}"
fi
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked
