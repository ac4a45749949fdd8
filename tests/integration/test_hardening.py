"""Hardening, round two (issue 26): untrusted JSON never crashes bench-proxy or blows up its memory
(items 1 and 2), an engine's /metrics is bounded (item 12), workload errors name file:line:column
(item 13). Each test covers the shape of an attack, not only its example; none bounds time from
above (a crash is a negative return code, checked everywhere)."""
import csv
import json
import os
import subprocess
import sys
import unittest

from bp import BENCH_PROXY, SRC, ProxyCase

FAKE_LLAMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_llama.py")


def nested_arrays(depth):
    return "[" * depth + "]" * depth


def nested_objects(depth, leaf="1"):
    return '{"a":' * depth + leaf + "}" * depth


def fake_llama_config(dir, name, env):
    """A config of engine kind llama.cpp whose engine is fake_llama.py (it misbehaves as env says)."""
    env = dict(env)
    env.setdefault("PATH", "/usr/bin:/bin")
    lines = ["description: fake llama-server (hardening tests)", "engine: llama.cpp", f"cmd: {sys.executable}",
             f"args: [{json.dumps(FAKE_LLAMA)}]", "warmup: 1", "env:"]
    lines += [f"  {k}: {json.dumps(str(v))}" for k, v in env.items()]
    path = os.path.join(dir, name)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


class Case(ProxyCase):
    def bp(self, *args, timeout=300):
        r = subprocess.run([BENCH_PROXY, *args], capture_output=True, cwd=self.dir, timeout=timeout)
        r.stdout, r.stderr = r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")
        self.assertGreaterEqual(r.returncode, 0, f"killed by signal {-r.returncode}:\n{r.stdout}{r.stderr}")
        return r

    def write(self, name, text, mode="w"):
        path = os.path.join(self.dir, name)
        with open(path, mode) as f:
            f.write(text)
        return path

    def bench_offline(self, workload):
        """bench checks its workload before it connects anywhere: port 1 is never reached."""
        return self.bp("bench", "--url", "http://127.0.0.1:1", "--queries", workload, "--no-progress",
                       "--results", os.path.join(self.dir, "r.tsv"))

    def assertRefused(self, r, *needles):
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        for n in needles:
            self.assertIn(n, r.stderr)
        self.assertNotIn("json.exception", r.stderr + r.stdout)


class DeepJsonTest(Case):
    """Item 1: JSON nested deeper than the documented limit is an error naming the file, exit 2."""

    def test_meta_diff_and_show_refuse_a_snapshot_nested_30000_deep(self):
        a = self.write("A.json", '{"schema_version": 1, "config": {"x": 1}}')
        for shape in (nested_arrays(30000), nested_objects(30000), nested_arrays(129)):
            b = self.write("B.json", '{"schema_version": 1, "config": {"x": ' + shape + "}}")
            r = self.bp("meta", "diff", a, b)
            self.assertRefused(r, "B.json:1:", "nested deeper than 128")
            r = self.bp("meta", "show", b)
            self.assertRefused(r, "B.json:1:", "nested deeper than 128")
        # Within the limit it is an ordinary difference.
        b = self.write("B.json", '{"schema_version": 1, "config": {"x": ' + nested_arrays(100) + "}}")
        r = self.bp("meta", "diff", a, b)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("x[0][0][0]", r.stdout)

    def deep_result(self, folder):
        os.makedirs(os.path.join(self.dir, folder), exist_ok=True)
        return self.write(os.path.join(folder, "result.json"),
                          '{"kind": "bench-proxy bench result", "schema_version": 1, "summary": {}, "requests": [],'
                          ' "snapshot": {"engine_reported": ' + nested_objects(50000) + "}}")

    def test_compare_and_report_of_a_result_nested_50000_deep_never_crash(self):
        self.deep_result("a")
        self.deep_result("b")
        r = self.bp("compare", "a", "b")
        self.assertIn(r.returncode, (1, 2), r.stdout + r.stderr)
        self.assertIn("nested deeper than 128", r.stderr)
        r = self.bp("report", "a", "b", "-o", os.path.join(self.dir, "r.html"))
        self.assertIn(r.returncode, (1, 2), r.stdout + r.stderr)
        self.assertIn("nested deeper than 128", r.stderr)

    def test_compare_and_report_name_the_file_nested_too_deep_with_exit_2(self):
        self.deep_result("a")
        self.deep_result("b")
        r = self.bp("compare", "a", "b")
        self.assertRefused(r, "a/result.json:1:", "nested deeper than 128")
        r = self.bp("report", "a", "b", "-o", os.path.join(self.dir, "r.html"))
        self.assertRefused(r, "a/result.json:1:", "nested deeper than 128")

    def test_a_workload_nested_100000_deep_is_refused_with_its_line(self):
        content = nested_objects(100000)
        self.assertGreater(len(content), 600000)
        for key, row in (("messages", {"messages": [{"role": "user", "content": "@"}]}),
                         ("tools", {"messages": [{"role": "user", "content": "hi"}], "tools": "@"})):
            line = json.dumps(row).replace('"@"', content)
            w = self.write(f"deep-{key}.jsonl", '{"prompt": "fine"}\n' + line + "\n")
            r = self.bench_offline(w)
            self.assertRefused(r, f"deep-{key}.jsonl:2:", "nested deeper than 64")
            self.assertTrue(r.stdout.strip().splitlines()[-1].startswith("invalid: "), r.stdout)
        # A CSV cell holding JSON: its line, and where in the cell.
        w = self.write("deep.csv", 'prompt,tools\nhi,"' + nested_arrays(100000) + '"\n')
        r = self.bench_offline(w)
        self.assertRefused(r, "deep.csv:2: column 'tools': JSON nested deeper than 64")


