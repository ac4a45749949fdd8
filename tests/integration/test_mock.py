"""The mock engine on its own: endpoints, response and streaming formats, knobs, fault switches.

Timing knobs are checked against the mock's own stamps (--stamp-events: when it took the request
and when it sent each event), never against the test's clock: the mock promises a lower bound
(it never sends early), and a loaded machine only makes it later."""
import http.client
import json
import os
import signal
import subprocess
import time
import unittest

from bp import MOCK, free_port, wait_for, alive, descendants


def sse_chunks(raw):
    """The JSON events of a raw SSE body, [DONE] left out."""
    events = [e[len("data: "):] for e in raw.split("\n\n") if e.startswith("data: ")]
    return [json.loads(e) for e in events if e != "[DONE]"]


def content_offsets_us(chunks):
    """Per content event: microseconds from the mock taking the request to sending the event."""
    return [c["mock_sent_us"] - c["mock_received_us"] for c in chunks
            if c["choices"] and (c["choices"][0].get("delta", {}).get("content") or c["choices"][0].get("text"))]


def due_offsets_us(chunks):
    """Per content event: when it was due (the mock's schedule after pace, environment and jitter),
    microseconds after the mock took the request; and a check that none left before it was due."""
    out = []
    for c in chunks:
        if "mock_due_us" in c:
            assert c["mock_sent_us"] >= c["mock_due_us"], c
            out.append(c["mock_due_us"] - c["mock_received_us"])
    return out


def schedule_floor_us(ttft_ms, itl_ms, n):
    """The mock's own schedule in whole microseconds, computed as it computes it (doubles, then
    truncated): token k is due `ttft + k * itl` after the request was taken, never sooner."""
    out, at = [], ttft_ms
    for _ in range(n):
        out.append(int(at * 1000))
        at += itl_ms
    return out


