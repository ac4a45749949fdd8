"""Verdicts on the mock engine with per-token jitter: A/A is no change, 10% slower is slower, a 0.3%
difference is never called, incomparable inputs are refused, and the ledger tells keep from discard."""
import csv
import json
import os
import subprocess
import unittest

from bp import BENCH_PROXY, SRC, ProxyCase, write_config

WORKLOAD = os.path.join(SRC, "configs", "workloads", "bank-intents.csv")


def mock(itl_ms, extra_args=(), jitter="0.02"):
    # 8 tokens a request; the jitter gives each request its own pace and each token its own delay.
    return ["--tokens", "8", "--ttft-ms", str(itl_ms), "--itl-ms", str(itl_ms), "--jitter", jitter, *extra_args]


class CompareTest(ProxyCase):
    def cfg(self, name, itl_ms, extra_args=(), extra="warmup: 2", jitter="0.02"):
        return write_config(self.dir, name, mock(itl_ms, extra_args, jitter), extra=extra)

    def bp(self, *args, timeout=300):
        return subprocess.run([BENCH_PROXY, *args], capture_output=True, text=True, cwd=self.dir, timeout=timeout)

    def run_one(self, config, run_dir, n="100", *extra):
        r = self.bp("run", "--config", config, "--queries", WORKLOAD, "-n", n, "--max-tokens", "8", "--run-dir",
                    os.path.join(self.dir, run_dir), "--results", os.path.join(self.dir, "r.tsv"), "--no-progress", *extra)
        return r

    def compare(self, *inputs, extra=()):
        r = self.bp("compare", *[os.path.join(self.dir, i) for i in inputs], "--json", *extra)
        self.assertIn(r.returncode, (0, 1, 3), r.stdout + r.stderr)
        return r.returncode, json.loads(r.stdout)

    def verdict(self, doc, metric="output_tps"):
        return [m for m in doc["comparisons"][0]["metrics"] if m["metric"] == metric][0]

    def test_an_a_a_sweep_with_trials_is_no_change_and_measures_the_noise_floor(self):
        a = self.cfg("a.yaml", 4)
        # --redo-disturbed 0: on a busy test machine every trial would be run again (test_sweep
        # checks that); here only the verdicts matter.
        r = self.bp("sweep", a, a, "--trials", "3", "--redo-disturbed", "0", "--queries", WORKLOAD, "-n", "100",
                    "--max-tokens", "8", "--sweep-dir",
                    os.path.join(self.dir, "sw"), "--results", os.path.join(self.dir, "r.tsv"), "--no-progress")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(os.path.join(self.dir, "sw", "sweep.json")) as f:
            sw = json.load(f)
        self.assertEqual(sw["trials"], 3)
        self.assertEqual([len(c["results"]) for c in sw["configs"]], [3, 3])
        second = [row for row in sw["rows"] if "verdict" in row][0]
        # An A/A test is never called faster or slower. It is "no change" exactly when the ratio's
        # interval lies inside ±noise, else "inconclusive" (a quiet first config alone does not
        # decide it: the second's spread and the machine between the interleaved trials count too;
        # seen in CI: noise floor 0.16%, the two 0.4% apart, the interval reaching past +1%).
        self.assertIsNotNone(sw["noise_floor"])
        self.assertIn(second["verdict"], ("no change", "inconclusive"), r.stdout)
        cmp = second["comparison"]
        lo, hi = [m for m in cmp["metrics"] if m["metric"] == "output_tps"][0]["ratio_ci"]
        inside = 1 - cmp["noise"] <= lo and hi <= 1 + cmp["noise"]
        self.assertEqual(second["verdict"], "no change" if inside else "inconclusive", r.stdout)
        self.assertIn("noise floor", r.stdout)
        self.assertIn("CI (trials+requests)", r.stdout)
        # Interleaved, each round in the other direction (A B, B A, A B): visible in the order the
        # trial results were written.
        trials = sorted((os.stat(os.path.join(self.dir, "sw", d, t, "result.json")).st_mtime, d)
                        for d in os.listdir(os.path.join(self.dir, "sw")) if os.path.isdir(os.path.join(self.dir, "sw", d))
                        for t in os.listdir(os.path.join(self.dir, "sw", d)) if t.startswith("trial-"))
        self.assertEqual([d for _, d in trials], ["1_a", "2_a", "2_a", "1_a", "1_a", "2_a"])
        # compare reads the sweep folder: its first config is the baseline.
        code, doc = self.compare("sw")
        self.assertEqual(code, 0, doc)
        v = self.verdict(doc)
        self.assertEqual(v["verdict"], second["verdict"])
        self.assertEqual(v["baseline"]["trials"], 3)
        self.assertIn("t interval over 3 lifecycles", v["baseline"]["ci_method"])
        # One ledger row per config for its three trials.
        with open(os.path.join(self.dir, "r.tsv")) as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        self.assertEqual([row["trials"] for row in rows], ["3", "3"])
        self.assertEqual(rows[0]["headline_metric"], "output_tps")
        self.assertTrue(float(rows[0]["headline_ci_low"]) <= float(rows[0]["headline"]) <= float(rows[0]["headline_ci_high"]))

    def test_ten_percent_slower_is_slower_and_a_tiny_difference_is_never_called(self):
        base = self.cfg("base.yaml", 4, jitter="0.08")
        slow = self.cfg("slow.yaml", 4.4, jitter="0.08")
        tiny = self.cfg("tiny.yaml", 4.012, jitter="0.08")
        for c, d in [(base, "base"), (slow, "slow"), (tiny, "tiny")]:
            r = self.run_one(c, d)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # One lifecycle per side cannot see run-to-run noise: the request-level interval is shown,
        # but no verdict is given from it (an A/A run once said "+32.3% faster" that way).
        code, doc = self.compare("base", "slow")
        self.assertEqual(code, 0, doc)
        v = self.verdict(doc)
        self.assertEqual(v["verdict"], "inconclusive")
        self.assertEqual(v["ci_method"], "requests only")
        self.assertLess(v["ratio"], 0.95)
        self.assertIn("--trials 2", v["needed"])
        r = self.bp("compare", os.path.join(self.dir, "base"), os.path.join(self.dir, "slow"))
        self.assertEqual(r.returncode, 0)
        self.assertIn("request-to-request noise only", r.stdout)
        self.assertIn("snapshots differ in: config (", r.stdout)  # the args
        # Interleaved lifecycles of each decide it: slower, and only the headline gates.
        # (Two trials have 1 degree of freedom: t's 97.5% quantile is 12.7, too wide for 10%.)
        r = self.bp("sweep", base, slow, "--trials", "3", "--redo-disturbed", "0", "--queries", WORKLOAD, "-n", "100",
                    "--max-tokens", "8",
                    "--sweep-dir", os.path.join(self.dir, "sw"), "--results", os.path.join(self.dir, "r.tsv"),
                    "--no-progress")
        self.assertIn(r.returncode, (0, 1), r.stdout + r.stderr)
        code, doc = self.compare("sw")
        self.assertEqual(code, 1, doc)  # a regression beyond noise: a CI job fails
        v = self.verdict(doc)
        self.assertEqual(v["verdict"], "slower")
        self.assertEqual(v["ci_method"], "paired t")
        self.assertTrue(v["gating"])
        self.assertLess(v["ratio"], 0.95)
        self.assertFalse(self.verdict(doc, "itl_p50")["gating"])
        code, doc = self.compare("base", "tiny", extra=("--noise", "1%", "--metric", "output_tps"))
        v = self.verdict(doc)
        self.assertIn(v["verdict"], ("no change", "inconclusive"), v)
        self.assertEqual(code, 0)

    def test_inputs_that_are_not_comparable_are_refused_with_the_reason(self):
        base = self.cfg("base.yaml", 2)
        lossy = self.cfg("lossy.yaml", 2, ["--fail-every", "10"], extra="warmup: 0")
        other = os.path.join(self.dir, "other.jsonl")
        with open(other, "w") as f:
            for i in range(50):
                f.write(json.dumps({"prompt": f"question {i}"}) + "\n")
        self.assertEqual(self.run_one(base, "base", "50", "--warmup", "0").returncode, 0)
        r = self.run_one(lossy, "lossy", "50", "--warmup", "0", "--max-error-rate", "0.2")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)  # valid: 5 errors are tolerated here
        r = self.bp("run", "--config", base, "--queries", other, "-n", "50", "--max-tokens", "8", "--warmup", "0", "--run-dir",
                    os.path.join(self.dir, "other"), "--results", os.path.join(self.dir, "r.tsv"), "--no-progress")
        self.assertEqual(r.returncode, 0, r.stderr)
        code, doc = self.compare("base", "lossy")
        self.assertEqual(code, 3, doc)
        reasons = doc["comparisons"][0]["not_comparable_because"]
        self.assertTrue(any("the set of answered queries differs: 50 (baseline) vs 45" in x for x in reasons), reasons)
        self.assertEqual(self.verdict(doc)["verdict"], "not comparable")
        code, doc = self.compare("base", "other")
        self.assertEqual(code, 3)
        self.assertTrue(any("workload (sha256) differs" in x for x in doc["comparisons"][0]["not_comparable_because"]))
        # A result with malformed or absurd fields is bad input (exit 2 naming file and field), never
        # "slower" or "faster -2241.9%".
        with open(os.path.join(self.dir, "base", "result.json")) as f:
            doc = json.load(f)
        for name, change, words in [("yes", lambda d: d.__setitem__("valid", "yes"), "field valid"),
                                    ("neg", lambda d: d["requests"][0].__setitem__("e2e_ms", -2241.9),
                                     "field requests[0].e2e_ms"),
                                    ("nosnap", lambda d: d.__setitem__("snapshot", None), "field snapshot")]:
            bad = json.loads(json.dumps(doc))
            change(bad)
            os.makedirs(os.path.join(self.dir, name))
            with open(os.path.join(self.dir, name, "result.json"), "w") as f:
                json.dump(bad, f)
            r = self.bp("compare", os.path.join(self.dir, "base"), os.path.join(self.dir, name))
            self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
            self.assertIn(os.path.join(name, "result.json") + ": " + words, r.stderr)
        # Usage errors: one input, a file that is not a result.
        r = self.bp("compare", os.path.join(self.dir, "base"))
        self.assertEqual(r.returncode, 2)
        self.assertIn("needs a baseline and at least one candidate", r.stderr)
        r = self.bp("compare", os.path.join(self.dir, "base"), other)
        self.assertEqual(r.returncode, 2)
        self.assertRegex(r.stderr, r"other\.jsonl(:\d+:\d+)?: not JSON")  # :LINE:COLUMN once read by base::read_json_file

    def test_run_with_trials_writes_each_lifecycle_and_one_combined_record(self):
        a = self.cfg("a.yaml", 2)
        for d in ("r1", "r2"):
            r = self.run_one(a, d, "40", "--trials", "2", "--label", "two trials")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("trial 1: ", r.stdout)
        self.assertIn("mean of 2 trials", r.stdout)
        self.assertIn("t interval over 2 lifecycles", r.stdout)
        for t in ("trial-1", "trial-2"):
            self.assertTrue(os.path.exists(os.path.join(self.dir, "r1", t, "result.json")))
            self.assertTrue(os.path.exists(os.path.join(self.dir, "r1", t, "meta.json")))
        with open(os.path.join(self.dir, "r1", "trials.json")) as f:
            agg = json.load(f)
        self.assertEqual(agg["kind"], "bench-proxy trials")
        self.assertEqual(agg["trials"], 2)
        self.assertEqual(len(agg["summary"]["headline"]["per_trial"]), 2)
        self.assertTrue(agg["valid"])
        self.assertEqual(agg["label"], "two trials")
        # The last line is the combined headline.
        with open(os.path.join(self.dir, "r2", "trials.json")) as f:
            last = json.load(f)["summary"]["headline"]["value"]
        self.assertAlmostEqual(float(r.stdout.strip().splitlines()[-1]), last, places=1)
        code, doc = self.compare("r1", "r2")
        self.assertEqual(code, 0, doc)
        self.assertIn(self.verdict(doc)["verdict"], ("no change", "inconclusive"))
        self.assertEqual(self.verdict(doc)["candidate"]["trials"], 2)
        # A run folder that already holds trials is never reused.
        r = self.run_one(a, "r1", "40", "--trials", "2")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)

    def test_a_scripted_campaign_gets_its_keep_and_discard_column(self):
        ledger = os.path.join(self.dir, "ledger.tsv")
        steps = [("baseline", self.cfg("c1.yaml", 4)), ("more speed", self.cfg("c2.yaml", 3.2)),
                 ("broken flag", self.cfg("c3.yaml", 4, ["--fail-startup", "unknown flag"])),
                 ("too far", self.cfg("c4.yaml", 4.8)), ("the same again", self.cfg("c5.yaml", 3.2))]
        for label, c in steps:
            self.bp("run", "--config", c, "--queries", WORKLOAD, "-n", "60", "--max-tokens", "8", "--results", ledger,
                    "--label", label, "--no-progress")
        # The speeds differ by 20-50%; a repeat of the same config on a loaded machine (stress-ng on
        # both cores beside ctest -j2) came out 5% apart, so the band is 10%.
        r = self.bp("results", ledger, "--json", "--noise", "10%")
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = json.loads(r.stdout)
        self.assertEqual([row["label"] for row in rows], [s[0] for s in steps])
        # Runs at different times were never interleaved: the machine's drift and the change cannot
        # be told apart, so no keep or discard (docs/cli.md, "The ledger").
        apart = "not interleaved: drift cannot be separated"
        self.assertEqual([row["verdict"] for row in rows], ["keep", apart, "failed", apart, apart])
        self.assertEqual([row["best_line"] for row in rows], [2] * 5)  # the baseline stays the best
        self.assertTrue(all(row["repo_commit"] == "" or len(row["repo_commit"]) == 40 for row in rows))
        # One sweep of the best's config and a candidate: interleaved, so the candidate is judged
        # against the best's new measurement. Twice as fast: beyond the noise band whatever the
        # width of an interval over three lifecycles on a loaded machine.
        r = self.bp("sweep", steps[0][1], self.cfg("c6.yaml", 1.6), "--queries", WORKLOAD, "-n", "60", "--max-tokens",
                    "8", "--trials", "3", "--redo-disturbed", "0", "--results", ledger, "--label", "interleaved",
                    "--no-progress",
                    "--sweep-dir", os.path.join(self.dir, "sw"))
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = json.loads(self.bp("results", ledger, "--json", "--noise", "10%").stdout)
        self.assertEqual([row["verdict"] for row in rows[5:]], ["baseline (the best, re-measured)", "keep"])
        self.assertEqual(rows[6]["against_line"], 7)
        self.assertEqual(rows[6]["best_line"], 8)  # "interleaved" (c6) is the new best
        r = self.bp("results", ledger)
        self.assertIn("more speed", r.stdout)
        self.assertIn(apart, r.stdout)


if __name__ == "__main__":
    unittest.main()
