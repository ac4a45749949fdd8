"""`run --client -- COMMAND` (issue 31): real clients (curl in a loop, Python's standard library, the
official openai npm package) as the measurement; the result is the proxy's records of their
requests, with the client's own counts matching exactly and its TTFT above the proxy's by its own
overhead. Measurement windows, compare, sweep, try and bisect with clients, plain serve folders
(and their windows) as inputs to compare, report, results, meta diff and try --against, and
bad input: a client not found or not executable, one that hangs, one that exits non-zero, one that
leaves background processes, a window name that is not printable ASCII."""
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import unittest
import uuid

from bp import BENCH_PROXY, SRC, ProxyCase, pids_with_marker, wait_for, write_config

HERE = os.path.dirname(os.path.abspath(__file__))
STDLIB_CLIENT = os.path.join(HERE, "clients", "stdlib_client.py")
NODE_DIR = os.path.join(SRC, "tests", "node")
WORKLOAD = os.path.join(SRC, "configs", "workloads", "bank-intents.csv")
MOCK = ["--tokens", "6", "--ttft-ms", "3", "--itl-ms", "2"]


def curl_loop(path, n, max_tokens):
    """A shell script: N streamed requests with curl, its own count of requests and tokens at the end."""
    with open(path, "w") as f:
        f.write(f"""#!/bin/sh
set -e
tokens=0
i=0
while [ $i -lt {n} ]; do
  out=$(curl -sS -N --fail "$1/v1/chat/completions" -H 'content-type: application/json' \\
    -d "{{\\"model\\":\\"$BENCH_PROXY_MODEL\\",\\"messages\\":[{{\\"role\\":\\"user\\",\\"content\\":\\"hi\\"}}],\\"max_tokens\\":{max_tokens},\\"stream\\":true,\\"stream_options\\":{{\\"include_usage\\":true}}}}")
  t=$(printf '%s' "$out" | grep -o '"completion_tokens":[0-9]*' | tail -1 | cut -d: -f2)
  tokens=$((tokens + t))
  i=$((i + 1))
done
echo "{{\\"requests\\": $i, \\"output_tokens\\": $tokens}}"
""")
    os.chmod(path, 0o755)
    return path


