"""The proxy as the stopwatch: per-request records (requests.jsonl, /proxy/requests, the
x-bench-proxy-request-id header), bench-proxy's own /metrics read by real parsers and scraped by
a real Prometheus server, and bench's client checked against the proxy's records.

No test here bounds time: the proxy's figures are compared with what the engine stamped (the
mock's --stamp-events) and with what the client saw, by order and consistency. How close the
proxy's figures come to the engine's is a measurement, in perf/ (proxy_overhead.py,
client_accuracy.sh)."""
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

from bp import BENCH_PROXY, SRC, ProxyCase, free_port, stream_with_headers, wait_for, write_config

WORKLOAD = os.path.join(SRC, "configs", "workloads", "bank-intents.csv")


def records_for(proxy, ids):
    """The proxy's records of `ids`, polled for: a record is handed over once the proxy has written
    the last byte, a moment after the client may have read it."""
    def have():
        recs, _ = records(proxy, after=min(ids) - 1, limit=10000)
        got = [r for r in recs if r["id"] in ids]
        return got if len(got) == len(ids) else None
    return wait_for(have, what="the proxy's records of these requests")


def content_bearing(chunk):
    ch = chunk.get("choices") or []
    return bool(ch) and bool(ch[0].get("delta", {}).get("content") or ch[0].get("text"))


def proxy_content_us(rec):
    """The proxy's time of each content event, microseconds after its t = 0, as printed (TTFT, then
    the gaps added up), with how far the printing can have moved each (half a microsecond per
    printed figure: each is rounded to the microsecond)."""
    at = round(rec["ttft_ms"] * 1000)
    out = [(at, 0.5)]
    for k, g in enumerate(rec["itl_ms"]):
        at += round(g * 1000)
        out.append((at, 0.5 * (k + 2)))
    return out


def records(proxy, after=0, limit=None):
    q = f"/proxy/requests?after={after}" + (f"&limit={limit}" if limit else "")
    status, headers, body = proxy.get(q)
    assert status == 200, (status, body)
    return [json.loads(l) for l in body.decode().splitlines() if l], headers


