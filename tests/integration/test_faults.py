"""Fault injection: every actor kind fails on purpose; the documented outcome follows
(docs/fault-injection.md), other connections are unaffected, nothing is left behind."""
import json
import os
import signal
import socket
import subprocess
import threading
import tempfile
import time
import unittest

from bp import BENCH_PROXY, SRC, ProxyCase, pids_with_marker, stream_events, wait_for

WORKLOAD = os.path.join(SRC, "configs", "workloads", "bank-intents.csv")


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def thread_count(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])


class FaultTest(ProxyCase):
    def marked(self, mock_args=(), extra="warmup: 1\nstop_grace_s: 1\ndrain_timeout_s: 2\nsnapshot_timeout_s: 3"):
        self.marker = f"BP_FAULT_{os.getpid()}_{time.monotonic_ns()}"
        return self.config(mock_args=mock_args, env={"PATH": "/usr/bin:/bin", self.marker: "1"}, extra=extra)

    def run_with_faults(self, faults, mock_args=(), timeout=60):
        cfg = self.marked(mock_args)
        env = dict(os.environ, BENCH_PROXY_FAULTS=faults)
        run_dir = tempfile.mkdtemp(prefix="r", dir=self.dir)  # a fresh folder each time
        r = subprocess.run([BENCH_PROXY, "--listen", "127.0.0.1:0", "--config", cfg, "--run-dir", run_dir],
                           capture_output=True, text=True, timeout=timeout, env=env)
        self.assertEqual(pids_with_marker(self.marker), [], r.stderr)
        return r

    def test_engine_actor_failure_ends_the_run_and_kills_the_engine(self):
        r = self.run_with_faults("engine=throw-on-ready", ["--workers", "2"])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("engine actor failed", r.stderr)
        self.assertIn("fault injection active", r.stderr)

    def test_warmup_actor_failure_exits_6(self):
        r = self.run_with_faults("warmup=throw")
        self.assertEqual(r.returncode, 6, r.stderr)
        self.assertIn("warmup actor failed", r.stderr)
        r = self.run_with_faults("warmup=fail")
        self.assertEqual(r.returncode, 6, r.stderr)
        self.assertIn("warmup request 1: injected fault", r.stderr)

    def test_meta_actor_is_restarted_once(self):
        p = self.start(self.marked(), env={"BENCH_PROXY_FAULTS": "meta=throw-once"})
        p.wait_ready()
        self.assertTrue(p.grep("meta actor failed .*restarting it once"), p.log())
        self.assertEqual(p.get("/meta")[0], 200)
        self.assertEqual(p.stop(), 0)
        r = self.run_with_faults("meta=throw")
        self.assertEqual(r.returncode, 1)
        self.assertIn("meta actor failed twice", r.stderr)

    def test_failing_collectors_give_error_sections_and_one_snapshot(self):
        p = self.start(self.marked(), env={"BENCH_PROXY_FAULTS": "collector:venv=throw,collector:gpus=stall,"
                                                                "collector:lshw=crash,collector:inputs=exit"})
        p.wait_ready(timeout=30)
        doc = json.loads(p.get("/meta")[2])
        for name, needle in (("venv", "injected fault"), ("gpus", "deadline"), ("lshw", "collector actor failed"),
                             ("inputs", "collector actor failed")):
            self.assertFalse(doc[name]["ok"], name)
            self.assertIn(needle, doc[name]["error"], name)
        self.assertTrue(doc["collectors"]["command"]["ok"])
        self.assertEqual(len([l for l in p.lines if "snapshot published" in l]), 1)
        self.assertEqual(p.stop(), 0)

    def test_every_collector_failing_still_publishes_one_snapshot(self):
        names = ["command", "process_tree", "host", "gpus", "lshw", "engine_version", "venv", "inputs",
                 "engine_reported", "engine_log", "loaded_libs"]
        p = self.start(self.marked(), env={"BENCH_PROXY_FAULTS": ",".join(f"collector:{n}=throw" for n in names)})
        p.wait_ready()
        doc = json.loads(p.get("/meta")[2])
        for n in names:
            self.assertEqual(doc[n], {"ok": False, "error": f"injected fault: collector {n} throws"}, n)
            self.assertFalse(doc["collectors"][n]["ok"])
        self.assertEqual(len(doc["warmup"]["elapsed_ms"]), 1)
        self.assertEqual(p.stop(), 0)

    def test_a_failing_connection_actor_closes_only_its_connection(self):
        # The fault is aimed at one client port: that connection's actor throws as soon as it opens.
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        doomed = s.getsockname()[1]
        p = self.start(self.marked(["--itl-ms", "20", "--tokens", "30"]),
                       env={"BENCH_PROXY_FAULTS": f"connection=throw-peer:127.0.0.1:{doomed}"})
        p.wait_ready()
        events = []
        th = threading.Thread(target=lambda: events.extend(
            d for _, d in stream_events(p.port, {"model": "m", "messages": [{"role": "user", "content": "x"}],
                                                 "stream": True})))
        th.start()
        wait_for(lambda: len(events) >= 2, what="the healthy stream")
        idle_fds, idle_threads = fd_count(p.p.pid), thread_count(p.p.pid)
        s.connect(("127.0.0.1", p.port))
        s.settimeout(5)
        # Aborted: a reset, not a FIN (a response cut short must not pass for a complete one).
        with self.assertRaises(ConnectionResetError, msg="the doomed connection was not aborted"):
            s.recv(100)
        s.close()
        th.join(10)
        self.assertEqual(events[-1], "[DONE]")  # the other connection never noticed
        self.assertTrue(p.grep(r"connection actor \d+ failed .*aborting that connection only"), p.log())
        st, _, body = p.get("/healthz")
        self.assertEqual(st, 200, body.decode(errors="replace") + "\n" + p.log())
        wait_for(lambda: fd_count(p.p.pid) <= idle_fds, what="file descriptors back to idle")
        self.assertLessEqual(thread_count(p.p.pid), idle_threads)
        self.assertEqual(p.stop(), 0)

    def test_engine_crash_mid_stream_breaks_that_stream_and_ends_the_run(self):
        p = self.start(self.marked(["--crash-mid-stream", "3", "--itl-ms", "10"], extra="warmup: 0\nstop_grace_s: 1"))
        p.wait_ready()
        with self.assertRaises(Exception):
            list(stream_events(p.port, {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True}))
        self.assertEqual(p.p.wait(20), 5)
        p.stop()
        self.assertTrue(p.grep("crashing mid-stream"), p.log())
        self.assertEqual(pids_with_marker(self.marker), [])

    def test_stalled_engine_requests_time_out_in_the_client_and_the_proxy_stays_up(self):
        p = self.start(self.marked(["--stall"], extra="warmup: 0\nstop_grace_s: 1"))
        p.wait_ready()
        bp_pid = p.p.pid
        threads0 = thread_count(bp_pid)
        r = subprocess.run([BENCH_PROXY, "bench", "--url", f"http://127.0.0.1:{p.port}", "--queries", WORKLOAD,
                            "-n", "3", "--warmup", "0", "--timeout", "0.5", "--out", self.dir + "/o", "--results",
                            self.dir + "/r.tsv", "--no-progress"], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1)
        res = json.load(open(self.dir + "/o/result.json"))
        self.assertEqual(res["summary"]["errors"], 3)
        self.assertEqual(res["summary"]["error_kinds"], {"timeout": 3})
        self.assertEqual(p.healthz()["state"], "ready")
        wait_for(lambda: thread_count(bp_pid) <= threads0, what="threads back to idle")
        self.assertEqual(p.stop(), 0)

    def test_sweep_goes_on_after_a_run_crashes_mid_benchmark(self):
        marker = f"BP_SWEEP_FAULT_{os.getpid()}"
        from bp import write_config
        env = {"PATH": "/usr/bin:/bin", marker: "1"}
        a = write_config(self.dir, "crashy.yaml", ["--crash-after", "4", "--tokens", "4"], env=env, extra="warmup: 1")
        b = write_config(self.dir, "fine.yaml", ["--tokens", "4"], env=env, extra="warmup: 1")
        r = subprocess.run([BENCH_PROXY, "sweep", a, b, "--queries", WORKLOAD, "-n", "8", "--sweep-dir",
                            self.dir + "/sw", "--results", self.dir + "/r.tsv", "--no-progress"],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        sw = json.load(open(self.dir + "/sw/sweep.json"))
        rows = {os.path.basename(x["config"]): x for x in sw["rows"]}
        self.assertFalse(rows["crashy.yaml"]["ok"])
        self.assertIn("SIGABRT", rows["crashy.yaml"]["error"])
        self.assertTrue(rows["fine.yaml"]["ok"])
        self.assertEqual(pids_with_marker(marker), [])


if __name__ == "__main__":
    unittest.main()
