#!/usr/bin/env bash
# venv hashing throughput: bench-proxy's venv collector (bp-hash-bench) against OpenSSL's own tool
# on all cores, same files, warm page cache, interleaved rounds, medians.
# usage: perf/venv_hash.sh [FILES=20000] [TOTAL_MB=2048] [ROUNDS=3]
set -euo pipefail
files=${1:-20000}; total_mb=${2:-2048}; rounds=${3:-3}
command -v bc >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bc >/dev/null
bin=${BP_BIN_DIR:-$(cd "$(dirname "$0")/.." && pwd)/build/bin}
root=$(mktemp -d /tmp/bp_venv_bench.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "generating a venv-like tree: $files files, ~$total_mb MB under $root" >&2
/usr/bin/python3 - "$root" "$files" "$total_mb" <<'PY'
import os, random, sys
root, files, total_mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(42)
large = max(1, files // 200)                 # like a venv: a few big .so files (torch, cuDNN) ...
large_bytes = int(total_mb * 0.8) << 20      # ... hold most of the bytes
small_bytes = (total_mb << 20) - large_bytes  # ... and many small .py files the rest
block = os.urandom(1 << 20)
def write(path, size):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        while size > 0:
            n = min(size, len(block)); f.write(block[:n]); size -= n
        f.write(rng.randbytes(16))           # every file distinct
for i in range(large):
    write(f"{root}/lib/python3.11/site-packages/big/lib{i}.so", large_bytes // large)
small = files - large - 10
for i in range(small):
    write(f"{root}/lib/python3.11/site-packages/pkg{i % 300}/mod{i}.py", int(rng.expovariate(small / small_bytes)))
for i in range(10):
    write(f"{root}/bin/tool{i}", 4096)
PY
find "$root" -type f -exec cat {} + > /dev/null   # warm the page cache
ours=(); theirs=()
for r in $(seq 1 "$rounds"); do
  t0=$(date +%s.%N); line=$("$bin/bp-hash-bench" "$root"); t1=$(date +%s.%N)
  ours+=("$(echo "$t1 - $t0" | bc -l)")
  echo "round $r bench-proxy: $line" >&2
  t0=$(date +%s.%N)
  (cd "$root" && find bin lib -type f -print0 | xargs -0 -P"$(nproc)" -n 256 openssl dgst -sha256 > /dev/null)
  t1=$(date +%s.%N)
  theirs+=("$(echo "$t1 - $t0" | bc -l)")
  echo "round $r openssl: $(echo "$t1 - $t0" | bc -l) s" >&2
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
mo=$(median "${ours[@]}"); mt=$(median "${theirs[@]}")
bytes=$(du -sb "$root" | cut -f1)
printf 'venv hashing, %s files, %.0f MB, %s cores, median of %s rounds\n' "$files" "$(echo "$bytes/1000000" | bc -l)" "$(nproc)" "$rounds"
printf '  bench-proxy (bp-hash-bench): %.3f s  %.0f MB/s\n' "$mo" "$(echo "$bytes/$mo/1000000" | bc -l)"
printf '  openssl dgst via xargs -P:   %.3f s  %.0f MB/s\n' "$mt" "$(echo "$bytes/$mt/1000000" | bc -l)"
printf '  throughput ratio (bench-proxy / openssl): %.2f (target >= 0.90)\n' "$(echo "$mt/$mo" | bc -l)"
