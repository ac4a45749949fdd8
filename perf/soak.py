#!/usr/bin/env python3
"""Soak: many concurrent streaming connections with random client aborts, bounded in time.

usage: perf/soak.py [--connections 200] [--seconds 30] [--abort 0.3]

bench-proxy (in front of the mock engine) must keep serving; afterwards its open file
descriptors return to their idle level, and every stream that completed is byte-identical to the
same request sent directly to the engine (the mock answers deterministically with
"mock_deterministic": true). Memory: the soak runs twice; after the first, RSS holds the
/proxy/requests window (the latest 10,000 records, a bounded cache, kept by design), so the check
is that the second, identical soak leaves RSS where the first left it (within 5 % + 1 MiB): nothing
grows with the load. Exit status 0 when all of that holds. See docs/benchmarks.md.
"""
import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("BP_BIN_DIR", os.path.join(ROOT, "build", "bin"))
PROMPTS = [f"soak prompt number {i} about card {i * 7}" for i in range(12)]


def status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def body(prompt, tokens):
    return json.dumps({"model": "m", "messages": [{"role": "user", "content": prompt}], "max_tokens": tokens,
                       "stream": True, "mock_deterministic": True}).encode()


async def stream(port, prompt, tokens, abort_after=None):
    """Returns the decoded body bytes, or None when it aborted on purpose."""
    r, w = await asyncio.open_connection("127.0.0.1", port)
    b = body(prompt, tokens)
    w.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(b)).encode() + b"\r\n\r\n" + b)
    await w.drain()
    head = await r.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:80]
    out = b""
    events = 0
    while True:
        size = int((await r.readline()).strip(), 16)
        if size == 0:
            await r.readline()
            break
        chunk = await r.readexactly(size)
        await r.readexactly(2)
        out += chunk
        events += chunk.count(b"\n\n")
        if abort_after is not None and events >= abort_after:
            w.transport.abort()
            return None
    w.close()
    return out


async def client(port, deadline, rng, abort_p, results, counters):
    while time.monotonic() < deadline:
        prompt, tokens = rng.choice(PROMPTS), rng.randint(4, 60)
        abort_after = rng.randint(1, tokens) if rng.random() < abort_p else None
        try:
            out = await asyncio.wait_for(stream(port, prompt, tokens, abort_after), 30)
        except Exception as e:  # a failure is counted, never hidden
            counters["errors"] += 1
            counters.setdefault("error_examples", []).append(repr(e)[:120])
            continue
        if out is None:
            counters["aborted"] += 1
        else:
            counters["completed"] += 1
            results.setdefault((prompt, tokens), set()).add(out)


async def soak(port, n, seconds, abort_p):
    rng = random.Random(1)
    results, counters = {}, {"completed": 0, "aborted": 0, "errors": 0}
    deadline = time.monotonic() + seconds
    await asyncio.gather(*(client(port, deadline, random.Random(rng.random()), abort_p, results, counters)
                           for _ in range(n)))
    return results, counters


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connections", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--abort", type=float, default=0.3)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="bp_soak_")
    cfg = os.path.join(work, "engine.yaml")
    with open(cfg, "w") as f:
        f.write(f"description: soak\nengine: mock\ncmd: {BIN}/mock-engine\nargs: [--itl-ms, \"20\", --ttft-ms, \"30\"]\n"
                "warmup: 1\nenv:\n  PATH: /usr/bin:/bin\n")
    log = open(os.path.join(work, "bench-proxy.log"), "w+")
    bp = subprocess.Popen([f"{BIN}/bench-proxy", "--listen", "127.0.0.1:0", "--config", cfg, "--run-dir",
                           os.path.join(work, "run")], stderr=log)
    try:
        port, last_error = None, None
        for _ in range(400):
            log.seek(0)
            for line in log:
                if "bench-proxy" in line and "listening on 127.0.0.1:" in line and port is None:
                    port = int(line.split("listening on 127.0.0.1:")[1].split()[0])
            if port:
                try:
                    meta = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/meta"))
                    break
                except Exception as e:
                    last_error = e
            time.sleep(0.05)
        else:
            raise SystemExit(f"bench-proxy never published /meta (port {port}): {last_error!r}")
        engine_port = meta["engine"]["port"]
        # Idle level: after one small burst has warmed the allocator, then back to quiet.
        print("warming up", file=sys.stderr)
        asyncio.run(soak(port, 4, 1, 0))
        print("soaking", file=sys.stderr)
        time.sleep(1.5)
        idle_rss, idle_fds = status(bp.pid, "VmRSS"), fds(bp.pid)
        def settle(limit_kib):
            # Back to idle: connections closed, buffers released (the sweep trims the heap when idle).
            end = time.monotonic() + 10
            while time.monotonic() < end and (fds(bp.pid) > idle_fds or status(bp.pid, "VmRSS") > limit_kib):
                time.sleep(0.2)
            return status(bp.pid, "VmRSS"), fds(bp.pid)

        t0 = time.monotonic()
        results, counters = asyncio.run(soak(port, a.connections, a.seconds, a.abort))
        took = time.monotonic() - t0
        first_rss, first_fds = settle(idle_rss * 1.25 + 2048)
        print("soaking again", file=sys.stderr)
        results2, counters2 = asyncio.run(soak(port, a.connections, a.seconds, a.abort))
        for k, v in results2.items():
            results.setdefault(k, set()).update(v)
        for k in ("completed", "aborted", "errors"):
            counters[k] += counters2[k]
        counters.setdefault("error_examples", []).extend(counters2.get("error_examples", []))
        peak_rss = status(bp.pid, "VmHWM")
        after_rss, after_fds = settle(first_rss * 1.05 + 1024)
        # Byte identity against the engine directly.
        async def compare():
            sem = asyncio.Semaphore(64)

            async def one(key, outs):
                async with sem:
                    direct = await asyncio.wait_for(stream(engine_port, *key), 30)
                    return outs != {direct}
            return sum(await asyncio.gather(*(one(k, v) for k, v in results.items())))
        mismatches = asyncio.run(compare())
        alive = bp.poll() is None and json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz"))["state"] == "ready"
    finally:
        bp.send_signal(signal.SIGINT)
        rc = bp.wait(60)
    print(f"soak: {a.connections} connections for {took:.1f} s, twice, abort probability {a.abort}")
    print(f"  streams completed {counters['completed']}, aborted on purpose {counters['aborted']}, errors {counters['errors']}"
          + (f" e.g. {counters['error_examples'][:2]}" if counters["errors"] else ""))
    print(f"  distinct completed requests compared with the engine directly: {len(results)}, mismatches {mismatches}")
    print(f"  bench-proxy RSS: idle {idle_rss / 1024:.1f} MiB, peak {peak_rss / 1024:.1f} MiB, after the first soak "
          f"{first_rss / 1024:.1f} MiB (the 10,000-record window included), after the second {after_rss / 1024:.1f} MiB")
    print(f"  bench-proxy open fds: idle {idle_fds}, after each soak {first_fds}, {after_fds}; still serving: {alive}; exit {rc}")
    ok = (alive and rc == 0 and mismatches == 0 and counters["errors"] == 0 and first_fds <= idle_fds
          and after_fds <= idle_fds and after_rss <= first_rss * 1.05 + 1024 and counters["completed"] > 0)
    print("  verdict:", "ok" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
