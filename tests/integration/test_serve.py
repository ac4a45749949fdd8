"""serve: /healthz, /meta, concurrent and streamed completions through the proxy."""
import http.client
import json
import os
import socket
import subprocess
import threading
import time
import unittest

from bp import BENCH_PROXY, ProxyCase, stream_events, wait_for, alive


class ServeTest(ProxyCase):
    def test_healthz_then_meta_503_then_identical_bytes(self):
        cfg = self.config(mock_args=["--startup-delay-ms", "800", "--workers", "1"], extra="warmup: 2")
        p = self.start(cfg)
        st, hdr, body = p.get("/meta")
        self.assertEqual(st, 503)
        self.assertIn("retry-after", hdr)
        self.assertIn(json.loads(body)["state"], ("starting", "warming", "snapshotting"))
        hz = p.healthz()
        self.assertIn(hz["state"], ("starting", "warming", "snapshotting"))
        self.assertIn("uptime_s", hz)
        # engine_pid is null until the engine is started (docs/cli.md): poll for it, never assume it.
        self.assertTrue(hz["engine_pid"] is None or hz["engine_pid"] > 0, hz)
        hz = wait_for(lambda: (lambda h: h if h.get("engine_pid") else None)(p.healthz()), timeout=60,
                      what="an engine pid on /healthz")
        self.assertGreater(hz["engine_pid"], 0)
        p.wait_ready()
        st1, h1, b1 = p.get("/meta")
        st2, h2, b2 = p.get("/meta")
        self.assertEqual((st1, st2), (200, 200))
        self.assertEqual(b1, b2)
        self.assertEqual(h1["etag"], h2["etag"])
        doc = json.loads(b1)
        self.assertEqual(len(doc["warmup"]["elapsed_ms"]), 2)
        self.assertEqual(doc["engine"]["pid"], hz["engine_pid"])
        st3, _, _ = p.get("/meta", headers={"If-None-Match": h1["etag"]})
        self.assertEqual(st3, 304)
        self.assertEqual(p.stop(), 0)

    def test_five_concurrent_chat_completions(self):
        p = self.start(self.config(mock_args=["--tokens", "4"], extra="warmup: 0"))
        p.wait_ready()
        engine_port = json.loads(p.get("/meta")[2])["engine"]["port"]

        def engine_stats():
            c = http.client.HTTPConnection("127.0.0.1", engine_port, timeout=30)
            c.request("GET", "/mock/stats")
            j = json.loads(c.getresponse().read())
            c.close()
            return j
        # Five requests whose first token the engine holds back for a minute: if the proxy
        # serialised them anywhere, the engine would never see five at once.
        body = json.dumps({"model": "mock-model", "messages": [{"role": "user", "content": "q"}],
                           "mock_ttft_ms": 60000}).encode()
        socks = []
        for _ in range(5):
            s = socket.create_connection(("127.0.0.1", p.port))
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            socks.append(s)
        wait_for(lambda: engine_stats()["active"] == 5, timeout=60, what="five requests in flight at the engine")
        for s in socks:
            s.close()
        # And five ordinary ones concurrently all succeed with distinct ids.
        results = []

        def one(i):
            st, body = p.post("/v1/chat/completions", {"model": "mock-model", "messages": [{"role": "user", "content": f"q{i}"}]})
            results.append((st, json.loads(body)))

        ts = [threading.Thread(target=one, args=(i,)) for i in range(5)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual([r[0] for r in results], [200] * 5)
        self.assertEqual(len({r[1]["id"] for r in results}), 5)
        self.assertEqual(p.stop(), 0)

    def test_delayed_stream_arrives_progressively(self):
        p = self.start(self.config(mock_args=["--ttft-ms", "50", "--itl-ms", "40", "--tokens", "8"], extra="warmup: 0"))
        p.wait_ready()
        t0 = time.monotonic()
        events = list(stream_events(p.port, {"model": "m", "messages": [{"role": "user", "content": "x"}],
                                             "stream": True, "stream_options": {"include_usage": True}}))
        content = [(t, d) for t, d in events if d != "[DONE]" and json.loads(d)["choices"]
                   and json.loads(d)["choices"][0]["delta"].get("content")]
        self.assertEqual(len(content), 8)
        gaps = [b[0] - a[0] for a, b in zip(content, content[1:])]
        self.assertGreater(content[0][0] - t0, 0.04)  # a lower bound only: speed is perf/'s business
        # each event arrived on its own, about 40 ms after the previous one
        for g in gaps:
            self.assertGreater(g, 0.025, gaps)
        self.assertEqual(events[-1][1], "[DONE]")
        usage = [json.loads(d) for _, d in events if d != "[DONE]" and "usage" in json.loads(d)]
        self.assertEqual(usage[0]["usage"]["completion_tokens"], 8)
        self.assertEqual(p.stop(), 0)

    def test_child_environment_is_exactly_the_yaml_env(self):
        cfg = self.config(mock_args=["--workers", "2"], env={"PATH": "/usr/bin:/bin", "ONLY": "this", "EMPTY": ""},
                          extra="warmup: 0")
        p = self.start(cfg, env={"LANG": "C.UTF-8", "TERM": "xterm", "USER": "someone", "LEAKY": "1"})
        p.wait_ready()
        pid = p.engine_pid()
        for q in [pid] + [c for c in p.tree() if c != pid]:
            with open(f"/proc/{q}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            if b"__engine-shim" in argv:
                continue
            with open(f"/proc/{q}/environ", "rb") as f:
                env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if kv)
            self.assertEqual(env, {b"PATH": b"/usr/bin:/bin", b"ONLY": b"this", b"EMPTY": b""}, f"pid {q}")
        doc = json.loads(p.get("/meta")[2])
        self.assertEqual(doc["command"]["env"], {"PATH": "/usr/bin:/bin", "ONLY": "this", "EMPTY": ""})
        argv = doc["command"]["argv"]
        self.assertEqual(argv[-4:-1], ["--host", "127.0.0.1", "--port"])
        self.assertEqual(p.stop(), 0)

    def test_unknown_path_404_and_malformed_400_as_json(self):
        p = self.start(self.config(extra="warmup: 0"))
        p.wait_ready()
        st, hdr, body = p.get("/v2/anything")
        self.assertEqual(st, 404)
        self.assertEqual(hdr["content-type"], "application/json")
        self.assertIn("no route", json.loads(body)["error"]["message"])
        import socket
        s = socket.create_connection(("127.0.0.1", p.port))
        s.sendall(b"GET / HTTP/9.9\r\nbad header line\r\n\r\n")
        data = s.recv(4096)
        s.close()
        self.assertTrue(data.startswith(b"HTTP/1.1 400"), data)
        self.assertIn(b'"error"', data)
        self.assertEqual(p.stop(), 0)



class HelpTest(ProxyCase):
    """Issue 27 item 9: what a newcomer reads first."""

    def test_serve_help_lists_every_route_and_the_top_help_names_log_level(self):
        out = subprocess.run([BENCH_PROXY, "serve", "--help"], capture_output=True, text=True).stdout
        for route in ("/v1/*", "/healthz", "/meta", "/metrics", "/proxy/requests", "/engine/metrics"):
            self.assertIn(f"  {route} ", out)
        out = subprocess.run([BENCH_PROXY, "--help"], capture_output=True, text=True).stdout
        self.assertIn("--log-level LEVEL", out)

    def test_a_missing_engine_binary_is_named_with_its_line_and_column(self):
        cfg = os.path.join(self.dir, "c.yaml")
        with open(cfg, "w") as f:
            f.write("description: d\nengine: mock\ncmd: /nonexistent/engine\nenv:\n  PATH: /usr/bin:/bin\n")
        r = subprocess.run([BENCH_PROXY, "validate", cfg], capture_output=True, text=True)
        self.assertIn(f"warning: {cfg}:3:6: cmd: cmd '/nonexistent/engine'", r.stderr)
        r = subprocess.run([BENCH_PROXY, "serve", "--listen", "127.0.0.1:0", "--config", cfg], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(f"{cfg}:3:6: cmd: cmd '/nonexistent/engine'", r.stderr)

if __name__ == "__main__":
    unittest.main()
