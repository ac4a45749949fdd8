"""A real engine on CPU: llama.cpp's llama-server behind bench-proxy, end to end.

Needs scripts/llama-setup.sh (scripts/test.sh runs it): it writes llama.env in the cache folder."""
import json
import os
import shutil
import socket
import subprocess
import time
import unittest

from bp import BENCH_PROXY, SRC, ProxyCase, pids_with_marker, stream_events, wait_for

CACHE = os.environ.get("BENCH_PROXY_CACHE",
                       os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "bench-proxy"))
WORKLOAD = os.path.join(SRC, "configs", "workloads", "bank-intents.csv")
# No error is tolerated: every answer of the tiny model is valid UTF-8 (scripts/make_tiny_gguf.py), so
# llama-server's own output parser never rejects one.


def llama_env():
    path = os.path.join(CACHE, "llama.env")
    if not os.path.exists(path):
        raise AssertionError(f"{path} is missing: run scripts/llama-setup.sh (scripts/test.sh does)")
    env = {}
    for line in open(path):
        k, _, v = line.strip().partition("=")
        if k:
            env[k] = v.strip("'")
    return env


class LlamaTest(ProxyCase):
    @classmethod
    def setUpClass(cls):
        cls.llama = llama_env()

    def llama_config(self, name="llama.yaml", server=None, ctx="2048", threads="1", extra="warmup: 2", marker=None,
                     more_args=""):
        env = "  PATH: /usr/bin:/bin\n" + (f"  {marker}: \"1\"\n" if marker else "")
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(f"description: llama.cpp tiny ctx {ctx} t {threads}\nengine: llama.cpp\n"
                    f"cmd: {server or self.llama['LLAMA_SERVER']}\n"
                    f"args: [-m, {self.llama['LLAMA_MODEL']}, --alias, tiny, -t, \"{threads}\", -c, \"{ctx}\", --no-webui{more_args}]\n"
                    f"model: tiny\nready_timeout_s: 120\nstop_grace_s: 5\nenv:\n{env}{extra}\n")
        return path

    def test_reset_prefix_cache_erases_every_slot_of_the_shipped_config(self):
        env = dict(os.environ, LLAMA_SERVER=self.llama["LLAMA_SERVER"], LLAMA_MODEL=self.llama["LLAMA_MODEL"],
                   LLAMA_SLOT_DIR=self.llama["LLAMA_SLOT_DIR"])
        r = subprocess.run([BENCH_PROXY, "run", "--config", os.path.join(SRC, "configs", "llama-cpu.yaml"), "--queries",
                            WORKLOAD, "-n", "4", "--max-tokens", "8", "--reset-prefix-cache",
                            "--run-dir", self.dir + "/reset", "--results", self.dir + "/r.tsv", "--no-progress"],
                           capture_output=True, text=True, timeout=300, env=env)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        res = json.load(open(self.dir + "/reset/result.json"))
        reset = res["prefix_cache_reset"]
        self.assertTrue(reset["ok"], reset)
        self.assertEqual(reset["requests"][0]["path"], "/slots")
        erased = [q for q in reset["requests"] if "action=erase" in q["path"]]
        self.assertGreaterEqual(len(erased), 1)
        self.assertTrue(all(q["status"] == 200 for q in erased))
        # The engine's own counters over the measured requests equal the bench's counts.
        em = res["engine_metrics"]
        self.assertEqual(em["absent"], [])
        self.assertTrue(em["cross_check"]["generation_tokens"]["equal"], em["cross_check"])
        self.assertTrue(em["cross_check"]["prompt_tokens"]["equal"], em["cross_check"])
        out_tokens = sum(q["output_tokens"] for q in res["requests"] if q["ok"])
        self.assertEqual(em["series"]["generation_tokens"]["value"], out_tokens)
        for f in ("engine_metrics_before.txt", "engine_metrics_after.txt"):
            with open(os.path.join(self.dir, "reset", f)) as fh:
                self.assertIn("llamacpp:tokens_predicted_total", fh.read())
        self.assertIn("engine counters:", r.stdout)

    def test_shipped_config_serves_plain_streamed_and_openai_client(self):
        env = {"LLAMA_SERVER": self.llama["LLAMA_SERVER"], "LLAMA_MODEL": self.llama["LLAMA_MODEL"],
               "LLAMA_SLOT_DIR": self.llama["LLAMA_SLOT_DIR"]}
        p = self.start(os.path.join(SRC, "configs", "llama-cpu.yaml"), env=env)
        p.wait_ready(timeout=120)
        # The engine's own Prometheus metrics, through the proxy, unchanged.
        status, headers, body = p.get("/engine/metrics")
        self.assertEqual(status, 200, body[:300])
        self.assertIn(b"llamacpp:tokens_predicted_total", body)
        # Greedy decoding: the same answer every time.
        st, body = p.post("/v1/chat/completions", {"model": "tiny", "max_tokens": 8, "temperature": 0,
                                                   "messages": [{"role": "user", "content": "hi"}]})
        self.assertEqual(st, 200, body)
        self.assertEqual(json.loads(body)["usage"]["completion_tokens"], 8)
        node = os.path.join(SRC, "tests", "node")
        r = subprocess.run(["node", os.path.join(node, "llama_client.mjs"), f"http://127.0.0.1:{p.port}"],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(p.stop(), 0)

    def test_every_byte_token_forced_gives_an_answer_the_engine_accepts(self):
        # llama-server rejects an answer that is malformed UTF-8 (its output parser, HTTP 500 or an
        # error event). Only byte-fallback tokens could make one: the vocabulary's <0x00>..<0xFF> are
        # ids 3..258. Each, forced three times in a row by logit_bias, decodes to its ASCII character
        # (printable, tab, LF, CR) or to nothing: an answer the engine accepts, streamed and not.
        p = self.start(self.llama_config(extra="warmup: 1"))
        p.wait_ready(timeout=120)
        plain = {0x09, 0x0A, 0x0D} | set(range(0x20, 0x7F))
        for byte in range(256):
            body = {"model": "tiny", "max_tokens": 3, "temperature": 0, "logit_bias": {str(3 + byte): 100},
                    "messages": [{"role": "user", "content": "x"}]}
            st, raw = p.post("/v1/chat/completions", body)
            self.assertEqual(st, 200, (hex(byte), raw))
            res = json.loads(raw)
            self.assertEqual(res["usage"]["completion_tokens"], 3, res)
            self.assertEqual(res["choices"][0]["message"]["content"], chr(byte) * 3 if byte in plain else "",
                             hex(byte))
        for byte in (0x41, 0x80, 0xB7, 0xE2, 0xFF):
            events = [d for _, d in stream_events(p.port, {
                "model": "tiny", "max_tokens": 3, "temperature": 0, "logit_bias": {str(3 + byte): 100},
                "messages": [{"role": "user", "content": "x"}], "stream": True})]
            self.assertEqual(events[-1], "[DONE]", (hex(byte), events))
            self.assertFalse([e for e in events if '"error"' in e], (hex(byte), events))
        self.assertEqual(p.stop(), 0)

    def test_meta_describes_the_real_engine(self):
        p = self.start(self.llama_config())
        p.wait_ready(timeout=120)
        doc = json.loads(p.get("/meta")[2])
        self.assertEqual(doc["command"]["argv"][0], self.llama["LLAMA_SERVER"])
        self.assertIn("-m", doc["command"]["argv"])
        self.assertEqual([q["comm"] for q in doc["process_tree"]["processes"]], ["llama-server"])
        libs = {os.path.basename(l["path"]): l for l in doc["loaded_libs"]["libraries"]}
        llama = [n for n in libs if n.startswith("libllama.so")]
        ggml = [n for n in libs if n.startswith("libggml")]
        self.assertTrue(llama, libs.keys())
        self.assertGreaterEqual(len(ggml), 3, libs.keys())
        for n in llama + ggml:
            self.assertRegex(libs[n]["version"] or "", r"^\d+\.\d+\.\d+$", n)
            self.assertEqual(len(libs[n]["sha256"]), 64)
        self.assertTrue(doc["engine_version"]["version"].startswith(self.llama["LLAMA_VERSION"].split()[0]),
                        doc["engine_version"])
        props = doc["engine_reported"]["/props"]["body"]
        self.assertEqual(props["default_generation_settings"]["n_ctx"], 2048)
        self.assertEqual(doc["inputs"]["files"][0]["path"], self.llama["LLAMA_MODEL"])
        self.assertEqual(len(doc["warmup"]["elapsed_ms"]), 2)
        self.assertIn("llama", doc["engine_log"]["head"])
        self.assertEqual(p.stop(), 0)

    def test_backend_loaded_at_run_time_is_found_in_maps_not_ldd(self):
        dl = self.llama["LLAMA_SERVER_DL"]
        ldd = subprocess.run(["ldd", dl], capture_output=True, text=True).stdout
        self.assertNotIn("libggml-cpu", ldd)  # not a link-time dependency ...
        self.assertIn("libggml-base", ldd)
        p = self.start(self.llama_config(server=dl))
        p.wait_ready(timeout=120)
        doc = json.loads(p.get("/meta")[2])
        libs = [os.path.basename(l["path"]) for l in doc["loaded_libs"]["libraries"]]
        # ... but mapped in the running engine, and the snapshot (taken after warmup, from
        # /proc/PID/maps) records it with its hash.
        self.assertTrue([n for n in libs if n.startswith("libggml-cpu")], libs)
        with open(f"/proc/{doc['engine']['pid']}/maps") as f:
            self.assertIn("libggml-cpu", f.read())
        self.assertEqual(p.stop(), 0)

    def test_bench_measures_ttft_and_tokens_counted_by_the_server(self):
        p = self.start(self.llama_config())
        p.wait_ready(timeout=120)
        r = subprocess.run([BENCH_PROXY, "bench", "--url", f"http://127.0.0.1:{p.port}", "--queries", WORKLOAD,
                            "-n", "8", "--max-tokens", "16", "--out", self.dir + "/o", "--results", self.dir + "/r.tsv",
                            "--no-progress"], capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        res = json.load(open(self.dir + "/o/result.json"))
        s = res["summary"]
        self.assertEqual(s["error_kinds"], {}, s["error_kinds"])
        self.assertEqual(s["completed"], 8)
        self.assertEqual(s["usage_source"], "server")
        self.assertGreater(s["ttft_ms"]["median"], 0)
        self.assertGreater(float(r.stdout.strip().splitlines()[-1]), 0)
        self.assertEqual(res["snapshot"]["engine"]["kind"], "llama.cpp")
        # The proxy timed the real engine's streams too: the same tokens as the server's usage,
        # and the client's TTFT never below the proxy's.
        co = res["client_overhead_ms"]
        self.assertEqual(co["matched"], s["completed"])
        self.assertGreaterEqual(co["ttft"]["median"], 0)
        ok = [q for q in res["requests"] if q["ok"]]
        status, _, body = p.get(f"/proxy/requests?after={min(q['proxy_request_id'] for q in ok) - 1}")
        recs = {x["id"]: x for x in map(json.loads, body.decode().splitlines())}
        for q in ok:
            rec = recs[q["proxy_request_id"]]
            self.assertEqual(rec["usage"]["completion_tokens"], q["output_tokens"])
            self.assertGreater(rec["content_events"], 0)
        self.assertEqual(p.stop(), 0)

    def test_client_disconnect_cancels_the_task_on_the_engine(self):
        p = self.start(self.llama_config(extra="warmup: 1"))
        p.wait_ready(timeout=120)
        body = json.dumps({"model": "tiny", "messages": [{"role": "user", "content": "go"}], "max_tokens": 1900,
                           "stream": True}).encode()
        s = socket.create_connection(("127.0.0.1", p.port))
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        got = b""
        while got.count(b"data:") < 3:
            got += s.recv(4096)
        s.close()
        wait_for(lambda: p.grep(r"cancel task"), timeout=60, what="llama-server to cancel the task")
        self.assertEqual(p.stop(), 0)

    def test_run_and_a_sweep_of_two_llama_configs_and_a_broken_one(self):
        marker = f"BP_LLAMA_{os.getpid()}"
        a = self.llama_config("ctx2048.yaml", ctx="2048", marker=marker, extra="warmup: 1")
        b = self.llama_config("ctx1024.yaml", ctx="1024", marker=marker, extra="warmup: 1")
        broken = self.llama_config("broken.yaml", marker=marker, extra="warmup: 1")
        with open(broken) as f:
            text = f.read().replace(self.llama["LLAMA_MODEL"], "/nonexistent/model.gguf")
        with open(broken, "w") as f:
            f.write(text)
        r = subprocess.run([BENCH_PROXY, "run", "--config", a, "--queries", WORKLOAD, "-n", "4", "--max-tokens", "8",
                            "--run-dir", self.dir + "/run", "--results", self.dir + "/r.tsv", "--no-progress"],
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = subprocess.run([BENCH_PROXY, "sweep", a, b, broken, "--queries", WORKLOAD, "-n", "4", "--max-tokens", "8",
                            "--sweep-dir", self.dir + "/sw", "--results", self.dir + "/r.tsv", "--no-progress"],
                           capture_output=True, text=True, timeout=600)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        sw = json.load(open(self.dir + "/sw/sweep.json"))
        ok = {os.path.basename(x["config"]): x for x in sw["rows"] if x["ok"]}
        failed = [x for x in sw["rows"] if not x["ok"]]
        self.assertEqual(set(ok), {"ctx2048.yaml", "ctx1024.yaml"})
        self.assertEqual(len(failed), 1)
        self.assertIn("during startup", failed[0]["error"])
        other = "ctx1024.yaml"
        paths = [x for sec in ok[other]["differs_from_first"]["sections"].values() for c in sec for x in c["seen_in"]]
        self.assertTrue(any("n_ctx" in x for x in paths), paths)  # the engine's own view differs
        self.assertTrue(any(x.startswith("command.argv") for x in paths), paths)
        self.assertEqual(pids_with_marker(marker), [])


    def test_generated_workloads_counted_by_the_engine_and_its_prefix_cache(self):
        # Synthetic prompts are checked against llama-server's own /tokenize (on its private port);
        # a shared-prefix workload shows prefix-cache reuse in the engine's counters.
        cfg = self.llama_config("gen.yaml", extra="warmup: 1", more_args=", --metrics")
        r = subprocess.run([BENCH_PROXY, "run", "--config", cfg, "--synthetic", "input=48,output=4", "-n", "4",
                            "--run-dir", self.dir + "/syn", "--results", self.dir + "/r.tsv",
                            "--no-progress", "--telemetry-interval-ms", "0"], capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(self.dir + "/syn/result.json") as f:
            res = json.load(f)
        self.assertIn("llama.cpp", res["workload"]["tokens_counted_by"])
        self.assertEqual(res["workload"]["kind"], "synthetic")
        for m in res["workload"]["metadata"]:
            self.assertEqual(m["metadata"]["input_tokens"], 48)
            self.assertIn("llama.cpp", m["metadata"]["tokens_counted_by"])
        self.assertEqual(len(res["workload_fingerprint"]["sha256"]), 64)
        r = subprocess.run([BENCH_PROXY, "run", "--config", cfg, "--prefix-groups", "1", "--prefix-len", "200",
                            "--synthetic", "input=16,output=2", "-n", "4",
                            "--run-dir", self.dir + "/pre", "--results", self.dir + "/r.tsv", "--no-progress",
                            "--telemetry-interval-ms", "0"], capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(self.dir + "/pre/result.json") as f:
            res = json.load(f)
        series = res["engine_metrics"]["series"]
        self.assertIn("prompt_tokens_cached", series, json.dumps(res["engine_metrics"])[:2000])
        # Every measured request reuses its group's 200-token prefix (the warmup request filled it).
        self.assertGreaterEqual(series["prompt_tokens_cached"]["value"], 200)


class LlamaDecisionTest(ProxyCase):
    """try and bisect on the real engine (issue 28): -t 1 against -t 2 reaches a verdict, an A/A
    never says faster or slower, and bisect names -t among harmless changes."""

    @classmethod
    def setUpClass(cls):
        cls.llama = llama_env()

    def config(self, name, threads="1", extra="warmup: 2", env=None):
        lines = "  PATH: /usr/bin:/bin\n" + "".join(f"  {k}: \"{v}\"\n" for k, v in (env or {}).items())
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(f"description: llama.cpp tiny t {threads}\nengine: llama.cpp\ncmd: {self.llama['LLAMA_SERVER']}\n"
                    f"args: [-m, {self.llama['LLAMA_MODEL']}, --alias, tiny, -t, \"{threads}\", -c, \"1024\", --no-webui]\n"
                    f"model: tiny\nready_timeout_s: 120\nstop_grace_s: 5\nenv:\n{lines}{extra}\n")
        return path

    def decide(self, command, *args):
        # Two threads on two cores make token timing erratic from one lifecycle to the next (the
        # same config measures 650-1,300 tok/s; -t 2 is 15-30 % faster on average): 24 requests a
        # lifecycle and up to 20 rounds give the decision room. With 12, one try in several ended
        # inconclusive on a quiet machine, and a bisect step that missed -t alone named an
        # interaction; the procedure's error rates do not depend on the number of looks.
        return subprocess.run([BENCH_PROXY, command, *args, "--queries", WORKLOAD, "-n", "24", "--max-tokens", "16",
                               "--results", os.path.join(self.dir, "r.tsv"), "--no-progress",
                               "--telemetry-interval-ms", "0", "--noise", "3%", "--max-rounds", "20"],
                              capture_output=True, text=True, cwd=self.dir, timeout=1800)

    def test_try_of_one_thread_against_two_and_an_a_a(self):
        t1 = self.config("t1.yaml", "1")
        t2 = self.config("t2.yaml", "2")
        r = self.decide("try", t2, "--against", t1, "--try-dir", os.path.join(self.dir, "t"))
        last = r.stdout.strip().splitlines()[-1]
        self.assertIn(r.returncode, (0, 1), r.stdout + r.stderr)
        self.assertRegex(last, r"^(faster|slower) ")
        r = self.decide("try", t1, "--against", t1, "--try-dir", os.path.join(self.dir, "aa"))
        last = r.stdout.strip().splitlines()[-1]
        self.assertIn(r.returncode, (1, 4), r.stdout + r.stderr)
        self.assertRegex(last, r"^(no change|inconclusive) ")

    def test_bisect_names_the_thread_count_among_harmless_changes(self):
        good = self.config("good.yaml", "1", extra="warmup: 2")
        bad = self.config("bad.yaml", "2", extra="warmup: 3", env={"HARMLESS": "1"})
        r = self.decide("bisect", good, bad, "--bisect-dir", os.path.join(self.dir, "b"))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        last = r.stdout.strip().splitlines()[-1]
        self.assertTrue(last.startswith("found: args.-t: -t 1 -> -t 2: "), last)


if __name__ == "__main__":
    unittest.main()
