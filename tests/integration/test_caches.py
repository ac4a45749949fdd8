"""Cache provenance in /meta: cold, written during the run, warm on the next; `caches: fresh` gives
each run empty directories through the engine's own variables (read back from its environment)."""
import json
import os
import re
import subprocess
import unittest

from bp import BENCH_PROXY, SRC, ProxyCase, write_config

WORKLOAD = os.path.join(SRC, "configs", "workloads", "bank-intents.csv")


class CachesTest(ProxyCase):
    def meta_of(self, cfg):
        p = self.start(cfg)
        p.wait_ready()
        body = p.get("/meta")[2]
        self.assertEqual(p.stop(), 0)
        return json.loads(body), p.run_dir

    def test_a_cache_is_cold_then_written_then_warm_and_meta_diff_shows_it(self):
        home = os.path.join(self.dir, "home")
        os.makedirs(home)
        cfg = write_config(self.dir, "c.yaml", ["--tokens", "2"], env={"PATH": "/usr/bin:/bin", "HOME": home},
                           extra="warmup: 0")
        m1, run1 = self.meta_of(cfg)
        c = m1["caches"]["mock"]
        self.assertEqual(c["var"], "MOCK_CACHE_DIR")
        self.assertEqual(c["path"], os.path.join(home, ".cache/mock-engine"))
        self.assertIn("default under HOME", c["source"])
        self.assertEqual(c["state"], "written during this run (was cold)")
        self.assertFalse(c["before_start"]["exists"])
        self.assertEqual(c["at_snapshot"]["files"], 1)
        m2, run2 = self.meta_of(cfg)
        self.assertEqual(m2["caches"]["mock"]["state"], "warm")
        self.assertEqual(m2["caches"]["mock"]["at_snapshot"]["manifest_sha256"],
                         m1["caches"]["mock"]["at_snapshot"]["manifest_sha256"])
        r = subprocess.run([BENCH_PROXY, "meta", "diff", os.path.join(run1, "meta.json"), os.path.join(run2, "meta.json")],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn("caches:", r.stdout)
        self.assertIn("state", r.stdout)

    def test_fresh_caches_are_empty_directories_of_the_run_in_the_engines_real_environment(self):
        home = os.path.join(self.dir, "home")
        os.makedirs(home)
        cfg = write_config(self.dir, "f.yaml", ["--tokens", "2"], env={"PATH": "/usr/bin:/bin", "HOME": home},
                           extra="warmup: 0\ncaches: fresh")
        for _ in range(2):
            m, run = self.meta_of(cfg)
            c = m["caches"]["mock"]
            self.assertTrue(c["injected"])
            self.assertEqual(c["path"], os.path.join(run, "caches", "mock"))
            self.assertEqual(c["state"], "written during this run (was cold)")  # cold every time
            env = m["process_tree"]["processes"][0]["env"]
            self.assertEqual(env.get("MOCK_CACHE_DIR"), os.path.join(run, "caches", "mock"))
        self.assertFalse(os.path.exists(os.path.join(home, ".cache")))  # the shared one was never touched

    def test_reset_prefix_cache_before_the_measured_requests_is_recorded(self):
        cfg = write_config(self.dir, "r.yaml", ["--tokens", "2"], extra="warmup: 1")
        r = subprocess.run([BENCH_PROXY, "run", "--config", cfg, "--queries", WORKLOAD, "-n", "3", "--trials", "2",
                            "--reset-prefix-cache", "--run-dir", os.path.join(self.dir, "rr"), "--results",
                            os.path.join(self.dir, "r.tsv"), "--no-progress"], capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        for t in ("trial-1", "trial-2"):  # before each trial's measured requests
            with open(os.path.join(self.dir, "rr", t, "result.json")) as f:
                reset = json.load(f)["prefix_cache_reset"]
            self.assertTrue(reset["ok"])
            self.assertEqual([(q["method"], q["path"], q["status"]) for q in reset["requests"]],
                             [("POST", "/reset_prefix_cache", 200)])
        # A server without /meta: no engine kind or port to reset; said before any request.
        m = subprocess.Popen([os.path.join(os.environ["BP_BIN_DIR"], "mock-engine"), "--port", "0"],
                             stderr=subprocess.PIPE, text=True)
        try:
            port = None
            for line in m.stderr:
                mm = re.search(r"listening on [\d.]+:(\d+)", line)
                if mm:
                    port = mm.group(1)
                    break
            r = subprocess.run([BENCH_PROXY, "bench", "--url", f"http://127.0.0.1:{port}", "--queries", WORKLOAD, "-n",
                                "2", "--allow-no-snapshot", "--reset-prefix-cache", "--out", os.path.join(self.dir, "o"),
                                "--results", os.path.join(self.dir, "r.tsv"), "--no-progress"],
                               capture_output=True, text=True, timeout=60)
        finally:
            m.kill()
            m.wait()
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--reset-prefix-cache needs a bench-proxy with /meta", r.stdout + r.stderr)

    def validate_vllm(self, name, env):
        """`validate --reset-prefix-cache` of a vllm config with this env mapping."""
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(f"description: v\nengine: vllm\ncmd: /bin/true\nenv: {env}\n")
        return subprocess.run([BENCH_PROXY, "validate", path, "--reset-prefix-cache"], capture_output=True, text=True)

    def test_validate_warns_when_a_vllm_config_cannot_reset_its_prefix_cache(self):
        r = self.validate_vllm("v.yaml", "{PATH: /usr/bin:/bin}")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("only with VLLM_SERVER_DEV_MODE=1", r.stderr)
        r = self.validate_vllm("ok.yaml", "{PATH: /usr/bin:/bin, VLLM_SERVER_DEV_MODE: '1'}")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("VLLM_SERVER_DEV_MODE", r.stderr)

    def test_validate_warns_when_a_kind_needs_a_flag_for_its_metrics(self):
        # The flag comes from the engine-kind table (configs/engine_kinds.cpp), not from code per kind.
        for kind, flag in (("sglang", "--enable-metrics"), ("llama.cpp", "--metrics")):
            for args, warned in (("[]", True), (f"[{flag}]", False)):
                path = os.path.join(self.dir, f"m-{kind}-{warned}.yaml")
                with open(path, "w") as f:
                    f.write(f"description: m\nengine: {kind}\ncmd: /bin/true\nargs: {args}\nenv: {{PATH: /usr/bin:/bin}}\n")
                r = subprocess.run([BENCH_PROXY, "validate", path], capture_output=True, text=True)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(f"{kind} without {flag} exposes no /metrics" in r.stderr, warned, r.stderr)

    def test_a_bad_caches_value_names_the_key_and_line(self):
        cfg = write_config(self.dir, "bad.yaml", [], extra="caches: sometimes")
        r = subprocess.run([BENCH_PROXY, "validate", cfg], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertRegex(r.stderr, r"bad.yaml:\d+:\d+: caches: expected fresh")


if __name__ == "__main__":
    unittest.main()
