#!/usr/bin/env bash
# Installs the Debian 12 packages mmneuron needs to build, test and run
# (bash scripts/install-deps.sh [--tests]).
# Idempotent: skips apt entirely when everything is already present.
set -euo pipefail
pkgs=(g++ cmake make pkg-config git ca-certificates
      libopenblas-dev libsentencepiece-dev nlohmann-json3-dev
      libpng-dev libjpeg62-turbo-dev
      libcli11-dev libgtest-dev libbenchmark-dev libdnnl-dev wordnet-base
      pybind11-dev python3-dev python3-numpy  # the Python module (python/, README "Python")
      clang libclang-rt-14-dev libomp-dev)  # clang + runtimes: the fuzzers (scripts/fuzz.sh)
# --tests: also what only the tests need (headless Chromium opens the HTML report; pytest runs the
# Python module's tests, tests/python/).
[ "${1:-}" = --tests ] && pkgs+=(chromium python3-pytest)
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
