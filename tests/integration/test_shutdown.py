"""Shutdown and engine failures: nothing of the engine's tree may survive, whatever happens."""
import http.client
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import unittest

from bp import BENCH_PROXY, ProxyCase, alive, pids_with_marker, stream_events, wait_for


def shims(pids):
    out = []
    for q in pids:
        try:
            with open(f"/proc/{q}/comm") as f:
                if f.read().strip() == "bp-engine-shim":
                    out.append(q)
        except OSError:
            pass
    return out


class ShutdownTest(ProxyCase):
    def marker_config(self, mock_args=(), extra="warmup: 0\nstop_grace_s: 1\ndrain_timeout_s: 2"):
        self.marker = f"BP_MARKER_{os.getpid()}_{time.monotonic_ns()}"
        return self.config(mock_args=mock_args, env={"PATH": "/usr/bin:/bin", self.marker: "1"}, extra=extra)

    def test_sigint_exits_0_and_no_process_of_the_tree_survives(self):
        p = self.start(self.marker_config(["--workers", "2", "--detached-grandchild"]))
        p.wait_ready()
        tree = pids_with_marker(self.marker)
        self.assertGreaterEqual(len(tree), 4, tree)  # engine, 2 workers, detached grandchild
        self.assertEqual(p.stop(signal.SIGINT), 0, p.log())
        self.assertEqual([q for q in tree if alive(q)], [])
        self.assertEqual(pids_with_marker(self.marker), [])

    def test_sigint_in_each_phase_stops_at_once_and_leaves_nothing(self):
        # Issue 25 item 2: no behavior waits on I/O, so Ctrl-C is heard in every phase. While the
        # engine is still loading (its readiness probes go on in a prober of their own), and
        # between warmup requests (one message each): the run stops there, it does not first
        # finish the phase.
        p = self.start(self.marker_config(["--startup-delay-ms", "600000"]))
        wait_for(lambda: pids_with_marker(self.marker), timeout=60, what="the engine")
        wait_for(lambda: p.grep(r"\[engine\] started"), timeout=60, what="the engine's start line")
        tree = pids_with_marker(self.marker)
        p.p.send_signal(signal.SIGINT)
        p.p.wait(60)
        self.assertIsNone(p.grep(r"\[engine\] ready"), p.log())
        self.assertEqual([q for q in tree if alive(q)], [])
        # Warmup: five requests of 2 s each; Ctrl-C once the first has been answered.
        p = self.start(self.marker_config(["--tokens", "2", "--ttft-ms", "2000"],
                                          extra="warmup: 5\nstop_grace_s: 1\ndrain_timeout_s: 2"))
        wait_for(lambda: p.grep(r"\[warmup\] request 1/5"), timeout=60, what="the first warmup request")
        tree = pids_with_marker(self.marker)
        p.p.send_signal(signal.SIGINT)
        p.p.wait(60)
        self.assertIsNone(p.grep(r"\[warmup\] request 5/5"), p.log())
        self.assertIsNone(p.grep(r"snapshot published"), p.log())
        self.assertEqual([q for q in tree if alive(q)], [])
        self.assertEqual(pids_with_marker(self.marker), [])

    def test_a_sigkilled_shim_ends_the_whole_tree_and_the_run(self):
        p = self.start(self.marker_config(["--workers", "2", "--detached-grandchild"],
                                          extra="warmup: 0\nstop_grace_s: 2\ndrain_timeout_s: 2"))
        h = p.wait_ready()
        tree = pids_with_marker(self.marker)
        shim = shims(p.tree())
        self.assertEqual(len(shim), 1, p.tree())
        tree = [q for q in tree if q != shim[0]]
        self.assertGreaterEqual(len(tree), 4, tree)  # engine, 2 workers, detached grandchild
        os.kill(shim[0], signal.SIGKILL)
        # bench-proxy hears of it as an engine exit: it ends the run, non-zero, and nothing survives.
        wait_for(lambda: p.p.poll() is not None, timeout=60, what="bench-proxy to end the run")
        self.assertNotEqual(p.p.returncode, 0, p.log())
        self.assertTrue(p.grep(r"engine shim \(PID %d\) died" % shim[0]), p.log())
        self.assertEqual([q for q in tree if alive(q)], [], p.log())
        self.assertEqual(pids_with_marker(self.marker), [])
        self.assertNotEqual(h["engine_pid"], None)

    def test_sigint_right_after_a_shim_death_still_stops_and_leaves_nothing(self):
        p = self.start(self.marker_config(["--detached-grandchild"]))
        p.wait_ready()
        shim = shims(p.tree())
        os.kill(shim[0], signal.SIGKILL)
        p.p.send_signal(signal.SIGINT)
        wait_for(lambda: p.p.poll() is not None, timeout=60, what="bench-proxy to exit")
        self.assertEqual(pids_with_marker(self.marker), [], p.log())

    def test_sigterm_lets_an_inflight_stream_finish(self):
        p = self.start(self.marker_config(["--itl-ms", "50", "--tokens", "20"]))
        p.wait_ready()
        events = []
        import threading

        def consume():
            for t, d in stream_events(p.port, {"model": "m", "messages": [{"role": "user", "content": "x"}],
                                               "stream": True}):
                events.append(d)

        th = threading.Thread(target=consume)
        th.start()
        wait_for(lambda: len(events) >= 2, what="the stream to start")
        p.p.send_signal(signal.SIGTERM)
        th.join(10)
        self.assertEqual(events[-1], "[DONE]")
        self.assertEqual(p.stop(), 0)
        self.assertEqual(pids_with_marker(self.marker), [])

    def test_a_stop_closes_an_idle_connection_at_once_and_aborts_a_stream_past_drain_timeout(self):
        # Issue 25 item 1: each connection's actor ends its connection. On SIGTERM an idle
        # keep-alive connection closes at once (drained: a FIN), a stream still going at
        # drain_timeout_s is aborted (a reset), and the final report counts every connection.
        p = self.start(self.marker_config(["--itl-ms", "50", "--tokens", "400"],
                                          extra="warmup: 0\nstop_grace_s: 1\ndrain_timeout_s: 1"))
        p.wait_ready()
        idle = p.conn()
        idle.request("GET", "/healthz")
        idle.getresponse().read()
        events, outcome = [], {}

        def consume():
            try:
                for t, d in stream_events(p.port, {"model": "m", "messages": [{"role": "user", "content": "x"}],
                                                   "stream": True}):
                    events.append(d)
                outcome["end"] = "complete"
            except (ConnectionResetError, http.client.IncompleteRead) as e:
                outcome["end"] = type(e).__name__
            outcome["t"] = time.monotonic()

        th = threading.Thread(target=consume)
        th.start()
        wait_for(lambda: len(events) >= 2, what="the stream to start")
        t0 = time.monotonic()
        p.p.send_signal(signal.SIGTERM)
        idle.sock.settimeout(10)
        self.assertEqual(idle.sock.recv(100), b"", "the idle connection was not closed")
        self.assertLess(time.monotonic() - t0, 0.9, "the idle connection waited for the drain deadline")
        idle.close()
        th.join(30)
        self.assertEqual(outcome.get("end"), "ConnectionResetError", outcome)
        self.assertGreater(outcome["t"] - t0, 0.9)  # drain_timeout_s: 1
        self.assertNotEqual(events[-1], "[DONE]")
        self.assertEqual(p.stop(), 0, p.log())
        self.assertTrue(p.grep(r"\[connection \d+\] aborting the connection from 127\.0\.0\.1:\d+: "
                               r"drain_timeout_s passed with a request in flight"), p.log())
        m = p.grep(r"\[run\] connections: (\d+) opened: (\d+) requests, (\d+) proxied, .* (\d+) upstream timeouts")
        self.assertTrue(m, p.log())
        self.assertGreaterEqual(int(m.group(1)), 2)
        self.assertGreaterEqual(int(m.group(3)), 1)
        with open(os.path.join(p.run_dir, "requests.jsonl")) as f:
            records = [json.loads(l) for l in f if l.strip()]
        self.assertEqual(len(records), 1, records)
        self.assertIn("drain_timeout_s passed", records[0].get("error", ""), records[0])
        self.assertEqual(pids_with_marker(self.marker), [])

    def test_engine_ignoring_sigterm_is_killed_after_the_grace_period(self):
        p = self.start(self.marker_config(["--ignore-sigterm", "--workers", "1"]))
        p.wait_ready()
        t0 = time.monotonic()
        self.assertEqual(p.stop(signal.SIGINT), 0)
        self.assertGreater(time.monotonic() - t0, 0.9)  # stop_grace_s: 1
        self.assertTrue(p.grep("SIGKILL to process group"), p.log())
        self.assertEqual(pids_with_marker(self.marker), [])

    def test_a_second_sigint_skips_the_grace_period(self):
        # The engine ignores SIGTERM and the grace period is an hour: only the second Ctrl-C ends it.
        p = self.start(self.marker_config(["--ignore-sigterm", "--workers", "1"],
                                          extra="warmup: 0\nstop_grace_s: 3600\ndrain_timeout_s: 1"))
        p.wait_ready()
        p.p.send_signal(signal.SIGINT)
        wait_for(lambda: p.grep("SIGTERM to process group"), timeout=60, what="the first SIGINT to be taken")
        self.assertEqual(p.stop(signal.SIGINT, timeout=120), 0, p.log())
        self.assertTrue(p.grep("killing the engine's process group"), p.log())
        self.assertEqual(pids_with_marker(self.marker), [])

    def test_sigkill_of_bench_proxy_takes_the_engine_tree_down(self):
        p = self.start(self.marker_config(["--workers", "2", "--detached-grandchild", "--ignore-sigterm"]))
        p.wait_ready()
        tree = pids_with_marker(self.marker)
        self.assertGreaterEqual(len(tree), 4)
        p.p.kill()
        p.p.wait()
        wait_for(lambda: not pids_with_marker(self.marker), timeout=60, what="the engine tree to die")

    def test_the_shim_is_bench_proxy_shim_with_no_library_of_bench_proxys(self):
        # The process beside the engine is the small executable next to bench-proxy, not a copy of
        # bench-proxy: no shared library at all in its address space, and it says so in the log.
        p = self.start(self.marker_config(["--workers", "2"]))
        p.wait_ready()
        shim = shims(p.tree())
        self.assertEqual(len(shim), 1, p.tree())
        exe = os.readlink(f"/proc/{shim[0]}/exe")
        self.assertEqual(exe, os.path.join(os.path.dirname(os.path.realpath(BENCH_PROXY)), "bench-proxy-shim"))
        with open(f"/proc/{shim[0]}/maps") as f:
            self.assertEqual([l for l in f if ".so" in l], [])
        self.assertTrue(p.grep(r"supervised by shim pid %d: \S*/bench-proxy-shim\)" % shim[0]), p.log())
        self.assertFalse(p.grep("no bench-proxy-shim next to"), p.log())
        self.assertEqual(p.stop(signal.SIGINT), 0, p.log())
        self.assertEqual(pids_with_marker(self.marker), [])

    def test_without_bench_proxy_shim_bench_proxy_is_its_own_shim_and_still_contains_the_tree(self):
        # A bench-proxy whose folder lacks bench-proxy-shim falls back to its own __engine-shim (the
        # same code): it says so, and a SIGKILL of bench-proxy still takes the whole tree down.
        bindir = os.path.join(self.dir, "bin")
        os.makedirs(bindir)
        exe = os.path.join(bindir, "bench-proxy")
        shutil.copy2(os.path.realpath(BENCH_PROXY), exe)
        p = self.start(self.marker_config(["--workers", "2", "--detached-grandchild", "--ignore-sigterm"]), exe=exe)
        p.wait_ready()
        self.assertTrue(p.grep(r"no bench-proxy-shim next to \S*/bin/bench-proxy"), p.log())
        shim = shims(p.tree())
        self.assertEqual(len(shim), 1, p.tree())
        self.assertEqual(os.readlink(f"/proc/{shim[0]}/exe"), exe)
        with open(f"/proc/{shim[0]}/cmdline", "rb") as f:
            self.assertIn(b"__engine-shim", f.read().split(b"\0"))
        self.assertTrue(p.grep(r"supervised by shim pid %d: \S*/bin/bench-proxy __engine-shim\)" % shim[0]), p.log())
        tree = pids_with_marker(self.marker)
        self.assertGreaterEqual(len(tree), 4)
        p.p.kill()
        p.p.wait()
        wait_for(lambda: not pids_with_marker(self.marker), timeout=60, what="the engine tree to die")

    def test_engine_exiting_during_startup_reports_its_stderr_tail(self):
        cfg = self.marker_config(["--fail-startup", "CUDA error: no kernel image is available"])
        r = subprocess.run([BENCH_PROXY, "--listen", "127.0.0.1:0", "--config", cfg, "--run-dir", self.dir + "/r"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 4, r.stderr)
        self.assertIn("exited with status 3 during startup", r.stderr)
        self.assertIn("CUDA error: no kernel image is available", r.stderr)
        self.assertEqual(pids_with_marker(self.marker), [])
        with open(self.dir + "/r/engine.log") as f:
            self.assertIn("no kernel image", f.read())

    def test_engine_crash_after_ready_exits_nonzero_without_restart(self):
        p = self.start(self.marker_config(["--crash-after", "2", "--workers", "1"]))
        p.wait_ready()
        for _ in range(2):
            st, _ = p.post("/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "x"}]})
            self.assertEqual(st, 200)
        st, _ = p.post("/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "x"}]})
        self.assertEqual(st, 502)  # the engine died answering it
        rc = p.p.wait(20)
        p.stop()
        self.assertEqual(rc, 5, p.log())
        self.assertTrue(p.grep(r"killed by signal 6 \(SIGABRT\) after it was ready"), p.log())
        self.assertTrue(p.grep("does not restart engines"))
        self.assertEqual(pids_with_marker(self.marker), [])

    def test_engine_never_ready_times_out(self):
        cfg = self.marker_config(["--startup-delay-ms", "100000"], extra="warmup: 0\nready_timeout_s: 1\nstop_grace_s: 1")
        r = subprocess.run([BENCH_PROXY, "--listen", "127.0.0.1:0", "--config", cfg, "--run-dir", self.dir + "/r"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 4, r.stderr)
        self.assertIn("not ready within 1 s", r.stderr)
        self.assertIn("HTTP 503", r.stderr)
        self.assertEqual(pids_with_marker(self.marker), [])


if __name__ == "__main__":
    unittest.main()