class ClientTest(ProxyCase):
    def bp(self, *args, timeout=300, **kw):
        return subprocess.run([BENCH_PROXY, *args], capture_output=True, text=True, cwd=self.dir, timeout=timeout, **kw)

    def run_client(self, run_dir, *command, extra=(), config=None):
        config = config or write_config(self.dir, "engine.yaml", MOCK)
        return self.bp("run", "--config", config, "--run-dir", os.path.join(self.dir, run_dir), "--no-progress",
                       "--telemetry-interval-ms", "0", "--results", os.path.join(self.dir, "r.tsv"), *extra,
                       "--client", "--", *command)

    def result(self, run_dir, name="result.json"):
        with open(os.path.join(self.dir, run_dir, name)) as f:
            return json.load(f)

    def client_counts(self, run_dir):
        with open(os.path.join(self.dir, run_dir, "client.stdout")) as f:
            return json.loads(f.read().strip().splitlines()[-1])

    def check_overhead(self, run_dir, r):
        # Every completed request's TTFT as the client saw it holds the proxy's: the difference is
        # the client's own time, never negative, and it is what client_overhead_ms reports.
        recs = {x["proxy_request_id"]: x for x in r["requests"]}
        diffs = []
        with open(os.path.join(self.dir, run_dir, "client-timings.jsonl")) as f:
            for line in f:
                t = json.loads(line)
                proxy = recs[t["id"]]
                # (E2E not: a client may stop reading at [DONE], before the proxy wrote the last byte.)
                self.assertGreaterEqual(t["ttft_ms"], proxy["ttft_ms"])
                diffs.append(t["ttft_ms"] - proxy["ttft_ms"])
        co = r["client_overhead_ms"]
        self.assertEqual(co["matched"], len(recs))
        self.assertGreaterEqual(co["ttft"]["median"], 0)
        self.assertLessEqual(co["ttft"]["median"], max(diffs))

    def test_curl_in_a_loop_counts_match_the_proxys_records(self):
        script = curl_loop(os.path.join(self.dir, "loop.sh"), 6, 5)
        r = self.run_client("run", script, "{url}")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        res = self.result("run")
        own = self.client_counts("run")
        self.assertEqual(res["source"], "proxy")
        self.assertTrue(res["valid"], res.get("invalid_reasons"))
        self.assertEqual(res["summary"]["requests"], own["requests"])
        self.assertEqual(res["summary"]["completed"], own["requests"])
        self.assertEqual(sum(x["output_tokens"] for x in res["requests"]), own["output_tokens"])
        self.assertEqual(res["client"]["exit_status"], 0)
        self.assertEqual(res["client"]["command"], [script, "{url}"])
        self.assertTrue(res["snapshot_id"])
        # The same summary as bench's: every metric with its interval, a headline, a ledger row.
        for k in ("ttft_ms", "itl_ms", "e2e_ms", "output_tps"):
            self.assertIn("median_ci", res["summary"][k])
        self.assertEqual(r.stdout.strip().splitlines()[-1], f"{res['summary']['headline']['value']:.2f}")
        with open(os.path.join(self.dir, "r.tsv")) as f:
            self.assertIn("\tvalid\t", f.read())

    def test_python_stdlib_client_counts_and_ttft_within_its_overhead(self):
        r = self.run_client("run", sys.executable, STDLIB_CLIENT, "{url}", "8", "6")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        res = self.result("run")
        own = self.client_counts("run")
        self.assertTrue(res["valid"], res.get("invalid_reasons"))
        self.assertEqual(res["summary"]["requests"], own["requests"])
        self.assertEqual(res["summary"]["completed"], own["completed"])
        self.assertEqual(sum(x["output_tokens"] for x in res["requests"]), own["output_tokens"])
        self.assertEqual(sum(x["prompt_tokens"] for x in res["requests"]), own["prompt_tokens"])
        self.check_overhead("run", res)
        self.assertIn("client overhead against the proxy's stopwatch", r.stdout)

    def test_openai_npm_client(self):
        if not os.path.exists(os.path.join(NODE_DIR, "node_modules", "openai", "package.json")):
            self.skipTest("tests/node/node_modules is missing (the CTest fixture setup.node_modules installs it)")
        node = shutil.which("node")
        self.assertTrue(node, "node is not installed")
        r = self.run_client("run", node, os.path.join(NODE_DIR, "client_run.mjs"), "7", "5")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        res = self.result("run")
        own = self.client_counts("run")
        self.assertTrue(res["valid"], res.get("invalid_reasons"))
        self.assertEqual(res["summary"]["requests"], own["requests"])
        self.assertEqual(res["summary"]["completed"], own["completed"])
        self.assertEqual(sum(x["output_tokens"] for x in res["requests"]), own["output_tokens"])
        self.check_overhead("run", res)

    def test_windows_give_exactly_their_results_and_an_open_one_is_closed_and_marked(self):
        r = self.run_client("run", sys.executable, STDLIB_CLIENT, "{url}", "3", "4", "--windows")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        res = self.result("run")
        self.assertEqual(res["summary"]["requests"], 2 + 3 + 3 + 1)
        self.assertEqual(sorted(os.listdir(os.path.join(self.dir, "run", "windows"))), ["A", "B", "C"])
        counts = {}
        for name in ("A", "B", "C"):
            w = self.result("run", os.path.join("windows", name, "result.json"))
            self.assertEqual(w["window"], name)
            counts[name] = w["summary"]["requests"]
            self.assertEqual(w["summary"]["completed"], counts[name])
            self.assertTrue(w["valid"], w.get("invalid_reasons"))
            self.assertEqual(w["window_info"]["left_open"], name == "C")
        self.assertEqual(counts, {"A": 3, "B": 3, "C": 1})
        self.assertEqual(self.result("run", "windows/B/result.json")["window_info"]["by"], "x-bench-proxy-window header")
        self.assertTrue(any("window 'C' was still open when the client exited" in w for w in res["warnings"]))
        self.assertEqual([w["name"] for w in res["windows"]], ["A", "C", "B"])
        with open(os.path.join(self.dir, "r.tsv")) as f:
            self.assertEqual(sum(1 for line in f if "window " in line), 3)  # a ledger row per window

    def test_compare_says_only_what_really_differs_and_two_client_runs_get_verdicts(self):
        cfg = write_config(self.dir, "engine.yaml", MOCK)
        script = curl_loop(os.path.join(self.dir, "loop.sh"), 6, 5)
        for d in ("c1", "c2"):
            r = self.run_client(d, script, "{url}", extra=("--trials", "2", "--queries", WORKLOAD), config=cfg)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        b = self.bp("run", "--config", cfg, "--run-dir", os.path.join(self.dir, "b"), "--queries", WORKLOAD, "-n", "6",
                    "--max-tokens", "5", "--no-progress", "--telemetry-interval-ms", "0", "--results", "")
        self.assertEqual(b.returncode, 0, b.stdout + b.stderr)
        c = self.bp("compare", os.path.join(self.dir, "b"), os.path.join(self.dir, "c1"), "--json")
        self.assertEqual(c.returncode, 3, c.stdout + c.stderr)
        reasons = json.loads(c.stdout)["comparisons"][0]["not_comparable_because"]
        self.assertTrue(any(x.startswith("client differs") for x in reasons), reasons)
        self.assertTrue(any(x.startswith("load shape") for x in reasons), reasons)
        for x in reasons:
            self.assertFalse(x.startswith(("workload", "model", "the set of answered")), reasons)
        c = self.bp("compare", os.path.join(self.dir, "c1"), os.path.join(self.dir, "c2"), "--json")
        self.assertIn(c.returncode, (0, 1), c.stdout + c.stderr)
        cmp = json.loads(c.stdout)["comparisons"][0]
        self.assertEqual(cmp["not_comparable_because"], [])
        self.assertIn(cmp["metrics"][0]["verdict"], ("faster", "slower", "no change", "inconclusive"))

    def test_try_with_a_client(self):
        base = write_config(self.dir, "base.yaml", ["--tokens", "6", "--ttft-ms", "2", "--itl-ms", "2"])
        slow = write_config(self.dir, "slow.yaml", ["--tokens", "6", "--ttft-ms", "2", "--itl-ms", "6"])
        # The baseline named by a run folder: the config its meta.json records.
        b0 = self.run_client("b0", sys.executable, STDLIB_CLIENT, "{url}", "2", "6", config=base)
        self.assertEqual(b0.returncode, 0, b0.stdout + b0.stderr)
        r = self.bp("try", slow, "--against", os.path.join(self.dir, "b0"), "--max-rounds", "4", "--noise", "5%", "--try-dir",
                    os.path.join(self.dir, "t"), "--results", "", "--no-progress", "--telemetry-interval-ms", "0",
                    "--redo-disturbed", "0", "--client", "--", sys.executable, STDLIB_CLIENT, "{url}", "10", "6",
                    timeout=600)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)  # discard: three times the ITL is slower
        self.assertRegex(r.stdout.strip().splitlines()[-1], r"^slower ")
        with open(os.path.join(self.dir, "t", "candidate", "round-1", "result.json")) as f:
            res = json.load(f)
        self.assertEqual(res["source"], "proxy")
        with open(os.path.join(self.dir, "t", "try.json")) as f:
            self.assertEqual(json.load(f)["baseline_config"], base)

    def test_bisect_with_a_client(self):
        good = write_config(self.dir, "good.yaml", ["--tokens", "6", "--ttft-ms", "2", "--itl-ms", "2"])
        bad = write_config(self.dir, "bad.yaml", ["--tokens", "6", "--ttft-ms", "2", "--itl-ms", "6"])
        script = curl_loop(os.path.join(self.dir, "loop.sh"), 6, 6)
        r = self.bp("bisect", good, bad, "--bisect-dir", os.path.join(self.dir, "b"), "--noise", "5%", "--max-rounds",
                    "4", "--results", "", "--no-progress", "--telemetry-interval-ms", "0", "--redo-disturbed", "0",
                    "--client", "--", script, "{url}", timeout=600)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout.strip().splitlines()[-1], r"^found: args\.--itl-ms: ")

    def test_sweep_with_a_client(self):
        a = write_config(self.dir, "a.yaml", ["--tokens", "6", "--ttft-ms", "2", "--itl-ms", "2"])
        b = write_config(self.dir, "b.yaml", ["--tokens", "6", "--ttft-ms", "2", "--itl-ms", "3"])
        script = curl_loop(os.path.join(self.dir, "loop.sh"), 4, 5)
        r = self.bp("sweep", a, b, "--sweep-dir", os.path.join(self.dir, "s"), "--results", "", "--no-progress",
                    "--telemetry-interval-ms", "0", "--client", "--", script, "{url}")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        results = sorted(glob.glob(os.path.join(self.dir, "s", "*", "result.json")))
        self.assertEqual(len(results), 2)
        for path in results:
            with open(path) as f:
                res = json.load(f)
            self.assertEqual(res["source"], "proxy")
            self.assertEqual(res["summary"]["completed"], 4)
            self.assertTrue(res["valid"], res.get("invalid_reasons"))

    def test_engine_counters_are_read_around_a_client_as_around_bench(self):
        from test_hardening import fake_llama_config
        cfg = fake_llama_config(self.dir, "llama.yaml", {})
        script = curl_loop(os.path.join(self.dir, "loop.sh"), 3, 4)
        r = self.run_client("run", script, "{url}", config=cfg)
        self.assertIn(r.returncode, (0, 1), r.stdout + r.stderr)
        res = self.result("run")
        em = res["engine_metrics"]
        self.assertIn("generation_tokens", em["series"], em)
        self.assertIn("cross_check", em)
        self.assertTrue(os.path.exists(os.path.join(self.dir, "run", "engine_metrics_after.txt")))
        self.assertIn("engine counters:", r.stdout)

    def test_a_serve_folder_is_an_input(self):
        cfg = write_config(self.dir, "engine.yaml", MOCK)
        p = self.start(cfg)
        p.wait_ready()
        for _ in range(4):
            st, _ = p.post("/v1/chat/completions", {"model": "mock-model", "max_tokens": 5,
                                                    "messages": [{"role": "user", "content": "x"}]})
            self.assertEqual(st, 200)
        self.assertEqual(p.stop(), 0)
        rep = self.bp("report", p.run_dir, "-o", os.path.join(self.dir, "serve.html"))
        self.assertEqual(rep.returncode, 0, rep.stdout + rep.stderr)
        md = self.bp("meta", "diff", p.run_dir, os.path.join(p.run_dir, "meta.json"))
        self.assertEqual(md.returncode, 0, md.stdout + md.stderr)
        res = self.bp("results", p.run_dir, "--json")
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        rows = json.loads(res.stdout)
        self.assertEqual(len(rows), 1)
        self.assertEqual(rows[0]["status"], "valid")
        self.assertTrue(rows[0]["result"].endswith("requests.jsonl"), rows[0])
        tr = self.bp("try", cfg, "--against", os.path.join(self.dir, "no-such-folder"), "--queries", WORKLOAD)
        self.assertEqual(tr.returncode, 2, tr.stderr)
        c = self.bp("compare", p.run_dir, p.run_dir, "--json")
        self.assertIn(c.returncode, (0, 1), c.stdout + c.stderr)
        cmp = json.loads(c.stdout)["comparisons"][0]
        self.assertEqual(cmp["not_comparable_because"], [])

    def test_a_serve_folders_windows_are_its_sides(self):
        cfg = write_config(self.dir, "engine.yaml", MOCK)
        p = self.start(cfg)
        p.wait_ready()
        body = {"model": "mock-model", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
        self.assertEqual(p.post("/v1/chat/completions", body)[0], 200)  # in no window
        self.assertEqual(p.post("/proxy/window", {"name": "A", "action": "start"})[0], 200)
        for _ in range(3):
            self.assertEqual(p.post("/v1/chat/completions", body)[0], 200)
        self.assertEqual(p.post("/proxy/window", {"name": "A", "action": "stop"})[0], 200)
        for _ in range(2):
            c = p.conn()
            c.request("POST", "/v1/chat/completions", body=json.dumps(body),
                      headers={"Content-Type": "application/json", "x-bench-proxy-window": "B"})
            r = c.getresponse()
            r.read()
            self.assertEqual(r.status, 200)
            c.close()
        st, _, listing = p.get("/proxy/window")
        self.assertEqual(st, 200)
        self.assertEqual([w["name"] for w in json.loads(listing)["windows"]], ["A"])
        self.assertEqual(p.stop(), 0)
        with open(os.path.join(p.run_dir, "windows.jsonl")) as f:
            self.assertEqual([json.loads(l)["open"] for l in f], [True, False])
        with open(os.path.join(p.run_dir, "requests.jsonl")) as f:
            self.assertEqual(sum(1 for l in f if json.loads(l).get("window") == "B"), 2)
        # compare DIR alone: window A is the baseline, window B the candidate.
        c = self.bp("compare", p.run_dir, "--json")
        self.assertIn(c.returncode, (0, 1), c.stdout + c.stderr)
        cmp = json.loads(c.stdout)["comparisons"][0]
        self.assertTrue(cmp["baseline"].endswith("window A"), cmp["baseline"])
        self.assertTrue(cmp["candidate"].endswith("window B"), cmp["candidate"])
        self.assertEqual(cmp["metrics"][0]["baseline"]["trials"], 1)
        res = json.loads(self.bp("results", p.run_dir, "--json").stdout)
        self.assertEqual(len(res), 2)

    def test_a_client_that_is_not_found_or_not_executable_is_refused_before_the_engine(self):
        marker = "BP_MARK_" + uuid.uuid4().hex
        cfg = write_config(self.dir, "engine.yaml", MOCK, env={"MARK": marker})
        plain = os.path.join(self.dir, "plain.txt")
        open(plain, "w").close()
        for cmd, what in ((["no-such-client-xyz"], "was not found on PATH"), ([plain], "is not an executable file"),
                          ([os.path.join(self.dir, "missing.sh")], "No such file")):
            r = self.run_client("run-" + os.path.basename(cmd[0]), *cmd, config=cfg)
            self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
            self.assertIn(what, r.stderr)
            self.assertFalse(os.path.exists(os.path.join(self.dir, "run-" + os.path.basename(cmd[0]), "engine.log")))
        r = self.bp("run", "--config", cfg, "--client", "--telemetry-interval-ms", "0")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("--client needs a command", r.stderr)
        r = self.bp("run", "--config", cfg, "--queries", WORKLOAD, "--", "curl")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("add --client", r.stderr)
        self.assertEqual(pids_with_marker(marker), [])

    def test_a_hanging_client_is_bounded_by_client_timeout_and_its_group_killed(self):
        marker = "BP_MARK_" + uuid.uuid4().hex
        hang = os.path.join(self.dir, "hang.sh")
        with open(hang, "w") as f:
            f.write(f"#!/bin/sh\nexport {marker}=1\nsleep 1000 &\nsleep 1000\n")
        os.chmod(hang, 0o755)
        r = self.run_client("run", hang, extra=("--client-timeout", "1"))
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        res = self.result("run")
        self.assertFalse(res["valid"])
        self.assertTrue(res["client"]["timed_out"])
        self.assertIn("--client-timeout 1 s", res["invalid_reason"])
        self.assertEqual(pids_with_marker(marker), [])

    def test_background_processes_of_a_client_do_not_survive_the_run(self):
        marker = "BP_MARK_" + uuid.uuid4().hex
        bg = os.path.join(self.dir, "bg.sh")
        with open(bg, "w") as f:
            f.write(f"#!/bin/sh\nexport {marker}=1\nsleep 1000 &\nsetsid sleep 1000 &\n"
                    f"(sleep 1000 &) \ncurl -sS \"$BENCH_PROXY_URL/v1/models\" >/dev/null\necho started\n")
        os.chmod(bg, 0o755)
        r = self.run_client("run", bg)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(self.result("run")["summary"]["requests"], 1)
        self.assertEqual(pids_with_marker(marker), [])

    def test_a_client_that_exits_non_zero_makes_the_result_invalid(self):
        r = self.run_client("run", sys.executable, STDLIB_CLIENT, "{url}", "2", "4", "--exit", "7")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        res = self.result("run")
        self.assertFalse(res["valid"])
        self.assertIn("the client exited with status 7", res["invalid_reason"])
        self.assertEqual(res["client"]["exit_status"], 7)
        self.assertTrue(r.stdout.strip().splitlines()[-1].startswith("invalid: the client exited with status 7"))

    def test_ctrl_c_reaches_the_clients_group_first(self):
        flag = os.path.join(self.dir, "got-sigint")
        started = os.path.join(self.dir, "started")
        client = os.path.join(self.dir, "trap.sh")
        with open(client, "w") as f:
            f.write(f"#!/bin/sh\ntrap 'echo SIGINT > {flag}; exit 0' INT\ntouch {started}\n"
                    "while :; do sleep 0.05; done\n")
        os.chmod(client, 0o755)
        cfg = write_config(self.dir, "engine.yaml", MOCK)
        p = subprocess.Popen([BENCH_PROXY, "run", "--config", cfg, "--run-dir", os.path.join(self.dir, "run"),
                              "--no-progress", "--telemetry-interval-ms", "0", "--results", "", "--client", "--",
                              client], cwd=self.dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: os.path.exists(started), timeout=120, what="the client to start")
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=120)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, 130, out + err)
        with open(flag) as f:
            self.assertEqual(f.read().strip(), "SIGINT")

    def test_a_window_name_that_is_not_printable_ascii_is_refused(self):
        cfg = write_config(self.dir, "engine.yaml", MOCK)
        p = self.start(cfg)
        p.wait_ready()
        st, body = p.post("/proxy/window", {"name": "caf\u00e9", "action": "start"})
        self.assertEqual(st, 400, body)
        self.assertIn(b"printable ASCII", body)
        st, body = p.post("/proxy/window", {"name": "ok", "action": "begin"})
        self.assertEqual(st, 400, body)
        st, body = p.post("/proxy/window", {"name": "never-started", "action": "stop"})
        self.assertEqual(st, 400, body)
        c = p.conn()
        c.request("POST", "/v1/chat/completions", body=json.dumps({"model": "mock-model", "max_tokens": 2,
                                                                   "messages": [{"role": "user", "content": "x"}]}),
                  headers={"Content-Type": "application/json", "x-bench-proxy-window": "tab\there"})
        r = c.getresponse()
        self.assertEqual(r.status, 400)
        self.assertIn(b"x-bench-proxy-window", r.read())
        c.close()
        p.stop()


if __name__ == "__main__":
    unittest.main()
