#!/usr/bin/env python3
"""Noise-free proxy yardsticks: system calls and user-space instructions per proxied request.

usage: perf/syscalls_instructions.py [--requests 2000] [--streams 100] [--wrk-seconds 3]
                                     [--no-callgrind] [--json OUT]

Beside the wall-clock benchmark (perf/proxy_overhead.py), two counts that do not depend on how
busy the machine is, for bench-proxy, nginx and (where installed) haproxy, each with one
worker/thread, in front of the same mock engine on loopback:

- system calls per request (`strace -c -f` attached after a warm-up): sequential keep-alive plain
  requests, streamed requests (per SSE event), and 64 connections (wrk);
- user-space instructions per sequential request of the proxy process (`valgrind
  --tool=callgrind`: counters zeroed after the warm-up with callgrind_control -z, dumped after N
  requests with callgrind_control -d).

Installs nginx-light, wrk, strace and valgrind (Debian packages) when missing. See
docs/benchmarks.md, "System calls and instructions per request".
"""
import argparse
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

from proxy_overhead import free_port, write_haproxy_conf, write_nginx_conf  # the same proxies, configured the same way

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BIN = os.environ.get("BP_BIN_DIR", os.path.join(ROOT, "build", "bin"))
BODY = '{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":4}'


def ensure_tools():
    need = [("nginx-light", "/usr/sbin/nginx"), ("wrk", "/usr/bin/wrk"), ("strace", "/usr/bin/strace"),
            ("valgrind", "/usr/bin/valgrind")]
    missing = [p for p, exe in need if not os.path.exists(exe)]
    if missing:
        print(f"installing {' '.join(missing)} ...", file=sys.stderr)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env, stdout=subprocess.DEVNULL)


def wait_url(url, deadline_s, what, proc=None):
    deadline = time.time() + deadline_s
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"{what} exited early")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.read()
        except Exception:
            time.sleep(0.1)
    raise SystemExit(f"{what}: {url} did not answer within {deadline_s} s")


def probe(mode, url, n):
    subprocess.run([f"{BIN}/bp-latency-probe", mode, url, str(n)], check=True, stdout=subprocess.DEVNULL)


def start_engine(work):
    port = free_port()
    p = subprocess.Popen([f"{BIN}/mock-engine", "--port", str(port), "--tokens", "4", "--threads", "1"],
                         stderr=subprocess.DEVNULL)
    wait_url(f"http://127.0.0.1:{port}/health", 30, "mock-engine", p)
    return p, port


def bench_proxy_cmd(work, tag):
    cfg = os.path.join(work, f"engine-{tag}.yaml")
    with open(cfg, "w") as f:
        f.write(f"description: syscall/instruction yardstick upstream\nengine: mock\ncmd: {BIN}/mock-engine\n"
                'args: [--tokens, "4", --threads, "1"]\nwarmup: 0\nenv:\n  PATH: /usr/bin:/bin\n')
    port = free_port()
    return [f"{BIN}/bench-proxy", "--listen", f"127.0.0.1:{port}", "--config", cfg, "--threads", "1",
            "--run-dir", os.path.join(work, f"run-{tag}"), "--telemetry-interval-ms", "0"], port


def nginx_conf(work, tag, upstream, single_process):
    port = free_port()
    conf = write_nginx_conf(work, upstream, port, tag, single_process)
    return ["/usr/sbin/nginx", "-c", conf, "-p", work, "-g", "daemon off;"], port


def haproxy_conf(work, tag, upstream):
    port = free_port()
    return ["haproxy", "-db", "-f", write_haproxy_conf(work, upstream, port, tag)], port


