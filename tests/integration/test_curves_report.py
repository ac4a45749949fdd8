"""Load curves you look at (issue 30 item 5): a curve sweep of two mock configs (2 and 4 slots)
with an objective; the report's load-curve charts checked in headless Chromium (datasets, points,
error bars drawn, the SLO line, the capacity marks), the sweep table's capacity column, and
`--headline capacity` through the sweep, the ledger, `results` and the usage checks of `try`."""
import csv
import glob
import html as html_text
import json
import os
import re
import subprocess
import unittest

from bp import BENCH_PROXY, ProxyCase, write_config
from test_report import CHROMIUM, WORKLOAD, ChromiumPage

LOAD = "concurrency=1,2,4,8"
SLO = "ttft_p99_ms<=100"  # queueing behind busy slots costs a whole request (~250 ms): far over


def g(v):
    """A load as the capacity's text writes it (C's %g)."""
    return "%g" % v


def capacity_short(c):
    """What the sweep table shows (analysis/curves.cpp, capacity_short)."""
    if c.get("below_lowest"):
        return "below lowest"
    lo, hi = c["ci"]
    return (">= " if c.get("at_least") else "") + g(c["value"]) + " [" + ("below lowest" if lo is None else g(lo)) + \
        ", " + (">= " + g(c["value"]) if hi is None else g(hi)) + "]"


