#!/usr/bin/env bash
# Fuzzes the proxy's HTTP/1 reframing, the client's response reader, the config loader, the JSON reader (with a depth generator) and the ledger with libFuzzer (Debian's clang),
# AddressSanitizer and UBSan: `bash scripts/fuzz.sh [SECONDS per target, default 180]`.
# Builds into build-fuzz/. Crashes land in build-fuzz/crashes/<target>/; copy each one that
# reproduces into tests/data/fuzz/<target>/ once fixed, so every ordinary build replays it.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-180}
bash scripts/deps.sh
command -v clang++ >/dev/null || { apt-get install -y -qq clang libclang-rt-dev >/dev/null; }
[ -f build-fuzz/CMakeCache.txt ] || cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++ -DBP_FUZZ=ON -DBUILD_TESTING=ON >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target http1_fuzz http_client_fuzz config_fuzz json_fuzz ledger_fuzz fleet_frame_fuzz
for t in http1 http_client config json ledger fleet_frame; do
  corpus=build-fuzz/corpus/$t crashes=build-fuzz/crashes/$t
  mkdir -p "$corpus" "$crashes"
  cp -n tests/data/fuzz/$t/* "$corpus"/ 2>/dev/null || true
  echo "fuzzing $t for $secs s (corpus $corpus)"
  build-fuzz/bin/${t}_fuzz -max_total_time="$secs" -max_len=16384 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$crashes/" -print_final_stats=1 "$corpus" 2>&1 | tail -n 12
done
