#!/usr/bin/env python3
"""bench-proxy's own time per engine lifecycle, split by phase, with and without the hash cache.

Generates a venv-like tree (N files, M MB: a few large .so files hold 80% of the bytes, many small
.py files the rest), writes a config of the mock engine (configs/demo-mock.yaml) with `venv:`
pointing at it, and runs `bench-proxy run` K times per mode, interleaved:

  cold   hash_cache: off       every venv file and loaded library is read and hashed
  cache  the verified cache    (BENCH_PROXY_CACHE_DIR in a temporary folder, primed by one
                                lifecycle that is not counted; 1/16 of the files are re-read
                                each lifecycle by design: docs/meta-schema.md, "The hash cache")

Phases come from the run's log (timestamps of its own lines) and meta.json (per collector):

  start      process start -> "listening on"          config, checks, bind, run folder
  spawn      "listening on" -> "[engine] started"     shim and engine fork/exec
  (engine)   "[engine] started" -> "[engine] ready"   the engine's own startup: excluded
  warmup     "[engine] ready" -> last warmup request  minus the requests' own time (excluded)
  snapshot   last warmup request -> "snapshot published"; collectors run in parallel, the
             slowest (venv, loaded_libs) are listed apart
  publish    "snapshot published" -> "[run] ready"
  (bench)    "[run] ready" -> "stop requested"        the measured requests: excluded
  teardown   "stop requested" -> "its process tree is gone"
  finish     -> process exit                           result.json, report, ledger row

own = the wall time of the lifecycle minus the excluded parts. Medians over K. This machine is
shared (other builds and tests run beside it): the figures are wall times on a loaded machine.

With --baseline-bin DIR (the binaries of another commit, e.g. the previous one built in a git
worktree), the same lifecycles run with them too, interleaved with this build's (each with a cache
folder of its own), and the table gains their columns and this build's ratio to them.

usage: perf/lifecycle_cost.py [--files 2000] [--mb 200] [--lifecycles 5] [--bin DIR]
                              [--baseline-bin DIR] [--keep]
"""
import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def generate(root, files, total_mb, seed=42):
    rng = random.Random(seed)
    large = max(1, files // 200)
    large_bytes = int(total_mb * 0.8) << 20
    small_bytes = (total_mb << 20) - large_bytes
    block = os.urandom(1 << 20)

    def write(path, size):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            while size > 0:
                n = min(size, len(block))
                f.write(block[:n])
                size -= n
            f.write(rng.randbytes(16))

    for i in range(large):
        write(f"{root}/lib/python3.11/site-packages/big/lib{i}.so", large_bytes // large)
    small = max(0, files - large - 10)
    for i in range(small):
        write(f"{root}/lib/python3.11/site-packages/pkg{i % 300}/mod{i}.py", int(rng.expovariate(small / max(1, small_bytes))))
    for i in range(10):
        write(f"{root}/bin/tool{i}", 4096)


def stamp(line):
    # "2026-12-07T03:48:24.768 info  ..."
    try:
        return datetime.strptime(line[:23], "%Y-%m-%dT%H:%M:%S.%f").timestamp()
    except ValueError:
        return None


def lifecycle(bin_dir, config, queries, work, env, index):
    run_dir = os.path.join(work, f"run{index}")
    cmd = [os.path.join(bin_dir, "bench-proxy"), "run", "--config", config, "--queries", queries, "-n", "3",
           "--warmup", "0", "--bootstrap", "0", "--no-progress", "--telemetry-interval-ms", "0", "--run-dir", run_dir,
           "--results", os.path.join(work, "results.tsv")]
    t0 = time.time()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    t1 = time.time()
    if p.returncode != 0:
        sys.exit(f"bench-proxy run failed ({p.returncode}):\n{p.stderr[-3000:]}")
    marks = {}
    warm_ms = 0.0
    last_warm = None
    for line in p.stderr.splitlines():
        t = stamp(line)
        if t is None:
            continue
        def first(key, needle):
            if needle in line and key not in marks:
                marks[key] = t
        first("listening", " listening on ")
        first("started", "[engine] started ")
        first("ready", "[engine] ready")
        first("published", "[meta] snapshot published")
        first("serving", "[run] ready: serving")
        first("stop", "[run] stop requested")
        first("gone", "its process tree is gone")
        if "[warmup] request " in line:
            last_warm = t
            warm_ms += float(line.rsplit(":", 1)[1].strip().split()[0])
    need = ["listening", "started", "ready", "published", "serving", "stop", "gone"]
    missing = [k for k in need if k not in marks]
    if missing:
        sys.exit(f"log lines not found: {missing}\n{p.stderr[-3000:]}")
    if last_warm is None:
        last_warm = marks["ready"]
    meta = json.load(open(os.path.join(run_dir, "meta.json")))
    col = meta.get("collectors", {})
    ph = {
        "start": marks["listening"] - t0,
        "spawn": marks["started"] - marks["listening"],
        "warmup": max(0.0, last_warm - marks["ready"] - warm_ms / 1000),
        "snapshot": marks["published"] - last_warm,
        "venv": col.get("venv", {}).get("elapsed_ms", 0) / 1000,
        "loaded_libs": col.get("loaded_libs", {}).get("elapsed_ms", 0) / 1000,
        "publish": marks["serving"] - marks["published"],
        "teardown": marks["gone"] - marks["stop"],
        "finish": t1 - marks["gone"],
    }
    excluded = (marks["ready"] - marks["started"]) + warm_ms / 1000 + (marks["stop"] - marks["serving"])
    ph["own"] = (t1 - t0) - excluded
    ph["wall"] = t1 - t0
    hc = meta.get("venv", {}).get("hash_cache", {})
    ph["_cache"] = (hc.get("from_cache", 0), hc.get("read", 0)) if hc.get("enabled") else None
    shutil.rmtree(run_dir, ignore_errors=True)
    return ph


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--lifecycles", type=int, default=5)
    ap.add_argument("--bin", default=os.environ.get("BP_BIN_DIR", os.path.join(REPO, "build", "bin")))
    ap.add_argument("--baseline-bin", help="binaries of another commit, measured interleaved beside these")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="bp_lifecycle_")
    try:
        venv = os.path.join(work, "venv")
        t = time.time()
        generate(venv, a.files, a.mb)
        print(f"generated {a.files} files, {a.mb} MB under {venv} in {time.time() - t:.1f} s", file=sys.stderr)
        # The cache never trusts a file modified less than 2 s before it was hashed (racily clean).
        time.sleep(2.1)
        base = open(os.path.join(REPO, "configs", "demo-mock.yaml")).read()
        cfgs = {}
        for mode in ("cold", "cache"):
            text = base + f"venv: {venv}\n" + ("hash_cache: off\n" if mode == "cold" else "")
            cfgs[mode] = os.path.join(work, f"{mode}.yaml")
            open(cfgs[mode], "w").write(text)
        queries = os.path.join(REPO, "configs", "workloads", "bank-intents.csv")
        builds = [("this", os.path.abspath(a.bin))]
        if a.baseline_bin:
            builds.append(("base", os.path.abspath(a.baseline_bin)))
        envs = {}
        for name, bin_dir in builds:
            env = dict(os.environ)
            env["BENCH_PROXY_CACHE_DIR"] = os.path.join(work, f"cache-{name}")
            env["BENCH_PROXY_BIN_DIR"] = bin_dir
            envs[name] = env
            lifecycle(bin_dir, cfgs["cache"], queries, work, env, 0)  # primes the cache (not counted)
        res = {(b, m): [] for b, _ in builds for m in ("cold", "cache")}
        for k in range(a.lifecycles):
            for name, bin_dir in builds:
                for mode in ("cold", "cache"):
                    res[(name, mode)].append(lifecycle(bin_dir, cfgs[mode], queries, work, envs[name], k + 1))
        keys = ["start", "spawn", "warmup", "snapshot", "venv", "loaded_libs", "publish", "teardown", "finish", "own", "wall"]
        print(f"bench-proxy's own time per lifecycle: mock engine, venv {a.files} files / {a.mb} MB, "
              f"median of {a.lifecycles} lifecycles per mode (interleaved), {os.cpu_count()} cores (shared machine)")
        head = f"{'phase':<22}{'cold (s)':>10}{'cache (s)':>11}{'ratio':>8}"
        if a.baseline_bin:
            head += f"{'base cold':>11}{'base cache':>12}{'cold/base':>11}{'cache/base':>12}"
            print(f"base: {a.baseline_bin}")
        print(head)
        med = lambda b, m, k: statistics.median(r[k] for r in res[(b, m)])
        div = lambda x, y: x / y if y > 0 else float("nan")
        for k in keys:
            c, w = med("this", "cold", k), med("this", "cache", k)
            label = {"venv": "  venv collector", "loaded_libs": "  loaded_libs collector",
                     "own": "own (all but engine)", "wall": "wall (whole run)"}.get(k, k)
            line = f"{label:<22}{c:>10.3f}{w:>11.3f}{div(w, c):>8.2f}"
            if a.baseline_bin:
                bc, bw = med("base", "cold", k), med("base", "cache", k)
                line += f"{bc:>11.3f}{bw:>12.3f}{div(c, bc):>11.2f}{div(w, bw):>12.2f}"
            print(line)
        fc = [r["_cache"] for r in res[("this", "cache")] if r["_cache"]]
        if fc:
            print(f"venv files from the cache / read per cached lifecycle (median): "
                  f"{statistics.median(x[0] for x in fc):.0f} / {statistics.median(x[1] for x in fc):.0f}")
    finally:
        if a.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
