"""Results that cannot be lost or misread: unique folders, validity that means usable, no number on
failure, everything checked before anything starts, consistent Ctrl-C."""
import csv
import glob
import json
import os
import signal
import subprocess
import unittest

from bp import BENCH_PROXY, SRC, ProxyCase, pids_with_marker, wait_for, write_config

WORKLOAD = os.path.join(SRC, "configs", "workloads", "bank-intents.csv")


def is_number(line):
    try:
        float(line)
        return True
    except ValueError:
        return False


def read_text(path):
    with open(path) as f:
        return f.read()


def last_line(r):
    lines = r.stdout.strip().splitlines()
    return lines[-1] if lines else ""


class ResultsTest(ProxyCase):
    def run_cmd(self, args, timeout=180, **kw):
        return subprocess.run([BENCH_PROXY, *args], capture_output=True, text=True, cwd=self.dir, timeout=timeout, **kw)

    def marked(self, mock_args=(), extra="warmup: 0\nstop_grace_s: 2\ndrain_timeout_s: 1"):
        self.marker = f"BP_RES_{os.getpid()}_{len(os.listdir(self.dir))}"
        return write_config(self.dir, name=f"c{len(os.listdir(self.dir))}.yaml", mock_args=mock_args,
                            env={"PATH": "/usr/bin:/bin", self.marker: "1"}, extra=extra)

    def tsv(self):
        with open(os.path.join(self.dir, "results.tsv")) as f:
            return list(csv.DictReader(f, delimiter="\t"))

    # 1. No result is ever overwritten.
    def test_benches_in_the_same_second_get_their_own_folders_and_rows(self):
        p = self.start(self.config(mock_args=["--tokens", "2"], extra="warmup: 0"))
        p.wait_ready()
        paths = []
        for _ in range(3):
            r = self.run_cmd(["bench", "--url", f"http://127.0.0.1:{p.port}", "--queries", WORKLOAD, "-n", "2",
                              "--warmup", "0", "--no-progress"])
            self.assertEqual(r.returncode, 0, r.stderr)
            paths.append([l for l in r.stdout.splitlines() if l.startswith("result: ")][0][8:])
        self.assertEqual(len(set(paths)), 3, paths)
        rows = self.tsv()
        self.assertEqual(sorted(row["result"] for row in rows), sorted(paths))
        # An explicit --out that already holds a result is refused before any request.
        out = os.path.dirname(paths[0])
        before = open(paths[0]).read()
        r = self.run_cmd(["bench", "--url", f"http://127.0.0.1:{p.port}", "--queries", WORKLOAD, "--out", out])
        self.assertEqual(r.returncode, 2)
        self.assertIn("already holds a result.json", r.stderr)
        self.assertEqual(open(paths[0]).read(), before)
        self.assertEqual(len(self.tsv()), 3)
        self.assertEqual(glob.glob(os.path.join(out, ".*tmp*")), [])
        p.stop()

    def test_sweep_out_is_refused_and_a_used_run_dir_is_never_reused(self):
        cfg = self.marked(["--tokens", "2"])
        r = self.run_cmd(["sweep", cfg, cfg, "--queries", WORKLOAD, "--out", os.path.join(self.dir, "x")])
        self.assertEqual(r.returncode, 2)
        self.assertIn("--out is for bench", r.stderr)
        run_dir = os.path.join(self.dir, "the-run")
        r = self.run_cmd(["run", "--config", cfg, "--queries", WORKLOAD, "-n", "2", "--run-dir", run_dir,
                          "--no-progress"])
        self.assertEqual(r.returncode, 0, r.stderr)
        first = open(os.path.join(run_dir, "result.json")).read()
        r = self.run_cmd(["run", "--config", cfg, "--queries", WORKLOAD, "-n", "2", "--run-dir", run_dir])
        self.assertEqual(r.returncode, 2)
        self.assertIn("already holds", r.stderr)
        self.assertEqual(open(os.path.join(run_dir, "result.json")).read(), first)
        self.assertFalse(is_number(last_line(r)))

    # 2. "valid" means usable; 3. no number on failure.
    def test_a_run_whose_engine_crashed_is_invalid_with_its_reasons_and_prints_no_number(self):
        cfg = self.marked(["--crash-after", "3", "--tokens", "2"])
        r = self.run_cmd(["run", "--config", cfg, "--queries", WORKLOAD, "-n", "10", "--no-progress",
                          "--run-dir", os.path.join(self.dir, "crash")])
        self.assertNotEqual(r.returncode, 0)
        self.assertTrue(last_line(r).startswith("invalid: "), r.stdout)
        res = json.load(open(os.path.join(self.dir, "crash", "result.json")))
        self.assertFalse(res["valid"])
        reasons = " | ".join(res["invalid_reasons"])
        self.assertIn("requests failed", reasons)
        self.assertIn("the engine exited during the measurement", reasons)
        row = self.tsv()[-1]
        self.assertEqual(row["validity"], "invalid")
        self.assertIn("requests failed", row["reasons"])
        self.assertEqual(pids_with_marker(self.marker), [])

    def test_errors_within_max_error_rate_keep_a_result_valid(self):
        # The first 8 of 10 requests are answered; the engine crashes on the 9th: 2 of 10 fail.
        p = self.start(self.config(mock_args=["--crash-after", "8", "--tokens", "2"], extra="warmup: 0"))
        p.wait_ready()
        r = self.run_cmd(["bench", "--url", f"http://127.0.0.1:{p.port}", "--queries", WORKLOAD, "-n", "10",
                          "--warmup", "0", "--max-error-rate", "0.5", "--allow-no-snapshot", "--no-progress"])
        res = json.load(open([l for l in r.stdout.splitlines() if l.startswith("result: ")][0][8:]))
        self.assertGreater(res["summary"]["errors"], 0)
        self.assertNotIn("requests failed", " ".join(res["invalid_reasons"]))

    def test_failures_print_a_line_that_is_not_a_number_and_get_a_ledger_row(self):
        cases = [
            (["run", "--config", os.path.join(self.dir, "missing.yaml"), "--queries", WORKLOAD], "missing.yaml"),
            (["run", "--config", self.marked(["--fail-startup", "no GPU"]), "--queries", WORKLOAD], "no GPU"),
            (["run", "--config", self.marked(), "--queries", os.path.join(self.dir, "nope.csv")], "nope.csv"),
            (["bench", "--url", "http://127.0.0.1:1", "--queries", WORKLOAD], "127.0.0.1:1"),
        ]
        for args, needle in cases:
            r = self.run_cmd(args + ["--results", os.path.join(self.dir, "results.tsv")])
            self.assertNotEqual(r.returncode, 0, args)
            self.assertFalse(is_number(last_line(r)), (args, r.stdout))
            self.assertRegex(last_line(r), r"^(invalid|failed): ", args)
            self.assertIn(needle, r.stderr + r.stdout, args)
        statuses = [row["validity"] for row in self.tsv()]
        self.assertIn("failed", statuses)

    # 4. Check everything before starting anything.
    def test_a_missing_workload_or_a_bad_config_later_in_a_sweep_stops_before_any_engine_starts(self):
        good = self.marked(["--tokens", "2"])
        r = self.run_cmd(["run", "--config", good, "--queries", os.path.join(self.dir, "nope.csv")])
        self.assertEqual(r.returncode, 2)
        self.assertIn("nope.csv", r.stderr)
        self.assertNotIn("listening on", r.stderr)
        bad = os.path.join(self.dir, "typo.yaml")
        with open(bad, "w") as f:
            f.write("description: typo\nengine: mock\ncmd: /bin/true\nwarmpu: 3\n")
        r = self.run_cmd(["sweep", good, good, bad, "--queries", WORKLOAD, "--sweep-dir", os.path.join(self.dir, "s")])
        self.assertEqual(r.returncode, 2)
        self.assertIn("typo.yaml:4:1: warmpu: unknown key", r.stderr)
        self.assertNotIn("listening on", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "s", "1_" + os.path.basename(good)[:-5])))

    # 5. SIGINT is consistent.
    def test_sigint_during_engine_startup_exits_130_and_says_interrupted(self):
        cfg = self.marked(["--startup-delay-ms", "600000"])
        p = subprocess.Popen([BENCH_PROXY, "run", "--config", cfg, "--queries", WORKLOAD, "--no-progress", "--results",
                              os.path.join(self.dir, "results.tsv")], cwd=self.dir, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        wait_for(lambda: len(pids_with_marker(self.marker)) >= 2, timeout=60, what="the engine to start")
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=120)
        self.assertEqual(p.returncode, 130, err)
        self.assertEqual(out.strip().splitlines()[-1], "failed: interrupted")
        self.assertEqual(self.tsv()[-1]["reasons"], "interrupted")
        self.assertEqual(pids_with_marker(self.marker), [])

    def test_sigint_mid_bench_is_invalid_interrupted_and_a_second_one_skips_the_grace_period(self):
        cfg = self.marked(["--itl-ms", "50", "--tokens", "200", "--ignore-sigterm"],
                          extra="warmup: 0\nstop_grace_s: 3600\ndrain_timeout_s: 1")
        errf = open(os.path.join(self.dir, "stderr.txt"), "w+")
        p = subprocess.Popen([BENCH_PROXY, "run", "--config", cfg, "--queries", WORKLOAD, "-n", "50", "--no-progress",
                              "--warmup", "0", "--log-level", "debug",
                              "--run-dir", os.path.join(self.dir, "int"), "--results",
                              os.path.join(self.dir, "results.tsv")],
                             cwd=self.dir, stdout=subprocess.PIPE, stderr=errf, text=True)
        log = os.path.join(self.dir, "int", "engine.log")
        # The bench's connections: /meta, /v1/models, then the first measured request (10 s long).
        wait_for(lambda: open(errf.name).read().count("] opened from") >= 3, timeout=60, what="a measured request")
        p.send_signal(signal.SIGINT)
        # Signals do not queue: send the second only once the first was taken.
        wait_for(lambda: "tearing down" in open(errf.name).read(), timeout=60, what="the first SIGINT to be taken")
        p.send_signal(signal.SIGINT)  # the engine ignores SIGTERM and the grace is an hour: this must end it
        out, _ = p.communicate(timeout=300)
        err = open(errf.name).read()
        errf.close()
        self.assertEqual(p.returncode, 130, err)
        self.assertIn("killing the engine", err)
        self.assertTrue(out.strip().splitlines()[-1].startswith("invalid: "), out)
        self.assertIn("interrupted", out.strip().splitlines()[-1])
        res = json.load(open(os.path.join(self.dir, "int", "result.json")))
        self.assertIn("interrupted", res["invalid_reasons"])
        self.assertNotIn("no snapshot after the run", " ".join(res["invalid_reasons"]))
        self.assertEqual(pids_with_marker(self.marker), [])

    def test_a_second_sigint_during_the_grace_period_kills_the_engine_at_once(self):
        # The second Ctrl-C comes once the bench has ended and the engine was sent SIGTERM: the
        # teardown is waiting through the grace period (an hour here), and must still hear it.
        cfg = self.marked(["--itl-ms", "50", "--tokens", "200", "--ignore-sigterm"],
                          extra="warmup: 0\nstop_grace_s: 3600\ndrain_timeout_s: 1")
        errf = open(os.path.join(self.dir, "stderr-grace.txt"), "w+")
        p = subprocess.Popen([BENCH_PROXY, "run", "--config", cfg, "--queries", WORKLOAD, "-n", "50", "--no-progress",
                              "--warmup", "0", "--log-level", "debug", "--run-dir", os.path.join(self.dir, "grace")],
                             cwd=self.dir, stdout=subprocess.PIPE, stderr=errf, text=True)
        wait_for(lambda: open(errf.name).read().count("] opened from") >= 3, timeout=60, what="a measured request")
        p.send_signal(signal.SIGINT)
        wait_for(lambda: "stopping: SIGTERM to process group" in open(errf.name).read(), timeout=120,
                 what="the engine's grace period to begin")
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=600)
        err = open(errf.name).read()
        errf.close()
        self.assertEqual(p.returncode, 130, err)
        self.assertIn("now (SIGKILL, no grace period)", err)
        self.assertNotIn("after the grace period", err)
        self.assertEqual(pids_with_marker(self.marker), [])

    def test_sigint_during_bench_exits_130_with_an_invalid_result(self):
        p = self.start(self.config(mock_args=["--itl-ms", "50", "--tokens", "200"], extra="warmup: 0"),
                       args=["--log-level", "debug"])
        p.wait_ready()
        before = sum("] opened from" in l for l in p.lines)
        b = subprocess.Popen([BENCH_PROXY, "bench", "--url", f"http://127.0.0.1:{p.port}", "--queries", WORKLOAD,
                              "-n", "20", "--warmup", "0", "--no-progress", "--out", os.path.join(self.dir, "b")],
                             cwd=self.dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # /meta, /v1/models, then the first measured request (10 s long) has its connection.
        wait_for(lambda: sum("] opened from" in l for l in p.lines) >= before + 3, timeout=60,
                 what="a measured request")
        b.send_signal(signal.SIGINT)
        out, err = b.communicate(timeout=120)
        self.assertEqual(b.returncode, 130, err)
        self.assertTrue(out.strip().splitlines()[-1].startswith("invalid: "), out)
        res = json.load(open(os.path.join(self.dir, "b", "result.json")))
        self.assertIn("interrupted", res["invalid_reasons"])
        self.assertEqual(p.stop(), 0)

    def test_a_normal_run_does_not_claim_a_signal(self):
        r = self.run_cmd(["run", "--config", self.marked(["--tokens", "2"]), "--queries", WORKLOAD, "-n", "2",
                          "--no-progress"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("(signal)", r.stderr)
        self.assertIn("stop requested (measurement done)", r.stderr)
        self.assertTrue(is_number(last_line(r)))

    # 6. The ledger: appending never corrupts it, reading keeps every row it can.
    def ledger_run(self, cfg, tsv, label):
        r = self.run_cmd(["run", "--config", cfg, "--queries", WORKLOAD, "-n", "2", "--no-progress", "--warmup", "0",
                          "--results", tsv, "--label", label])
        self.assertEqual(r.returncode, 0, r.stderr)
        return r

    def results(self, tsv, *extra):
        return self.run_cmd(["results", tsv, *extra])

    def test_appending_repairs_a_missing_line_end_and_escapes_a_config_path_with_a_tab_and_a_newline(self):
        tsv = os.path.join(self.dir, "results.tsv")
        self.ledger_run(self.marked(["--tokens", "2"]), tsv, "first")
        with open(tsv, "rb") as f:
            data = f.read()
        self.assertTrue(data.endswith(b"\n"))
        with open(tsv, "wb") as f:  # an editor or a torn write left the last row without its line end
            f.write(data[:-1])
        odd = self.marked(["--tokens", "2"])
        weird = os.path.join(self.dir, "odd\tname\nwith\\backslash.yaml")
        os.rename(odd, weird)
        self.ledger_run(weird, tsv, "label\twith a tab")
        with open(tsv, "rb") as f:
            after = f.read()
        self.assertTrue(after.startswith(data[:-1]), "what was there is still there")
        lines = after.decode().split("\n")
        self.assertEqual(lines[-1], "")
        lines = lines[:-1]
        self.assertEqual(len(lines), 3, lines)
        for line in lines:
            self.assertEqual(line.count("\t"), lines[0].count("\t"), line)
        r = self.results(tsv, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("warning", r.stderr)
        rows = json.loads(r.stdout)
        self.assertEqual([row["label"] for row in rows], ["first", "label\twith a tab"])
        self.assertEqual(rows[1]["config"], weird)  # stored escaped, read back as it was
        self.assertEqual(rows[0]["verdict"], "keep")
        # Two runs at different times were never interleaved: no keep or discard between them.
        self.assertEqual(rows[1]["verdict"], "not interleaved: drift cannot be separated")
        self.assertEqual(rows[1]["best_line"], 2)

    def test_a_newer_ledger_keeps_its_columns_and_a_bad_row_is_a_warning_not_the_end(self):
        first = os.path.join(self.dir, "first.tsv")
        cfg = self.marked(["--tokens", "2"])
        self.ledger_run(cfg, first, "a")
        header, row = read_text(first).splitlines()
        # A ledger started by a later bench-proxy: a column in the middle and one at the end.
        cols = header.split("\t")
        newer = cols[:16] + ["future_mid"] + cols[16:] + ["future_end"]
        vals = row.split("\t")
        old_row = vals[:16] + ["x"] + vals[16:] + ["y"]
        tsv = os.path.join(self.dir, "newer.tsv")
        with open(tsv, "w") as f:
            f.write("\t".join(newer) + "\n" + "\t".join(old_row) + "\n")
            f.write("2026-12-01T00:00:00Z\ta torn row\n")  # line 3
        self.ledger_run(cfg, tsv, "b")
        lines = read_text(tsv).splitlines()
        self.assertEqual(len(lines), 4)
        self.assertEqual(lines[0], "\t".join(newer))
        self.assertEqual(len(lines[3].split("\t")), len(newer))
        added = dict(zip(newer, lines[3].split("\t")))
        self.assertEqual(added["label"], "b")
        self.assertEqual(added["future_mid"], "")
        self.assertEqual(added["future_end"], "")
        r = self.results(tsv)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(tsv + ":3: 2 fields, the header has %d" % len(newer), r.stderr)
        self.assertIn("row skipped", r.stderr)
        body = r.stdout.splitlines()
        self.assertTrue(any(l.startswith("2 ") for l in body), r.stdout)
        self.assertTrue(any(l.startswith("4 ") for l in body), r.stdout)

    def test_results_gives_verdicts_only_between_interleaved_rows_and_shows_a_try_as_a_step(self):
        first = os.path.join(self.dir, "first.tsv")
        self.ledger_run(self.marked(["--tokens", "2"]), first, "probe")
        cols = read_text(first).splitlines()[0].split("\t")
        for c in ["group", "decision", "ratio", "ratio_ci_low", "ratio_ci_high", "rounds", "engine_seconds",
                  "procedure", "baseline"]:
            self.assertIn(c, cols)

        def row(label, value, group="", config=None, **kw):
            v = dict.fromkeys(cols, "")
            v.update(time="2026-12-01T00:00:00Z", validity="valid", label=label, headline_metric="output_tps",
                     headline="%.3f" % value, headline_ci_low="%.3f" % (value * 0.995),
                     headline_ci_high="%.3f" % (value * 1.005), workload_sha256="w", group=group,
                     config=config or label + ".yaml", trials="3")
            v.update(kw)
            return "\t".join(v[c] for c in cols)

        tsv = os.path.join(self.dir, "campaign.tsv")
        with open(tsv, "w") as f:
            f.write("\n".join([
                "\t".join(cols),
                row("base", 100),                                     # 2: keep (the baseline)
                row("alone", 125),                                    # 3: measured apart
                row("base", 95, "/sweeps/1", "base.yaml"),            # 4: the best re-measured in a sweep
                row("cand", 90, "/sweeps/1"),                         # 5: -5.3% against line 4: discard
                row("cand2", 105, "/sweeps/1"),                       # 6: +10.5%: keep
                row("try1", 108, "/tries/1", decision="faster", ratio="1.034", ratio_ci_low="1.021",
                    ratio_ci_high="1.046", rounds="4", engine_seconds="312.5",
                    procedure="group-sequential t", baseline="cand2.yaml"),  # 7: keep
                row("try2", 100, "/tries/2", decision="inconclusive", ratio="0.99", ratio_ci_low="0.95",
                    ratio_ci_high="1.03", rounds="10", engine_seconds="900", baseline="try1.yaml"),  # 8
            ]) + "\n")
        r = self.results(tsv, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = json.loads(r.stdout)
        self.assertEqual([x["verdict"] for x in rows],
                         ["keep", "not interleaved: drift cannot be separated", "baseline (the best, re-measured)",
                          "discard", "keep", "keep", "inconclusive"])
        self.assertEqual([x["best_line"] for x in rows], [2, 2, 4, 4, 6, 7, 7])
        self.assertEqual(rows[3]["against_line"], 4)
        self.assertEqual(rows[1]["best_measured_line"], 3)
        self.assertEqual(rows[5]["try"]["decision"], "faster")
        self.assertEqual(rows[5]["try"]["rounds"], 4)
        self.assertAlmostEqual(rows[5]["change_ci"][0], 0.021, places=9)
        r = self.results(tsv)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("try: faster +3.4% [+2.1%, +4.6%] after 4 rounds, 312 s of engine time, against cand2.yaml",
                      r.stdout)

    def test_a_try_writes_one_row_whose_decision_is_its_verdict_and_a_kept_try_is_the_best(self):
        tsv = os.path.join(self.dir, "results.tsv")
        base = write_config(self.dir, "base.yaml", ["--tokens", "8", "--itl-ms", "4"], extra="warmup: 1")
        fast = write_config(self.dir, "fast.yaml", ["--tokens", "8", "--itl-ms", "1"], extra="warmup: 1")

        def try_(cand, against, label, d):
            r = self.run_cmd(["try", cand, "--against", against, "--queries", WORKLOAD, "-n", "20", "--max-tokens", "8",
                              "--results", tsv, "--label", label, "--max-rounds", "6", "--no-progress",
                              # a busy test machine would make every lifecycle "disturbed" (test_try)
                              "--telemetry-interval-ms", "0", "--try-dir", os.path.join(self.dir, d)])
            self.assertIn(r.returncode, (0, 1, 4), r.stderr)
            return r

        try_(fast, base, "a quarter of the inter-token time", "t1")  # far beyond any noise
        try_(base, "best", "back to the base", "t2")            # against the ledger's best: fast.yaml
        rows = self.tsv()
        self.assertEqual(len(rows), 2)
        self.assertEqual([row["decision"] for row in rows], ["faster", "slower"])
        self.assertEqual(rows[0]["group"], os.path.join(self.dir, "t1"))
        self.assertEqual(rows[1]["baseline"], fast)
        for row in rows:
            self.assertTrue(row["rounds"] and row["engine_seconds"] and row["procedure"] and row["ratio"], row)
            self.assertLess(float(row["ratio_ci_low"]), float(row["ratio_ci_high"]))
        r = self.results(tsv, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        c = json.loads(r.stdout)
        self.assertEqual([x["verdict"] for x in c], ["keep", "discard"])
        self.assertEqual([x["best_line"] for x in c], [2, 2])
        self.assertEqual(c[0]["try"]["decision"], "faster")
        self.assertRegex(self.results(tsv).stdout, r"try: faster \+\d+\.\d% \[\+\d+\.\d%, \+\d+\.\d%\] after \d rounds?")


if __name__ == "__main__":
    unittest.main()
