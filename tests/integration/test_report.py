"""The HTML report, loaded from disk in Debian's headless Chromium with networking disabled: every
chart with the expected series and points, no console error, no request, not blank, and the same
numbers as result.json."""
import glob
import json
import os
import re
import shutil
import struct
import subprocess
import unittest
import zlib

from bp import BENCH_PROXY, SRC, ProxyCase, write_config

WORKLOAD = os.path.join(SRC, "configs", "workloads", "bank-intents.csv")
CHROMIUM = shutil.which("chromium")


def png_distinct_values(path):
    """Distinct byte values of the decoded pixel rows (a blank page has one or two)."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + n]
        pos += 12 + n
    return len(set(zlib.decompress(idat)))


class ChromiumPage:
    """Loading a report in headless Chromium (self.dir: the test's folder); test_curves_report uses it too."""

    def chromium(self, html, *extra):
        args = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                f"--user-data-dir={self.dir}/chrome", "--host-resolver-rules=MAP * ~NOTFOUND",
                "--proxy-server=127.0.0.1:9", "--virtual-time-budget=10000", *extra, "file://" + html]
        return subprocess.run(args, capture_output=True, text=True, timeout=120)

    def rendered(self, html):
        r = self.chromium(html, "--dump-dom")
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        m = re.search(r'<pre id="bp-selftest"[^>]*>(.*?)</pre>', r.stdout, re.S)
        self.assertIsNotNone(m, "the page's scripts did not run")
        st = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))
        self.assertEqual(st["errors"], [])
        self.assertEqual(st["resources"], [])  # nothing fetched: everything is inline
        shot = os.path.join(self.dir, os.path.basename(html) + ".png")
        r = self.chromium(html, f"--screenshot={shot}", "--window-size=1280,2200", "--hide-scrollbars")
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        self.assertGreater(png_distinct_values(shot), 50, "the screenshot is blank")
        if os.environ.get("BP_SCREENSHOT_DIR"):  # to look at the pages: keep the screenshots
            shutil.copy(shot, os.environ["BP_SCREENSHOT_DIR"])
        return st, r

    def charts(self, st):
        return {c["id"]: c for c in st["charts"]}