class EngineAnswerTest(Case):
    """Item 2: what an engine's answer may add to a snapshot is bounded; the run keeps its results."""

    def run_fake(self, run_dir, env, n="3"):
        cfg = fake_llama_config(self.dir, run_dir + ".yaml", env)
        return self.bp("run", "--config", cfg, "--queries", self.write("q.csv", "prompt\nhello\n"), "-n", n,
                       "--run-dir", os.path.join(self.dir, run_dir), "--results", os.path.join(self.dir, "r.tsv"),
                       "--no-progress")

    def props_of(self, run_dir):
        with open(os.path.join(self.dir, run_dir, "result.json")) as f:
            res = json.load(f)
        return res, res["snapshot"]["engine_reported"]["/props"]

    def test_a_props_answer_nested_deep_is_recorded_as_truncated_and_the_run_completes(self):
        # 10 KB nested 5,000 deep once made a 50 MB result.json; 100 KB nested 50,000 deep ended
        # the run with bad_alloc and no result.
        for run_dir, depth in (("d5k", 5000), ("d50k", 50000), ("d33", 33)):
            r = self.run_fake(run_dir, {"FAKE_PROPS_DEPTH": depth})
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            res, props = self.props_of(run_dir)
            self.assertIn("nested deeper than 32 levels", props["truncated"])
            self.assertNotIn("body", props)
            self.assertEqual(res["summary"]["completed"], 3)
            self.assertLess(os.path.getsize(os.path.join(self.dir, run_dir, "result.json")), 1 << 20)
        with open(os.path.join(self.dir, "r.tsv")) as f:
            rows = list(csv.reader(f, delimiter="\t"))
        self.assertEqual(len(rows), 1 + 3, rows)
        # At the limit it is kept whole.
        r = self.run_fake("d30", {"FAKE_PROPS_DEPTH": 30})
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        _, props = self.props_of("d30")
        self.assertNotIn("truncated", props)
        self.assertEqual(props["body"]["build_info"], "fake")

    def test_a_props_answer_over_the_size_bound_is_recorded_as_truncated(self):
        r = self.run_fake("big", {"FAKE_PROPS_PAD": 3 << 20})
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        _, props = self.props_of("big")
        self.assertIn("more than the 1048576 kept", props["truncated"])
        self.assertGreater(props["bytes"], 3 << 20)


class EngineMetricsTest(Case):
    """Item 12: an engine /metrics of 300 MB, or one that never ends, is cut and said to be cut."""

    def bench_with_metrics(self, mode):
        cfg = fake_llama_config(self.dir, f"m-{mode}.yaml", {"FAKE_METRICS": mode})
        p = self.start(cfg)
        p.wait_ready()
        out = os.path.join(self.dir, f"out-{mode}")
        r = self.bp("bench", "--url", f"http://127.0.0.1:{p.port}", "--queries", self.write("q.csv", "prompt\nhi\n"),
                    "-n", "2", "--out", out, "--results", os.path.join(self.dir, "r.tsv"), "--no-progress")
        self.assertIn(r.returncode, (0, 1), r.stdout + r.stderr)
        with open(os.path.join(out, "result.json")) as f:
            return json.load(f)

    def test_a_huge_or_endless_metrics_answer_is_cut_with_a_warning(self):
        for mode in ("huge", "endless"):
            res = self.bench_with_metrics(mode)
            em = res["engine_metrics"]
            self.assertEqual(em["cut"]["before"], "more than 16777216 bytes", em)
            self.assertTrue(any("was cut (more than 16777216 bytes)" in w for w in res["warnings"]), res["warnings"])
            self.assertFalse(any("answered no samples" in w for w in res["warnings"]), res["warnings"])
        # The endless one sent its counters first: they were read.
        self.assertIn("generation_tokens", em["series"])

    def test_a_metrics_answer_that_stalls_is_cut_at_the_time_bound(self):
        res = self.bench_with_metrics("trickle")
        em = res["engine_metrics"]
        self.assertEqual(em["cut"]["before"], "no end after 10000 ms", em)
        self.assertTrue(any("was cut (no end after 10000 ms)" in w for w in res["warnings"]), res["warnings"])
        self.assertIn("generation_tokens", em["series"])


