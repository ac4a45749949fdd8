#!/usr/bin/env bash
# Runs the openai npm client test against a live bench-proxy + mock engine.
# usage: tests/node/run.sh BIN_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:?usage: run.sh BIN_DIR}
[ -f "$here/node_modules/openai/package.json" ] ||
  { echo "tests/node/node_modules is missing: the CTest fixture setup.node_modules installs it (npm ci)"; exit 1; }
work=$(mktemp -d)
cfg="$work/engine.yaml"
cat > "$cfg" <<YAML
description: openai client test
engine: mock
cmd: $bin/mock-engine
args: [--itl-ms, "15", --ttft-ms, "20"]
warmup: 1
env:
  PATH: /usr/bin:/bin
YAML
"$bin/bench-proxy" --listen 127.0.0.1:0 --config "$cfg" --run-dir "$work/run" >"$work/log" 2>&1 &
pid=$!
cleanup() { kill -INT "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
port=""
for _ in $(seq 1 200); do
  port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/log" | head -1)
  [ -n "$port" ] && curl -sf "http://127.0.0.1:$port/meta" >/dev/null && break
  sleep 0.05
done
[ -n "$port" ] || { cat "$work/log"; exit 1; }
node "$here/openai_stream.mjs" "http://127.0.0.1:$port"
# The abort reached the engine: it logged the cancellation.
for _ in $(seq 1 100); do grep -q "client disconnected, request cancelled" "$work/log" && break; sleep 0.05; done
grep -q "client disconnected, request cancelled" "$work/log" || { echo "engine never saw the cancel"; cat "$work/log"; exit 1; }
echo "1 passed, 0 failed"
