#!/usr/bin/env bash
# Install dependencies, build everything, run the whole test suite, then the
# fuzzers briefly (scripts/fuzz.sh; MMN_SKIP_FUZZ=1 skips them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --tests
bash scripts/build.sh
(cd build && ctest --output-on-failure -j"$(nproc)")
# Parsers under libFuzzer (README "Fuzzing"): corpus replay + 10 s per harness.
[ "${MMN_SKIP_FUZZ:-0}" = 1 ] || bash scripts/fuzz.sh 10
