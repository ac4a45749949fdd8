"""Generated and imported workloads through bench-proxy on the mock engine: the same seed gives the
same fingerprint and compare refuses different ones, multi-turn sessions carry their history, a
trace replays on its own schedule, and bad specs and traces are refused before any engine starts."""
import json
import os
import subprocess
import unittest

from bp import BENCH_PROXY, SRC, ProxyCase, write_config

TRACE = os.path.join(SRC, "configs", "workloads", "trace-sample.jsonl")


class GeneratedTest(ProxyCase):
    def run_(self, out, *args):
        cfg = write_config(self.dir, "e.yaml", ["--tokens", "4"], extra="warmup: 1")
        r = subprocess.run([BENCH_PROXY, "run", "--config", cfg, "--run-dir", os.path.join(self.dir, out),
                            "--results", os.path.join(self.dir, "r.tsv"), "--no-progress", "--telemetry-interval-ms", "0",
                            *args], capture_output=True, text=True, cwd=self.dir, timeout=300)
        path = os.path.join(self.dir, out, "result.json")
        if not os.path.exists(path):
            return r, None
        with open(path) as f:
            return r, json.load(f)

    def test_the_same_seed_gives_the_same_fingerprint_and_compare_refuses_another(self):
        spec = ["--synthetic", "input=40,output=4,spread=0.5", "-n", "12", "--load", "rate=50"]
        r1, a = self.run_("a", *spec, "--seed", "7")
        r2, b = self.run_("b", *spec, "--seed", "7")
        r3, c = self.run_("c", *spec, "--seed", "8")
        for r in (r1, r2, r3):
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(a["workload_fingerprint"], b["workload_fingerprint"])
        self.assertEqual(a["workload_fingerprint"]["arrivals"], 12)
        self.assertNotEqual(a["workload_fingerprint"]["sha256"], c["workload_fingerprint"]["sha256"])
        self.assertEqual(a["workload"]["kind"], "synthetic")
        self.assertIn("estimated", a["workload"]["tokens_counted_by"])  # the mock has no /tokenize
        lengths = [m["metadata"]["input_tokens"] for m in a["workload"]["metadata"]]
        self.assertTrue(all(20 <= x <= 60 for x in lengths), lengths)
        self.assertGreater(len(set(lengths)), 1)
        cmp = subprocess.run([BENCH_PROXY, "compare", os.path.join(self.dir, "a"), os.path.join(self.dir, "c")],
                             capture_output=True, text=True, timeout=120)
        self.assertEqual(cmp.returncode, 3, cmp.stdout + cmp.stderr)
        self.assertIn("workload fingerprint differs", cmp.stdout)
        same = subprocess.run([BENCH_PROXY, "compare", os.path.join(self.dir, "a"), os.path.join(self.dir, "b")],
                              capture_output=True, text=True, timeout=120)
        self.assertNotIn("workload fingerprint differs", same.stdout)
        # The ledger keys a generated workload by its fingerprint.
        with open(os.path.join(self.dir, "r.tsv")) as f:
            rows = f.read()
        self.assertIn(a["workload_fingerprint"]["sha256"], rows)

    def test_sessions_carry_their_history(self):
        r, res = self.run_("s", "--sessions", "turns=3,think_ms=1,input=10,output=4", "-n", "3")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        turns = {}
        for q in res["requests"]:
            self.assertTrue(q["ok"], q)
            turns.setdefault(q["session"], []).append((q["turn"], q["prompt_tokens"]))
        self.assertEqual(len(turns), 3)
        for s, t in turns.items():
            t.sort()
            self.assertEqual([x[0] for x in t], [1, 2, 3])
            # Each turn sends the earlier turns and the engine's answers: its prompt grows.
            self.assertLess(t[0][1], t[1][1])
            self.assertLess(t[1][1], t[2][1])

    def test_a_sharegpt_file_as_requests_and_as_sessions(self):
        path = os.path.join(self.dir, "share.json")
        convs = [
            {"id": "a", "conversations": [{"from": "system", "value": "be brief"}, {"from": "human", "value": "hello there"},
                                          {"from": "gpt", "value": "hi, how can I help"}, {"from": "human", "value": "tell me more"},
                                          {"from": "gpt", "value": "sure"}]},
            {"id": "b", "conversations": [{"from": "human", "value": "what is two plus two"}, {"from": "gpt", "value": "four"}]},
            {"id": "c", "conversations": [{"from": "gpt", "value": "an answer without a question"}]},
        ]
        with open(path, "w") as f:
            json.dump(convs, f)
        r, res = self.run_("sg", "--sharegpt", path)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(res["workload"]["kind"], "sharegpt")
        self.assertEqual(res["workload"]["skipped_conversations"], 1)  # "c" has no human turn
        self.assertEqual(res["workload"]["rows"], 2)
        self.assertEqual(res["summary"]["completed"], 2)
        ids = [m["metadata"]["id"] for m in res["workload"]["metadata"]]
        self.assertEqual(ids, ["a", "b"])
        # As sessions: every human turn is a turn, with the history.
        r, res = self.run_("sgs", "--sharegpt", path, "--sessions", "think_ms=0")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        turns = sorted((q["session"], q["turn"]) for q in res["requests"])
        self.assertEqual(turns, [(0, 1), (0, 2), (1, 1)])

    def test_a_trace_replays_on_its_own_schedule(self):
        r, res = self.run_("t", "--trace", TRACE, "--time-scale", "0.05", "--max-tokens", "2")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(res["workload"]["kind"], "trace")
        n = res["workload_fingerprint"]["arrivals"]
        self.assertEqual(len(res["requests"]), n)
        for q in res["requests"]:
            self.assertGreaterEqual(q["start_ms"], q["planned_ms"])  # never early
        planned = [q["planned_ms"] for q in sorted(res["requests"], key=lambda q: q["index"])]
        self.assertEqual(planned, sorted(planned))

    def test_bad_specs_and_traces_are_refused_before_any_engine_starts(self):
        back = os.path.join(self.dir, "back.jsonl")
        with open(back, "w") as f:
            f.write('{"timestamp": 0, "input_length": 5, "output_length": 2}\n')
            f.write('{"timestamp": 100, "input_length": 5, "output_length": 2}\n')
            f.write('{"timestamp": 50, "input_length": 5, "output_length": 2}\n')
        cases = [
            (["--synthetic", "input=abc"], "--synthetic"),
            (["--trace", back], back + ":3"),
            (["--trace", back, "--load", "rate=3"], "--trace brings its own arrival schedule"),
            (["--synthetic", "input=5", "--queries", os.path.join(SRC, "configs", "workloads", "bank-intents.csv")],
             "one workload at a time"),
            (["--prefix-groups", "2"], "--prefix-groups needs --prefix-len"),
            ([], "a workload is needed"),
            (["--synthetic", "input=5", "--time-scale", "2"], "--time-scale needs --trace"),
        ]
        for extra, message in cases:
            r, res = self.run_("x", *extra)
            self.assertEqual(r.returncode, 2, (extra, r.stdout, r.stderr))
            self.assertIn(message, r.stderr, extra)
            self.assertIsNone(res)


if __name__ == "__main__":
    unittest.main()
