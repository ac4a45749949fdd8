"""Load curves on the mock engine's queueing model (--slots): latency rises with load, the capacity
at an SLO is the one the model predicts, twice the slots gets "capacity faster" from compare, an
open-loop client that cannot keep its schedule is reported late with the right lateness, and bad
profiles and objectives are refused before any engine starts."""
import json
import math
import os
import subprocess
import unittest

from bp import BENCH_PROXY, SRC, ProxyCase, write_config

WORKLOAD = os.path.join(SRC, "configs", "workloads", "bank-intents.csv")

# The model: a request generates for ttft + (tokens - 1) * itl = 5 + 5 * 30 = 155 ms once it holds
# one of N slots; a request that finds every slot busy waits for one, and that wait (at least the
# rest of a running request: over 100 ms in a closed loop of N+1 workers) is part of its TTFT.
# So with a TTFT p99 objective between the two (80 ms) the capacity is N workers exactly.
SLO = "ttft_p99_ms<=80"


def mock(slots):
    return ["--tokens", "6", "--ttft-ms", "5", "--itl-ms", "30", "--slots", str(slots)]


class CurveTest(ProxyCase):
    def bp(self, *args, timeout=900):
        return subprocess.run([BENCH_PROXY, *args], capture_output=True, text=True, cwd=self.dir, timeout=timeout)

    def run_curve(self, cfg, out, *extra):
        # Every request asks for 6 tokens (the model below) unless a test says otherwise.
        if "--max-tokens" not in extra:
            extra = ("--max-tokens", "6") + tuple(extra)
        r = self.bp("run", "--config", cfg, "--queries", WORKLOAD, "--run-dir", out, "--results",
                    os.path.join(self.dir, "r.tsv"), "--no-progress", "--telemetry-interval-ms", "0", *extra)
        with open(os.path.join(out, "result.json")) as f:
            return r, json.load(f)

    def test_latency_rises_with_load_and_the_capacity_is_the_slots(self):
        cfg = write_config(self.dir, "slots4.yaml", mock(4), extra="warmup: 1")
        r, res = self.run_curve(cfg, os.path.join(self.dir, "run"), "--load", "concurrency=1,2,4,8", "-n", "16",
                                "--slo", SLO, "--headline", "capacity")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertTrue(res["valid"], res.get("invalid_reasons"))
        load = res["load"]
        pts = {p["label"]: p for p in load["points"]}
        for label in ("concurrency=1", "concurrency=2", "concurrency=4", "concurrency=8"):
            self.assertEqual(pts[label]["summary"]["completed"], 16, label)
        # Each point is a full measurement of its own requests, with its interval.
        self.assertEqual(len(res["requests"]), sum(p["summary"]["requests"] for p in load["points"]))
        for p in load["points"]:
            self.assertIsInstance(p["summary"]["ttft_ms"]["median_ci"], list)
            self.assertEqual(len(p["objectives"]), 1)
        # Latency rises with load once the slots are full; below that it does not queue.
        p99 = lambda label: pts[label]["summary"]["ttft_ms"]["p99"]
        self.assertGreater(p99("concurrency=8"), p99("concurrency=4"))
        self.assertEqual(pts["concurrency=4"]["objectives"][0]["met"], "yes")
        self.assertEqual(pts["concurrency=8"]["objectives"][0]["met"], "no")
        # The capacity search bisected between 4 and 8 (6, then 5): both fail.
        refined = sorted(p["load"] for p in load["points"] if p["refined"])
        self.assertEqual(refined, [5, 6])
        cap = load["capacity"]
        self.assertEqual(cap["value"], 4)
        self.assertLessEqual(cap["ci"][0], 4)
        self.assertGreaterEqual(cap["ci"][1], 4)
        self.assertEqual(res["summary"]["headline"]["metric"], "capacity")
        self.assertEqual(r.stdout.strip().splitlines()[-1], "4.00")
        self.assertIn("capacity 4 concurrency", r.stdout)
        # Closed loops bound the queue: no over-saturation verdict there.
        self.assertTrue(all(p["saturation"]["over_saturated"] is None for p in load["points"]))

    def test_twice_the_slots_gets_capacity_faster(self):
        a = write_config(self.dir, "a_slots4.yaml", mock(4), extra="warmup: 1")
        b = write_config(self.dir, "b_slots8.yaml", mock(8), extra="warmup: 1")
        sw = os.path.join(self.dir, "sw")
        r = self.bp("sweep", a, b, "--queries", WORKLOAD, "--max-tokens", "6", "--load", "concurrency=2,4,8,16", "-n", "16", "--slo", SLO,
                    "--headline", "capacity", "--trials", "2", "--redo-disturbed", "0", "--sweep-dir", sw,
                    "--results", os.path.join(self.dir, "r.tsv"), "--no-progress")
        self.assertIn(r.returncode, (0, 1), r.stdout + r.stderr)
        c = self.bp("compare", os.path.join(sw, "1_a_slots4"), os.path.join(sw, "2_b_slots8"), "--json")
        self.assertEqual(c.returncode, 0, c.stdout + c.stderr)
        out = json.loads(c.stdout)
        cmp = out["comparisons"][0]
        head = cmp["metrics"][0]
        self.assertEqual(head["metric"], "capacity")
        self.assertEqual(head["verdict"], "faster", json.dumps(head))
        self.assertAlmostEqual(head["ratio"], 2.0, places=6)
        # Every asked point compared on its own, never gating.
        self.assertEqual([p["point"] for p in cmp["points"]],
                         ["concurrency=2", "concurrency=4", "concurrency=8", "concurrency=16"])
        self.assertTrue(all(not p["gating"] for p in cmp["points"]))
        # A curve and a single point are not comparable: the load profile differs.
        single = os.path.join(self.dir, "single")
        r2, _ = self.run_curve(a, single, "-n", "16")  # (--max-tokens 6 too: only the profile differs)
        self.assertEqual(r2.returncode, 0, r2.stdout + r2.stderr)
        c2 = self.bp("compare", single, os.path.join(sw, "1_a_slots4"))
        self.assertEqual(c2.returncode, 3, c2.stdout + c2.stderr)
        self.assertIn("load shape (profile) differs", c2.stdout)

    def test_an_open_loop_client_that_falls_behind_is_reported_late(self):
        # One client thread (--max-inflight 1) that reads slowly cannot keep 200 requests/s: every
        # request after the first is sent when the thread is free again, and is late by exactly that.
        cfg = write_config(self.dir, "fast.yaml", ["--tokens", "4", "--ttft-ms", "0", "--itl-ms", "0"], extra="warmup: 1")
        r, res = self.run_curve(cfg, os.path.join(self.dir, "late"), "--load", "rate=200", "-n", "30",
                                "--max-inflight", "1", "--read-delay-ms", "5")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        sc = res["schedule"]
        self.assertFalse(sc["kept"])
        self.assertIn("fell behind its schedule", " ".join(res["warnings"]))
        self.assertEqual(sc["threads"], 1)
        reqs = sorted(res["requests"], key=lambda q: q["index"])
        prev_end = None
        for q in reqs:
            self.assertAlmostEqual(q["lateness_ms"], max(0.0, q["start_ms"] - q["planned_ms"]), places=9)
            if prev_end is not None:
                # The one thread sent it only once the previous request had ended.
                self.assertGreaterEqual(q["start_ms"], prev_end)
            prev_end = q["start_ms"] + q["e2e_ms"]
        self.assertGreater(reqs[-1]["lateness_ms"], 0)
        # Latency from the planned time (what a user arriving on schedule sees) exceeds the sent-time one.
        self.assertGreater(sc["ttft_from_planned_ms"]["median"], res["summary"]["ttft_ms"]["median"])
        self.assertGreater(sc["achieved_rate"], 0)
        self.assertEqual(sc["requested_rate"], 200)
        # With enough threads the same schedule is kept (the mock answers at once).
        r2, res2 = self.run_curve(cfg, os.path.join(self.dir, "ontime"), "--load", "rate=20", "-n", "20")
        self.assertEqual(r2.returncode, 0, r2.stdout + r2.stderr)
        for q in res2["requests"]:
            self.assertGreaterEqual(q["start_ms"], q["planned_ms"])  # never early

    def test_sweep_ramp_and_windows(self):
        cfg = write_config(self.dir, "slots4.yaml", mock(4), extra="warmup: 1")
        # sweep:2: sync, throughput, then 2 rates strictly between their measured request rates.
        # (Short requests and a small in-flight cap: the throughput point drains what it has in flight.)
        r, res = self.run_curve(cfg, os.path.join(self.dir, "sweep"), "--load", "sweep:2", "--duration", "1",
                                "--max-tokens", "2", "--max-inflight", "16")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        pts = sorted(res["load"]["points"], key=lambda p: p["index"])
        self.assertEqual([p["kind"] for p in pts], ["sync", "throughput", "rate", "rate"])
        self.assertTrue(all(p["axis"] == "req/s" for p in pts))
        lo, hi = pts[0]["load"], pts[1]["load"]
        self.assertLess(lo, hi)
        for p in pts[2:]:
            self.assertTrue(lo < p["load"] < hi, (lo, p["load"], hi))
        # A linear ramp from 5 to 60 requests/s over 2 s: more arrivals planned in its second half.
        r, res = self.run_curve(cfg, os.path.join(self.dir, "ramp"), "--ramp-up", "linear", "--ramp-start", "5",
                                "--ramp-end", "60", "--duration", "2", "--max-tokens", "2")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        planned = [q["planned_ms"] for q in res["requests"]]
        self.assertTrue(all(0 <= t < 2000 for t in planned))
        # (Expected 46.25 against 18.75 arrivals; the schedule is seeded, so this holds for --seed 1.)
        self.assertGreater(sum(t >= 1000 for t in planned), 1.5 * sum(t < 1000 for t in planned))
        # Windows: requests outside or straddling them are listed, marked, and left out.
        r, res = self.run_curve(cfg, os.path.join(self.dir, "win"), "--load", "concurrency=2", "--duration", "1.5",
                                "--warmup-window", "0.4", "--cooldown-window", "0.4", "--max-tokens", "2")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        w = res["window"]
        marked = [q for q in res["requests"] if "window" in q]
        self.assertEqual(len(res["requests"]), w["measured"] + len(marked))
        for kind in ("before", "straddles start", "straddles end", "after"):
            self.assertEqual(w[kind], sum(q["window"] == kind for q in marked), kind)
        self.assertGreater(w["before"] + w["straddles start"], 0)
        self.assertGreater(w["straddles end"] + w["after"], 0)
        self.assertEqual(res["summary"]["completed"], w["measured"])
        for q in res["requests"]:
            inside = "window" not in q
            starts_in = q["start_ms"] >= 400
            self.assertEqual(inside, starts_in and q["start_ms"] + q["e2e_ms"] <= 1100, q)

    def test_an_slo_no_point_meets_has_no_number(self):
        cfg = write_config(self.dir, "slots1.yaml", mock(1), extra="warmup: 1")
        r, res = self.run_curve(cfg, os.path.join(self.dir, "none"), "--load", "concurrency=2,4", "-n", "8",
                                "--slo", "ttft_p99_ms<=1", "--headline", "capacity")
        cap = res["load"]["capacity"]
        self.assertIsNone(cap["value"])
        self.assertIn("below the lowest load measured (2 concurrency)", cap["text"])
        last = r.stdout.strip().splitlines()[-1]
        self.assertRaises(ValueError, float, last)
        self.assertIn("below the lowest load measured", last)

    def test_bad_profiles_and_objectives_are_refused_before_any_engine_starts(self):
        cfg = write_config(self.dir, "e.yaml", mock(2))
        cases = [
            (["--load", "concurrency=4,2"], "--load 'concurrency=4,2': the loads must increase"),
            (["--load", "bursty"], "--load 'bursty': unknown profile"),
            (["--load", "sweep:0"], "sweep:N needs a whole number"),
            (["--load", "rate=1", "--concurrency", "4"], "--load replaces --concurrency"),
            (["--slo", "ttft_p99<=3"], "--slo: 'ttft_p99<=3': expected METRIC_pNN_ms<=MS"),
            (["--headline", "capacity"], "--headline capacity needs --slo objectives"),
            (["--headline", "capacity", "--slo", SLO], "--headline capacity needs a curve"),
            (["--ramp-up", "linear", "--ramp-start", "1", "--ramp-end", "5"], "--ramp-up needs --duration"),
            (["--ramp-up", "sideways", "--ramp-start", "1", "--ramp-end", "5", "--duration", "2"],
             "--ramp-up 'sideways': expected linear or exponential"),
        ]
        for extra, message in cases:
            r = self.bp("run", "--config", cfg, "--queries", WORKLOAD, "--run-dir", os.path.join(self.dir, "x"),
                        "--results", "", *extra)
            self.assertEqual(r.returncode, 2, (extra, r.stdout, r.stderr))
            self.assertIn(message, r.stderr, extra)
            self.assertFalse(os.path.exists(os.path.join(self.dir, "x")), extra)


if __name__ == "__main__":
    unittest.main()
