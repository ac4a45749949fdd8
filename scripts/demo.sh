#!/usr/bin/env bash
# A short tour of bench-proxy on the embedded demo engine (the mock engine, no GPU needed):
# start it, a plain and a streamed completion through the proxy, a summary of /meta, a tiny
# benchmark, and a clean shutdown that leaves no engine process behind.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh bench-proxy mock-engine >/dev/null
bin=build/bin
listen=${BP_DEMO_LISTEN:-127.0.0.1:0}
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-proxy-demo.XXXXXX")
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "bench-proxy --listen $listen --config configs/demo-mock.yaml"
"$bin/bench-proxy" --listen "$listen" --config configs/demo-mock.yaml --run-dir "$work/run" 2>"$work/bench-proxy.log" &
pid=$!
trap 'kill -INT $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 200); do
  addr=$(sed -n 's/.*listening on \([0-9.]*:[0-9]*\).*/\1/p' "$work/bench-proxy.log" | head -1)
  [ -n "$addr" ] && break; sleep 0.05
done
url="http://$addr"
echo "listening on $url; /meta before the snapshot is ready:"
curl -s -i "$url/meta" | sed -n '1p;/Retry-After/p'
for _ in $(seq 1 200); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/meta")" = 200 ] && break; sleep 0.05
done
curl -s "$url/healthz"; echo

say "a plain chat completion through the proxy"
curl -s "$url/v1/chat/completions" -H 'Content-Type: application/json' \
  -d '{"model":"demo-model","messages":[{"role":"user","content":"I lost my card"}],"max_tokens":8}'; echo

say "a streamed completion: each SSE event as it arrives"
curl -s -N "$url/v1/chat/completions" -H 'Content-Type: application/json' \
  -d '{"model":"demo-model","messages":[{"role":"user","content":"stream"}],"max_tokens":5,"stream":true,"stream_options":{"include_usage":true}}' |
  while IFS= read -r line; do if [ -n "$line" ]; then printf '%s  %s\n' "$(date +%T.%3N)" "${line:0:110}"; fi; done

say "bench-proxy meta summary $url (the provenance snapshot of exactly this engine process)"
"$bin/bench-proxy" meta summary "$url"

say "a tiny benchmark: 20 queries of the bank call-center workload, batch size 1"
"$bin/bench-proxy" bench --url "$url" --queries configs/workloads/bank-intents.csv -n 20 \
  --out "$work/bench" --results "$work/results.tsv" --no-progress

say "Ctrl-C (SIGINT): drain, stop the engine, reap its whole process tree"
engine=$(curl -s "$url/healthz" | sed -n 's/.*"engine_pid":\([0-9]*\).*/\1/p')
kill -INT $pid; wait $pid; rc=$?; trap - EXIT
echo "bench-proxy exited with $rc; engine pid $engine alive afterwards: $(kill -0 "$engine" 2>/dev/null && echo yes || echo no)"

say "is a difference real? an A/A sweep: the same config twice, 3 interleaved trials each, with intervals and verdicts"
# On a busy machine (a neighbour's CPU bursts during a trial, even after its reruns) a config's result
# is INVALID, "the machine was busy", and the sweep exits 1: shown as it is, and the tour goes on (as
# with compare's and try's exit statuses below, which are verdicts).
"$bin/bench-proxy" sweep configs/demo-mock.yaml configs/demo-mock.yaml --trials 3 --queries configs/workloads/bank-intents.csv \
  -n 20 --max-tokens 8 --sweep-dir "$work/sweep" --results "$work/results.tsv" --log-level warn || true

say "bench-proxy compare $work/sweep (its first config is the baseline)"
"$bin/bench-proxy" compare "$work/sweep" --metric output_tps --metric ttft_p50 || true

say "one campaign step decided sequentially: a config whose tokens come 1 ms later, tried against the demo"
sed 's/--itl-ms, "2"/--itl-ms, "3"/; s/^description: .*/description: demo, inter-token delay 3 ms/' configs/demo-mock.yaml > "$work/slower.yaml"
"$bin/bench-proxy" try "$work/slower.yaml" --against configs/demo-mock.yaml --queries configs/workloads/bank-intents.csv \
  -n 20 --max-tokens 8 --try-dir "$work/try" --results "$work/results.tsv" --no-progress --log-level warn || true

say "bench-proxy results: the ledger as a campaign (keep / discard / within noise)"
"$bin/bench-proxy" results "$work/results.tsv"
echo "run folder: $work/run (engine.log, meta.json); log: $work/bench-proxy.log; sweep: $work/sweep; try: $work/try"
