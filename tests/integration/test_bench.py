"""bench and run: metrics against the mock engine's known timing, workloads, validity, TSV.

No test here bounds time from above or puts a tolerance around the mock's nominal timing: the
mock never sends sooner than its schedule (test_mock checks that on its own stamps), so its
schedule is a lower bound of every figure; bench's figures are checked against the proxy's
records of the same requests (the client starts before the proxy's clock and reads after it) and
for consistency with one another. Accuracy figures are measurements: perf/client_accuracy.sh."""
import csv
import http.server
import hashlib
import json
import os
import re
import subprocess
import threading
import unittest

from bp import BENCH_PROXY, SRC, ProxyCase, pids_with_marker, wait_for

WORKLOAD = os.path.join(SRC, "configs", "workloads", "bank-intents.csv")


def run(args, cwd, timeout=120):
    return subprocess.run([BENCH_PROXY, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout)


class BenchTest(ProxyCase):
    def test_metrics_match_the_mock_engines_known_timing(self):
        p = self.start(self.config(mock_args=["--ttft-ms", "50", "--itl-ms", "20", "--tokens", "32"], extra="warmup: 1"))
        p.wait_ready()
        queries = os.path.join(self.dir, "q.csv")
        with open(queries, "w") as f:
            f.write("prompt,provider,expected\nhello there,acme,x\nsecond question,acme,y\n")
        r = run(["bench", "--url", f"http://127.0.0.1:{p.port}", "--queries", queries, "-n", "6",
                 "--out", os.path.join(self.dir, "out"), "--results", os.path.join(self.dir, "results.tsv"),
                 "--no-progress"], self.dir)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        headline = float(r.stdout.strip().splitlines()[-1])
        with open(os.path.join(self.dir, "out", "result.json")) as f:
            res = json.load(f)
        s = res["summary"]
        self.assertEqual(s["completed"], 6)
        self.assertEqual(s["errors"], 0)
        self.assertTrue(s["usage_counted_by_server"])
        self.assertEqual(s["output_tokens"]["median"], 32)
        # The mock's schedule (50 ms, then 20 ms per token) is a lower bound of every request's
        # figures, and so an upper bound of its throughput: never a tolerance around it.
        reqs = res["requests"]
        self.assertEqual(len(reqs), 6)
        for q in reqs:
            self.assertEqual(len(q["itl_ms"]), 31)
            self.assertGreaterEqual(q["ttft_ms"], 50, q)
            self.assertGreaterEqual(q["e2e_ms"], 50 + 31 * 20, q)
            # Consistency: the last token was read after the first plus every gap, before the end.
            self.assertLessEqual(q["ttft_ms"] + sum(q["itl_ms"]), q["e2e_ms"] + 1e-6, q)
            self.assertTrue(all(g >= 0 for g in q["itl_ms"]), q)
        self.assertGreaterEqual(s["ttft_ms"]["median"], 50)
        self.assertGreaterEqual(s["e2e_ms"]["median"], 50 + 31 * 20)
        self.assertLessEqual(headline, 32 / ((50 + 31 * 20) / 1000.0))
        self.assertAlmostEqual(s["output_tps"]["median"], headline, delta=0.01)  # the same figure, printed
        # The client's times hold the proxy's for the same request (joined by its id): the client sent
        # before the proxy's clock started and read each token after the proxy had passed it on.
        ids = [q["proxy_request_id"] for q in reqs]
        def proxy_records():
            st, _, body = p.get(f"/proxy/requests?after={min(ids) - 1}&limit=1000")
            got = {r["id"]: r for r in map(json.loads, body.decode().splitlines()) if r["id"] in ids}
            return got if len(got) == len(ids) else None
        recs = wait_for(proxy_records, what="the proxy's records of bench's requests")
        for q in reqs:
            r = recs[q["proxy_request_id"]]
            self.assertEqual(r["content_events"], q["content_events"])
            printed = 0.0005  # the proxy prints each figure to the microsecond
            self.assertGreaterEqual(q["ttft_ms"] + printed, r["ttft_ms"], (q, r))
            # (Not E2E: the proxy stops its clock after its last write returned, and the client can have
            # read those bytes a few microseconds before that.)
            client_at, proxy_at = q["ttft_ms"], r["ttft_ms"]
            for k, (cg, pg) in enumerate(zip(q["itl_ms"], r["itl_ms"])):
                client_at += cg
                proxy_at += pg
                self.assertGreaterEqual(client_at + printed * (k + 2), proxy_at, (k, q, r))
        self.assertTrue(res["valid"])
        self.assertEqual(res["snapshot_id"], res["snapshot_id_after"])
        self.assertEqual(res["snapshot"]["schema_version"], 1)
        self.assertEqual(res["metric_definitions"].split()[0], "docs/metrics.md")
        # Extra CSV columns are metadata, never sent: the mock's echo is not needed, the request bodies
        # are recorded per query line instead.
        self.assertEqual(res["workload"]["metadata"][0]["metadata"], {"provider": "acme", "expected": "x"})
        with open(os.path.join(self.dir, "results.tsv")) as f:
            rows = list(csv.reader(f, delimiter="\t"))
        self.assertEqual(rows[0][:4], ["time", "description", "engine", "snapshot_id"])
        self.assertEqual(rows[1][2], "mock")
        self.assertEqual(rows[1][3], res["snapshot_id"])
        self.assertEqual(rows[1][12], "valid")
        p.stop()

    def test_every_metric_carries_its_spread_percentiles_and_a_seeded_interval(self):
        p = self.start(self.config(mock_args=["--ttft-ms", "5", "--itl-ms", "2", "--tokens", "8"], extra="warmup: 0"))
        p.wait_ready()
        outs = []
        for k in range(2):
            out = os.path.join(self.dir, f"stats{k}")
            r = run(["bench", "--url", f"http://127.0.0.1:{p.port}", "--queries", WORKLOAD, "-n", "20",
                     "--percentiles", "50,90,99.9", "--bootstrap", "500", "--seed", "9", "--out", out,
                     "--results", os.path.join(self.dir, "r.tsv"), "--no-progress"], self.dir)
            self.assertEqual(r.returncode, 0, r.stderr)
            outs.append(json.load(open(os.path.join(out, "result.json"))))
            self.assertRegex(r.stdout, r"ttft +median [\d.]+ \[[\d.]+, [\d.]+\]")
            self.assertIn("request-to-request noise only", r.stdout)
        s = outs[0]["summary"]
        for m in ("ttft_ms", "itl_ms", "e2e_ms", "output_tps"):
            lo, hi = s[m]["median_ci"]
            self.assertLessEqual(lo, s[m]["median"])
            self.assertGreaterEqual(hi, s[m]["median"])
            for k in ("mean", "std", "cv", "p50", "p90", "p99.9", "min", "max"):
                self.assertIn(k, s[m])
        self.assertIn("p10", s["output_tps"])  # a throughput's bad tail is low
        self.assertIn("p1", s["output_tps"])
        self.assertNotIn("p10", s["ttft_ms"])
        self.assertEqual(s["statistics"]["bootstrap_resamples"], 500)
        # Same data and seed, same interval: the bootstrap is seeded.
        self.assertEqual(s["output_tokens"]["median_ci"], outs[1]["summary"]["output_tokens"]["median_ci"])
        r = run(["bench", "--url", f"http://127.0.0.1:{p.port}", "--queries", WORKLOAD, "--percentiles", "50,100"],
                self.dir)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--percentiles", r.stderr)
        p.stop()

    def test_concurrency_rate_and_errors_are_counted(self):
        p = self.start(self.config(mock_args=["--crash-after", "1000000", "--tokens", "4"], extra="warmup: 0"))
        p.wait_ready()
        r = run(["bench", "--url", f"http://127.0.0.1:{p.port}", "--queries", WORKLOAD, "-n", "40",
                 "--concurrency", "4", "--rate", "200", "--out", os.path.join(self.dir, "o"), "--results",
                 os.path.join(self.dir, "r.tsv"), "--max-tokens", "4"], self.dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(self.dir, "o", "result.json")) as f:
            res = json.load(f)
        self.assertEqual(res["summary"]["completed"], 40)
        self.assertEqual(res["summary"]["concurrency"], 4)
        starts = sorted(q["start_ms"] for q in res["requests"])
        self.assertGreater(starts[-1], 80)  # 40 Poisson arrivals at 200/s take ~200 ms
        p.stop()

    def test_malformed_workload_names_the_line(self):
        bad = os.path.join(self.dir, "bad.jsonl")
        with open(bad, "w") as f:
            f.write('{"prompt": "fine"}\n{"messages": "not a list"}\n')
        r = run(["bench", "--url", "http://127.0.0.1:1", "--queries", bad], self.dir)
        self.assertEqual(r.returncode, 2)
        self.assertIn("bad.jsonl:2:", r.stderr)
        self.assertTrue(r.stdout.strip().splitlines()[-1].startswith("invalid: "), r.stdout)
        # A bad cell names its column and value, never a C++ function.
        bad = os.path.join(self.dir, "bad.csv")
        with open(bad, "w") as f:
            f.write("prompt,max_tokens\nhello,abc\n")
        r = run(["bench", "--url", "http://127.0.0.1:1", "--queries", bad], self.dir)
        self.assertEqual(r.returncode, 2)
        self.assertIn("bad.csv:2: column 'max_tokens' must be a whole number, got 'abc'", r.stderr)
        self.assertNotIn("stol", r.stderr)

    def bench_against_fake(self, answer_meta):
        """`bench -n 3` against a fake OpenAI server whose GET /meta `answer_meta(handler)` answers
        (handler.send(code, body, extra=headers) or anything of BaseHTTPRequestHandler)."""

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def send(self, code, body, ctype="application/json", extra=()):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in extra:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path == "/meta":
                    answer_meta(self)
                elif self.path == "/v1/models":
                    self.send(200, b'{"data":[{"id":"fake"}]}')
                else:
                    self.send(404, b"{}")

            def do_POST(self):
                n = int(self.headers["Content-Length"])
                json.loads(self.rfile.read(n))
                events = [{"choices": [{"delta": {"content": "hi"}}]}, {"choices": [], "usage": {"completion_tokens": 1}}]
                body = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"
                self.send(200, body, "text/event-stream")

        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()
        try:
            return run(["bench", "--url", f"http://127.0.0.1:{srv.server_address[1]}", "--queries", WORKLOAD, "-n", "3",
                        "--out", os.path.join(self.dir, "o"), "--results", os.path.join(self.dir, "r.tsv")], self.dir)
        finally:
            srv.shutdown()

    def test_changed_snapshot_id_marks_the_result_invalid(self):
        calls = {"meta": 0}

        def meta(h):
            calls["meta"] += 1
            doc = json.dumps({"schema_version": 1, "n": calls["meta"]}).encode()
            h.send(200, doc, extra=[("ETag", f'"id-{calls["meta"]}"')])

        r = self.bench_against_fake(meta)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("INVALID", r.stdout)
        with open(os.path.join(self.dir, "o", "result.json")) as f:
            res = json.load(f)
        self.assertFalse(res["valid"])
        self.assertIn("snapshot changed during the run", res["invalid_reason"])
        self.assertEqual(res["summary"]["completed"], 3)

    def test_the_check_after_the_run_asks_for_the_id_only(self):
        # The snapshot after the run is checked by its ETag (If-None-Match): the same snapshot is a
        # 304 with no body, so a /meta of megabytes (a large venv) is sent and parsed once per run.
        calls = {"bodies": 0, "conditional": []}
        doc = json.dumps({"schema_version": 1, "pad": "x" * 100000}).encode()

        def meta(h):
            inm = h.headers.get("If-None-Match")
            if inm is not None:
                calls["conditional"].append(inm)
            if inm == '"id-1"':
                h.send_response(304)
                h.send_header("ETag", '"id-1"')
                h.end_headers()
                return
            calls["bodies"] += 1
            h.send(200, doc, extra=[("ETag", '"id-1"')])

        r = self.bench_against_fake(meta)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(self.dir, "o", "result.json")) as f:
            res = json.load(f)
        self.assertTrue(res["valid"], res.get("invalid_reason"))
        self.assertEqual(res["snapshot_id"], "id-1")
        self.assertEqual(res["snapshot_id_after"], "id-1")
        self.assertEqual(res["snapshot"]["pad"], "x" * 100000)
        self.assertEqual(calls["conditional"], ['"id-1"'])
        self.assertEqual(calls["bodies"], 1)

    def test_run_measures_one_configuration_and_tears_down(self):
        marker = f"BP_RUN_MARKER_{os.getpid()}"
        cfg = self.config(mock_args=["--tokens", "16", "--itl-ms", "1"], env={"PATH": "/usr/bin:/bin", marker: "1"},
                          extra="warmup: 1")
        r = run(["run", "--config", cfg, "--queries", WORKLOAD, "-n", "10", "--run-dir", os.path.join(self.dir, "run"),
                 "--results", os.path.join(self.dir, "r.tsv"), "--no-progress"], self.dir)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertGreater(float(r.stdout.strip().splitlines()[-1]), 0)
        for name in ("engine.log", "meta.json", "result.json"):
            self.assertTrue(os.path.exists(os.path.join(self.dir, "run", name)), name)
        self.assertEqual(pids_with_marker(marker), [])
        # The result holds exactly the snapshot /meta served (its document handed over in memory
        # once the proxy confirmed its ETag), and its id is the bytes' sha256.
        with open(os.path.join(self.dir, "run", "meta.json"), "rb") as f:
            meta_bytes = f.read()
        with open(os.path.join(self.dir, "run", "result.json")) as f:
            res = json.load(f)
        self.assertEqual(res["snapshot"], json.loads(meta_bytes))
        self.assertEqual(res["snapshot_id"], hashlib.sha256(meta_bytes).hexdigest())
        self.assertEqual(res["snapshot_id_after"], res["snapshot_id"])
        # run's report.html is made from the result in memory; `report` reads result.json: the
        # same page data either way (but for the moment it was made).
        run_dir = os.path.join(self.dir, "run")
        again = os.path.join(self.dir, "again.html")
        r = run(["report", run_dir, "--out", again], self.dir)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

        def page_data(path):
            with open(path) as f:
                m = re.search(r'<script type="application/json" id="bp-data">(.*?)</script>', f.read(), re.S)
            d = json.loads(m.group(1).replace("<\\/", "</"))
            d.pop("generated_at", None)
            return d
        self.assertEqual(page_data(os.path.join(run_dir, "report.html")), page_data(again))


if __name__ == "__main__":
    unittest.main()