class ProxyTimingTest(ProxyCase):
    def test_proxy_side_ttft_and_itl_agree_with_the_engines_stamps_and_a_role_only_event_is_no_token(self):
        # The mock stamps each event with when it took the request and when it sent the event
        # (mock_received_us, mock_sent_us). Each clock is compared only with itself: the proxy's t = 0
        # (request header complete) comes before the engine took the request, and the proxy reads each
        # event after the engine sent it, so for every content event k
        #     proxy's t_k  >=  engine's (sent_k - received)
        # and the client, which started before the proxy and reads after it, holds the proxy's:
        #     client's t_k  >=  proxy's t_k.
        cfg = self.config(mock_args=["--role-event", "--stamp-events", "--ttft-ms", "50", "--itl-ms", "20",
                                     "--tokens", "6"], extra="warmup: 0")
        p = self.start(cfg)
        p.wait_ready()
        ids, seen = [], {}
        for i in range(11):
            sent_at = time.monotonic()
            status, headers, events = stream_with_headers(
                p.port, {"model": "m", "messages": [{"role": "user", "content": f"q{i}"}], "stream": True,
                         "stream_options": {"include_usage": True}})
            self.assertEqual(status, 200)
            # The first event is the role alone (vLLM's habit), before any token exists.
            first = json.loads(events[0][1])
            self.assertEqual(first["choices"][0]["delta"], {"role": "assistant", "content": ""})
            rid = int(headers["x-bench-proxy-request-id"])
            ids.append(rid)
            chunks = [(t, json.loads(d)) for t, d in events if d != "[DONE]"]
            content = [(t, c) for t, c in chunks if content_bearing(c)]
            seen[rid] = {
                "client_us": [(t - sent_at) * 1e6 for t, _ in content],
                "engine_us": [c["mock_sent_us"] - c["mock_received_us"] for _, c in content],
                "role_us": first["mock_sent_us"] - first["mock_received_us"],
            }
        self.assertEqual(ids, sorted(ids))
        self.assertEqual(len(set(ids)), len(ids))
        recs = records_for(p, ids)
        self.assertEqual([r["id"] for r in recs], ids)
        for r in recs:
            self.assertEqual(r["status"], 200)
            self.assertTrue(r["stream"])
            self.assertEqual(r["content_events"], 6)  # the role-only event is not counted
            self.assertEqual(r["usage"]["completion_tokens"], 6)
            self.assertEqual(len(r["itl_ms"]), 5)
            t = r["t_ms"]
            self.assertLessEqual(t["request_header"], t["request_body"])
            self.assertLessEqual(t["request_body"], t["forwarded"])
            self.assertLessEqual(t["forwarded"], t["response_header"])
            self.assertLess(t["response_header"], t["first_content"])
            self.assertLessEqual(t["first_content"], t["last_byte"])
            self.assertEqual(r["ttft_ms"], t["first_content"])
            self.assertTrue(all(g >= 0 for g in r["itl_ms"]), r["itl_ms"])
            s = seen[r["id"]]
            # The engine's events, one to one with the proxy's: as many, in the order sent.
            self.assertEqual(len(s["engine_us"]), r["content_events"])
            self.assertEqual(s["engine_us"], sorted(s["engine_us"]))
            # The header left the engine with the role event: the proxy cannot have parsed it sooner.
            self.assertGreaterEqual(round(t["response_header"] * 1000) + 0.5, s["role_us"])
            proxy = proxy_content_us(r)
            for k, ((p_us, printed), e_us, c_us) in enumerate(zip(proxy, s["engine_us"], s["client_us"])):
                # The proxy never reports a token before the engine sent it ...
                self.assertGreaterEqual(p_us + printed, e_us, (k, r, s))
                # ... and the client never reads one before the proxy did.
                self.assertGreaterEqual(c_us + printed, p_us, (k, r, s))
            # The engine kept its own schedule (never early): 50 ms to the first token, 20 ms per token;
            # so the proxy's TTFT is at least 50 ms too (a lower bound, never a tolerance).
            for k, e_us in enumerate(s["engine_us"]):
                self.assertGreaterEqual(e_us, 50000 + 20000 * k)
            self.assertGreaterEqual(r["ttft_ms"], 50)
            self.assertGreaterEqual(r["e2e_ms"], 50 + 5 * 20)

    def test_every_proxied_request_lands_in_requests_jsonl_without_content_and_pages_by_id(self):
        cfg = self.config(mock_args=["--tokens", "3"], extra="warmup: 1")
        p = self.start(cfg)
        p.wait_ready()
        seen = []
        for i in range(5):
            c = p.conn()
            c.request("POST", "/v1/chat/completions?api_key=SECRETQUERY",
                      body=json.dumps({"model": "m", "messages": [{"role": "user", "content": "PRIVATE PROMPT"}]}),
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            seen.append(int(r.getheader("x-bench-proxy-request-id")))
            c.close()
        # Local routes answer without a record; a 404 under /v1 comes from the engine, with one.
        status, headers, _ = p.get("/healthz")
        self.assertNotIn("x-bench-proxy-request-id", headers)
        status, headers, _ = p.get("/v1/nothing-here")
        self.assertIn("x-bench-proxy-request-id", headers)
        seen.append(int(headers["x-bench-proxy-request-id"]))
        # Paging: after= and limit=, with the last id and whether there is more.
        page, h = records(p, after=seen[0], limit=2)
        self.assertEqual([r["id"] for r in page], seen[1:3])
        self.assertEqual(h["x-bench-proxy-more"], "true")
        self.assertEqual(int(h["x-bench-proxy-last-id"]), seen[2])
        status, _, body = p.get("/proxy/requests?after=abc")
        self.assertEqual(status, 400)
        self.assertIn("'after'", json.loads(body)["error"]["message"])
        self.assertEqual(p.stop(), 0)
        with open(os.path.join(p.run_dir, "requests.jsonl")) as f:
            text = f.read()
        lines = [json.loads(l) for l in text.splitlines()]
        # The warmup request went through the proxy too; every request of ours is there once.
        self.assertTrue(set(seen) <= {r["id"] for r in lines}, (seen, lines))
        self.assertEqual(len(lines), len({r["id"] for r in lines}))
        self.assertNotIn("PRIVATE PROMPT", text)
        self.assertNotIn("SECRETQUERY", text)
        plain = [r for r in lines if r["id"] in seen[:5]]
        for r in plain:
            self.assertEqual(r["path"], "/v1/chat/completions")
            self.assertFalse(r["stream"])
            self.assertEqual(r["usage"]["completion_tokens"], 3)
            self.assertGreater(r["bytes_in"], 0)
            self.assertGreater(r["bytes_out"], 0)
            self.assertEqual(r["ttft_ms"], r["t_ms"]["first_content"])

    def test_a_client_that_goes_away_is_recorded_as_aborted(self):
        cfg = self.config(mock_args=["--tokens", "200", "--itl-ms", "10"], extra="warmup: 0")
        p = self.start(cfg)
        p.wait_ready()
        c = p.conn()
        c.request("POST", "/v1/chat/completions",
                  body=json.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True}),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        rid = int(r.getheader("x-bench-proxy-request-id"))
        r.read1(100)
        c.sock.close()
        c.close()
        rec = wait_for(lambda: next((x for x in records(p, after=rid - 1)[0] if x["id"] == rid), None),
                       what="the aborted request's record")
        self.assertTrue(rec["client_aborted"])
        self.assertIsNotNone(rec["error"])
        self.assertIsNone(rec["output_tps"])
        status, _, body = p.get("/metrics")
        self.assertIn("bench_proxy_client_aborts_total 1", body.decode())


