"""The mock engine on its own: endpoints, response and streaming formats, knobs, fault switches."""
import http.client
import json
import os
import signal
import subprocess
import time
import unittest

from bp import MOCK, free_port, wait_for, alive, descendants


class MockEngineTest(unittest.TestCase):
    def start(self, *args):
        self.port = free_port()
        self.p = subprocess.Popen([MOCK, "--port", str(self.port), *args], stderr=subprocess.PIPE, text=True)
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

    def test_health_is_503_while_loading_then_200(self):
        self.start("--startup-delay-ms", "400")
        st, body = self.req("GET", "/health")
        self.assertEqual(st, 503)
        self.assertEqual(json.loads(body)["error"]["message"], "Loading model")
        wait_for(lambda: self.req("GET", "/health")[0] == 200, what="ready")
        self.assertEqual(json.loads(self.req("GET", "/health")[1]), {"status": "ok"})

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
        t0 = time.monotonic()
        c.request("POST", "/v1/chat/completions", body=json.dumps(
            {"messages": [{"role": "user", "content": "s"}], "stream": True, "max_tokens": 4, "mock_ttft_ms": 100,
             "mock_itl_ms": 50, "stream_options": {"include_usage": True}}))
        r = c.getresponse()
        self.assertEqual(r.getheader("Content-Type"), "text/event-stream")
        self.assertEqual(r.getheader("Transfer-Encoding"), "chunked")
        raw = r.read().decode()
        took = time.monotonic() - t0
        events = [e[len("data: "):] for e in raw.split("\n\n") if e.startswith("data: ")]
        self.assertEqual(events[-1], "[DONE]")
        chunks = [json.loads(e) for e in events[:-1]]
        self.assertEqual(chunks[0]["choices"][0]["delta"]["role"], "assistant")
        content = [ch for ch in chunks if ch["choices"] and ch["choices"][0]["delta"].get("content")]
        self.assertEqual(len(content), 4)
        self.assertEqual(chunks[-2]["choices"][0]["finish_reason"], "length")
        self.assertEqual(chunks[-1]["choices"], [])
        self.assertEqual(chunks[-1]["usage"]["completion_tokens"], 4)
        self.assertGreater(took, 0.25)  # 100 ms + 3 x 50 ms

    def test_fault_switches(self):
        port = free_port()
        r = subprocess.run([MOCK, "--port", str(port), "--fail-startup", "no GPU"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 3)
        self.assertIn("fatal: no GPU", r.stderr)
        self.start("--crash-after", "1")
        self.assertEqual(self.req("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]})[0], 200)
        with self.assertRaises(http.client.RemoteDisconnected):
            self.req("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]})
        self.assertEqual(self.p.wait(5), -signal.SIGABRT)

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
