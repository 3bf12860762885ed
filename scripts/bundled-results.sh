#!/usr/bin/env bash
# The paper's properties measured on the bundled shapes model, on held-out
# scenes (a scene stream the model never trained on): find, the shuffled-token
# twin, the causal perturbation test, the metrics and the ground-truth check.
# Writes every output under OUT (default out/results) and the tables the README
# quotes into OUT/results.md, then the knowledge edits (docs/editing.md). About 20 minutes on 2 cores.
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
# Editing: circle -> square fitted on 80 scenes, evaluated on 120 held-out ones (docs/editing.md).
[ -d "$out/edit-fit/images" ] || "$bin" shapes --n 80 --seed 101 --out "$out/edit-fit"
[ -d "$out/edit-eval/images" ] || "$bin" shapes --n 120 --seed 202 --out "$out/edit-eval"
fit="--images $out/edit-fit/images --locality-images $out/edit-fit/images --force --quiet"
ev="--target-images $out/edit-eval/images --locality-images $out/edit-eval/images --quiet"
: > "$out/edit.txt"
for rule in constrained minnorm paper; do
  extra=""; [ "$rule" = constrained ] && extra="--random-control"
  "$bin" edit --from circle --to square --rule "$rule" $extra $fit --out "$out/edit-$rule"
  "$bin" eval-edit --edit "$out/edit-$rule" $ev | tee -a "$out/edit.txt"
done
"$bin" edit --from red $fit --out "$out/edit-nored"
"$bin" eval-edit --edit "$out/edit-nored" $ev | tee -a "$out/edit.txt"
"$bin" eval-edit --edit "$out/edit-constrained" --edit "$out/edit-nored" $ev | tee -a "$out/edit.txt"
{
  echo "# Bundled model: properties on $n held-out scenes"
  echo
  for f in perturb perturb-sigma metrics groundtruth edit; do
    echo "## $f"
    echo
    echo '```'
    cat "$out/$f.txt"
    echo '```'
    echo
  done
} > "$out/results.md"
echo "tables: $out/results.md"
