"""Workloads against the real llama-server (docs/workloads.md): synthetic prompts are exactly the
requested number of tokens by the engine's own /tokenize, a shared-prefix workload shows prefix
cache hits in the engine's counters, and a ShareGPT file's answers become max_tokens.

Starts llama-server directly (not behind bench-proxy: /tokenize is the engine's, the proxy
forwards only /v1/*). Needs scripts/llama-setup.sh (scripts/test.sh runs it)."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest
import urllib.error
import urllib.request

from bp import BIN, free_port, wait_for
from test_llama import llama_env

GEN = os.path.join(BIN, "bp-workload-gen")


def post(url, body, timeout=120):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.load(r)


class WorkloadLlamaTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.llama = llama_env()
        cls.dir = tempfile.mkdtemp(prefix="bp-workloads-")
        cls.port = free_port()
        cls.url = f"http://127.0.0.1:{cls.port}"
        cls.log = open(os.path.join(cls.dir, "llama.log"), "wb")
        cls.server = subprocess.Popen(
            [cls.llama["LLAMA_SERVER"], "-m", cls.llama["LLAMA_MODEL"], "--alias", "tiny", "-t", "1", "-c", "4096",
             "--no-webui", "--metrics", "--host", "127.0.0.1", "--port", str(cls.port)],
            stdout=cls.log, stderr=subprocess.STDOUT, env={"PATH": "/usr/bin:/bin"})

        def healthy():
            if cls.server.poll() is not None:
                raise AssertionError(f"llama-server exited with {cls.server.returncode}")
            try:
                with urllib.request.urlopen(cls.url + "/health", timeout=5) as r:
                    return r.status == 200
            except (urllib.error.URLError, ConnectionError, OSError):
                return False
        wait_for(healthy, timeout=120, step=0.1, what="llama-server /health")

    @classmethod
    def tearDownClass(cls):
        cls.server.terminate()
        try:
            cls.server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            cls.server.kill()
            cls.server.wait()
        cls.log.close()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def gen(self, *args, tokenizer=True):
        cmd = [GEN, *args]
        if tokenizer:
            cmd += ["--tokenize-url", self.url, "--engine-kind", "llama.cpp"]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def lines(self, *args, tokenizer=True):
        return [json.loads(l) for l in self.gen(*args, tokenizer=tokenizer).splitlines()]

    def tokens(self, text):
        return len(post(self.url + "/tokenize", {"content": text, "add_special": False})["tokens"])

    def chat(self, request, max_tokens=None):
        body = dict(request, model="tiny", temperature=0, cache_prompt=True)
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        return post(self.url + "/v1/chat/completions", body)

    def counters(self):
        with urllib.request.urlopen(self.url + "/metrics", timeout=30) as r:
            text = r.read().decode()
        return {k: float(v) for k, v in re.findall(r"^llamacpp:(prompt_tokens(?:_cached)?_total) (\S+)$", text, re.M)}

    def test_synthetic_prompts_have_exactly_the_requested_token_counts(self):
        args = ["--synthetic", "input=300,output=6,spread=0.3", "-n", "40", "--seed", "3"]
        qs = self.lines(*args)
        self.assertEqual(len(qs), 40)
        lengths = {q["metadata"]["input_tokens"] for q in qs}
        self.assertGreater(len(lengths), 10)  # the spread is real
        for q in qs:
            self.assertEqual(q["metadata"]["tokens_counted_by"], f"llama.cpp POST {self.url}/tokenize")
            self.assertEqual(self.tokens(q["request"]["messages"][0]["content"]), q["metadata"]["input_tokens"])
        # The same seed and tokenizer: byte-identical requests and fingerprint; another seed differs.
        self.assertEqual(self.gen(*args), self.gen(*args))
        fp = json.loads(self.gen(*args, "--fingerprint", "--rate", "5"))
        self.assertEqual(fp, json.loads(self.gen(*args, "--fingerprint", "--rate", "5")))
        other = json.loads(self.gen("--synthetic", "input=300,output=6,spread=0.3", "-n", "40", "--seed", "4",
                                    "--fingerprint", "--rate", "5"))
        self.assertNotEqual(fp["sha256"], other["sha256"])
        # Without a tokenizer the estimate is the same prompts, here exactly right: every word of the
        # vocabulary is one token in llama's SentencePiece vocabulary.
        est = self.lines(*args, tokenizer=False)
        self.assertEqual([q["request"] for q in est], [q["request"] for q in qs])
        self.assertEqual(est[0]["metadata"]["tokens_counted_by"], "estimated")
        # ignore_eos is accepted: the engine generates exactly max_tokens.
        a = self.chat(qs[0]["request"])
        self.assertEqual(a["usage"]["completion_tokens"], qs[0]["request"]["max_tokens"], a["usage"])

    def test_prefix_workload_hits_the_prefix_cache_and_synthetic_does_not(self):
        P = 200
        before = self.counters()
        qs = self.lines("--prefix-groups", "2", "--prefix-len", str(P), "--synthetic", "input=20,output=2", "-n", "6",
                        "--seed", "5")
        cached = []
        for q in qs:
            self.assertEqual(self.tokens(q["request"]["messages"][0]["content"]), P + 20)
            cached.append(self.chat(q["request"])["timings"]["cache_n"])
        after = self.counters()
        # After each group's first request, the group's prefix (and the chat template's opening
        # tokens before it) comes from the cache.
        for c in cached[2:]:
            self.assertGreaterEqual(c, P, cached)
        self.assertGreaterEqual(after["prompt_tokens_cached_total"] - before["prompt_tokens_cached_total"], 4 * P)
        header = min(cached[2:]) - P  # the template's tokens before the user's content
        self.assertLess(header, 32)
        # Synthetic requests share nothing but that template opening: no prefix-cache help by accident.
        for q in self.lines("--synthetic", "input=100,output=2", "-n", "4", "--seed", "6"):
            self.assertLessEqual(self.chat(q["request"])["timings"]["cache_n"], header)

    def test_trace_blocks_are_shared_exactly_and_hit_the_prefix_cache(self):
        path = os.path.join(self.dir, "trace.jsonl")
        with open(path, "w") as f:
            f.write('{"timestamp": 100, "input_length": 300, "output_length": 2, "hash_ids": [1, 2]}\n'
                    '{"timestamp": 350, "input_length": 280, "output_length": 2, "hash_ids": [1, 3]}\n')
        qs = self.lines("--trace", path, "--block-size", "128", "--time-scale", "2")
        self.assertEqual([q["arrival_ms"] for q in qs], [0, 500])
        for q in qs:
            self.assertEqual(self.tokens(q["request"]["messages"][0]["content"]), q["metadata"]["input_tokens"])
        self.chat(qs[0]["request"])
        # Block 1 (128 tokens) is the same text in both: the second request finds it cached.
        self.assertGreaterEqual(self.chat(qs[1]["request"])["timings"]["cache_n"], 128)
        # Timestamps going backwards: the error names the file and the line.
        with open(path, "a") as f:
            f.write('{"timestamp": 200, "input_length": 5, "output_length": 2}\n')
        r = subprocess.run([GEN, "--trace", path], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 2)
        self.assertIn(f"{path}:3: timestamp 200 goes backwards", r.stderr)

    def test_sharegpt_answers_become_max_tokens_counted_by_the_engine(self):
        path = os.path.join(self.dir, "sharegpt.json")
        answer = "A bank keeps money for people and lends it to others at interest."
        with open(path, "w") as f:
            json.dump([{"id": "c1", "conversations": [
                {"from": "system", "value": "Answer briefly."},
                {"from": "human", "value": "What does a bank do?"},
                {"from": "gpt", "value": answer},
                {"from": "human", "value": "And a loan?"},
                {"from": "gpt", "value": "Money borrowed."}]},
                {"id": "c2", "conversations": [{"from": "gpt", "value": "no question"}]}], f)
        qs = self.lines("--sharegpt", path)
        self.assertEqual(len(qs), 1)
        self.assertEqual(qs[0]["request"]["max_tokens"], self.tokens(answer))
        self.assertEqual([m["role"] for m in qs[0]["request"]["messages"]], ["system", "user"])
        self.assertEqual(qs[0]["metadata"]["input_tokens"], self.tokens("What does a bank do?"))
        ss = self.lines("--sharegpt-sessions", path, "--think-ms", "100")
        self.assertEqual(len(ss), 1)
        self.assertEqual(len(ss[0]["turns"]), 2)
        self.assertEqual(ss[0]["think_ms"], [100])
        # A malformed file: the error names the file and the conversation.
        with open(path, "w") as f:
            f.write('[{"id": "x", "conversations": [{"from": "robot", "value": "hi"}]}]')
        r = subprocess.run([GEN, "--sharegpt", path], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 2)
        self.assertIn(f"{path}: conversation 0 (id \"x\"), turn 0: 'from' is 'robot'", r.stderr)


if __name__ == "__main__":
    unittest.main()
