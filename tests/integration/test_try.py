"""`bench-proxy try` on the mock engine: a 10% slower candidate is slower within three rounds, an A/A
try with lifecycle and request jitter is never faster or slower, bad input is refused before any
engine starts, and a try leaves its folder, ledger row and machine-readable last line."""
import csv
import json
import os
import shutil
import subprocess
import unittest

from bp import BENCH_PROXY, BIN, SRC, ProxyCase, wait_for, write_config

WORKLOAD = os.path.join(SRC, "configs", "workloads", "bank-intents.csv")


def mock(itl_ms, pace_cv="0.005", jitter="0.02"):
    # Each lifecycle draws its own pace (--pace-cv) and each request its own jitter: a real
    # engine's run-to-run and request-to-request spread.
    return ["--tokens", "8", "--ttft-ms", str(itl_ms), "--itl-ms", str(itl_ms), "--pace-cv", pace_cv,
            "--jitter", jitter]


class TryTest(ProxyCase):
    def bp(self, *args, timeout=600):
        return subprocess.run([BENCH_PROXY, *args], capture_output=True, text=True, cwd=self.dir, timeout=timeout)

    def try_(self, cand, base, *extra):
        return self.bp("try", cand, "--against", base, "--queries", WORKLOAD, "-n", "60", "--max-tokens", "8",
                       "--results", os.path.join(self.dir, "r.tsv"), "--no-progress", "--telemetry-interval-ms", "0",
                       *extra)

    def test_a_ten_percent_slower_candidate_is_slower(self):
        base = write_config(self.dir, "base.yaml", mock(4), extra="warmup: 2")
        slow = write_config(self.dir, "slow.yaml", mock(4.4), extra="warmup: 2")
        r = self.try_(slow, base, "--try-dir", os.path.join(self.dir, "t"), "--label", "itl +10%")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)  # discard
        last = r.stdout.strip().splitlines()[-1]
        # How many rounds depends on this machine's spread between lifecycles (3 when it is quiet;
        # perf/sequential_sim prints the distribution): the verdict does not.
        self.assertRegex(last, r"^slower -\d+\.\d% \[-\d+\.\d%, -\d+\.\d%\] after \d+ rounds$")
        with open(os.path.join(self.dir, "t", "try.json")) as f:
            doc = json.load(f)
        self.assertEqual(doc["kind"], "bench-proxy try")
        d = doc["decision"]
        self.assertEqual(d["verdict"], "slower")
        self.assertGreaterEqual(d["rounds"], 3)  # the first look is at round three
        self.assertLess(d["high"], 0.99)
        self.assertEqual(d["lifecycles"], 2 * d["rounds"])
        self.assertIn("group-sequential", d["procedure"])
        # Alternating order: A B, then B A.
        self.assertEqual([x["order"] for x in doc["rounds"][:3]],
                         ["baseline, candidate", "candidate, baseline", "baseline, candidate"])
        for side in ("baseline", "candidate"):
            for k in range(1, d["rounds"] + 1):
                self.assertTrue(os.path.exists(os.path.join(self.dir, "t", side, f"round-{k}", "result.json")))
        self.assertTrue(os.path.exists(os.path.join(self.dir, "t", "report.html")))
        # compare reads the try's folder, pairing its lifecycles by round.
        c = self.bp("compare", os.path.join(self.dir, "t"), "--json")
        self.assertEqual(c.returncode, 1, c.stdout + c.stderr)
        m = json.loads(c.stdout)["comparisons"][0]["metrics"][0]
        self.assertEqual(m["ci_method"], "paired t")
        # One ledger row for the whole try, with its decision.
        with open(os.path.join(self.dir, "r.tsv")) as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        self.assertEqual(len(rows), 1)
        self.assertEqual(rows[0]["decision"], "slower")
        self.assertEqual(rows[0]["label"], "itl +10%")
        self.assertEqual(rows[0]["rounds"], str(d["rounds"]))
        self.assertEqual(rows[0]["engine"], "mock")
        self.assertTrue(rows[0]["description"], rows[0])  # the candidate's
        self.assertEqual(rows[0]["trials"], str(d["rounds"]))  # the candidate's valid lifecycles
        # `results DIR` on the try's folder reads it as the ledger does: one row, its own decision.
        res = self.bp("results", os.path.join(self.dir, "t"))
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertIn("try: slower", res.stdout)
        self.assertNotIn("not interleaved", res.stdout)
        # The next decision of the campaign pools the first one's spread (--campaign-spread): its
        # first look is at round two, and the result says what it pooled and how it was used.
        r2 = self.try_(slow, base, "--try-dir", os.path.join(self.dir, "t2"), "--campaign-spread")
        self.assertEqual(r2.returncode, 1, r2.stdout + r2.stderr)
        with open(os.path.join(self.dir, "t2", "try.json")) as f:
            doc2 = json.load(f)
        cs = doc2["campaign_spread"]
        self.assertEqual(cs["df"], d["rounds"] - 1)
        self.assertEqual(cs["lines"], "2")  # the first try's ledger line (line 1 is the header)
        self.assertEqual(doc2["design"]["first_look"], 2)
        self.assertEqual(doc2["design"]["campaign_spread"]["prior_df"], d["rounds"] - 1)
        self.assertGreaterEqual(doc2["decision"]["rounds"], 2)
        self.assertIn("campaign's spread", doc2["decision"]["procedure"])
        self.assertIn("campaign's spread: sd", r2.stdout)

    def test_an_a_a_try_is_never_faster_or_slower(self):
        a = write_config(self.dir, "a.yaml", mock(3, pace_cv="0.01", jitter="0.05"), extra="warmup: 2")
        r = self.try_(a, a, "--max-rounds", "4", "--try-dir", os.path.join(self.dir, "aa"))
        self.assertIn(r.returncode, (1, 4), r.stdout + r.stderr)  # no change (discard) or inconclusive
        last = r.stdout.strip().splitlines()[-1]
        self.assertRegex(last, r"^(no change|inconclusive) ")
        with open(os.path.join(self.dir, "aa", "try.json")) as f:
            d = json.load(f)["decision"]
        self.assertIn(d["verdict"], ("no change", "inconclusive"))
        if d["verdict"] == "inconclusive":
            self.assertEqual(r.returncode, 4)
            self.assertTrue("needed" in d or "reason" in d, d)

    def test_against_best_takes_the_ledgers_running_best(self):
        base = write_config(self.dir, "base.yaml", mock(4), extra="warmup: 2")
        fast = write_config(self.dir, "fast.yaml", mock(3), extra="warmup: 2")
        slow = write_config(self.dir, "slow.yaml", mock(5), extra="warmup: 2")
        r = self.try_(fast, base, "--try-dir", os.path.join(self.dir, "t1"))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)  # kept: the new best
        r = self.try_(slow, "best", "--try-dir", os.path.join(self.dir, "t2"))
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        with open(os.path.join(self.dir, "t2", "try.json")) as f:
            doc = json.load(f)
        self.assertEqual(doc["baseline_from"], "best")
        self.assertEqual(doc["baseline_config"], fast)
        self.assertIn("best_drift", doc)
        self.assertIn("the best measured", r.stdout)
        res = self.bp("results", os.path.join(self.dir, "r.tsv"), "--json")
        rows = json.loads(res.stdout)
        self.assertEqual([row["verdict"] for row in rows], ["keep", "discard"])

    def test_a_binary_replaced_during_a_try_does_not_stop_it(self):
        # An upgrade or a rebuild while a campaign runs. With bench-proxy-shim beside it, bench-proxy
        # keeps exec'ing the shim file it opened first (both files are replaced here); without it,
        # the shim is this process's own binary, found through /proc/self/exe once the path says
        # "(deleted)".
        for with_shim in (True, False):
            with self.subTest(with_shim=with_shim):
                d = os.path.join(self.dir, "with-shim" if with_shim else "without-shim")
                bindir = os.path.join(d, "bin")
                os.makedirs(bindir)
                for b in ("bench-proxy", "mock-engine") + (("bench-proxy-shim",) if with_shim else ()):
                    shutil.copy2(os.path.join(BIN, b), bindir)
                exe = os.path.join(bindir, "bench-proxy")
                base = write_config(d, "base.yaml", mock(2), extra="warmup: 1")
                slow = write_config(d, "slow.yaml", mock(3), extra="warmup: 1")
                t = os.path.join(d, "t")
                p = subprocess.Popen([exe, "try", slow, "--against", base, "--queries", WORKLOAD, "-n", "20",
                                      "--max-tokens", "8", "--results", os.path.join(d, "r.tsv"), "--no-progress",
                                      "--telemetry-interval-ms", "0", "--try-dir", t],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=d)
                try:
                    wait_for(lambda: os.path.exists(os.path.join(t, "candidate", "round-1")), 120,
                             what="round 1's candidate")
                    for b in ("bench-proxy",) + (("bench-proxy-shim",) if with_shim else ()):
                        f = os.path.join(bindir, b)
                        shutil.copy2(f, f + ".new")
                        os.replace(f + ".new", f)  # the running binary's file is gone
                    out, err = p.communicate(timeout=300)
                finally:
                    if p.poll() is None:
                        p.kill()
                        p.wait()
                self.assertEqual(p.returncode, 1, out + err)
                self.assertTrue(out.strip().splitlines()[-1].startswith("slower"), out)
                self.assertEqual("no bench-proxy-shim next to" in err, not with_shim, err)

    def test_a_candidate_that_never_starts_fails_the_try_and_its_folder_is_refused_by_name(self):
        base = write_config(self.dir, "base.yaml", mock(2), extra="warmup: 0")
        bad = write_config(self.dir, "bad.yaml", mock(2) + ["--fail-startup", "boom"], extra="warmup: 0")
        r = self.try_(bad, base, "--try-dir", os.path.join(self.dir, "t"))
        self.assertEqual(r.returncode, 5, r.stdout + r.stderr)  # a lifecycle failed (not a crash)
        last = r.stdout.strip().splitlines()[-1]
        self.assertTrue(last.startswith("failed: candidate lifecycle of round 1: engine (pid "), last)
        self.assertNotIn("report: failed", r.stdout)
        # compare and report on that folder say why there is nothing to compare (exit 2).
        for cmd in (["compare", os.path.join(self.dir, "t")], ["report", os.path.join(self.dir, "t"), "-o",
                                                              os.path.join(self.dir, "x.html")]):
            c = self.bp(*cmd)
            self.assertEqual(c.returncode, 2, c.stdout + c.stderr)
            self.assertIn("the try's candidate has no result to compare", c.stderr)
            self.assertIn("fatal: boom", c.stderr)

    def test_ctrl_c_during_an_engines_startup_stops_the_try_at_once(self):
        # The try's own signal loop takes the Ctrl-C; the lifecycle waiting for its engine acts on
        # it at once (the engine would take a minute to be ready): exit 130, the engine reaped.
        import signal
        from bp import wait_for
        slow = write_config(self.dir, "slow.yaml", mock(2) + ["--startup-delay-ms", "60000"], extra="warmup: 0")
        p = subprocess.Popen([BENCH_PROXY, "try", slow, "--against", slow, "--queries", WORKLOAD, "-n", "5",
                              "--max-tokens", "8", "--try-dir", os.path.join(self.dir, "t"), "--no-progress",
                              "--telemetry-interval-ms", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             cwd=self.dir)
        log = os.path.join(self.dir, "t", "baseline", "round-1", "engine.log")
        try:
            wait_for(lambda: os.path.exists(log), timeout=60, what="the engine's log (its startup began)")
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=120)  # not a bound on its speed: a hang would take the minute
        finally:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)  # the test failed: tear it down in order
                p.communicate(timeout=300)
        self.assertEqual(p.returncode, 130, err)
        self.assertEqual(out.strip().splitlines()[-1], "interrupted after 0 rounds")
        self.assertNotIn("[engine] ready", err)  # it never waited for the engine to become ready

    def test_bad_input_is_refused_before_any_engine_starts(self):
        base = write_config(self.dir, "base.yaml", mock(2))
        # Another engine kind: not comparable, exit 3, nothing run.
        other = os.path.join(self.dir, "other.yaml")
        with open(base) as f:
            text = f.read()
        with open(other, "w") as f:
            f.write(text.replace("engine: mock", "engine: vllm"))
        r = self.try_(other, base)
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        self.assertIn("engine kind differs: mock (baseline", r.stdout)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "tries")))
        # A duration that is not one, a missing config, a best without a ledger.
        r = self.try_(base, base, "--budget", "5 minutes")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("--budget", r.stderr)
        r = self.try_(base, base, "--repeats", "7")  # 60 measured requests do not split into 7 passes
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("--repeats 7 with -n 60", r.stderr)
        r = self.try_(os.path.join(self.dir, "missing.yaml"), base)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("missing.yaml", r.stdout + r.stderr)
        r = self.bp("try", base, "--against", "best", "--queries", WORKLOAD, "--results",
                    os.path.join(self.dir, "none.tsv"))
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("none.tsv does not exist", r.stderr)
        notledger = os.path.join(self.dir, "notes.txt")
        with open(notledger, "w") as f:
            f.write("my notes, not a ledger\n")
        r = self.bp("try", base, "--against", base, "--queries", WORKLOAD, "--results", notledger)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("notes.txt:1: not a bench-proxy results TSV", r.stderr)
        with open(notledger) as f:
            self.assertEqual(f.read(), "my notes, not a ledger\n")  # left alone
        r = self.try_(base, base, "--max-rounds", "1")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "tries")))


if __name__ == "__main__":
    unittest.main()
