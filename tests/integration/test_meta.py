"""/meta content against the live mock engine, secrets, meta diff and validate."""
import json
import os
import subprocess
import unittest

from bp import BENCH_PROXY, ProxyCase


class MetaTest(ProxyCase):
    SECRET = "hf_live_secret_Zq81x"

    def test_snapshot_describes_the_live_tree_and_never_leaks_the_secret(self):
        opts = os.path.join(self.dir, "extra_options.yaml")
        with open(opts, "w") as f:
            f.write("kv_cache_config:\n  free_gpu_memory_fraction: 0.9\n")
        cfg = self.config(mock_args=["--workers", "2", "--worker-rank-env", "--chat-template", opts],
                          env={"PATH": "/usr/bin:/bin", "HF_TOKEN": {"secret": self.SECRET}},
                          extra="warmup: 3")
        p = self.start(cfg, env={"LANG": "C.UTF-8", "USER": "x"})
        p.wait_ready()
        st, hdr, body = p.get("/meta")
        self.assertEqual(st, 200)
        self.assertNotIn(self.SECRET.encode(), body)
        doc = json.loads(body)
        self.assertEqual(len(doc["warmup"]["elapsed_ms"]), 3)
        procs = doc["process_tree"]["processes"]
        comms = sorted(q["comm"] for q in procs)
        self.assertEqual(comms, ["MOCK::Worker_0", "MOCK::Worker_1", "mock-engine"])
        for q in procs:
            env = q["env"]
            self.assertEqual(env["HF_TOKEN"]["redacted"], True)
            self.assertNotIn("LANG", env)
            self.assertNotIn("USER", env)
        # per-rank env divergence is visible per PID
        ranks = {q["comm"]: q["env"].get("CUDA_VISIBLE_DEVICES") for q in procs}
        self.assertEqual(ranks["MOCK::Worker_0"], "0")
        self.assertEqual(ranks["MOCK::Worker_1"], "1")
        self.assertIsNone(ranks["mock-engine"])
        self.assertEqual(doc["config"]["env"]["HF_TOKEN"]["redacted"], True)
        libs = [l["path"] for l in doc["loaded_libs"]["libraries"]]
        self.assertTrue(any("libc.so" in l for l in libs), libs)
        for l in doc["loaded_libs"]["libraries"]:
            self.assertEqual(len(l["sha256"]), 64)
        self.assertEqual(doc["engine_version"]["version"], doc["bench_proxy"]["version"])
        self.assertEqual(doc["engine_reported"]["/v1/models"]["status"], 200)
        self.assertIn("listening on", doc["engine_log"]["head"])
        self.assertIn("host", doc)
        self.assertEqual(doc["inputs"]["files"][0]["path"], opts)
        self.assertIn("free_gpu_memory_fraction", doc["inputs"]["files"][0]["content"])
        self.assertEqual(doc["inputs"]["files"][0]["sha256"],
                         __import__("hashlib").sha256(open(opts, "rb").read()).hexdigest())
        self.assertIn(doc["gpus"]["available"], (True, False))
        self.assertEqual(hdr["etag"].strip('"'), __import__("hashlib").sha256(body).hexdigest())
        self.assertEqual(p.stop(), 0)
        self.assertNotIn(self.SECRET, p.log())
        run = os.path.join(self.dir, "run")
        for name in os.listdir(run):
            with open(os.path.join(run, name), "rb") as f:
                self.assertNotIn(self.SECRET.encode(), f.read(), name)

    def test_meta_diff_names_exactly_the_changed_env_var(self):
        docs = []
        for value in ("1", "2"):
            cfg = self.config(env={"PATH": "/usr/bin:/bin", "TUNABLE": value}, extra="warmup: 1")
            p = self.start(cfg)
            p.wait_ready()
            path = os.path.join(self.dir, f"meta{value}.json")
            with open(path, "wb") as f:
                f.write(p.get("/meta")[2])
            docs.append(path)
            if value == "2":
                live = f"http://127.0.0.1:{p.port}"
                r = subprocess.run([BENCH_PROXY, "meta", "diff", docs[0], live, "--json"], capture_output=True, text=True)
                self.assertEqual(r.returncode, 1, r.stderr)
                d = json.loads(r.stdout)
                # Each change once, with every place it was seen.
                paths = sorted(x for sec in d["sections"].values() for c in sec for x in c["seen_in"])
                self.assertEqual(sum(len(sec) for sec in d["sections"].values()), 1, d)
                self.assertIn("command.env.TUNABLE", paths)
                self.assertIn("config.env.TUNABLE", paths)
                for path_ in paths:
                    self.assertIn("TUNABLE", path_, paths)
            p.stop()
        r = subprocess.run([BENCH_PROXY, "meta", "diff", docs[0], docs[0]], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = subprocess.run([BENCH_PROXY, "meta", "diff", docs[0], docs[1]], capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn("~ env.TUNABLE: 1 -> 2", r.stdout)
        r = subprocess.run([BENCH_PROXY, "meta", "diff", docs[0], "/nonexistent.json"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("/nonexistent.json", r.stderr)

    def test_validate_prints_resolved_json_and_every_error(self):
        good = self.config(env={"PATH": "/usr/bin:/bin", "TOK": {"secret": "$MY_SECRET_TOKEN"}})
        env = dict(os.environ, MY_SECRET_TOKEN="plaintext-never-shown-123")
        r = subprocess.run([BENCH_PROXY, "validate", good], capture_output=True, text=True, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("plaintext-never-shown-123", r.stdout + r.stderr)
        j = json.loads(r.stdout)
        # The digest is keyed (HMAC-SHA256 with the key file), never the guessable plain sha256.
        import hashlib, hmac
        key = open(os.environ["BENCH_PROXY_SECRET_KEY_FILE"], "rb").read()
        self.assertEqual(j["env"]["TOK"]["hmac_sha256"],
                         hmac.new(key, b"plaintext-never-shown-123", hashlib.sha256).hexdigest())
        self.assertEqual(j["env"]["TOK"]["key_id"], hashlib.sha256(key).hexdigest()[:12])
        self.assertNotIn(hashlib.sha256(b"plaintext-never-shown-123").hexdigest(), r.stdout)
        bad = os.path.join(self.dir, "bad.yaml")
        with open(bad, "w") as f:
            f.write("engine: nope\ncmd: x\nargs: [--port=1]\ntypo: 1\nenv:\n  A: $NOT_SET_ANYWHERE\n")
        r = subprocess.run([BENCH_PROXY, "validate", good, bad], capture_output=True, text=True, env=env)
        self.assertEqual(r.returncode, 2)
        for needle in ("bad.yaml:1:9: engine: unknown engine 'nope'", "bad.yaml:3:8: args[0]", "bad.yaml:4:1: typo",
                       "bad.yaml:6:6: env.A: variable $NOT_SET_ANYWHERE", "description: required"):
            self.assertIn(needle, r.stderr)
        self.assertEqual(r.stdout, "")

    def test_a_hugging_face_repo_id_resolves_to_its_revision_and_hashed_files(self):
        import hashlib
        hub = os.path.join(self.dir, "hf", "hub")
        repo = os.path.join(hub, "models--Qwen--Qwen2.5-0.5B-Instruct")
        rev = "a8b602d9dafd3a75d382e62757d83d89fca3be54"
        content = b'{"architectures": ["Qwen2ForCausalLM"]}'
        blob = hashlib.sha256(content).hexdigest()
        os.makedirs(os.path.join(repo, "blobs"))
        os.makedirs(os.path.join(repo, "snapshots", rev))
        os.makedirs(os.path.join(repo, "refs"))
        with open(os.path.join(repo, "blobs", blob), "wb") as f:
            f.write(content)
        os.symlink(f"../../blobs/{blob}", os.path.join(repo, "snapshots", rev, "config.json"))
        with open(os.path.join(repo, "refs", "main"), "w") as f:
            f.write(rev + "\n")
        cfg = self.config(mock_args=["--model", "Qwen/Qwen2.5-0.5B-Instruct"],
                          env={"PATH": "/usr/bin:/bin", "HF_HOME": os.path.join(self.dir, "hf")}, extra="warmup: 0")
        p = self.start(cfg)
        p.wait_ready()
        doc = json.loads(p.get("/meta")[2])
        models = doc["inputs"]["models"]
        self.assertEqual(len(models), 1, models)
        m = models[0]
        self.assertTrue(m["resolved"], m)
        self.assertEqual(m["repo_id"], "Qwen/Qwen2.5-0.5B-Instruct")
        self.assertEqual(m["revision"], rev)
        self.assertEqual(m["files"], [{"path": "config.json", "size": len(content), "sha256": blob,
                                       "sha256_source": "hashed"}])
        meta_path = os.path.join(self.dir, "m.json")
        with open(meta_path, "wb") as f:
            f.write(p.get("/meta")[2])
        r = subprocess.run([BENCH_PROXY, "meta", "summary", meta_path], capture_output=True, text=True)
        self.assertIn(f"model      Qwen/Qwen2.5-0.5B-Instruct @ {rev}", r.stdout)
        self.assertIn(f"config.json  sha256 {blob}", r.stdout)
        self.assertEqual(p.stop(), 0)

    def test_version_names_the_commit_and_the_binarys_sha256_also_in_meta(self):
        import hashlib
        r = subprocess.run([BENCH_PROXY, "--version"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0)
        digest = hashlib.sha256(open(BENCH_PROXY, "rb").read()).hexdigest()
        self.assertIn(f"sha256 {digest}", r.stdout)
        src = os.environ.get("BP_SOURCE_DIR", "../..")
        head = subprocess.run(["git", "-C", src, "rev-parse", "HEAD"], capture_output=True, text=True)
        if head.returncode == 0:
            self.assertIn("commit " + head.stdout.strip(), r.stdout)
        p = self.start(self.config(extra="warmup: 0"))
        p.wait_ready()
        b = json.loads(p.get("/meta")[2])["bench_proxy"]
        self.assertEqual(b["binary_sha256"], digest)
        self.assertIn(b["git_dirty"], (True, False))
        if head.returncode == 0:
            self.assertEqual(b["git_commit"], head.stdout.strip())
        self.assertEqual(p.stop(), 0)

    def test_shipped_configs_validate(self):
        env = dict(os.environ, CUDA_HOME="/usr/local/cuda", HF_HOME="/hf", HF_TOKEN="hf_xxxxxxxxxxxx",
                   LLAMA_SERVER="/opt/llama/llama-server", LLAMA_MODEL="/opt/llama/tiny.gguf",
                   LLAMA_SLOT_DIR="/opt/llama/slots")
        cfgs = sorted(os.path.join(os.environ.get("BP_SOURCE_DIR", "../.."), "configs", f)
                      for f in os.listdir(os.path.join(os.environ.get("BP_SOURCE_DIR", "../.."), "configs"))
                      if f.endswith(".yaml"))
        self.assertGreaterEqual(len(cfgs), 5)
        r = subprocess.run([BENCH_PROXY, "validate", *cfgs], capture_output=True, text=True, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(json.loads(r.stdout)), len(cfgs))


if __name__ == "__main__":
    unittest.main()