def stop(proc, kind, timeout):
    """Stops a proxy this script started, by its PID (SIGINT for bench-proxy, SIGTERM otherwise)."""
    proc.send_signal(signal.SIGINT if kind == "bench-proxy" else signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def proxy_cmd(kind, tag, work, engine_port):
    """The command line and port of one proxy kind; under callgrind nginx runs in one process."""
    if kind == "bench-proxy":
        return bench_proxy_cmd(work, tag)
    if kind == "nginx":
        return nginx_conf(work, tag, engine_port, tag == "callgrind")
    return haproxy_conf(work, tag, engine_port)


def worker_pid(proc, kind):
    """The process that moves the bytes: nginx's worker (with a master), else the process itself."""
    if kind != "nginx":
        return proc.pid
    deadline = time.time() + 10
    while time.time() < deadline:
        kids = open(f"/proc/{proc.pid}/task/{proc.pid}/children").read().split()
        if kids:
            return int(kids[0])
        time.sleep(0.05)
    return proc.pid


def strace_counts(pid, work, run):
    out = os.path.join(work, f"strace-{pid}-{time.time_ns()}.txt")
    st = subprocess.Popen(["strace", "-c", "-f", "-p", str(pid), "-o", out], stderr=subprocess.DEVNULL)
    time.sleep(0.5)  # attach (not a synchronisation of results: the calls of `run` are what is counted)
    run()
    st.send_signal(signal.SIGINT)
    st.wait(30)
    calls = {}
    for line in open(out):
        m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$", line)
        if m and m.group(2) != "total":
            calls[m.group(2)] = calls.get(m.group(2), 0) + int(m.group(1))
    return calls


def wrk_requests(url, seconds, work):
    lua = os.path.join(work, "post.lua")
    with open(lua, "w") as f:
        f.write(f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = \'{BODY}\'\n')
    out = subprocess.run(["wrk", "-t1", "-c64", f"-d{seconds}s", "-s", lua, url + "/v1/chat/completions"],
                         capture_output=True, text=True, check=True).stdout
    return int(re.search(r"(\d+) requests in", out).group(1))


def per(calls, n):
    total = sum(calls.values())
    top = sorted(calls.items(), key=lambda kv: -kv[1])[:6]
    return total / n, {k: round(v / n, 2) for k, v in top}


def syscalls(kind, cmd, port, work, a):
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_url(url + ("/meta" if kind == "bench-proxy" else "/v1/models"), 120, kind, p)
        pid = worker_pid(p, kind)
        # Warm-up: connections to the engine open, buffers sized, and (as for callgrind) past
        # bench-proxy's 10,000-record window, whose heap grows (mprotect) until it is full.
        probe("seq", url, a.callgrind_warmup)
        res = {}
        c = strace_counts(pid, work, lambda: probe("seq", url, a.requests))
        res["sequential"] = per(c, a.requests)
        events = 32  # bp-latency-probe stream: max_tokens 32, 5 ms apart (one content event each)
        c = strace_counts(pid, work, lambda: probe("stream", url, a.streams))
        res["per_stream_event"] = per(c, a.streams * events)
        box = {}
        c = strace_counts(pid, work, lambda: box.__setitem__("n", wrk_requests(url, a.wrk_seconds, work)))
        res["64_connections"] = per(c, box["n"])
        return res
    finally:
        stop(p, kind, 30)


def jsonl_lines(cmd):
    """bench-proxy's requests.jsonl (in its --run-dir), or None for another proxy."""
    if "--run-dir" not in cmd:
        return None
    return os.path.join(cmd[cmd.index("--run-dir") + 1], "requests.jsonl")


def wait_lines(path, n, deadline_s=120):
    """Polls until the file holds at least n lines (its writer flushes every 200 ms at the latest)."""
    if path is None:
        return
    deadline = time.time() + deadline_s
    while time.time() < deadline:
        if os.path.exists(path):
            with open(path, "rb") as f:
                if f.read().count(b"\n") >= n:
                    return
        time.sleep(0.05)
    raise SystemExit(f"{path}: fewer than {n} lines after {deadline_s} s")


def instructions(kind, cmd, port, work, a):
    outdir = os.path.join(work, f"cg-{kind}")
    os.makedirs(outdir)
    vg = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={outdir}/callgrind.out.%p", "--trace-children=no"]
    p = subprocess.Popen(vg + cmd, stdout=subprocess.DEVNULL, stderr=open(os.path.join(outdir, "log"), "w"), cwd=outdir)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_url(url + ("/meta" if kind == "bench-proxy" else "/v1/models"), 600, kind + " under callgrind", p)
        probe("seq", url, a.callgrind_warmup)
        # bench-proxy writes requests.jsonl in batches (every 1,024 records or 200 ms): the
        # counted window starts and ends with every line of the requests before it written, so
        # it holds exactly the lines of its own requests (otherwise a batch more or less moved
        # the figure by +-1,000 instructions per request).
        lines = jsonl_lines(cmd)
        wait_lines(lines, a.callgrind_warmup)
        subprocess.run(["callgrind_control", "-z", str(p.pid)], check=True, stdout=subprocess.DEVNULL)
        probe("seq", url, a.callgrind_requests)
        wait_lines(lines, a.callgrind_warmup + a.callgrind_requests)
        for f in glob.glob(f"{outdir}/callgrind.out.*"):
            os.remove(f)
        subprocess.run(["callgrind_control", "-d", str(p.pid)], check=True, stdout=subprocess.DEVNULL)
        deadline = time.time() + 60
        total = None
        while time.time() < deadline and total is None:
            for f in glob.glob(f"{outdir}/callgrind.out.*"):
                # "summary:" is what ran between the zero and the dump. "totals:" (the sum of the
                # file's cost lines) also holds a fixed ~1.1 M the dump attributes to the calls
                # still open on each thread's stack: the same at 2,000 and 6,000 requests, so not
                # per-request work (measured; it added ~560 per request at 2,000).
                for line in open(f, errors="replace"):
                    if line.startswith("summary:"):
                        total = int(line.split()[1])
            time.sleep(0.2)
        if total is None:
            raise SystemExit(f"{kind}: no callgrind dump")
        return total / a.callgrind_requests
    finally:
        stop(p, kind, 120)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=2000, help="sequential requests counted under strace")
    ap.add_argument("--streams", type=int, default=100, help="streamed requests counted under strace")
    ap.add_argument("--wrk-seconds", type=int, default=3)
    ap.add_argument("--callgrind-requests", type=int, default=2000)
    ap.add_argument("--callgrind-warmup", "--warmup", type=int, default=12500,
                    help="requests before each count (default 12500: past bench-proxy's 10,000-record "
                         "/proxy/requests window by more than the counted requests, so every record handed "
                         "over while counting is a recycled one, as in any run past its first 10,000 requests)")
    ap.add_argument("--no-callgrind", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args()
    ensure_tools()
    work = tempfile.mkdtemp(prefix="bp_yardstick_")
    engine, engine_port = start_engine(work)
    kinds = ["bench-proxy", "nginx"] + (["haproxy"] if shutil.which("haproxy") else [])
    table = {}
    try:
        for kind in kinds:
            cmd, port = proxy_cmd(kind, "strace", work, engine_port)
            table[kind] = {"syscalls": syscalls(kind, cmd, port, work, a)}
            print(f"{kind}: system calls counted", file=sys.stderr)
            if not a.no_callgrind:
                cmd, port = proxy_cmd(kind, "callgrind", work, engine_port)
                table[kind]["instructions"] = instructions(kind, cmd, port, work, a)
                print(f"{kind}: instructions counted", file=sys.stderr)
    finally:
        engine.send_signal(signal.SIGTERM)
        engine.wait(10)
    print(f"\nper proxied request (one worker/thread each, same mock engine; {a.requests} sequential, "
          f"{a.streams} streams of 32 events, wrk -c64 {a.wrk_seconds}s)")
    print(f"{'':34}" + "".join(f"{k:>30}" for k in kinds))
    if not a.no_callgrind:
        print(f"{'user-space instructions (callgrind)':34}" +
              "".join(f"{table[k]['instructions']:>30,.0f}" for k in kinds))
    for shape in ("sequential", "per_stream_event", "64_connections"):
        print(f"{'system calls, ' + shape:34}" + "".join(f"{table[k]['syscalls'][shape][0]:>30.2f}" for k in kinds))
        for k in kinds:
            print(f"    {k}: " + ", ".join(f"{n} {v}" for n, v in table[k]["syscalls"][shape][1].items()))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(table, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