class MockEngineTest(unittest.TestCase):
    def start(self, *args, env=None):
        self.port = free_port()
        full_env = dict(os.environ)
        for k in ("MOCK_EXTRA_ITL_MS", "MOCK_SLOW_A", "MOCK_SLOW_B"):
            full_env.pop(k, None)
        full_env.update(env or {})
        self.p = subprocess.Popen([MOCK, "--port", str(self.port), *args], stderr=subprocess.PIPE, text=True,
                                  env=full_env)
        self.addCleanup(self.stop)
        wait_for(lambda: self.try_get("/version") is not None, what="mock to listen")

    def stop(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()
        self.p.stderr.close()

    def try_get(self, path):
        try:
            return self.req("GET", path)
        except OSError:
            return None

    def req(self, method, path, body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.request(method, path, body=json.dumps(body) if body is not None else None,
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, data

    def stream(self, body):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        c.request("POST", "/v1/chat/completions", body=json.dumps(
            {"messages": [{"role": "user", "content": "s"}], "stream": True, **body}))
        r = c.getresponse()
        raw = r.read().decode()
        c.close()
        return r, sse_chunks(raw)

    def stderr_line(self, pattern):
        """The first stderr line holding `pattern` (the mock prints its startup lines before it listens)."""
        for line in self.p.stderr:
            if pattern in line:
                return line
        raise AssertionError(f"no stderr line with {pattern!r}")

    def test_health_is_503_while_loading_then_200(self):
        self.start("--startup-delay-ms", "2000")
        seen = []

        def ready():
            seen.append(self.req("GET", "/health"))
            return seen[-1][0] == 200
        wait_for(ready, what="ready")
        # Loading, then ready, never back: the order, not how long each took.
        *loading, (st, body) = seen
        self.assertEqual(json.loads(body), {"status": "ok"})
        for st, body in loading:
            self.assertEqual(st, 503)
            self.assertEqual(json.loads(body)["error"]["message"], "Loading model")
        self.assertEqual(self.req("GET", "/health")[0], 200)
        if not loading:
            self.skipTest("the first /health came after the 2 s startup delay (a loaded machine): no 503 seen")

    def test_a_body_with_invalid_utf8_is_a_400_and_the_engine_keeps_serving(self):
        self.start()
        for raw in (b'{"model": "\xb1"}', b'{"messages": [{"role": "user", "content": "\xff\xfe"}]}', b"\xc0\xaf"):
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            c.request("POST", "/v1/chat/completions", body=raw, headers={"Content-Type": "application/json"})
            r = c.getresponse()
            body = r.read()
            c.close()
            self.assertEqual(r.status, 400, body)
            self.assertIn("invalid JSON body", json.loads(body)["error"]["message"])
        self.assertIsNone(self.p.poll())
        self.assertEqual(self.req("GET", "/health")[0], 200)

    def test_models_version_stats_and_errors(self):
        self.start("--model", "m1")
        models = json.loads(self.req("GET", "/v1/models")[1])
        self.assertEqual(models["data"][0]["id"], "m1")
        self.assertIn("max_model_len", models["data"][0])
        self.assertTrue(json.loads(self.req("GET", "/version")[1])["version"].startswith("mock-"))
        self.assertEqual(self.req("POST", "/v1/chat/completions", None)[0], 400)
        self.assertEqual(self.req("POST", "/v1/chat/completions", {"no": "messages"})[0], 400)
        self.assertEqual(self.req("GET", "/nope")[0], 404)
        self.assertEqual(self.req("GET", "/v1/chat/completions")[0], 405)
        stats = json.loads(self.req("GET", "/mock/stats")[1])
        self.assertEqual(stats["pid"], self.p.pid)

    def test_plain_chat_and_text_completion_formats(self):
        self.start("--tokens", "5")
        st, body = self.req("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]})
        j = json.loads(body)
        self.assertEqual(j["object"], "chat.completion")
        self.assertEqual(j["choices"][0]["message"]["role"], "assistant")
        self.assertEqual(len(j["choices"][0]["message"]["content"].split()), 5)
        self.assertEqual(j["usage"]["completion_tokens"], 5)
        j = json.loads(self.req("POST", "/v1/completions", {"prompt": "x", "max_tokens": 3})[1])
        self.assertEqual(j["object"], "text_completion")
        self.assertEqual(j["usage"]["completion_tokens"], 3)
        j = json.loads(self.req("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "a"}],
                                                                 "mock_tokens": 2})[1])
        self.assertEqual(j["usage"]["completion_tokens"], 2)

    def test_stream_format_with_usage_and_per_request_timing(self):
        self.start()
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.request("POST", "/v1/chat/completions", body=json.dumps(
            {"messages": [{"role": "user", "content": "s"}], "stream": True, "max_tokens": 4, "mock_ttft_ms": 100,
             "mock_itl_ms": 50, "stream_options": {"include_usage": True}, "mock_stamp_events": True}))
        r = c.getresponse()
        self.assertEqual(r.getheader("Content-Type"), "text/event-stream")
        self.assertEqual(r.getheader("Transfer-Encoding"), "chunked")
        raw = r.read().decode()
        events = [e[len("data: "):] for e in raw.split("\n\n") if e.startswith("data: ")]
        self.assertEqual(events[-1], "[DONE]")
        chunks = [json.loads(e) for e in events[:-1]]
        self.assertEqual(chunks[0]["choices"][0]["delta"]["role"], "assistant")
        content = [ch for ch in chunks if ch["choices"] and ch["choices"][0]["delta"].get("content")]
        self.assertEqual(len(content), 4)
        self.assertEqual(chunks[-2]["choices"][0]["finish_reason"], "length")
        self.assertEqual(chunks[-1]["choices"], [])
        self.assertEqual(chunks[-1]["usage"]["completion_tokens"], 4)
        # The per-request timing, as the mock stamped it: never sooner than 100 ms, then 50 ms per token.
        offsets = content_offsets_us(chunks)
        for got, due in zip(offsets, schedule_floor_us(100, 50, 4)):
            self.assertGreaterEqual(got, due, offsets)

    def test_stamps_are_opt_in_ordered_and_on_plain_answers_too(self):
        self.start("--tokens", "5", "--ttft-ms", "30", "--itl-ms", "10")
        # Without the switch no byte changes: no stamp anywhere.
        _, chunks = self.stream({})
        self.assertFalse([c for c in chunks if "mock_sent_us" in c or "mock_received_us" in c])
        _, chunks = self.stream({"mock_stamp_events": True, "stream_options": {"include_usage": True}})
        # Every event carries both stamps: one request time, send times in the order sent.
        self.assertEqual(len({c["mock_received_us"] for c in chunks}), 1)
        sent = [c["mock_sent_us"] for c in chunks]
        self.assertEqual(sent, sorted(sent))
        self.assertGreaterEqual(sent[0], chunks[0]["mock_received_us"])
        offsets = content_offsets_us(chunks)
        self.assertEqual(len(offsets), 5)
        for got, due in zip(offsets, schedule_floor_us(30, 10, 5)):
            self.assertGreaterEqual(got, due, offsets)
        # Each token also says when it was due: the schedule itself, and never sent before it.
        self.assertEqual(due_offsets_us(chunks), schedule_floor_us(30, 10, 5))
        # The stamps are wall-clock microseconds: the same clock as the test's (a loose sanity check of
        # the unit and origin, not of the timing: a day either way).
        self.assertLess(abs(chunks[0]["mock_received_us"] / 1e6 - time.time()), 86400)
        # A plain answer: in the body and as headers, the same values.
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        c.request("POST", "/v1/completions", body=json.dumps({"prompt": "x", "mock_stamp_events": True}))
        r = c.getresponse()
        j = json.loads(r.read())
        c.close()
        self.assertEqual(int(r.getheader("X-Mock-Received-Us")), j["mock_received_us"])
        self.assertEqual(int(r.getheader("X-Mock-Sent-Us")), j["mock_sent_us"])
        self.assertEqual(int(r.getheader("X-Mock-Due-Us")), j["mock_due_us"])
        self.assertEqual(j["mock_due_us"] - j["mock_received_us"], schedule_floor_us(30, 10, 5)[-1])
        self.assertGreaterEqual(j["mock_sent_us"], j["mock_due_us"])
        self.assertGreaterEqual(j["mock_sent_us"] - j["mock_received_us"], schedule_floor_us(30, 10, 5)[-1])
        self.assertEqual(j["usage"]["completion_tokens"], 5)

    def test_stamp_events_flag_stamps_every_request(self):
        self.start("--tokens", "2", "--stamp-events", "--role-event")
        _, chunks = self.stream({})
        self.assertTrue(chunks)
        self.assertTrue(all("mock_sent_us" in c and "mock_received_us" in c for c in chunks), chunks)

    def test_pace_factor_is_one_per_lifecycle_seeded_and_scales_every_delay(self):
        # pace-cv 0: the factor is exactly 1.
        self.start("--tokens", "4", "--ttft-ms", "20", "--itl-ms", "10", "--pace-cv", "0")
        self.assertEqual(json.loads(self.req("GET", "/mock/stats")[1])["pace_factor"], 1.0)
        _, chunks = self.stream({"mock_stamp_events": True})
        for got, due in zip(content_offsets_us(chunks), schedule_floor_us(20, 10, 4)):
            self.assertGreaterEqual(got, due)
        self.stop()

        def lifecycle(*seed):
            self.start("--tokens", "4", "--ttft-ms", "20", "--itl-ms", "10", "--pace-cv", "0.5", *seed)
            logged = float(self.stderr_line("pace factor").split("pace factor ")[1].split()[0])
            pace = json.loads(self.req("GET", "/mock/stats")[1])["pace_factor"]
            self.assertEqual(logged, pace)  # %.17g: the logged figure is the factor itself
            offsets = []
            for _ in range(3):
                _, chunks = self.stream({"mock_stamp_events": True})
                offsets.append(content_offsets_us(chunks))
            self.stop()
            return pace, offsets

        a, offs = lifecycle("--seed", "11")
        b, _ = lifecycle("--seed", "11")
        self.assertEqual(a, b)  # the same seed, the same lifecycle
        self.assertNotEqual(a, 1.0)
        # Every delay scaled by the factor: each event no sooner than the scaled schedule.
        for o in offs:
            for got, due in zip(o, schedule_floor_us(20 * a, 10 * a, 4)):
                self.assertGreaterEqual(got, due, (a, o))
        c, _ = lifecycle("--seed", "12")
        self.assertNotEqual(a, c)
        # Without --seed each lifecycle draws its own (pid and clock).
        d, _ = lifecycle()
        e, _ = lifecycle()
        self.assertNotEqual(d, e)

    def test_jitter_cv_moves_the_schedule_reproducibly_under_a_seed(self):
        args = ("--tokens", "6", "--ttft-ms", "10", "--itl-ms", "5", "--stamp-events")

        def dues(*extra):
            self.start(*args, *extra)
            out = [due_offsets_us(self.stream({})[1]) for _ in range(4)]
            self.stop()
            return out

        # No jitter: every token due exactly on the nominal schedule.
        self.assertEqual(dues(), [schedule_floor_us(10, 5, 6)] * 4)
        a = dues("--jitter-cv", "0.5", "--seed", "21")
        self.assertNotIn(schedule_floor_us(10, 5, 6), a)
        self.assertTrue(all(len(d) == 6 for d in a), a)
        self.assertEqual(dues("--jitter-cv", "0.5", "--seed", "21"), a)  # one I/O thread: the same draws
        self.assertNotEqual(dues("--jitter-cv", "0.5", "--seed", "22"), a)
        # --jitter is the same knob under its older name.
        self.assertEqual(dues("--jitter", "0.5", "--seed", "21"), a)

    def gaps_us(self, n=5):
        """Inter-token gaps (as the mock stamped them) of n streams."""
        out = []
        for _ in range(n):
            _, chunks = self.stream({"mock_stamp_events": True})
            o = content_offsets_us(chunks)
            out += [b - a for a, b in zip(o, o[1:])]
        return out

    def test_environment_delays_extra_itl_and_the_two_switch_interaction(self):
        import statistics
        args = ("--tokens", "6", "--ttft-ms", "1", "--itl-ms", "2", "--interaction-delay-ms", "30")
        # MOCK_EXTRA_ITL_MS adds to every inter-token delay, not to the first token.
        self.start(*args, env={"MOCK_EXTRA_ITL_MS": "15"})
        self.assertEqual(json.loads(self.req("GET", "/mock/stats")[1])["itl_added_ms"], 15)
        _, chunks = self.stream({"mock_stamp_events": True})
        for got, due in zip(content_offsets_us(chunks), schedule_floor_us(1, 17, 6)):
            self.assertGreaterEqual(got, due)
        self.stop()
        r = subprocess.run([MOCK, "--port", str(free_port())], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "MOCK_EXTRA_ITL_MS": "abc"})
        self.assertEqual(r.returncode, 2)
        self.assertIn("MOCK_EXTRA_ITL_MS", r.stderr)

        medians, added = {}, {}
        for name, env in (("none", {}), ("A", {"MOCK_SLOW_A": "1"}), ("B", {"MOCK_SLOW_B": "1"}),
                          ("AB", {"MOCK_SLOW_A": "1", "MOCK_SLOW_B": "1"}),
                          ("A2", {"MOCK_SLOW_A": "1", "MOCK_SLOW_B": "2"})):
            self.start(*args, env=env)
            added[name] = json.loads(self.req("GET", "/mock/stats")[1])["itl_added_ms"]
            self.assertIn("interaction 30 ms " + ("on" if name == "AB" else "off"),
                          self.stderr_line("inter-token delay"))
            gaps = self.gaps_us()
            medians[name] = statistics.median(gaps)
            if name == "AB":
                _, chunks = self.stream({"mock_stamp_events": True})
                for got, due in zip(content_offsets_us(chunks), schedule_floor_us(1, 32, 6)):
                    self.assertGreaterEqual(got, due)
            self.stop()
        # Either switch alone changes nothing; both together add the delay.
        self.assertEqual(added, {"none": 0, "A": 0, "B": 0, "AB": 30, "A2": 0})
        for single in ("none", "A", "B", "A2"):
            self.assertGreater(medians["AB"], medians[single], medians)

    def test_fault_switches(self):
        port = free_port()
        r = subprocess.run([MOCK, "--port", str(port), "--fail-startup", "no GPU"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 3)
        self.assertIn("fatal: no GPU", r.stderr)
        self.start("--crash-after", "1")
        self.assertEqual(self.req("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]})[0], 200)
        with self.assertRaises(http.client.RemoteDisconnected):
            self.req("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]})
        self.assertEqual(self.p.wait(60), -signal.SIGABRT)  # a deadline, not a bound: a core dump takes its time

    def test_workers_rename_themselves_and_die_with_the_engine(self):
        self.start("--workers", "2", "--ignore-sigterm")
        kids = wait_for(lambda: len(descendants(self.p.pid)) == 2 and descendants(self.p.pid), what="workers")
        names = sorted(open(f"/proc/{k}/comm").read().strip() for k in kids)
        self.assertEqual(names, ["MOCK::Worker_0", "MOCK::Worker_1"])
        # SIGTERM is ignored: the kernel says so (SigIgn), and a signal sent anyway leaves it serving.
        sig_ign = [l for l in open(f"/proc/{self.p.pid}/status") if l.startswith("SigIgn:")][0]
        self.assertTrue(int(sig_ign.split()[1], 16) & (1 << (signal.SIGTERM - 1)), sig_ign)
        self.p.send_signal(signal.SIGTERM)
        self.assertEqual(self.req("GET", "/health")[0], 200)
        self.p.kill()
        self.p.wait()
        wait_for(lambda: not any(alive(k) for k in kids), what="workers to follow their parent")


if __name__ == "__main__":
    unittest.main()
