"""Proxy behaviours: cancellation on client disconnect, listen errors."""
import json
import re
import os
import resource
import signal
import socket
import subprocess
import time
import unittest

from bp import BENCH_PROXY, ProxyCase, wait_for, pids_with_marker


class ProxyTest(ProxyCase):
    def raw(self, p, request):
        s = socket.create_connection(("127.0.0.1", p.port))
        s.sendall(request)
        got = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
            if b"\r\n\r\n" in got and (b"Connection: close" in got or b"connection: close" in got):
                head, _, rest = got.partition(b"\r\n\r\n")
                m = re.search(rb"(?i)content-length: (\d+)", head)
                if m and len(rest) >= int(m.group(1)):
                    break
        s.close()
        return got

    def test_request_edge_cases_answer_as_nginx_does(self):
        p = self.start(self.config(extra="warmup: 0"))
        p.wait_ready()
        # One 64 KiB header field is a header too large (431), not an overlong target (414).
        big = self.raw(p, b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (65 * 1024) + b"\r\n\r\n")
        self.assertTrue(big.startswith(b"HTTP/1.1 431 "), big[:80])
        # A hop-by-hop list never removes Host or the framing.
        r = self.raw(p, b"GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: Host\r\n\r\n")
        self.assertTrue(r.startswith(b"HTTP/1.1 400 "), r[:80])
        self.assertIn(b"never hop-by-hop", r)
        # A client's own request id never reaches the engine (the mock echoes what it received).
        r = self.raw(p, b"GET /v1/mock/echo HTTP/1.1\r\nHost: x\r\nX-Bench-Proxy-Request-Id: 999\r\n"
                        b"Connection: close\r\n\r\n")
        body = r.partition(b"\r\n\r\n")[2]
        self.assertNotIn(b"999", body)
        # A repeated query parameter is refused, not first-wins.
        r = self.raw(p, b"GET /proxy/requests?after=1&after=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        self.assertTrue(r.startswith(b"HTTP/1.1 400 "), r[:80])

    def test_client_disconnect_mid_stream_cancels_on_the_engine(self):
        p = self.start(self.config(mock_args=["--itl-ms", "50", "--tokens", "400"], extra="warmup: 0"))
        p.wait_ready()
        body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "long"}], "stream": True}).encode()
        s = socket.create_connection(("127.0.0.1", p.port))
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        got = b""
        while b"data:" not in got:
            got += s.recv(4096)
        s.close()
        # The engine stops generating: far fewer than the 400 tokens it would have sent (how fast is
        # perf/'s business; the count is what proves the cancellation reached the engine).
        m = wait_for(lambda: p.grep(r"client disconnected, request cancelled after (\d+) of 400"), timeout=60,
                     what="the engine to cancel")
        self.assertLess(int(m.group(1)), 400)
        # and bench-proxy counted the abort
        self.assertEqual(p.stop(), 0)
        self.assertTrue(p.grep(r"1 client aborts"), p.log())

    def test_listen_address_in_use_exits_nonzero_and_starts_no_engine(self):
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        marker = f"BP_MARKER_{time.monotonic_ns()}"
        cfg = self.config(env={"PATH": "/usr/bin:/bin", marker: "1"})
        r = subprocess.run([BENCH_PROXY, "--listen", f"127.0.0.1:{port}", "--config", cfg], cwd=self.dir,
                           capture_output=True, text=True, timeout=30)
        blocker.close()
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("cannot listen on 127.0.0.1:%d" % port, r.stderr)
        self.assertIn("in use", r.stderr)
        self.assertEqual(pids_with_marker(marker), [])
        self.assertNotIn("started", r.stderr)

    def test_bad_listen_address_and_bad_config_exit_2(self):
        r = subprocess.run([BENCH_PROXY, "--listen", "127.0.0.1:http", "--config", self.config()], cwd=self.dir,
                           capture_output=True, text=True, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("invalid port", r.stderr)
        bad = self.config(extra="warmpu: 3")
        r = subprocess.run([BENCH_PROXY, "--listen", "127.0.0.1:0", "--config", bad], cwd=self.dir,
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2)
        self.assertRegex(r.stderr, r"engine.yaml:\d+:1: warmpu: unknown key")

    def test_a_stopped_engine_gets_504_after_the_upstream_header_timeout_and_healthz_counts_it(self):
        p = self.start(self.config(extra="warmup: 0"), args=["--upstream-header-timeout", "1"])
        h = p.wait_ready()
        engine = h["engine_pid"]
        os.kill(engine, signal.SIGSTOP)
        try:
            status, body = p.post("/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "x"}]})
            self.assertEqual(status, 504, body)
            self.assertIn("no response header within 1 s", json.loads(body)["error"]["message"])
            self.assertEqual(p.healthz()["upstream_timeouts"], 1)
        finally:
            os.kill(engine, signal.SIGCONT)
        # The engine is back: the next request is answered.
        status, _ = p.post("/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "x"}]})
        self.assertEqual(status, 200)
        self.assertEqual(p.stop(), 0)

    def test_out_of_descriptors_accepting_pauses_and_logs_and_recovers(self):
        def low_fd_limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (96, 96))
        p = self.start(self.config(extra="warmup: 0"), args=["--max-connections", "100000"], preexec_fn=low_fd_limit)
        p.wait_ready()
        hogs = []
        try:
            for _ in range(150):
                hogs.append(socket.create_connection(("127.0.0.1", p.port)))
            wait_for(lambda: p.grep(r"accept4\(\) failed \(24: Too many open files\); pausing accepts"), timeout=30,
                     what="the EMFILE log line")
        finally:
            for s in hogs:
                s.close()
        # Descriptors are back: the proxy accepts and answers again.
        wait_for(lambda: p.healthz().get("state") == "ready", timeout=60, what="healthz after EMFILE")
        self.assertEqual(p.stop(), 0)

    def test_connections_beyond_max_connections_get_503(self):
        p = self.start(self.config(extra="warmup: 0"), args=["--max-connections", "3"])
        p.wait_ready()
        held = []

        def one_more_held():
            # The polling connections of wait_ready close asynchronously: retry until a slot is free.
            s = socket.create_connection(("127.0.0.1", p.port))
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            if b"200 OK" in s.recv(4096):
                held.append(s)
                return True
            s.close()
            return False
        try:
            for _ in range(3):
                wait_for(one_more_held, timeout=60, what="a connection slot")
            # Three are held open: a fourth is refused.
            extra = socket.create_connection(("127.0.0.1", p.port))
            got = b""
            while True:
                chunk = extra.recv(4096)
                if not chunk:
                    break
                got += chunk
            extra.close()
            self.assertTrue(got.startswith(b"HTTP/1.1 503 "), got)
            self.assertIn(b"--max-connections", got)
        finally:
            for s in held:
                s.close()
        self.assertEqual(p.stop(), 0)

    def test_engine_metrics_of_a_kind_without_them_is_a_json_404_naming_the_reason(self):
        p = self.start(self.config(mock_args=["--tokens", "2"], extra="warmup: 0"))
        p.wait_ready()
        status, headers, body = p.get("/engine/metrics")
        self.assertEqual(status, 404)
        self.assertIn("the engine kind 'mock' exposes no Prometheus /metrics", json.loads(body)["error"]["message"])
        c = p.conn()
        c.request("POST", "/engine/metrics", body=b"")
        r = c.getresponse()
        self.assertEqual(r.status, 405)
        r.read()
        c.close()
        self.assertEqual(p.stop(), 0)

    def test_nan_and_infinite_durations_are_usage_errors_naming_the_option(self):
        for opt in ["--idle-timeout", "--request-timeout", "--upstream-header-timeout", "--upstream-idle-timeout"]:
            for v in ["nan", "inf", "-inf", "1e20", "0", "5s"]:
                r = subprocess.run([BENCH_PROXY, "--listen", "127.0.0.1:0", "--config", self.config(), opt, v],
                                   cwd=self.dir, capture_output=True, text=True, timeout=30)
                self.assertEqual(r.returncode, 2, (opt, v, r.stderr))
                self.assertIn(opt, r.stderr)
        for opt in ["--timeout", "--rate"]:
            for v in ["nan", "inf", "1e300"]:
                r = subprocess.run([BENCH_PROXY, "bench", "--url", "http://127.0.0.1:1", "--queries", "x.csv", opt, v],
                                   cwd=self.dir, capture_output=True, text=True, timeout=30)
                self.assertEqual(r.returncode, 2, (opt, v, r.stderr))
                self.assertIn(opt, r.stderr)


if __name__ == "__main__":
    unittest.main()
