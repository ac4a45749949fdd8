#!/usr/bin/env python3
"""How long a large report takes: a synthetic sweep of N configs x R requests (default 60 x 50),
`bench-proxy report` on it, then headless Chromium loads the page from disk (networking disabled)
and the page's own self-test says when its scripts finished (performance.now()). Prints the
medians of 3 loads. Usage: perf/report_render.py [N] [R]"""
import json, os, random, re, shutil, statistics, subprocess, sys, tempfile, time

here = os.path.dirname(os.path.abspath(__file__))
bp = os.path.join(here, "..", "build", "bin", "bench-proxy")
n = int(sys.argv[1]) if len(sys.argv) > 1 else 60
reqs = int(sys.argv[2]) if len(sys.argv) > 2 else 50
work = tempfile.mkdtemp(prefix="bp-report-perf-")
rng = random.Random(1)
configs = []
for c in range(n):
    d = os.path.join(work, f"{c + 1}_cfg{c + 1}")
    os.makedirs(d)
    speed = 100 * (1 + 0.002 * c)
    requests, t = [], 0.0
    for i in range(reqs):
        tps = speed * rng.lognormvariate(0, 0.03)
        e2e = 64 / tps * 1000
        requests.append({"index": i, "query_line": i + 2, "ok": True, "start_ms": t, "e2e_ms": e2e, "ttft_ms": e2e / 64,
                         "output_tokens": 64, "itl_ms": [e2e / 64 * rng.lognormvariate(0, 0.05) for _ in range(63)]})
        t += e2e
    tpss = sorted(r["output_tokens"] / (r["e2e_ms"] / 1000) for r in requests)
    med = statistics.median(tpss)
    result = {"kind": "bench-proxy bench result", "valid": True, "model": "m", "workload": {"sha256": "w"},
              "options": {"concurrency": 1, "requests": reqs}, "snapshot_id": f"{c:064x}",
              "snapshot": {"schema_version": 1, "config": {"description": f"cfg {c}", "args": ["--knob", str(c)]}},
              "summary": {"wall_s": t / 1000, "completed": reqs, "errors": 0, "total_output_tps": 64 * reqs / (t / 1000),
                          "headline": {"metric": "output_tps", "value": med, "ci": [med * 0.99, med * 1.01],
                                       "unit": "tok/s", "description": "median output tokens/s per request",
                                       "higher_is_better": True, "trials": 1}},
              "requests": requests, "warnings": []}
    with open(os.path.join(d, "result.json"), "w") as f:
        json.dump(result, f)
    configs.append({"config": f"cfg{c + 1}.yaml", "results": [os.path.join(d, "result.json")]})
with open(os.path.join(work, "sweep.json"), "w") as f:
    json.dump({"configs": configs, "rows": [{"config": c["config"], "ok": True} for c in configs]}, f)
out = os.path.join(work, "report.html")
t0 = time.monotonic()
subprocess.run([bp, "report", work, "-o", out], check=True, stdout=subprocess.DEVNULL)
gen_ms = (time.monotonic() - t0) * 1000
chromium = shutil.which("chromium")
loads, walls = [], []
for _ in range(3):
    t0 = time.monotonic()
    r = subprocess.run([chromium, "--headless=new", "--no-sandbox", "--disable-gpu", f"--user-data-dir={work}/chrome",
                        "--host-resolver-rules=MAP * ~NOTFOUND", "--dump-dom", "file://" + out],
                       capture_output=True, text=True, timeout=300)
    walls.append((time.monotonic() - t0) * 1000)
    m = re.search(r'<pre id="bp-selftest"[^>]*>(.*?)</pre>', r.stdout, re.S)
    st = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert st["errors"] == [] and st["resources"] == [], st
    loads.append(st["rendered_ms"])
print(f"report of {n} configs x {reqs} requests: {os.path.getsize(out) / 1e6:.1f} MB, generated in {gen_ms:.0f} ms")
print(f"headless Chromium: scripts done {statistics.median(loads):.0f} ms after navigation start "
      f"(median of 3); whole chromium process {statistics.median(walls):.0f} ms")
shutil.rmtree(work)
