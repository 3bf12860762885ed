#!/usr/bin/env bash
# The main job on a fresh machine: install dependencies, build, and find the
# multi-modal neurons of the bundled shapes model on the bundled scenes, with
# heatmaps, and write the HTML report. Results land in out/find/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
./build/mmneuron find --images assets/scenes/images --out out/find --heatmaps
# The report is this script's own output: rewritten on every run.
./build/mmneuron report out/find --force --quiet
cat <<'TXT'

Open the report in a browser: out/find/report.html (one self-contained file).
Results are in out/find/:
  out/find/<scene>/result.json    caption, nouns, each noun's top neurons with their top tokens
  out/find/<scene>/neurons.npz    the full top-1000 per noun (layer, unit, score, words; also neurons.npy)
  out/find/<scene>/heatmaps/<step>_<noun>/mean_top10.png (+ _mask.png, _mask_overlay.png)   where the top neurons fire
  (ground truth for the scenes: assets/scenes/captions.jsonl and assets/scenes/masks/)
TXT
