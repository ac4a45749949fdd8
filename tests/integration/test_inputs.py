"""Reading what users point bench-proxy at: bounded, regular files only, timeouts, working signals."""
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import sys
import unittest

from bp import BENCH_PROXY, wait_for

FAKE_LLAMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_llama.py")


class HostileServer:
    """A loopback server that answers every connection with `behaviour` (bounded in bytes and time)."""

    def __init__(self, behaviour):
        self.s = socket.socket()
        self.s.bind(("127.0.0.1", 0))
        self.s.listen(8)
        self.port = self.s.getsockname()[1]
        self.behaviour = behaviour
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.serve, daemon=True)
        self.t.start()

    def serve(self):
        self.s.settimeout(0.2)
        while not self.stop.is_set():
            try:
                c, _ = self.s.accept()
            except OSError:
                continue
            threading.Thread(target=self.one, args=(c,), daemon=True).start()

    def one(self, c):
        try:
            c.recv(65536)
            if self.behaviour == "silent":
                self.stop.wait(60)
                return
            if self.behaviour == "endless-body":
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000000\r\n\r\n")
            elif self.behaviour == "endless-chunked":
                c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            elif self.behaviour == "endless-headers":
                c.sendall(b"HTTP/1.1 200 OK\r\n")
            block = {"endless-body": b"x" * 65536,
                     "endless-chunked": b"10000\r\n" + b"x" * 65536 + b"\r\n",
                     "endless-headers": b"X-A: " + b"a" * 1000 + b"\r\n"}[self.behaviour]
            # Bounded: at most 4 GiB or until the client hangs up or the test ends.
            for _ in range(65536):
                if self.stop.is_set():
                    break
                c.sendall(block)
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.stop.set()
        self.s.close()
        self.t.join(5)


class InputsTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="bp_inputs_")

    def meta(self, *args, timeout=120):
        return subprocess.run([BENCH_PROXY, "meta", *args], capture_output=True, text=True, timeout=timeout)

    def test_devices_fifos_and_kernel_files_are_refused_by_name(self):
        fifo = os.path.join(self.dir, "fifo")
        os.mkfifo(fifo)
        for path, why in (("/dev/zero", "a device"), (fifo, "a FIFO"), ("/proc/self/mem", "not a regular file"),
                          (self.dir, "a directory"), (os.path.join(self.dir, "nope.json"), "cannot open")):
            for sub in ("show", "summary"):
                r = self.meta(sub, path)
                self.assertEqual(r.returncode, 2, (path, r.stderr))
                self.assertIn(path, r.stderr)
                self.assertIn(why, r.stderr)
            r = self.meta("diff", path, path)
            self.assertEqual(r.returncode, 2)

    def test_a_snapshot_larger_than_max_bytes_is_refused(self):
        big = os.path.join(self.dir, "big.json")
        with open(big, "w") as f:
            f.write('{"schema_version": 1, "pad": "' + "x" * 5000 + '"}')
        r = self.meta("show", big, "--max-bytes", "4096")
        self.assertEqual(r.returncode, 2)
        self.assertIn("more than the limit of 4096", r.stderr)
        self.assertEqual(self.meta("show", big).returncode, 0)

    def test_standard_input_is_read_with_dash(self):
        r = subprocess.run([BENCH_PROXY, "meta", "show", "-"], input='{"schema_version": 1}', capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('"schema_version": 1', r.stdout)

    def test_endless_responses_are_cut_at_the_limit(self):
        for behaviour, needle in (("endless-body", "larger than the limit of 1048576"),
                                  ("endless-chunked", "larger than the limit of 1048576"),
                                  ("endless-headers", "response header larger than")):
            srv = HostileServer(behaviour)
            try:
                r = self.meta("show", f"http://127.0.0.1:{srv.port}", "--max-bytes", "1048576")
                self.assertEqual(r.returncode, 2, behaviour)
                self.assertIn(needle, r.stderr, behaviour)
            finally:
                srv.close()

    def test_a_silent_server_times_out_and_sigint_ends_the_wait(self):
        srv = HostileServer("silent")
        try:
            r = self.meta("show", f"http://127.0.0.1:{srv.port}", "--timeout", "1")
            self.assertEqual(r.returncode, 2)
            self.assertIn("timed out", r.stderr)
            p = subprocess.Popen([BENCH_PROXY, "meta", "show", f"http://127.0.0.1:{srv.port}", "--timeout", "600"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            wait_for(lambda: any(os.readlink(f"/proc/{p.pid}/fd/{fd}").startswith("socket:")
                                 for fd in os.listdir(f"/proc/{p.pid}/fd")), timeout=60, what="the connection")
            p.send_signal(signal.SIGINT)
            wait_for(lambda: p.poll() is not None, timeout=60, what="meta to end on SIGINT")
            self.assertNotEqual(p.returncode, 0)
            p.communicate()
        finally:
            srv.close()

    def test_a_workload_that_is_not_a_regular_file_is_named(self):
        r = subprocess.run([BENCH_PROXY, "bench", "--url", "http://127.0.0.1:1", "--queries", "/dev/zero"],
                           capture_output=True, text=True, timeout=60)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("/dev/zero: not a regular file", r.stderr)

class OutputFoldersTest(unittest.TestCase):
    """Issue 27 item 2: llama-server's --slot-save-path (like a log or cache folder) is where the
    engine writes, not an input: two A/A runs whose slot folder holds other files each time have
    identical inputs, and no name of those files reaches the snapshot."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="bp_outputs_")
        self.slots = os.path.join(self.dir, "slots")
        os.mkdir(self.slots)

    def run_once(self, name):
        cfg = os.path.join(self.dir, "llama.yaml")
        with open(cfg, "w") as f:
            f.write("description: fake llama-server with a slot-save folder\nengine: llama.cpp\n"
                    f"cmd: {sys.executable}\nargs: [{json.dumps(FAKE_LLAMA)}, --slot-save-path, {json.dumps(self.slots)}]\n"
                    "warmup: 1\nenv:\n  PATH: /usr/bin:/bin\n")
        q = os.path.join(self.dir, "q.csv")
        with open(q, "w") as f:
            f.write("prompt\nhello\n")
        r = subprocess.run([BENCH_PROXY, "run", "--config", cfg, "--queries", q, "-n", "2", "--no-progress",
                            "--run-dir", os.path.join(self.dir, name), "--results", os.path.join(self.dir, "r.tsv")],
                           capture_output=True, text=True, cwd=self.dir, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(os.path.join(self.dir, name, "meta.json")) as f:
            return json.load(f)

    def test_a_slot_save_folder_is_not_walked_and_a_a_snapshots_do_not_differ(self):
        for i in range(3000):
            with open(os.path.join(self.slots, f"someone-elses-file-{i}"), "w") as f:
                f.write("x")
        a = self.run_once("a")
        for i in range(50):
            with open(os.path.join(self.slots, f"written-between-runs-{i}"), "w") as f:
                f.write("y")
        b = self.run_once("b")
        for meta in (a, b):
            inputs = meta["inputs"]
            self.assertEqual(inputs["directories"], [], inputs)
            self.assertEqual(len(inputs["not_walked"]), 1, inputs)
            self.assertEqual(inputs["not_walked"][0]["option"], "--slot-save-path")
            self.assertEqual(inputs["not_walked"][0]["path"], os.path.realpath(self.slots))
            self.assertNotIn("someone-elses-file", json.dumps(meta))
        self.assertEqual(a["inputs"], b["inputs"])
        r = subprocess.run([BENCH_PROXY, "meta", "diff", os.path.join(self.dir, "a", "meta.json"),
                            os.path.join(self.dir, "b", "meta.json")], capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("snapshots are equal", r.stdout)


if __name__ == "__main__":
    unittest.main()
