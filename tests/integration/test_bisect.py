"""`bench-proxy bisect` on the mock engine: of four changes, the one that adds a known delay is named;
two changes that only together slow the engine down are reported as an interaction; every
generated config is a real YAML that `validate` accepts; bad input is refused before anything runs."""
import json
import os
import subprocess
import unittest

from bp import BENCH_PROXY, SRC, ProxyCase, write_config

WORKLOAD = os.path.join(SRC, "configs", "workloads", "bank-intents.csv")


def args(startup="300", extra=()):
    return ["--tokens", "8", "--ttft-ms", "2", "--itl-ms", "2", "--startup-delay-ms", startup, "--pace-cv", "0.003",
            "--jitter", "0.02", *extra]


class BisectTest(ProxyCase):
    def bp(self, *a, timeout=900):
        return subprocess.run([BENCH_PROXY, *a], capture_output=True, text=True, cwd=self.dir, timeout=timeout)

    def bisect(self, good, bad, d, *extra):
        # A 3% band: the delays below change the headline by 30% or more, and "no change" within
        # 3% is decided in a few rounds on a loaded machine.
        return self.bp("bisect", good, bad, "--queries", WORKLOAD, "-n", "40", "--max-tokens", "8", "--noise", "3%",
                       "--results", os.path.join(self.dir, "r.tsv"), "--no-progress", "--telemetry-interval-ms", "0",
                       "--bisect-dir", os.path.join(self.dir, d), *extra)

    def test_the_change_that_adds_a_delay_is_named_among_four(self):
        good = write_config(self.dir, "good.yaml", args(), extra="warmup: 3")
        bad = write_config(self.dir, "bad.yaml", args("100"), env={"MOCK_EXTRA_ITL_MS": "1", "HARMLESS": "1"},
                           extra="warmup: 2")
        r = self.bisect(good, bad, "b")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        last = r.stdout.strip().splitlines()[-1]
        self.assertTrue(last.startswith("found: env.MOCK_EXTRA_ITL_MS: (absent) -> 1: slower"), last)
        with open(os.path.join(self.dir, "b", "bisect.json")) as f:
            doc = json.load(f)
        self.assertEqual(doc["answer"]["units"], ["env.MOCK_EXTRA_ITL_MS"])
        self.assertEqual(len(doc["units"]), 4)
        self.assertEqual(doc["steps"][0]["decision"]["verdict"], "slower")
        # Every intermediate config is a real YAML that validate accepts.
        configs = os.path.join(self.dir, "b", "configs")
        files = [os.path.join(configs, f) for f in sorted(os.listdir(configs))]
        self.assertTrue(files)
        v = self.bp("validate", *files)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        self.assertTrue(os.path.exists(os.path.join(self.dir, "b", "report.html")))
        # --resume reuses decided steps only for the same bisect: the same GOOD and BAD bytes, the
        # same workload and options. (A copy of the folder, marked interrupted, stands for one.)
        import shutil
        b2 = os.path.join(self.dir, "b2")
        shutil.copytree(os.path.join(self.dir, "b"), b2)
        with open(os.path.join(b2, "bisect.json")) as f:
            doc2 = json.load(f)
        doc2["answer"]["verdict"] = "interrupted"
        with open(os.path.join(b2, "bisect.json"), "w") as f:
            json.dump(doc2, f)
        common = ["--queries", WORKLOAD, "--max-tokens", "8", "--noise", "3%", "--no-progress",
                  "--telemetry-interval-ms", "0"]
        r = self.bp("bisect", "--resume", b2, "-n", "20", *common)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("not the same bisect: --requests differs (40 there, 20 now)", r.stderr)
        r = self.bp("bisect", "--resume", b2, "-n", "40", *common)  # the same: every step is reused
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("resuming " + b2 + ": " + str(len(doc["steps"])) + " decided steps reused", r.stdout)
        self.assertEqual(r.stdout.strip().splitlines()[-1], last)
        self.assertTrue(os.path.exists(os.path.join(b2, "report-2.html")))  # the old report is kept
        with open(os.path.join(b2, "bisect.json")) as f:
            doc2 = json.load(f)
        doc2["answer"]["verdict"] = "interrupted"
        with open(os.path.join(b2, "bisect.json"), "w") as f:
            json.dump(doc2, f)
        with open(bad, "a") as f:
            f.write("# edited\n")
        r = self.bp("bisect", "--resume", b2, "-n", "40", *common)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("not the same bisect: BAD (its sha256: the file changed) differs", r.stderr)

    def test_two_changes_that_only_together_slow_it_down_are_an_interaction(self):
        extra = ("--interaction-delay-ms", "2")
        good = write_config(self.dir, "good.yaml", args(extra=extra))
        bad = write_config(self.dir, "bad.yaml", args(extra=extra),
                           env={"MOCK_SLOW_A": "1", "MOCK_SLOW_B": "1", "HARMLESS": "1"})
        r = self.bisect(good, bad, "b")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        last = r.stdout.strip().splitlines()[-1]
        self.assertTrue(last.startswith("interaction (only together): "), last)
        with open(os.path.join(self.dir, "b", "bisect.json")) as f:
            doc = json.load(f)
        self.assertEqual(sorted(doc["answer"]["units"]), ["env.MOCK_SLOW_A", "env.MOCK_SLOW_B"])

    def test_configs_that_do_not_differ_or_cannot_be_compared_are_refused(self):
        good = write_config(self.dir, "good.yaml", args())
        same = write_config(self.dir, "same.yaml", args())
        r = self.bisect(good, same, "s")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("do not differ in any unit", r.stdout.strip().splitlines()[-1])
        other = os.path.join(self.dir, "other.yaml")
        with open(good) as f:
            text = f.read()
        with open(other, "w") as f:
            f.write(text.replace("engine: mock", "engine: vllm"))
        r = self.bisect(good, other, "o")
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        r = self.bp("bisect", good, "--queries", WORKLOAD)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        r = self.bp("bisect", "--resume", os.path.join(self.dir, "nothing-here"), "--queries", WORKLOAD)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("nothing-here", r.stderr)


if __name__ == "__main__":
    unittest.main()
