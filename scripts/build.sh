#!/usr/bin/env bash
# Configures and builds bench-proxy: build/bin/bench-proxy, build/bin/bench-proxy-fleet and build/bin/mock-engine
# (and the tests); `bash scripts/build.sh TARGET...` builds only those targets (the demos do).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
[ -f build/CMakeCache.txt ] || cmake -S . -B build "${generator[@]}" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" ${1:+--target "$@"}
