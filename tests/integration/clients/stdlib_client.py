#!/usr/bin/env python3
"""A client of bench-proxy written with Python's standard library only, as a --client command.

usage: stdlib_client.py URL N MAX_TOKENS [--windows] [--exit CODE]

Sends N streamed chat completions one after another, times each itself (TTFT: sending to the first
content event; E2E: to the end), writes its own timings to $BENCH_PROXY_CLIENT_TIMINGS joined by
x-bench-proxy-request-id, and prints its own counts as one JSON line. With --windows: two warm-up
requests outside any window, window "A" (POST /proxy/window) around N requests, N requests named
"B" by the x-bench-proxy-window header, then window "C" started around one request and never
stopped (left open at exit)."""
import http.client
import json
import os
import sys
import time
from urllib.parse import urlparse


def main():
    url, n, max_tokens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    windows = "--windows" in sys.argv
    exit_code = int(sys.argv[sys.argv.index("--exit") + 1]) if "--exit" in sys.argv else 0
    u = urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    model = os.environ["BENCH_PROXY_MODEL"]
    timings = open(os.environ["BENCH_PROXY_CLIENT_TIMINGS"], "w")
    counts = {"requests": 0, "completed": 0, "output_tokens": 0, "prompt_tokens": 0}

    def window(name, action):
        conn.request("POST", "/proxy/window", body=json.dumps({"name": name, "action": action}),
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        assert r.status == 200, (name, action, r.status)

    def one(headers=None):
        body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hello"}],
                           "max_tokens": max_tokens, "stream": True, "stream_options": {"include_usage": True}})
        t0 = time.monotonic()
        conn.request("POST", "/v1/chat/completions", body=body,
                     headers={"Content-Type": "application/json", **(headers or {})})
        r = conn.getresponse()
        counts["requests"] += 1
        ttft = None
        usage = None
        buf = b""
        while True:
            chunk = r.read1(65536)
            if not chunk:
                break
            now = time.monotonic()
            buf += chunk
            while b"\n\n" in buf:
                ev, buf = buf.split(b"\n\n", 1)
                for line in ev.split(b"\n"):
                    if not line.startswith(b"data:"):
                        continue
                    data = line[5:].strip()
                    if data == b"[DONE]":
                        continue
                    j = json.loads(data)
                    if j.get("usage"):
                        usage = j["usage"]
                    for c in j.get("choices") or []:
                        if (c.get("delta") or {}).get("content") and ttft is None:
                            ttft = (now - t0) * 1000
        e2e = (time.monotonic() - t0) * 1000
        if r.status == 200 and usage:
            counts["completed"] += 1
            counts["output_tokens"] += usage["completion_tokens"]
            counts["prompt_tokens"] += usage["prompt_tokens"]
            rid = r.getheader("x-bench-proxy-request-id")
            timings.write(json.dumps({"id": int(rid), "ttft_ms": ttft, "e2e_ms": e2e}) + "\n")

    if windows:
        one()
        one()  # warm-up: in no window
        window("A", "start")
        for _ in range(n):
            one()
        window("A", "stop")
        for _ in range(n):
            one({"x-bench-proxy-window": "B"})
        window("C", "start")
        one()  # C is never stopped
    else:
        for _ in range(n):
            one()
    timings.close()
    print(json.dumps(counts), flush=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
