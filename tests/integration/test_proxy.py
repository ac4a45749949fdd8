"""Proxy behaviours: cancellation on client disconnect, listen errors."""
import json
import socket
import subprocess
import time
import unittest

from bp import BENCH_PROXY, ProxyCase, wait_for, pids_with_marker


class ProxyTest(ProxyCase):
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
        t0 = time.monotonic()
        s.close()
        m = wait_for(lambda: p.grep(r"client disconnected, request cancelled after (\d+) of 400"), timeout=5,
                     what="the engine to cancel")
        self.assertLess(int(m.group(1)), 20)
        self.assertLess(time.monotonic() - t0, 1.0)
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


if __name__ == "__main__":
    unittest.main()
