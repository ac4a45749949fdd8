#!/usr/bin/env bash
# The second demo: a real engine. Builds llama.cpp's llama-server and a tiny model once (cached,
# ~20 minutes cold on 2 cores), then serves it behind bench-proxy: completions, /meta summary
# (libllama/libggml with their versions and hashes, the engine's own /props), a small benchmark.
# Exits 0 only for a valid benchmark with no failed request; the tiny model's answers are always
# valid UTF-8, so llama-server never rejects one (scripts/make_tiny_gguf.py). tests/integration/
# test_demos.py runs this script as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh bench-proxy >/dev/null
bash scripts/llama-setup.sh >/dev/null
set -a
. "${BENCH_PROXY_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/bench-proxy}/llama.env"
set +a
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-proxy-llama.XXXXXX")
build/bin/bench-proxy --listen 127.0.0.1:0 --config configs/llama-cpu.yaml --run-dir "$work/run" 2>"$work/log" &
pid=$!
trap 'kill -INT $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
  addr=$(sed -n 's/.*bench-proxy .* listening on \([0-9.]*:[0-9]*\).*/\1/p' "$work/log" | head -1)
  [ -n "$addr" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$addr/meta")" = 200 ] && break
  sleep 0.1
done
url="http://$addr"
echo "== chat completion from llama-server through $url"
curl -s "$url/v1/chat/completions" -H 'Content-Type: application/json' \
  -d '{"model":"tiny","messages":[{"role":"user","content":"hello"}],"max_tokens":12}'; echo
echo "== /meta summary"
build/bin/bench-proxy meta summary "$url"
echo "== shared libraries the engine maps, with versions from their names"
build/bin/bench-proxy meta show "$url" | /usr/bin/python3 -c 'import json,sys; [print(" ", l["path"], l["version"]) for l in json.load(sys.stdin)["loaded_libs"]["libraries"] if "ggml" in l["path"] or "llama" in l["path"]]'
echo "== a benchmark of 10 queries"
build/bin/bench-proxy bench --url "$url" --queries configs/workloads/bank-intents.csv -n 10 --max-tokens 32 \
  --out "$work/bench" --results "$work/results.tsv" --no-progress
