#!/usr/bin/env python3
"""Can the load generator keep an open-loop schedule? (docs/benchmarks.md, "Open-loop schedule")

Starts the mock engine (no delays, so the engine is never the bottleneck) and runs
`bench-proxy bench --url <mock> --allow-no-snapshot --load rate=R1,R2,...` straight against it,
several rounds; prints, per requested rate and round, the achieved send rate and the lateness of
each request against its planned time (median, p99), and the medians over rounds. The goal:
2,000 requests/s with median lateness under 1 ms on this 2-core machine; the table says where it
stops keeping up. Every process it starts is stopped by its PID.

  python3 perf/loadgen_rate.py [--rates 500,1000,2000,4000] [--seconds 3] [--rounds 3]
"""
import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("BP_BIN_DIR", os.path.join(ROOT, "build", "bin"))
WORKLOAD = os.path.join(ROOT, "configs", "workloads", "bank-intents.csv")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", default="500,1000,2000,4000")
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--mock-threads", type=int, default=1)
    a = ap.parse_args()
    port = free_port()
    mock = subprocess.Popen([os.path.join(BIN, "mock-engine"), "--port", str(port), "--tokens", "4",
                             "--threads", str(a.mock_threads)], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or mock.poll() is not None:
                    sys.exit("mock-engine did not start")
                time.sleep(0.05)
        rates = [float(x) for x in a.rates.split(",")]
        per = {r: [] for r in rates}
        with tempfile.TemporaryDirectory() as tmp:
            for rnd in range(a.rounds):
                out = os.path.join(tmp, f"r{rnd}")
                cmd = [os.path.join(BIN, "bench-proxy"), "bench", "--url", f"http://127.0.0.1:{port}",
                       "--allow-no-snapshot", "--queries", WORKLOAD, "--load", "rate=" + ",".join(a.rates.split(",")),
                       "--duration", str(a.seconds), "--max-tokens", "4", "--warmup", "10", "--bootstrap", "0", "--out", out,
                       "--results", "", "--no-progress", "--seed", str(rnd + 1)]
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
                if not os.path.exists(os.path.join(out, "result.json")):
                    sys.exit("bench failed: " + r.stdout[-2000:] + r.stderr[-2000:])
                with open(os.path.join(out, "result.json")) as f:
                    res = json.load(f)
                for p in res["load"]["points"]:
                    sc = p["schedule"]
                    per[sc["requested_rate"]].append((sc["achieved_rate"], sc["lateness_ms"]["median"],
                                                      sc["lateness_ms"]["p99"], p["summary"]["errors"], sc["kept"]))
        print(f"open-loop schedule against the mock ({a.rounds} rounds of {a.seconds:g} s per rate, "
              f"mock threads {a.mock_threads}, {os.cpu_count()} cores)")
        print(f"{'requested/s':>12} {'achieved/s':>11} {'lateness p50 ms':>16} {'p99 ms':>8} {'errors':>7}  kept")
        for r in rates:
            rows = per[r]
            for ach, p50, p99, err, kept in rows:
                print(f"{r:12.0f} {ach:11.1f} {p50:16.3f} {p99:8.3f} {err:7d}  {'yes' if kept else 'no'}")
            print(f"{'median':>12} {statistics.median(x[0] for x in rows):11.1f} "
                  f"{statistics.median(x[1] for x in rows):16.3f} {statistics.median(x[2] for x in rows):8.3f}")
        target = [x for x in per.get(2000.0, [])]
        if target:
            ok = statistics.median(x[1] for x in target) < 1.0
            print(f"goal (2,000 req/s, median lateness < 1 ms): {'met' if ok else 'missed'}")
    finally:
        mock.send_signal(signal.SIGTERM)
        try:
            mock.wait(timeout=10)
        except subprocess.TimeoutExpired:
            mock.kill()
            mock.wait()


if __name__ == "__main__":
    main()
