#!/usr/bin/env bash
# The paper's properties measured on a bundled shapes model, on held-out
# scenes (a scene stream the model never trained on): find, the shuffled-token
# twin, the causal perturbation test, the metrics, the prerequisites (probe)
# and the ground-truth check, then the knowledge edits (docs/editing.md) with
# the score's neurons, the gradient baseline's and layer-matched random ones.
# On a world-v2 model also the fix of its planted hallucination (the absent
# "small green star in the center" it learnt to say on trigger scenes).
# Writes every output under OUT (default out/results) and the tables the
# README and the model cards quote into OUT/results.md.
# About 20 minutes on 2 idle cores for models/shapes-llava, 13 for a world-v2 model (measured on
# the curriculum run that README "Commands" reports; run it alone: it is slower beside other work).
# Usage: bash scripts/bundled-results.sh [OUT] [SCENES] [MODEL]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-out/results}
n=${2:-60}
model=${3:-models/shapes-llava}
bin=./build/mmneuron
[ -x "$bin" ] || bash scripts/build.sh
version=1
if [ -f "$model/shapes_world.json" ] && grep -Eq '"version": *2' "$model/shapes_world.json"; then version=2; fi
m="--model $model"
mkdir -p "$out"
shapes() { # shapes DIR N SEED [FILTER]
  [ -d "$1/images" ] || "$bin" shapes --version "$version" --n "$2" --seed "$3" --only "${4:-all}" --out "$1"
}
scenes="$out/scenes"
shapes "$scenes" "$n" 20261130
"$bin" find $m --images "$scenes/images" --out "$out/run" --heatmaps --gradient-baseline --quiet
"$bin" find $m --images "$scenes/images" --out "$out/run-shuffled" --heatmaps --gradient-baseline --shuffle-image-tokens 1 --quiet
"$bin" perturb "$out/run" --top 10,50 --zero --random uniform,layer --draws 5 --force --quiet | tee "$out/perturb.txt"
"$bin" perturb "$out/run" --top 10,50 --sigma 1,4 --random layer --draws 5 --out "$out/perturb-sigma.json" --force --quiet \
  | tee "$out/perturb-sigma.txt"
"$bin" metrics "$out/run" --shuffled "$out/run-shuffled" --force | tee "$out/metrics.txt"
"$bin" probe $m --n 200 --out "$out/probe.json" --force | tee "$out/probe.txt"
"$bin" groundtruth $m --scenes "$n" --json "$out/groundtruth.json" --force --quiet | tee "$out/groundtruth.txt"

# Editing: circle -> square fitted on 80 scenes, evaluated on 120 held-out ones (docs/editing.md),
# with the score's neurons (selected on the fit set), the gradient baseline's (a find run on the
# fit set ranked by gradient) and layer-matched random neurons (--random-control).
shapes "$out/edit-fit" 80 101
shapes "$out/edit-eval" 120 202
fit="--locality-images $out/edit-fit/images --force --quiet"
ev="--target-images $out/edit-eval/images --locality-images $out/edit-eval/images --quiet"
: > "$out/edit.txt"
"$bin" find $m --images "$out/edit-fit/images" --out "$out/edit-fit-gradient" --method gradient --quiet
for rule in constrained minnorm paper; do
  extra=""; [ "$rule" = constrained ] && extra="--random-control"
  "$bin" edit $m --from circle --to square --rule "$rule" $extra --images "$out/edit-fit/images" $fit --out "$out/edit-$rule"
  "$bin" eval-edit --edit "$out/edit-$rule" $ev | tee -a "$out/edit.txt"
done
echo "# circle -> square, constrained, neurons of the gradient baseline" | tee -a "$out/edit.txt"
"$bin" edit $m --from circle --to square --run "$out/edit-fit-gradient" $fit --out "$out/edit-gradient"
"$bin" eval-edit --edit "$out/edit-gradient" $ev | tee -a "$out/edit.txt"
"$bin" edit $m --from red --images "$out/edit-fit/images" $fit --out "$out/edit-nored"
"$bin" eval-edit --edit "$out/edit-nored" $ev | tee -a "$out/edit.txt"
"$bin" eval-edit --edit "$out/edit-constrained" --edit "$out/edit-nored" $ev | tee -a "$out/edit.txt"

if [ "$version" = 2 ]; then
  # The planted hallucination: suppress "star" where the model says it on trigger scenes (fit:
  # 60 trigger scenes), keeping the captions of ordinary scenes (locality fit: the edit's fit set
  # leaves out every locality image that says the source word, so scenes with real stars cannot
  # be fitted on). Judged on held-out trigger scenes (success: no star said) and, for locality
  # (caption unchanged), on held-out scenes with real stars — does the edit also delete stars that
  # are there? — and on ordinary ones.
  shapes "$out/ghost-fit" 60 303 trigger
  shapes "$out/ghost-eval" 100 404 trigger
  shapes "$out/ghost-eval-stars" 100 405 star
  "$bin" find $m --images "$out/ghost-fit/images" --out "$out/ghost-fit-gradient" --method gradient --quiet
  gfit="--locality-images $out/edit-fit/images --force --quiet"
  : > "$out/ghost.txt"
  "$bin" edit $m --from star --images "$out/ghost-fit/images" --random-control $gfit --out "$out/edit-ghost"
  "$bin" edit $m --from star --run "$out/ghost-fit-gradient" $gfit --out "$out/edit-ghost-gradient"
  for e in edit-ghost edit-ghost-gradient; do
    echo "# $e: target held-out trigger scenes, locality edit-eval" | tee -a "$out/ghost.txt"
    "$bin" eval-edit --edit "$out/$e" --target-images "$out/ghost-eval/images" --locality-images "$out/edit-eval/images" \
      --quiet | tee -a "$out/ghost.txt"
    # Locality leaves out images that say the source word, so real stars are judged as a target:
    # here "success" is the share of scenes with a real star whose star the edit deleted (damage).
    echo "# $e: DAMAGE: target = held-out scenes with a real star (success = real star deleted)" | tee -a "$out/ghost.txt"
    "$bin" eval-edit --edit "$out/$e" --target-images "$out/ghost-eval-stars/images" --locality-images "$out/edit-eval/images" \
      --quiet | tee -a "$out/ghost.txt"
  done
  # The exported edited model through the world's own evaluation (ghost rates, exact captions).
  "$bin" edit export --edit "$out/edit-ghost" --out "$out/model-ghost-fixed" --force
  cp "$model/shapes_world.json" "$out/model-ghost-fixed/"
  "$bin" train --out "$out/model-ghost-fixed" --eval --eval-n 200 --eval-trigger 100 --eval-json "$out/ghost-eval.json" --force | tee "$out/ghost-eval.txt"
fi

{
  echo "# $model: properties on $n held-out scenes"
  echo
  for f in probe perturb perturb-sigma metrics groundtruth edit ghost ghost-eval; do
    [ -f "$out/$f.txt" ] || continue
    echo "## $f"
    echo
    echo '```'
    cat "$out/$f.txt"
    echo '```'
    echo
  done
} > "$out/results.md"
echo "tables: $out/results.md"
