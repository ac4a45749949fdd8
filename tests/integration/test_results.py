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


if __name__ == "__main__":
    unittest.main()
