#!/usr/bin/env bash
# The paper's properties measured on the bundled shapes model, on held-out
# scenes (a scene stream the model never trained on): find, the shuffled-token
# twin, the causal perturbation test, the metrics and the ground-truth check.
# Writes every output under OUT (default out/results) and the tables the README
# quotes into OUT/results.md. Takes about 10 minutes on 2 cores.
# Usage: bash scripts/bundled-results.sh [OUT] [SCENES]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-out/results}
n=${2:-60}
bin=./build/mmneuron
[ -x "$bin" ] || bash scripts/build.sh
mkdir -p "$out"
scenes="$out/scenes"
[ -d "$scenes/images" ] || "$bin" shapes --n "$n" --seed 20261130 --out "$scenes"
"$bin" find --images "$scenes/images" --out "$out/run" --heatmaps --gradient-baseline --quiet
"$bin" find --images "$scenes/images" --out "$out/run-shuffled" --heatmaps --gradient-baseline --shuffle-image-tokens 1 --quiet
"$bin" perturb "$out/run" --top 10,50 --zero --random uniform,layer --draws 5 --force --quiet | tee "$out/perturb.txt"
"$bin" perturb "$out/run" --top 10,50 --sigma 1,4 --random layer --draws 5 --out "$out/perturb-sigma.json" --force --quiet \
  | tee "$out/perturb-sigma.txt"
"$bin" metrics "$out/run" --shuffled "$out/run-shuffled" --force | tee "$out/metrics.txt"
"$bin" groundtruth --scenes "$n" --json "$out/groundtruth.json" --force --quiet | tee "$out/groundtruth.txt"
{
  echo "# Bundled model: properties on $n held-out scenes"
  echo
  for f in perturb perturb-sigma metrics groundtruth; do
    echo "## $f"
    echo
    echo '```'
    cat "$out/$f.txt"
    echo '```'
    echo
  done
} > "$out/results.md"
echo "tables: $out/results.md"
