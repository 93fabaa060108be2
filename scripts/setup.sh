#!/usr/bin/env bash
# Installs what a fresh Debian bookworm machine lacks for building and testing crossclr, and nothing
# that is already there. Safe to run again.
set -euo pipefail

# System packages the crate needs (later issues add the GUI test stack here). FFmpeg: its
# development libraries for ffmpeg-next (bindgen needs clang), and the ffmpeg tool, which the media
# tests and the thumbnail benchmark use to make videos and to compare against.
APT_PACKAGES=(build-essential pkg-config libhdf5-dev
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev libavfilter-dev
  libavdevice-dev clang libclang-dev ffmpeg)

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