class EngineEventTest(Case):
    """An engine's SSE event of the wrong shape fails that request, never the process."""

    def test_a_usage_of_the_wrong_type_is_a_broken_stream_not_a_crash(self):
        cfg = fake_llama_config(self.dir, "usage.yaml", {"FAKE_USAGE": "string"})
        p = self.start(cfg)
        p.wait_ready()
        out = os.path.join(self.dir, "out")
        r = self.bp("bench", "--url", f"http://127.0.0.1:{p.port}", "--queries", self.write("q.csv", "prompt\nhi\n"),
                    "-n", "4", "--concurrency", "2", "--warmup", "0", "--out", out,
                    "--results", os.path.join(self.dir, "r.tsv"), "--no-progress")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        with open(os.path.join(out, "result.json")) as f:
            res = json.load(f)
        self.assertEqual(res["summary"]["error_kinds"], {"broken stream": 4})
        self.assertIn("bad SSE event", res["requests"][0]["error"])


class WorkloadErrorsTest(Case):
    """Item 13: workload errors name file:line(:column) and exit 2; a BOM is accepted; a refused
    request says who refused it and with which status."""

    def test_ill_formed_utf8_is_exit_2_with_line_and_column(self):
        w = self.write("bad.csv", b"prompt,tag\nhello,ok\nbad \xff byte,x\n", "wb")
        self.assertRefused(self.bench_offline(w), "bad.csv:3:5: not UTF-8 (byte 0xFF)")
        w = self.write("bad.jsonl", b'{"prompt": "fine"}\n{"prompt": "caf\xc3"}\n', "wb")
        self.assertRefused(self.bench_offline(w), "bad.jsonl:2:16: not UTF-8")
        # Overlong forms and surrogates are not UTF-8 either.
        for raw in (b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"):
            w = self.write("bad2.csv", b"prompt\n" + raw + b"\n", "wb")
            self.assertRefused(self.bench_offline(w), "bad2.csv:2:1: not UTF-8")

    def test_non_positive_counts_are_refused_with_the_line(self):
        w = self.write("neg.csv", "prompt,max_tokens\nhello,16\nthere,-5\n")
        self.assertRefused(self.bench_offline(w), "neg.csv:3: 'max_tokens' must be at least 1, got -5")
        w = self.write("neg.jsonl", '{"prompt": "a", "max_tokens": 0}\n')
        self.assertRefused(self.bench_offline(w), "neg.jsonl:1: 'max_tokens' must be at least 1, got 0")
        w = self.write("n.jsonl", '{"prompt": "a", "n": -1}\n')
        self.assertRefused(self.bench_offline(w), "n.jsonl:1: 'n' must be at least 1")

    def test_a_bom_is_accepted_a_huge_prompt_is_refused_by_status_and_deep_metadata_is_cut(self):
        p = self.start(self.config(mock_args=["--tokens", "4"], extra="warmup: 0"))
        p.wait_ready()
        url = f"http://127.0.0.1:{p.port}"
        tsv = os.path.join(self.dir, "r.tsv")
        w = self.write("bom.csv", "\ufeffprompt,tag\nhello,a\n", "w")
        r = self.bp("bench", "--url", url, "--queries", w, "-n", "2", "--warmup", "0", "--out",
                    os.path.join(self.dir, "bom"), "--results", tsv, "--no-progress")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(os.path.join(self.dir, "bom", "result.json")) as f:
            res = json.load(f)
        self.assertEqual(res["workload"]["metadata"][0]["metadata"], {"tag": "a"})
        # Metadata nested deeper than 16 (within the line's 64) is cut and says so.
        w = self.write("meta.jsonl", '{"prompt": "hi", "extra": ' + nested_objects(40) + "}\n")
        r = self.bp("bench", "--url", url, "--queries", w, "-n", "1", "--warmup", "0", "--out",
                    os.path.join(self.dir, "meta"), "--results", tsv, "--no-progress")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(os.path.join(self.dir, "meta", "result.json")) as f:
            res = json.load(f)
        self.assertEqual(res["workload"]["metadata"][0]["metadata"], {"truncated": "nested deeper than 16 levels"})
        # A 50 MB prompt: the proxy's --max-body (32 MiB) refuses it with 413.
        w = self.write("huge.csv", "prompt\n" + "x" * (50 << 20) + "\n")
        r = self.bp("bench", "--url", url, "--queries", w, "-n", "1", "--warmup", "0", "--out",
                    os.path.join(self.dir, "huge"), "--results", tsv, "--no-progress")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        with open(os.path.join(self.dir, "huge", "result.json")) as f:
            res = json.load(f)
        err = res["requests"][0]["error"]
        self.assertTrue(err.startswith("http 413: the server refused the request before reading all of its"), err)
        self.assertNotIn("Broken pipe", err)
        self.assertEqual(res["summary"]["error_kinds"], {"http 413": 1})


if __name__ == "__main__":
    unittest.main()