class CurvesReportTest(ChromiumPage, ProxyCase):
    def sweep(self):
        cfgs = [write_config(self.dir, "slots%d.yaml" % n, ["--tokens", "8", "--ttft-ms", "10", "--itl-ms", "5", "--slots",
                                                             str(n)], extra="warmup: 1") for n in (2, 4)]
        sw, tsv = os.path.join(self.dir, "sw"), os.path.join(self.dir, "r.tsv")
        r = subprocess.run([BENCH_PROXY, "sweep", *cfgs, "--queries", WORKLOAD, "--load", LOAD, "-n", "12",
                            "--max-tokens", "8", "--slo", SLO, "--headline", "capacity", "--telemetry-interval-ms", "0",
                            "--redo-disturbed", "0", "--sweep-dir", sw, "--results", tsv, "--no-progress"],
                           capture_output=True, text=True, cwd=self.dir, timeout=240)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr[-3000:])
        results = []
        for d in sorted(glob.glob(os.path.join(sw, "*", "result.json"))):
            with open(d) as f:
                results.append(json.load(f))
        self.assertEqual(len(results), 2)
        return sw, tsv, r.stdout, results

    @unittest.skipUnless(CHROMIUM, "chromium is installed by scripts/deps.sh")
    def test_a_curve_sweep_of_two_configs_is_drawn_with_intervals_slo_and_capacity(self):
        sw, tsv, out, results = self.sweep()
        labels = ["1. slots2.yaml", "2. slots4.yaml"]
        for res in results:
            self.assertEqual(res["summary"]["headline"]["metric"], "capacity")
            self.assertIn("capacity", res["load"])
            loads = [p["load"] for p in res["load"]["points"]]
            self.assertEqual(loads, sorted(loads))

        # The sweep table: the capacity column, each config's capacity with its interval.
        self.assertRegex(out, r"errors\s+capacity \[CI\]\s+differs from first in")
        for label, res in zip(labels, results):
            row = next(line for line in out.splitlines() if label in line)
            self.assertIn(capacity_short(res["load"]["capacity"]), row)
        self.assertIn("capacity: the highest concurrency whose point (and every lower one) meets " + SLO, out)
        with open(os.path.join(sw, "sweep.json")) as f:
            doc = json.load(f)
        self.assertTrue(doc["capacity_column"])
        for row in doc["rows"]:
            i = [os.path.basename(c) for c in ("slots2.yaml", "slots4.yaml")].index(os.path.basename(row["config"]))
            self.assertEqual(row["capacity"]["value"], results[i]["load"]["capacity"]["value"])
            # One lifecycle: the headline keeps the curve's own interval (not "none" of a run-level metric).
            if results[i]["load"]["capacity"]["value"] is not None:
                self.assertEqual(row["headline_ci"], results[i]["summary"]["headline"]["ci"])

        # The ledger: capacity rows, and `results --headline capacity` judges them.
        with open(tsv) as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        self.assertEqual([r["headline_metric"] for r in rows], ["capacity", "capacity"])
        self.assertEqual(rows[0]["load_shape"], rows[1]["load_shape"])  # per point: refined points differ by design
        self.assertIn("requests=12", rows[0]["load_shape"])
        self.assertIn("load=" + LOAD, rows[0]["load_shape"])
        r = subprocess.run([BENCH_PROXY, "results", tsv, "--headline", "capacity"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(re.findall(r"^\d+\s.*\bcapacity\b", r.stdout, re.M)), 2, r.stdout)
        self.assertNotIn("not comparable", r.stdout)
        plain = os.path.join(self.dir, "plain.tsv")  # a ledger without a curve: refused, naming the metric
        with open(tsv) as f, open(plain, "w") as g_:
            lines = f.read().splitlines()
            g_.write(lines[0] + "\n" + lines[1].replace("\tcapacity\t", "\toutput_tps\t") + "\n")
        r = subprocess.run([BENCH_PROXY, "results", plain, "--headline", "capacity"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("no row of " + plain + " (of 1) is judged by capacity", r.stderr)

        # The page: the load-curve charts as drawn.
        html = os.path.join(sw, "report.html")
        st, _ = self.rendered(html)  # no error, nothing fetched, not blank
        ch = self.charts(st)
        self.assertEqual(st["curves"]["configs"], labels)
        self.assertEqual(st["curves"]["objectives"], [SLO])
        self.assertEqual(st["curves"]["tables"], ["curve-table-0", "curve-table-1"])
        npts = [len(res["load"]["points"]) for res in results]
        ttft = ch["curve-ttft_ms"]
        self.assertEqual([d["label"] for d in ttft["datasets"]],
                         [labels[0] + " p50", labels[0] + " p99", labels[1] + " p50", labels[1] + " p99", "SLO " + SLO])
        self.assertEqual([d["points"] for d in ttft["datasets"]], [npts[0], npts[0], npts[1], npts[1], 2])
        for d in ttft["datasets"][:4]:  # medians: median_ci; p99: the objective's interval (it names p99)
            self.assertEqual(d["kind"], "curve")
            self.assertEqual(d["error_bars"], d["points"])
            self.assertEqual(d["error_bars_drawn"], d["error_bars"])
        self.assertEqual(ttft["datasets"][4]["kind"], "slo")
        caps = [res["load"]["capacity"] for res in results]
        want = [{"config": l, "x": c["value"], "lo": c["ci"][0], "hi": c["ci"][1], "drawn": True}
                for l, c in zip(labels, caps) if c["value"] is not None]
        self.assertEqual(ttft["marks"], want)
        e2e = ch["curve-e2e_ms"]  # no objective on e2e: medians only, no SLO line
        self.assertEqual([d["points"] for d in e2e["datasets"]], npts)
        self.assertFalse(any(d.get("kind") == "slo" for d in e2e["datasets"]))
        self.assertEqual(e2e["marks"], want)
        pareto = ch["curve-pareto"]
        self.assertEqual(pareto["type"], "scatter")
        self.assertEqual([d["label"] for d in pareto["datasets"]], labels)
        for d, res in zip(pareto["datasets"], results):
            self.assertEqual(d["points"], len(res["load"]["points"]))
            self.assertEqual(d["point_labels"], [g(p["load"]) for p in res["load"]["points"]])  # in load order
            self.assertEqual(d["error_bars_drawn"], d["error_bars"])
        # The tables: one row per point, the objective's verdict, the knee and the capacity as text.
        dom = self.chromium(html, "--dump-dom").stdout
        body = html_text.unescape(dom[:dom.index('<script type="application/json"')])  # "<=" is "&lt;=" there
        for i, res in enumerate(results):
            table = re.search(r'<table id="curve-table-%d"[^>]*>(.*?)</table>' % i, body, re.S).group(1)
            trs = re.findall(r"<tr>(.*?)</tr>", table, re.S)
            self.assertIn("<th>" + SLO + "</th>", trs[0])
            self.assertEqual(len(trs) - 1, len(res["load"]["points"]))
            for tr, p in zip(trs[1:], res["load"]["points"]):
                self.assertIn(">" + p["label"] + (" *" if p["refined"] else "") + "<", tr)
                self.assertIn(">%d/%d<" % (p["summary"]["completed"], p["summary"]["requests"]), tr)
                self.assertIn(">" + p["objectives"][0]["met"] + " (", tr)
            self.assertIn("capacity: " + res["load"]["capacity"]["text"], body)
        self.assertIn("Load curves", body)

    def test_capacity_as_the_headline_needs_a_curve_with_objectives(self):
        cfg = write_config(self.dir, "a.yaml", ["--tokens", "8"], extra="warmup: 1")
        for cmd in (["run", "--config", cfg], ["try", cfg, "--against", cfg], ["sweep", cfg, cfg]):
            for extra, why in ((["--slo", SLO], "--headline capacity needs a curve"),
                               (["--load", LOAD], "--headline capacity needs --slo objectives")):
                r = subprocess.run([BENCH_PROXY, *cmd, "--queries", WORKLOAD, "-n", "4", "--headline", "capacity",
                                    *extra], capture_output=True, text=True, cwd=self.dir, timeout=60)
                self.assertEqual(r.returncode, 2, (cmd, r.stdout, r.stderr))
                self.assertIn(why, r.stderr)
        self.assertEqual(os.listdir(self.dir), ["a.yaml"])  # refused before anything ran


if __name__ == "__main__":
    unittest.main()
