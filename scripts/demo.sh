#!/usr/bin/env bash
# The main job on a fresh machine: install dependencies, build, and caption the
# bundled sample image with a tiny random-weight LLaVA-1.5 checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
mkdir -p out
[ -f out/tiny-llava/model.safetensors ] || ./build/mmneuron make-random --preset tiny --dtype f32 --out out/tiny-llava
./build/mmneuron caption --model out/tiny-llava --image assets/sample.png --json --dump out/caption-dump
echo "intermediate arrays (.npy) are in out/caption-dump/"
