#!/usr/bin/env bash
# Builds the libFuzzer harnesses (fuzz/, clang + ASan/UBSan) into ./build-fuzz,
# replays every committed corpus (fuzz/corpus/<harness>/, the regression test),
# then fuzzes each harness for SECONDS (default 20) on a scratch copy of its
# corpus. Exits non-zero on any finding; crashing inputs are kept under
# build-fuzz/findings/ (add them to fuzz/corpus/<harness>/ once fixed).
#
# Usage: bash scripts/fuzz.sh [SECONDS] [--update-corpus] [--only NAME]...
#   SECONDS 0        replay the corpora only
#   --update-corpus  merge the new inputs that add coverage into fuzz/corpus/
#   --only NAME      just this harness (fuzz_npy or npy); repeatable
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=20 update=0 only=()
while (($#)); do
  case "$1" in
    --update-corpus) update=1 ;;
    --only) only+=("fuzz_${2#fuzz_}"); shift ;;
    [0-9]*) seconds=$1 ;;
    *) echo "usage: $0 [SECONDS] [--update-corpus] [--only NAME]..." >&2; exit 2 ;;
  esac
  shift
done

# clang and its runtimes (libFuzzer, sanitizers, OpenMP), as install-deps.sh does.
pkgs=(clang libclang-rt-14-dev libomp-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

build=build-fuzz
if [ ! -f "$build/CMakeCache.txt" ]; then
  CC=clang CXX=clang++ cmake -S . -B "$build" -DMMN_FUZZ=ON -DMMN_BUILD_TESTS=OFF -DMMN_BUILD_BENCH=OFF >/dev/null
fi
cmake --build "$build" --target fuzzers -j"$(nproc)"

harnesses=()
if ((${#only[@]})); then
  harnesses=("${only[@]}")
else
  for f in fuzz/fuzz_*.cpp; do harnesses+=("$(basename "$f" .cpp)"); done
fi

# Scratch files of the harnesses go to memory when possible (much faster).
[ -d /dev/shm ] && [ -w /dev/shm ] && export TMPDIR=/dev/shm
# ASan's default quarantine holds 256 MiB per process; a smaller one lets two
# harnesses run side by side in little memory without missing use-after-free.
export ASAN_OPTIONS="${ASAN_OPTIONS:-quarantine_size_mb=32:detect_leaks=1}"
limits=(-rss_limit_mb=2560 -malloc_limit_mb=1024 -timeout=20)
findings="$build/findings"
work="$build/fuzz-work"
mkdir -p "$findings"
log="$build/fuzz-logs"
rm -rf "$log" && mkdir -p "$log"

# 1. Regression: every committed input runs once, unmutated.
fail=0
for h in "${harnesses[@]}"; do
  corpus="fuzz/corpus/$h"
  [ -d "$corpus" ] || { echo "no corpus for $h" >&2; fail=1; continue; }
  if ! "$build/fuzz/$h" "${limits[@]}" -artifact_prefix="$findings/$h-" "$corpus"/* >"$log/$h.replay.txt" 2>&1; then
    echo "FINDING: $h fails on its committed corpus (log: $log/$h.replay.txt)"
    grep -m3 -E "ERROR|finding:|runtime error|terminate" "$log/$h.replay.txt" || tail -5 "$log/$h.replay.txt"
    fail=1
  fi
done
echo "replayed $(cat fuzz/corpus/*/* 2>/dev/null | wc -c | awk '{print int($1/1024)}') KiB of corpus over ${#harnesses[@]} harnesses"

# 2. Fuzzing: each harness on a scratch copy of its corpus, $(nproc) at a time.
fuzz_one() {
  local h=$1 seconds=$2 build=$3 update=$4
  local dir="$work/$h"
  rm -rf "$dir" && mkdir -p "$dir" && cp fuzz/corpus/"$h"/* "$dir"/
  if "$build/fuzz/$h" "${limits[@]}" -max_total_time="$seconds" -print_final_stats=1 \
       -artifact_prefix="$findings/$h-" "$dir" >"$log/$h.fuzz.txt" 2>&1; then
    local runs
    runs=$(grep -m1 -oE "stat::number_of_executed_units: [0-9]+" "$log/$h.fuzz.txt" | grep -oE "[0-9]+$" || echo "?")
    echo "ok: $h ($runs runs in ${seconds}s)"
    if [ "$update" = 1 ]; then
      "$build/fuzz/$h" "${limits[@]}" -merge=1 "fuzz/corpus/$h" "$dir" >>"$log/$h.fuzz.txt" 2>&1
    fi
  else
    echo "FINDING: $h (log: $log/$h.fuzz.txt; input: $(ls -t "$findings/$h-"* 2>/dev/null | head -1))"
    grep -m3 -E "ERROR|finding:|runtime error|terminate" "$log/$h.fuzz.txt" || tail -5 "$log/$h.fuzz.txt"
    return 1
  fi
}
if ((seconds > 0)); then
  export -f fuzz_one
  export work log findings
  export limits_str="${limits[*]}"
  # shellcheck disable=SC2016
  printf '%s\n' "${harnesses[@]}" |
    xargs -P "$(nproc)" -I{} bash -c 'limits=($limits_str); fuzz_one "$1" "$2" "$3" "$4"' _ {} "$seconds" "$build" "$update" ||
    fail=1
fi
if ((fail)); then
  echo "fuzzing found problems; crashing inputs are in $findings/" >&2
  exit 1
fi
echo "fuzzing: no findings"