class ReportTest(ChromiumPage, ProxyCase):

    @unittest.skipUnless(CHROMIUM, "chromium is installed by scripts/deps.sh")
    def test_a_single_run_report(self):
        cfg = write_config(self.dir, "a.yaml", ["--tokens", "8", "--itl-ms", "1", "--jitter", "0.05"], extra="warmup: 1")
        run_dir = os.path.join(self.dir, "run")
        r = subprocess.run([BENCH_PROXY, "run", "--config", cfg, "--queries", WORKLOAD, "-n", "30", "--max-tokens", "8",
                            "--run-dir", run_dir, "--results", os.path.join(self.dir, "r.tsv"), "--no-progress"],
                           capture_output=True, text=True, cwd=self.dir, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        html = os.path.join(run_dir, "report.html")
        self.assertIn("report: " + html, r.stdout)
        with open(html) as f:
            page = f.read()
        self.assertNotIn('src="http', page)
        self.assertNotIn("<link", page)
        st, _ = self.rendered(html)
        ch = self.charts(st)
        for cid in ["headline", "cdf-ttft_ms", "cdf-itl_ms", "cdf-e2e_ms", "cdf-output_tps", "timeline-output_tps",
                    "timeline-ttft_ms"]:
            self.assertIn(cid, ch)
        self.assertEqual(st["overview_rows"], 1)
        # Named by its config file with its description, not by its folder ("run"); one trial
        # measures no noise floor, and the verdict says so.
        self.assertEqual([o["config"] for o in st["overview"]], ["a.yaml"])
        self.assertIn("integration test mock engine", st["overview"][0]["text"])
        self.assertIn("noise floor unmeasured", st["overview"][0]["text"])
        self.assertIn("conditions-cpu", ch)  # the run's telemetry: steal, engine and other processes' cores
        self.assertEqual(len(ch["conditions-cpu"]["datasets"]), 3)
        self.assertEqual([d["points"] for d in ch["cdf-ttft_ms"]["datasets"]], [30])
        self.assertEqual([d["points"] for d in ch["cdf-itl_ms"]["datasets"]], [30 * 7])
        self.assertEqual([d["points"] for d in ch["timeline-output_tps"]["datasets"]], [30])
        # The page's numbers are result.json's.
        with open(os.path.join(run_dir, "result.json")) as f:
            res = json.load(f)
        data = json.loads(re.search(r'<script type="application/json" id="bp-data">(.*?)</script>', page, re.S)
                          .group(1).replace("<\\/", "</"))
        h = data["configs"][0]["headline"]
        self.assertEqual(h["value"], res["summary"]["headline"]["value"])
        self.assertEqual(h["ci"], res["summary"]["headline"]["ci"])
        dom = self.chromium(html, "--dump-dom").stdout
        self.assertIn("%.2f" % res["summary"]["headline"]["value"], dom)
        # The same report again is refused, never overwritten; a path that is not a result is named.
        r = subprocess.run([BENCH_PROXY, "report", run_dir, "-o", html], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("already exists", r.stderr)
        r = subprocess.run([BENCH_PROXY, "report", WORKLOAD, "-o", os.path.join(self.dir, "x.html")],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("bank-intents.csv", r.stderr)

    @unittest.skipUnless(CHROMIUM, "chromium is installed by scripts/deps.sh")
    def test_a_sweep_of_three_configs_with_a_failed_row_and_the_ledger(self):
        a = write_config(self.dir, "a.yaml", ["--tokens", "8", "--itl-ms", "1"], env={"PATH": "/usr/bin:/bin", "KNOB": "a"},
                         extra="warmup: 1")
        b = write_config(self.dir, "b.yaml", ["--fail-startup", "error: invalid argument: --flash-atn"], extra="warmup: 1")
        c = write_config(self.dir, "c.yaml", ["--tokens", "8", "--itl-ms", "2"], env={"PATH": "/usr/bin:/bin", "KNOB": "c"},
                         extra="warmup: 1")
        sw = os.path.join(self.dir, "sw")
        tsv = os.path.join(self.dir, "r.tsv")
        r = subprocess.run([BENCH_PROXY, "sweep", a, b, c, "--queries", WORKLOAD, "-n", "20", "--max-tokens", "8",
                            "--trials", "2", "--redo-disturbed", "0", "--sweep-dir", sw, "--results", tsv, "--no-progress"],
                           capture_output=True, text=True, cwd=self.dir, timeout=300)
        self.assertEqual(r.returncode, 1, r.stderr)
        html = os.path.join(sw, "report.html")
        self.assertIn("report: " + html, r.stdout)
        st, _ = self.rendered(html)
        ch = self.charts(st)
        self.assertEqual(st["overview_rows"], 3)  # two results and the failed row
        self.assertEqual(len(ch["cdf-e2e_ms"]["datasets"]), 2)
        self.assertEqual([d["points"] for d in ch["cdf-e2e_ms"]["datasets"]], [40, 40])
        self.assertEqual(ch["headline"]["datasets"][0]["points"], 2)
        # Each trial's value beside the interval over them: the evidence of a t interval.
        heads = {d["label"]: d["points"] for d in ch["headline"]["datasets"]}
        self.assertEqual(heads["each trial"], 4)
        with open(os.path.join(sw, "sweep.json")) as f:
            sweep = json.load(f)
        rows = {o["config"]: o["text"] for o in st["overview"]}
        self.assertEqual(sorted(rows), ["1. a.yaml", "2. b.yaml", "3. c.yaml"])
        for k, cfg in enumerate(sweep["configs"]):
            if cfg["results"]:
                per_trial = ", ".join("%.2f" % v for v in cfg["headline"]["per_trial"])
                self.assertIn("trials: " + per_trial, rows["%d. %s.yaml" % (k + 1, "abc"[k])])
        # The noise floor (the baseline's between-trial CV, as the sweep's table says) beside each verdict.
        self.assertAlmostEqual(st["noise_floor"], sweep["noise_floor"], places=9)
        for cfg in ["1. a.yaml", "3. c.yaml"]:
            self.assertIn("noise floor %.2f%%" % (100 * sweep["noise_floor"]), rows[cfg])
        # The conditions: 2 configs x 2 trials x 3 sources, a legend entry per source and per config.
        cond = ch["conditions-cpu"]
        self.assertEqual(len(cond["datasets"]), 12)
        self.assertEqual(cond["legend"], ["cpu.steal_pct", "engine.cpu_cores", "others.cpu_cores", "1. a.yaml", "3. c.yaml"])
        dom = self.chromium(html, "--dump-dom").stdout
        body = dom[:dom.index('<script type="application/json"')]  # what the page shows, not its data
        # The failed row leads with the engine's own error line; the whole reason is a click away.
        self.assertIn("FAILED: error: invalid argument: --flash-atn</div>", body)
        self.assertTrue(re.search(r"<summary[^>]*>the whole reason</summary>.*?Last output:", body, re.S))
        self.assertTrue('difference(s) in config (' in body, "what c differs in from a, collapsible")
        # The ledger as a page: the campaign table and the charts of its valid rows.
        out = os.path.join(self.dir, "ledger.html")
        r = subprocess.run([BENCH_PROXY, "report", tsv, "-o", out], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        st, _ = self.rendered(out)
        self.assertEqual(len(self.charts(st)["cdf-ttft_ms"]["datasets"]), 2)
        # Its configs are named by their files (with their descriptions), not by label and line.
        self.assertEqual(sorted(o["config"] for o in st["overview"]), ["a.yaml", "c.yaml"])
        dom = self.chromium(out, "--dump-dom").stdout
        table = re.search(r'<table id="campaign">(.*?)</table>', dom, re.S).group(1)
        failed = [tr for tr in re.findall(r"<tr>(.*?)</tr>", table, re.S) if "b.yaml" in tr]
        self.assertEqual(len(failed), 1, table)
        self.assertIn(">error: invalid argument: --flash-atn</div>", failed[0])  # the engine's line, not the cut reason

    @unittest.skipUnless(CHROMIUM, "chromium is installed by scripts/deps.sh")
    def test_markup_in_every_text_a_user_controls_is_shown_as_text_and_never_blanks_the_page(self):
        # "<!--" then "<script" puts the HTML parser into its double-escaped state: had the data
        # block kept a "<", the rest of the page would be swallowed (0 charts, a blank screenshot).
        def payload(tag):
            return tag + " <!--<script> </script><script>document.body.innerHTML=''</script> <!-- <SCRIPT x=1>"

        def name(tag):  # a file name holds no "/"
            return tag + " <!--<script> <!-- <SCRIPT x=1>"

        def with_description(path, text):
            with open(path) as f:
                body = f.read()
            with open(path, "w") as f:
                f.write(body.replace("description: integration test mock engine", "description: " + json.dumps(text)))
            return path

        a = with_description(write_config(self.dir, name("cfgA") + ".yaml", ["--tokens", "8", "--itl-ms", "1"],
                                          extra="warmup: 1"), payload("descA"))
        b = with_description(write_config(self.dir, name("cfgB") + ".yaml", ["--tokens", "8", "--itl-ms", "2"],
                                          extra="warmup: 1"), payload("descB"))
        workload = os.path.join(self.dir, name("work") + ".csv")
        shutil.copy(WORKLOAD, workload)
        sw = os.path.join(self.dir, name("sweep"))
        tsv = os.path.join(self.dir, "r.tsv")
        r = subprocess.run([BENCH_PROXY, "sweep", a, b, "--queries", workload, "-n", "12", "--max-tokens", "8",
                            "--sweep-dir", sw, "--results", tsv, "--label", payload("label"), "--no-progress"],
                           capture_output=True, text=True, cwd=self.dir, timeout=180)
        self.assertEqual(r.returncode, 0, r.stderr)
        # A warning is text from a result file: one holding the payload, as a result.json may.
        results = sorted(glob.glob(os.path.join(glob.escape(sw), "*", "result.json")))
        self.assertEqual(len(results), 2, os.listdir(sw))
        with open(results[1]) as f:
            res = json.load(f)
        res.setdefault("warnings", []).append(payload("warning"))
        os.chmod(results[1], 0o644)
        with open(results[1], "w") as f:
            json.dump(res, f)
        pages = [os.path.join(sw, "report.html"), os.path.join(self.dir, name("page") + ".html")]
        r = subprocess.run([BENCH_PROXY, "report", sw, tsv, "-o", pages[1]], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        for html in pages:
            with open(html) as f:
                page = f.read()
            data = re.search(r'<script type="application/json" id="bp-data">(.*?)</script>', page, re.S).group(1)
            self.assertNotIn("<", data)  # every "<" of the data is \u003c
            self.assertIn("cfgA <!--<script>", json.loads(data)["configs"][0]["label"])
            st, _ = self.rendered(html)  # scripts ran without an error, nothing fetched, the screenshot not blank
            ch = self.charts(st)
            for cid in ["headline", "cdf-ttft_ms", "cdf-itl_ms", "cdf-e2e_ms", "cdf-output_tps", "timeline-output_tps"]:
                self.assertIn(cid, ch, html)
            self.assertEqual([d["points"] for d in ch["cdf-e2e_ms"]["datasets"]][-2:], [12, 12], html)
            self.assertGreaterEqual(st["overview_rows"], 2)
            dom = self.chromium(html, "--dump-dom").stdout
            body = dom[:dom.index('<script type="application/json"')]  # what the page shows, not its data
            self.assertNotIn("<script>document", body)  # nothing became markup
            shown = " &lt;!--&lt;script&gt; "
            wanted = ["cfgA", "cfgB", "descA", "descB", "sweep"] + (["warning", "label"] if html == pages[1] else [])
            for tag in wanted:
                self.assertIn(tag + shown, body, (html, tag))
            self.assertIn("descB" + shown + "&lt;/script&gt;&lt;script&gt;document.body.innerHTML=''&lt;/script&gt;", body)

    @unittest.skipUnless(CHROMIUM, "chromium is installed by scripts/deps.sh")
    def test_the_campaign_shows_interleaving_a_try_and_the_rows_it_skipped(self):
        cfg = write_config(self.dir, "a.yaml", ["--tokens", "8", "--itl-ms", "1"], extra="warmup: 1")
        run_dir, first = os.path.join(self.dir, "run"), os.path.join(self.dir, "first.tsv")
        r = subprocess.run([BENCH_PROXY, "run", "--config", cfg, "--queries", WORKLOAD, "-n", "10", "--max-tokens", "8",
                            "--run-dir", run_dir, "--results", first, "--no-progress"],
                           capture_output=True, text=True, cwd=self.dir, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(first) as f:
            cols = f.read().splitlines()[0].split("\t")

        def row(label, value, group="", config=None, **kw):
            v = dict.fromkeys(cols, "")
            v.update(time="2026-12-01T00:00:00Z", validity="valid", label=label, headline_metric="output_tps",
                     headline="%.3f" % value, workload_sha256="w", group=group, config=config or label + ".yaml",
                     trials="3")
            v.update(kw)
            return "\t".join(v[c] for c in cols)

        tsv = os.path.join(self.dir, "campaign.tsv")
        with open(tsv, "w") as f:
            f.write("\n".join(["\t".join(cols), row("base", 100), row("alone", 125),
                               row("base", 95, "/sw/1", "base.yaml"), row("cand", 105, "/sw/1"),
                               row("try1", 108, "/tries/1", decision="faster", ratio="1.034", ratio_ci_low="1.021",
                                   ratio_ci_high="1.046", rounds="4", engine_seconds="300",
                                   procedure="group-sequential t", baseline="cand.yaml"),
                               "torn\trow"]) + "\n")
        out = os.path.join(self.dir, "campaign.html")
        r = subprocess.run([BENCH_PROXY, "report", tsv, run_dir, "-o", out], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        st, _ = self.rendered(out)
        self.assertIn("cdf-ttft_ms", self.charts(st))
        dom = self.chromium(out, "--dump-dom").stdout
        table = re.search(r'<table id="campaign">(.*?)</table>', dom, re.S).group(1)
        cells = [re.findall(r"<td[^>]*>(.*?)</td>", tr) for tr in re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]]
        self.assertEqual([c[6] for c in cells], ["keep", "not interleaved: drift cannot be separated",
                                                "baseline (the best, re-measured)", "keep", "keep"])
        self.assertEqual(cells[3][5], "+10.5% vs line 4")
        self.assertEqual(cells[4][8], "faster +3.4% [+2.1%, +4.6%] after 4 round(s), 300 s of engine time, "
                                      "against cand.yaml (group-sequential t)")
        self.assertIn("highest measured value: line 3 (125.00): a single measurement, not the running best (the best is kept only on a verdict beyond noise)", dom)
        self.assertIn(tsv + ":7: 2 fields, the header has %d: row skipped" % len(cols), dom)


    @unittest.skipUnless(CHROMIUM, "chromium is installed by scripts/deps.sh")
    def test_a_try_shows_its_decision_over_the_rounds(self):
        base = write_config(self.dir, "base.yaml", ["--tokens", "8", "--itl-ms", "2", "--jitter", "0.02"], extra="warmup: 1")
        slow = write_config(self.dir, "slow.yaml", ["--tokens", "8", "--itl-ms", "3", "--jitter", "0.02"], extra="warmup: 1")
        t = os.path.join(self.dir, "t")
        r = subprocess.run([BENCH_PROXY, "try", slow, "--against", base, "--queries", WORKLOAD, "-n", "20", "--max-tokens",
                            "8", "--try-dir", t, "--results", os.path.join(self.dir, "r.tsv"), "--no-progress",
                            "--telemetry-interval-ms", "0"], capture_output=True, text=True, cwd=self.dir, timeout=600)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        with open(os.path.join(t, "try.json")) as f:
            rounds = json.load(f)["decision"]["rounds"]
        html = os.path.join(t, "report.html")  # try writes one beside try.json
        st, _ = self.rendered(html)
        charts = self.charts(st)
        self.assertIn("try0", charts)
        pts = {d["label"]: d["points"] for d in charts["try0"]["datasets"]}
        self.assertEqual(pts["round"], rounds)
        self.assertEqual(pts["interval low"], rounds)
        dom = self.chromium(html, "--dump-dom").stdout
        self.assertIn("Sequential decisions (try)", dom)
        self.assertIn('data-config="t baseline"', dom)
        self.assertIn('data-config="t candidate"', dom)
        # The ledger the try wrote a row into is a report's input too: the try's two sides, named
        # by their configs, and its decision in the campaign.
        ledger_html = os.path.join(self.dir, "ledger.html")
        r = subprocess.run([BENCH_PROXY, "report", os.path.join(self.dir, "r.tsv"), "-o", ledger_html],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        dom = self.chromium(ledger_html, "--dump-dom").stdout
        self.assertIn('data-config="base.yaml"', dom)
        self.assertIn('data-config="slow.yaml"', dom)
        self.assertIn("slower", re.search(r'<table id="campaign">(.*?)</table>', dom, re.S).group(1))


if __name__ == "__main__":
    unittest.main()