class EngineErrorEventTest(ProxyCase):
    """Issue 27 item 3: an engine that fails mid-stream sends an error event after the 200 (as
    llama-server does); the proxy's records, requests.jsonl and /metrics count that request as
    failed, the same requests bench counts as failed."""

    def test_an_error_event_mid_stream_is_an_error_in_every_record_of_the_proxy(self):
        # Every third streamed request: three tokens, then the error event.
        cfg = self.config(mock_args=["--tokens", "6", "--itl-ms", "1", "--error-every", "3"], extra="warmup: 0")
        p = self.start(cfg)
        p.wait_ready()
        out = os.path.join(self.dir, "b")
        r = subprocess.run([BENCH_PROXY, "bench", "--url", f"http://127.0.0.1:{p.port}", "--queries", WORKLOAD,
                            "-n", "6", "--max-tokens", "6", "--warmup", "0", "--out", out, "--results", os.path.join(self.dir, "r.tsv"),
                            "--no-progress", "--max-error-rate", "0.5"],
                           capture_output=True, text=True, cwd=self.dir, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(os.path.join(out, "result.json")) as f:
            res = json.load(f)
        failed = {q["proxy_request_id"] for q in res["requests"] if not q["ok"]}
        ok = {q["proxy_request_id"] for q in res["requests"] if q["ok"]}
        self.assertEqual(len(failed), 2, res["requests"])
        self.assertEqual(len(ok), 4)
        why = "stream error: the engine sent an error event: mock-engine: failing mid-stream (mock_error_after)"
        recs = {x["id"]: x for x in records_for(p, failed | ok)}
        for rid in failed:
            self.assertEqual(recs[rid]["status"], 200)
            self.assertEqual(recs[rid]["error"], why, recs[rid])
            self.assertTrue(recs[rid]["upstream_error"])
            self.assertIsNone(recs[rid]["output_tps"])
            self.assertEqual(recs[rid]["content_events"], 3)
        for rid in ok:
            self.assertIsNone(recs[rid]["error"], recs[rid])
            self.assertFalse(recs[rid]["upstream_error"])
            self.assertIsNotNone(recs[rid]["output_tps"])
        metrics = p.get("/metrics")[2].decode()
        self.assertIn("bench_proxy_upstream_errors_total 2", metrics)
        # Completed requests only: the four chat completions and bench's GET /v1/models.
        self.assertIn("bench_proxy_e2e_seconds_count 5", metrics)
        self.assertIn('bench_proxy_requests_total{route="/v1/chat/completions",status="200"} 6', metrics)
        self.assertEqual(p.stop(), 0)
        with open(os.path.join(p.run_dir, "requests.jsonl")) as f:
            lines = {x["id"]: x for x in map(json.loads, f.read().splitlines())}
        for rid in failed:
            self.assertEqual(lines[rid]["error"], why)
            self.assertTrue(lines[rid]["upstream_error"])
        for rid in ok:
            self.assertIsNone(lines[rid]["error"])


class MetricsTest(ProxyCase):
    def test_metrics_parse_with_real_parsers_and_a_real_prometheus_counts_every_request(self):
        cfg = self.config(mock_args=["--tokens", "4", "--itl-ms", "1"], extra="warmup: 0")
        p = self.start(cfg)
        health = p.wait_ready()
        n = 7
        for i in range(n):
            status, _, events = stream_with_headers(
                p.port, {"model": "m", "messages": [{"role": "user", "content": str(i)}], "stream": True})
            self.assertEqual(status, 200)
        # Counted once the proxy wrote each response's last byte (a moment after the client read it).
        wait_for(lambda: f"bench_proxy_e2e_seconds_count {n}\n" in p.get("/metrics")[2].decode(),
                 what=f"{n} requests in /metrics")
        status, headers, body = p.get("/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(headers["content-type"].startswith("text/plain; version=0.0.4"))
        text = body.decode()
        # Python's reference parser.
        from prometheus_client.parser import text_string_to_metric_families
        fams = {f.name: f for f in text_string_to_metric_families(text)}
        self.assertEqual(fams["bench_proxy_ttft_seconds"].type, "histogram")
        count = [s for s in fams["bench_proxy_e2e_seconds"].samples if s.name.endswith("_count")][0].value
        self.assertEqual(count, n)
        buckets = [s for s in fams["bench_proxy_inter_token_latency_seconds"].samples if s.name.endswith("_bucket")]
        self.assertEqual(float(buckets[0].labels["le"]), 0.0001)  # fine enough for batch size 1
        itl_count = [s for s in fams["bench_proxy_inter_token_latency_seconds"].samples
                     if s.name.endswith("_count")][0].value
        self.assertEqual(itl_count, n * 3)
        info = fams["bench_proxy_info"].samples[0]
        self.assertEqual(info.labels["snapshot_id"], health["snapshot_id"])
        self.assertEqual(info.labels["engine_kind"], "mock")
        self.assertEqual(info.labels["config"], "integration test mock engine")
        reqs = {(s.labels["route"], s.labels["status"]): s.value for s in fams["bench_proxy_requests"].samples
                if s.name == "bench_proxy_requests_total"}
        self.assertEqual(reqs[("/v1/chat/completions", "200")], n)
        # Prometheus's own linter.
        lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        self.assertEqual(lint.returncode, 0, lint.stdout + lint.stderr)

        # A real Prometheus server on loopback, scraping every second.
        work = tempfile.mkdtemp(prefix="bp_prom_")
        port = free_port()
        with open(os.path.join(work, "prometheus.yml"), "w") as f:
            f.write("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: bench-proxy\n"
                    f"    static_configs:\n      - targets: ['127.0.0.1:{p.port}']\n")
        log = open(os.path.join(work, "log"), "w")
        prom = subprocess.Popen(["prometheus", f"--config.file={work}/prometheus.yml",
                                 f"--storage.tsdb.path={work}/data", f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL, stderr=log)
        try:
            def scraped():
                if prom.poll() is not None:
                    with open(os.path.join(work, "log")) as f:
                        raise AssertionError("prometheus exited:\n" + f.read())
                q = urllib.parse.quote("bench_proxy_e2e_seconds_count")
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/query?query={q}", timeout=5) as r:
                        res = json.load(r)["data"]["result"]
                except OSError:
                    return None
                return res[0]["value"][1] if res else None
            self.assertEqual(wait_for(scraped, timeout=120, step=0.2, what="prometheus to scrape"), str(n))
        finally:
            prom.send_signal(signal.SIGTERM)
            try:
                prom.wait(30)
            except subprocess.TimeoutExpired:
                prom.kill()
                prom.wait()
            log.close()
            shutil.rmtree(work, ignore_errors=True)


def overhead_warned(res):
    """Which client-overhead warnings bench gave: {"TTFT", "E2E"}."""
    return {what for w in res["warnings"] if w.startswith("client overhead") for what in ("TTFT", "E2E")
            if f"median {what} " in w}


def overhead_rule(co):
    """Which it should give: the client's median more than 0.5 ms and 5 % above the proxy's."""
    out = set()
    for what, key, pkey in (("TTFT", "ttft", "ttft_ms"), ("E2E", "e2e", "e2e_ms")):
        over, base = co[key]["median"], co["proxy"][pkey]["median"]
        if over > 0.5 and base > 0 and over > 0.05 * base:
            out.add(what)
    return out


class ClientOverheadTest(ProxyCase):
    def run_bench(self, url, out, *extra):
        r = subprocess.run([BENCH_PROXY, "bench", "--url", url, "--queries", WORKLOAD, "-n", "12", "--max-tokens",
                            "5", "--out", out, "--results", os.path.join(self.dir, "r.tsv"), "--no-progress", *extra],
                           capture_output=True, text=True, cwd=self.dir, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(os.path.join(out, "result.json")) as f:
            return json.load(f), r.stdout

    def test_bench_joins_its_timings_with_the_proxys_and_a_slow_reader_is_called_out(self):
        cfg = self.config(mock_args=["--ttft-ms", "100", "--itl-ms", "40"], extra="warmup: 0")
        p = self.start(cfg)
        p.wait_ready()
        url = f"http://127.0.0.1:{p.port}"
        res, _ = self.run_bench(url, os.path.join(self.dir, "fast"))
        co = res["client_overhead_ms"]
        self.assertEqual(co["matched"], 12)
        self.assertTrue(all("proxy_request_id" in r for r in res["requests"]))
        # The client's TTFT holds the proxy's: it sent before the proxy's clock started and read the first
        # token after the proxy did. (E2E has no such order: the proxy stops its clock after its last
        # write returned, and the client can have read those bytes a few microseconds before that.)
        self.assertGreaterEqual(co["ttft"]["median"], -0.0005)  # the proxy prints to the microsecond
        # The engine never sends its first token sooner than 100 ms after it took the request, which the
        # proxy's clock had started before: a lower bound, never a tolerance.
        self.assertGreaterEqual(co["proxy"]["ttft_ms"]["median"], 100)
        # The warning says what the figures say (its rule: docs/metrics.md, "Client overhead"): how large
        # the client's own time is depends on the machine's load, so only the consistency is tested.
        self.assertEqual(overhead_warned(res), overhead_rule(co), (co, res["warnings"]))

        # A client that waits 30 ms before each read: its numbers are not the engine's.
        res, out = self.run_bench(url, os.path.join(self.dir, "slow"), "--read-delay-ms", "30")
        co = res["client_overhead_ms"]
        self.assertEqual(co["matched"], 12)
        self.assertEqual(co["read_delay_ms"], 30)
        # Every read after a wait comes 30 ms late: the first token is read 30 ms after it arrived.
        self.assertGreaterEqual(co["ttft"]["median"], 30)
        self.assertEqual(overhead_warned(res), overhead_rule(co), (co, res["warnings"]))
        self.assertIn("TTFT", overhead_warned(res))
        self.assertIn("client overhead", out)


if __name__ == "__main__":
    unittest.main()
