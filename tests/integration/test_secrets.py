"""Secrets stay secret: in results, logs, exit messages, /meta keys, nested and multi-line secrets."""
import glob
import hashlib
import json
import os
import subprocess
import unittest

from bp import BENCH_PROXY, MOCK, ProxyCase, write_config

QUERIES = os.path.join(os.environ.get("BP_SOURCE_DIR", "../.."), "configs", "workloads", "bank-intents.csv")


def everything_written(folder):
    """Every byte of every file under `folder`."""
    out = b""
    for path in glob.glob(os.path.join(folder, "**"), recursive=True):
        if os.path.isfile(path):
            with open(path, "rb") as f:
                out += f.read()
    return out


class SecretsTest(ProxyCase):
    def shell_engine(self, script, env, extra="warmup: 0"):
        """A config whose engine is `sh -c SCRIPT` ending in `exec mock-engine "$@"` (host/port appended)."""
        path = os.path.join(self.dir, "engine.yaml")
        lines = ["description: secrets test", "engine: mock", "cmd: /bin/sh",
                 "args: [" + ", ".join(json.dumps(a) for a in ["-c", script.replace("$", "$$"), MOCK]) + "]", "env:"]
        for k, v in env.items():
            lines.append(f"  {k}: " + (f"{{ secret: {json.dumps(v['secret'])} }}" if isinstance(v, dict)
                                       else json.dumps(v)))
        lines.append(extra)
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def test_a_secret_model_name_never_reaches_result_json_or_the_tsv(self):
        model = "secret-model-name-xyz"
        cfg = write_config(self.dir, mock_args=["--model", {"secret": model}, "--tokens", "4"], extra="warmup: 0")
        run_dir = os.path.join(self.dir, "run")
        r = subprocess.run([BENCH_PROXY, "run", "--config", cfg, "--queries", QUERIES, "-n", "3", "--run-dir", run_dir,
                            "--results", os.path.join(self.dir, "results.tsv"), "--no-progress"],
                           cwd=self.dir, capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn(model, r.stdout + r.stderr)
        blob = everything_written(self.dir).decode(errors="replace")
        self.assertNotIn(model, blob.replace(json.dumps(model), ""))  # the config file itself holds it
        res = json.load(open(os.path.join(run_dir, "result.json")))
        self.assertEqual(res["model"]["redacted"], True)
        self.assertNotIn(model, open(os.path.join(self.dir, "results.tsv")).read())

    def test_multi_line_and_nested_secrets_leave_no_plaintext_in_logs_or_the_exit_message(self):
        multi = "first-line-secret\nsecond-line-secret"
        outer, inner = "OUTERPART-INNERPART-TAILPART", "INNERPART"
        script = 'printf "%s\\n" "$MULTI" >&2; echo "outer=$OUTER inner=$INNER"; exit 3'
        cfg = self.shell_engine(script, {"PATH": "/usr/bin:/bin", "MULTI": {"secret": multi},
                                         "OUTER": {"secret": outer}, "INNER": {"secret": inner}})
        p = self.start(cfg)
        p.p.wait(60)  # the engine exits before it is ready: so does bench-proxy
        p.stop()
        self.assertNotEqual(p.p.returncode, 0)
        log = p.log()
        self.assertIn("exited with status 3", log)
        for plain in ("first-line-secret", "second-line-secret", "PART"):
            self.assertNotIn(plain, log)
        self.assertIn("[REDACTED hmac:", log)
        written = everything_written(os.path.join(self.dir, "run")).decode(errors="replace")
        self.assertIn("REDACTED", written)
        for plain in ("first-line-secret", "second-line-secret", "PART"):
            self.assertNotIn(plain, written)

    def test_a_secret_used_as_an_environment_variable_name_is_redacted_in_meta_keys(self):
        name = "SECRETLY_NAMED_VAR"
        cfg = self.shell_engine('exec "$0" "$@"', {"PATH": "/usr/bin:/bin", name: "1", "ALIAS": {"secret": name}})
        p = self.start(cfg)
        p.wait_ready()
        st, _, body = p.get("/meta")
        self.assertEqual(st, 200)
        self.assertNotIn(name.encode(), body)
        self.assertEqual(p.stop(), 0)

    def test_validate_refuses_short_secrets_and_never_prints_one(self):
        for value in ("a", "abc1234"):
            cfg = write_config(self.dir, name="short.yaml", env={"PATH": "/usr/bin:/bin", "K": {"secret": value}})
            r = subprocess.run([BENCH_PROXY, "validate", cfg], capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("short.yaml:", r.stderr)
            self.assertIn("at least 8 characters", r.stderr)
        cfg = write_config(self.dir, name="ref.yaml", env={"PATH": "/usr/bin:/bin",
                                                           "K": {"secret": "hunter2-${bad name}"}})
        r = subprocess.run([BENCH_PROXY, "validate", cfg], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2)
        self.assertNotIn("hunter2", r.stderr + r.stdout)
        self.assertNotIn("bad name", r.stderr + r.stdout)

    def test_digests_are_keyed_by_the_key_file(self):
        cfg = write_config(self.dir, env={"PATH": "/usr/bin:/bin", "K": {"secret": "password-123"}})
        outs = []
        for key in (b"k" * 32, b"j" * 32, b"k" * 32):
            kf = os.path.join(self.dir, "key")
            with open(kf, "wb") as f:
                f.write(key)
            r = subprocess.run([BENCH_PROXY, "validate", cfg], capture_output=True, text=True, timeout=30,
                               env=dict(os.environ, BENCH_PROXY_SECRET_KEY_FILE=kf))
            self.assertEqual(r.returncode, 0, r.stderr)
            outs.append(json.loads(r.stdout)["env"]["K"]["hmac_sha256"])
        self.assertNotEqual(outs[0], outs[1])
        self.assertEqual(outs[0], outs[2])
        self.assertNotEqual(outs[0], hashlib.sha256(b"password-123").hexdigest())


if __name__ == "__main__":
    unittest.main()
