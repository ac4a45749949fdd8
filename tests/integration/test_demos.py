"""The README's demo commands themselves, exactly as a reader runs them: `bash scripts/demo.sh` (the
mock engine) and `bash scripts/demo-llama.sh` (llama.cpp's llama-server with the tiny model). Each
must exit 0 with a valid benchmark result (no failed request) and leave no engine behind.

The demos build and run build/ of the source tree (scripts/build.sh, up to date after
scripts/test.sh, so a no-op here); with BP_BIN_DIR elsewhere these tests are skipped rather than
build a second tree. demo-llama.sh needs scripts/llama-setup.sh's cache (the CTest fixture llama)."""
import glob
import json
import os
import shutil
import signal
import subprocess
import tempfile
import unittest

from bp import BIN, SRC, alive

DEMO_TIMEOUT_S = 540  # each; both within the CTest timeout of integration.demos (1200 s)


def in_session(sid):
    """The live processes of session sid (the demo's script and whatever it left running)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        rest = s[s.rfind(")") + 2:].split()
        if rest[0] != "Z" and int(rest[3]) == sid:
            out.append(int(d))
    return out


class DemoTest(unittest.TestCase):
    def setUp(self):
        if os.path.realpath(BIN) != os.path.realpath(os.path.join(SRC, "build", "bin")):
            self.skipTest(f"the demos run {SRC}/build; this suite's binaries are in {BIN}")
        self.dir = os.path.realpath(tempfile.mkdtemp(prefix="bp_demo_"))
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)

    def run_demo(self, script):
        # TMPDIR: the demo's work folder (mktemp -d) lands here, where the test reads its result.
        env = dict(os.environ, TMPDIR=self.dir)
        p = subprocess.Popen(["bash", os.path.join(SRC, "scripts", script)], cwd=self.dir, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            out, err = p.communicate(timeout=DEMO_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            # The group this test started: SIGINT first, so the demo's EXIT trap stops its bench-proxy
            # (which stops and reaps its engine); SIGKILL if that does not end it.
            os.killpg(p.pid, signal.SIGINT)
            try:
                out, err = p.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                out, err = p.communicate()
            self.fail(f"{script} still running after {DEMO_TIMEOUT_S} s:\n{out[-3000:]}\n{err[-3000:]}")
        # The demo's own EXIT trap stopped the bench-proxy it started: nothing of its session is left.
        self.assertEqual(in_session(p.pid), [], f"{script} left processes behind")
        self.assertEqual(p.returncode, 0, f"{script} exited {p.returncode}:\n{out[-4000:]}\n{err[-4000:]}")
        return out

    def result(self, pattern):
        found = glob.glob(os.path.join(self.dir, pattern))
        self.assertEqual(len(found), 1, found)
        with open(found[0]) as f:
            return json.load(f)

    def assert_valid_without_errors(self, res, n):
        self.assertTrue(res["valid"], res.get("invalid_reason"))
        s = res["summary"]
        self.assertEqual(s["completed"], n, s)
        self.assertEqual(s["error_kinds"], {}, s)
        self.assertTrue(all(q["ok"] for q in res["requests"]))
        engine = res["snapshot"]["engine"]["pid"]
        self.assertFalse(alive(engine), f"engine pid {engine} alive after the demo")

    def test_mock_demo(self):
        out = self.run_demo("demo.sh")
        res = self.result("bench-proxy-demo.*/bench/result.json")
        self.assert_valid_without_errors(res, 20)
        self.assertIn("bench-proxy exited with 0; engine pid", out)
        self.assertIn("alive afterwards: no", out)
        # The A/A sweep: each config valid, or invalid only because the machine was busy (a neighbour's
        # CPU bursts, which the demo shows and goes on).
        sweep = self.result("bench-proxy-demo.*/sweep/sweep.json")
        self.assertEqual(len(sweep["rows"]), 2)
        for row in sweep["rows"]:
            self.assertTrue(row["ok"] and row["valid"] or "the machine was busy" in row.get("error", ""), row)

    def test_llama_demo(self):
        # Every answer of the tiny model is valid UTF-8 (scripts/make_tiny_gguf.py), so llama-server
        # never rejects one: the benchmark is valid with no error tolerated.
        out = self.run_demo("demo-llama.sh")
        lines = out.strip().splitlines()
        self.assertGreater(float(lines[-1]), 0, out[-2000:])  # the headline number of a valid result
        res = self.result("bench-proxy-llama.*/bench/result.json")
        self.assert_valid_without_errors(res, 10)
        self.assertEqual(res["snapshot"]["engine"]["kind"], "llama.cpp")
        self.assertEqual(res["summary"]["usage_source"], "server")
        # The demo's first request: sampled at llama-server's default temperature, up to 12 tokens.
        chat = json.loads(lines[next(i for i, l in enumerate(lines) if l.startswith("== chat completion")) + 1])
        self.assertNotIn("error", chat)
        self.assertIn(chat["choices"][0]["finish_reason"], ("length", "stop"), chat)
        self.assertTrue(1 <= chat["usage"]["completion_tokens"] <= 12, chat)


if __name__ == "__main__":
    unittest.main()
