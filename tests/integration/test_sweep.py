"""sweep: several configs from one process; a failing config is a row, not the end."""
import json
import os
import re
import shutil
import subprocess
import sys
import time
import unittest

from bp import BENCH_PROXY, SRC, ProxyCase, pids_with_marker, write_config

WORKLOAD = os.path.join(SRC, "configs", "workloads", "bank-intents.csv")


class SweepTest(ProxyCase):
    def test_three_configs_one_failing_gives_two_results_and_a_failed_row(self):
        marker = f"BP_SWEEP_MARKER_{os.getpid()}"
        env = {"PATH": "/usr/bin:/bin", marker: "1"}
        a = write_config(self.dir, "a_fast.yaml", ["--tokens", "16", "--itl-ms", "1"], env=dict(env, KNOB="fast"),
                         extra="warmup: 1")
        b = write_config(self.dir, "b_broken.yaml", ["--fail-startup", "out of memory"], env=env, extra="warmup: 1")
        c = write_config(self.dir, "c_slow.yaml", ["--tokens", "16", "--itl-ms", "4"], env=dict(env, KNOB="slow"),
                         extra="warmup: 1")
        r = subprocess.run([BENCH_PROXY, "sweep", a, b, c, "--queries", WORKLOAD, "-n", "5", "--sweep-dir",
                            os.path.join(self.dir, "sw"), "--results", os.path.join(self.dir, "r.tsv"),
                            "--no-progress"], capture_output=True, text=True, cwd=self.dir, timeout=180)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)  # one row failed
        with open(os.path.join(self.dir, "sw", "sweep.json")) as f:
            sw = json.load(f)
        ok = [row for row in sw["rows"] if row["ok"]]
        failed = [row for row in sw["rows"] if not row["ok"]]
        self.assertEqual(len(ok), 2)
        self.assertEqual(len(failed), 1)
        self.assertIn("b_broken.yaml", failed[0]["config"])
        self.assertIn("out of memory", failed[0]["error"])
        self.assertEqual(ok[0]["config"], a)  # sorted by headline: the fast one first
        for row in ok:
            self.assertTrue(row["teardown_verified"])
        diff = ok[1]["differs_from_first"]
        paths = [x for sec in diff["sections"].values() for c in sec for x in c["seen_in"]]
        self.assertIn("command.env.KNOB", paths)
        self.assertIn("FAILED", r.stdout)
        self.assertIn("config (", r.stdout)
        # `results` on the folder: every config in order, the failed one as a failed row.
        res = subprocess.run([BENCH_PROXY, "results", os.path.join(self.dir, "sw"), "--json"], capture_output=True,
                             text=True, timeout=60)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertEqual([x["verdict"] for x in json.loads(res.stdout)][1], "failed")
        # Exit 1: the last line is no number (docs/cli.md), but names the best of the valid rows.
        last = r.stdout.strip().splitlines()[-1]
        self.assertEqual(last, "invalid: 1 of 3 configs gave no valid result; best of the valid: %.2f (%s)"
                         % (ok[0]["headline"], os.path.basename(a)))
        self.assertEqual(pids_with_marker(marker), [])

    def test_ctrl_c_tears_the_sweep_down_cleanly(self):
        import signal, time
        from bp import wait_for
        marker = f"BP_SWEEP_INT_{os.getpid()}"
        env = {"PATH": "/usr/bin:/bin", marker: "1"}
        a = write_config(self.dir, "slow1.yaml", ["--tokens", "64", "--itl-ms", "20", "--workers", "1"], env=env,
                         extra="warmup: 0")
        b = write_config(self.dir, "slow2.yaml", ["--tokens", "64", "--itl-ms", "20"], env=env, extra="warmup: 0")
        p = subprocess.Popen([BENCH_PROXY, "sweep", a, b, "--queries", WORKLOAD, "-n", "50", "--sweep-dir",
                              os.path.join(self.dir, "sw"), "--results", os.path.join(self.dir, "r.tsv"),
                              "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=self.dir)
        wait_for(lambda: len(pids_with_marker(marker)) >= 2, timeout=60, what="the first engine")
        # The benchmark starts once the first row's snapshot is written.
        wait_for(lambda: os.path.exists(os.path.join(self.dir, "sw", "1_slow1", "meta.json")), timeout=60,
                 what="the first row's snapshot")
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 130, err)
        self.assertEqual(pids_with_marker(marker), [])
        with open(os.path.join(self.dir, "sw", "sweep.json")) as f:
            sw = json.load(f)
        self.assertTrue(sw["interrupted"])
        self.assertEqual(len(sw["rows"]), 1)  # the second config never started

    def test_ctrl_c_between_trials_keeps_the_finished_ones_valid(self):
        import signal
        from bp import wait_for
        a = write_config(self.dir, "a.yaml", ["--tokens", "64", "--itl-ms", "20"], extra="warmup: 0")
        sw = os.path.join(self.dir, "sw")
        p = subprocess.Popen([BENCH_PROXY, "sweep", a, "--trials", "3", "--redo-disturbed", "0", "--queries", WORKLOAD,
                              "-n", "5", "--max-tokens", "64", "--sweep-dir", sw, "--results", os.path.join(self.dir, "r.tsv"),
                              "--no-progress", "--telemetry-interval-ms", "0"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=self.dir)
        # Trial 1 finished (its result exists) and trial 2 is running: interrupt it.
        wait_for(lambda: os.path.exists(os.path.join(sw, "1_a", "trial-2", "engine.log")), timeout=120,
                 what="trial 2 to start")
        self.assertTrue(os.path.exists(os.path.join(sw, "1_a", "trial-1", "result.json")))
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=120)
        self.assertEqual(p.returncode, 130, err)
        with open(os.path.join(sw, "1_a", "trial-1", "result.json")) as f:
            self.assertTrue(json.load(f)["valid"])
        with open(os.path.join(sw, "1_a", "trials.json")) as f:
            agg = json.load(f)
        self.assertTrue(agg["valid"], agg.get("invalid_reasons"))  # the finished trial keeps its validity
        self.assertEqual(agg["trials"], 1)
        self.assertTrue(any("1 of 3 trials finished" in w for w in agg["warnings"]), agg["warnings"])
        self.assertIn("interrupted after 1 of 3 trials", out)
        self.assertNotIn("one trial per config", out)
        # Issue 27 item 6: the same command with --resume reuses the finished trial and runs the
        # two others into a new folder; the interrupted sweep's folder is left as it was.
        cmd = [BENCH_PROXY, "sweep", a, "--trials", "3", "--redo-disturbed", "0", "--queries", WORKLOAD, "-n", "5",
               "--max-tokens", "64", "--results", os.path.join(self.dir, "r.tsv"), "--no-progress",
               "--telemetry-interval-ms", "0"]
        before = sorted(os.listdir(os.path.join(sw, "1_a")))
        r = subprocess.run(cmd + ["--sweep-dir", os.path.join(self.dir, "sw2"), "--resume", sw], capture_output=True,
                           text=True, cwd=self.dir, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("resuming " + sw + ": reused 1 finished lifecycle", r.stdout)
        with open(os.path.join(self.dir, "sw2", "sweep.json")) as f:
            doc = json.load(f)
        self.assertFalse(doc["interrupted"])
        self.assertEqual(doc["resumed_from"], os.path.abspath(sw))
        self.assertEqual([x["trial"] for x in doc["reused"]], [1])
        results = doc["configs"][0]["results"]
        self.assertEqual(len(results), 3)
        self.assertEqual(results[0], os.path.join(os.path.abspath(sw), "1_a", "trial-1", "result.json"))
        self.assertEqual(sorted(os.listdir(os.path.join(self.dir, "sw2", "1_a"))), ["trial-2", "trial-3", "trials.json"])
        self.assertEqual(sorted(os.listdir(os.path.join(sw, "1_a"))), before)
        # Resumed once: a second resume of the same folder would count its lifecycles again.
        r2 = subprocess.run(cmd + ["--sweep-dir", os.path.join(self.dir, "sw5"), "--resume", sw], capture_output=True,
                            text=True, cwd=self.dir, timeout=120)
        self.assertEqual(r2.returncode, 2, r2.stdout + r2.stderr)
        self.assertIn("already resumed into " + os.path.join(self.dir, "sw2"), r2.stderr)
        self.assertTrue(r2.stdout.strip().splitlines()[-1].startswith("failed: --resume "), r2.stdout)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "sw5")))
        # A resume that ended without a record of its own (killed: no sweep.json, no lock held)
        # does not count: the folder can be resumed again.
        os.makedirs(os.path.join(self.dir, "ghost"))
        with open(os.path.join(sw, "resumed-by"), "w") as f:
            f.write(os.path.join(self.dir, "ghost") + "\n")
        r3 = subprocess.run(cmd + ["--sweep-dir", os.path.join(self.dir, "sw6"), "--resume", sw], capture_output=True,
                            text=True, cwd=self.dir, timeout=300)
        self.assertEqual(r3.returncode, 0, r3.stdout + r3.stderr)
        self.assertIn("ended without a record: resuming it again", r3.stderr)
        with open(os.path.join(sw, "resumed-by")) as f:
            self.assertEqual(f.read().strip(), os.path.join(self.dir, "sw6"))
        # The reused lifecycle is listed by its absolute path on purpose: read without a warning,
        # and the folder reads as the ledger has it: one row for the config's three trials.
        c = subprocess.run([BENCH_PROXY, "results", os.path.join(self.dir, "sw2"), "--json"], capture_output=True,
                           text=True, cwd=self.dir, timeout=60)
        self.assertEqual(c.returncode, 0, c.stdout + c.stderr)
        self.assertNotIn("absolute path", c.stderr)
        rows = json.loads(c.stdout)
        self.assertEqual([(x["trials"], x["verdict"]) for x in rows], [(3, "keep")])
        # Another config (other bytes), or a finished sweep, is not resumed: exit 2, nothing started.
        with open(a, "a") as f:
            f.write("# changed\n")
        r = subprocess.run(cmd + ["--sweep-dir", os.path.join(self.dir, "sw3"), "--resume", sw], capture_output=True,
                           text=True, cwd=self.dir, timeout=120)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("not the same sweep: the configs (their sha256, in order) differ", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "sw3")))
        r = subprocess.run(cmd + ["--sweep-dir", os.path.join(self.dir, "sw4"), "--resume", os.path.join(self.dir, "sw2")],
                           capture_output=True, text=True, cwd=self.dir, timeout=120)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("that sweep finished", r.stderr)



class SweepProgressTest(ProxyCase):
    """Issue 27 item 7: one progress line per lifecycle (plain lines when stderr is not a
    terminal); the engine's output stays in engine.log, and its last lines are shown when it fails."""

    def test_progress_names_config_and_trial_and_the_engines_output_stays_in_engine_log(self):
        a = write_config(self.dir, "a.yaml", ["--tokens", "4"], extra="warmup: 0")
        bad = write_config(self.dir, "bad.yaml", ["--fail-startup", "error: invalid argument: --flash-atn"],
                           extra="warmup: 0")
        r = subprocess.run([BENCH_PROXY, "sweep", a, bad, "--queries", WORKLOAD, "-n", "8", "--max-tokens", "4",
                            "--trials", "2", "--redo-disturbed", "0", "--sweep-dir", os.path.join(self.dir, "sw"),
                            "--results", os.path.join(self.dir, "r.tsv")],
                           capture_output=True, text=True, cwd=self.dir, timeout=300)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)  # the bad config's rows failed
        lines = r.stderr.splitlines()
        for trial in (1, 2):
            mine = [l for l in lines if re.match(rf"\[\d/4\] config 1/2 a, trial {trial}/2: ", l)]
            self.assertTrue(mine, r.stderr)
            self.assertRegex(mine[-1], r": 8/8 requests, 0 errors, done")
            self.assertTrue(all(re.search(r": \d/8 requests, \d errors?, (ETA [^,]+|done)", l) for l in mine), mine)
            self.assertLessEqual(len(mine), 4)  # a plain line at each quarter, not one per request
        # The engine's own lines are in engine.log, not on the console at the default level...
        self.assertFalse([l for l in lines if re.search(r"\[engine \d+", l)], r.stderr)
        with open(os.path.join(self.dir, "sw", "1_a", "trial-1", "engine.log")) as f:
            self.assertIn("mock-engine", f.read())
        # ...but the last lines of one that fails are shown.
        self.assertIn("error: invalid argument: --flash-atn", r.stdout + r.stderr)


class SweepFolderLockTest(ProxyCase):
    """Issue 27 item 5: two sweeps into one folder at once: the second refuses before anything
    starts (exit 2), naming the holder's PID; the first is untouched."""

    def test_a_second_sweep_into_a_folder_in_use_is_refused_naming_the_holder(self):
        import signal
        from bp import wait_for
        marker = f"BP_SWEEP_LOCK_{os.getpid()}"
        env = {"PATH": "/usr/bin:/bin", marker: "1"}
        # The first sweep's engine is not ready for ten minutes: it holds the folder until interrupted.
        a = write_config(self.dir, "held.yaml", ["--startup-delay-ms", "600000"], env=env,
                         extra="warmup: 0\nready_timeout_s: 900")
        b = write_config(self.dir, "second.yaml", ["--tokens", "4"], env=env, extra="warmup: 0")
        sw, tsv = os.path.join(self.dir, "sw"), os.path.join(self.dir, "r.tsv")
        first = subprocess.Popen([BENCH_PROXY, "sweep", a, "--queries", WORKLOAD, "-n", "2", "--sweep-dir", sw,
                                  "--results", tsv, "--no-progress"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=self.dir)
        self.addCleanup(lambda: first.poll() is not None or (first.send_signal(signal.SIGINT), first.communicate(timeout=120)))
        lock = os.path.join(sw, "sweep.lock")

        def holder():
            try:
                with open(lock) as f:
                    return f.read().strip()
            except OSError:
                return ""
        wait_for(lambda: holder() == str(first.pid), timeout=60, what="the first sweep's lock")
        wait_for(lambda: len(pids_with_marker(marker)) >= 2, timeout=60, what="the first sweep's engine")
        engines = pids_with_marker(marker)
        before = sorted(os.listdir(sw))
        r = subprocess.run([BENCH_PROXY, "sweep", b, "--queries", WORKLOAD, "-n", "2", "--sweep-dir", sw,
                            "--results", tsv, "--no-progress"], capture_output=True, text=True, cwd=self.dir,
                           timeout=120)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn(f"is in use by another sweep (PID {first.pid}", r.stderr)
        self.assertEqual(sorted(os.listdir(sw)), before)  # no row folder, no configs of the second
        self.assertFalse(os.path.exists(tsv))  # no ledger row
        self.assertEqual(pids_with_marker(marker), engines)  # only the first sweep's engine ever ran
        self.assertEqual(first.poll(), None)
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=120)
        self.assertEqual(pids_with_marker(marker), [])
        # The lock dies with its holder, even killed: a folder whose holder is gone is free again
        # (here it holds a sweep.json now, which is refused for that reason, not for the lock).
        r = subprocess.run([BENCH_PROXY, "sweep", b, "--queries", WORKLOAD, "-n", "2", "--sweep-dir", sw,
                            "--results", tsv, "--no-progress"], capture_output=True, text=True, cwd=self.dir,
                           timeout=120)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertNotIn("in use", r.stderr)


class VaryTest(ProxyCase):
    def sweep(self, *args):
        return subprocess.run([BENCH_PROXY, "sweep", *args, "--queries", WORKLOAD, "-n", "5", "--max-tokens", "4",
                               "--results", os.path.join(self.dir, "r.tsv"), "--no-progress",
                               "--telemetry-interval-ms", "0"],
                              capture_output=True, text=True, cwd=self.dir, timeout=300)

    def test_a_grid_of_knobs_becomes_configs_named_by_their_values(self):
        base = write_config(self.dir, "base.yaml", ["--tokens", "4", "--itl-ms", "1"], extra="warmup: 1")
        sw = os.path.join(self.dir, "sw")
        r = self.sweep(base, "--vary", "args.--itl-ms=1,2", "--vary", "env.KNOB=a,b", "--sweep-dir", sw)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        names = sorted(os.listdir(os.path.join(sw, "configs")))
        self.assertEqual(names, ["args.-itl-ms=1_env.KNOB=a.yaml", "args.-itl-ms=1_env.KNOB=b.yaml",
                                 "args.-itl-ms=2_env.KNOB=a.yaml", "args.-itl-ms=2_env.KNOB=b.yaml"])
        with open(os.path.join(sw, "sweep.json")) as f:
            doc = json.load(f)
        self.assertEqual(len(doc["configs"]), 5)  # the base first, then the grid
        self.assertEqual(doc["configs"][0]["config"], base)
        # Every generated config is a real YAML that validate accepts, and says what it varies.
        files = [os.path.join(sw, "configs", n) for n in names]
        v = subprocess.run([BENCH_PROXY, "validate", *files], capture_output=True, text=True, timeout=60)
        self.assertEqual(v.returncode, 0, v.stderr)
        resolved = json.loads(v.stdout)
        self.assertIn("[args.--itl-ms=2, env.KNOB=b]", resolved[3]["description"])
        self.assertEqual(resolved[3]["env"]["KNOB"], "b")
        r = self.sweep(base, "--vary", "warmup=0,2", "--one-at-a-time", "--sweep-dir", os.path.join(self.dir, "one"))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(sorted(os.listdir(os.path.join(self.dir, "one", "configs"))), ["warmup=0.yaml", "warmup=2.yaml"])

    def test_a_variant_runs_in_its_bases_folder_with_its_bases_repo_root(self):
        # The base is outside any git repository and has no cwd: it runs in its own folder, reads a
        # relative file and names $REPO_ROOT. Its variant lives in the sweep folder, and must too.
        with open(os.path.join(self.dir, "tmpl.txt"), "w") as f:
            f.write("{{ messages }}\n")
        base = write_config(self.dir, "base.yaml", ["--tokens", "4", "--chat-template", "tmpl.txt"],
                            env={"DATA": "$REPO_ROOT/x"}, extra="warmup: 1")
        sw = os.path.join(self.dir, "sw")
        r = self.sweep(base, "--vary", "env.KNOB=a", "--sweep-dir", sw)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        v = subprocess.run([BENCH_PROXY, "validate", base, os.path.join(sw, "configs", "env.KNOB=a.yaml")],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(v.returncode, 0, v.stderr)
        b, g = json.loads(v.stdout)
        self.assertEqual(g["cwd"], b["cwd"])
        self.assertEqual(g["env"]["DATA"], b["env"]["DATA"])
        self.assertEqual(b["env"]["DATA"], os.path.join(os.path.realpath(self.dir), "x"))

    def test_a_knob_that_does_not_exist_or_a_value_that_is_refused_stops_before_anything_starts(self):
        base = write_config(self.dir, "base.yaml", ["--tokens", "4"], extra="warmup: 1")
        for args, words in [(["--vary", "nosuchkey=1,2"], "unknown key 'nosuchkey'"),
                            (["--vary", "warmup=1,-5"], "warmup=-5"),
                            (["--vary", "env.KNOB="], "an empty value"),
                            (["--vary", "args=1"], "cannot be varied as a whole"),
                            (["--one-at-a-time"], "--one-at-a-time needs --vary")]:
            sw = os.path.join(self.dir, "never")
            r = self.sweep(base, *args, "--sweep-dir", sw)
            self.assertEqual(r.returncode, 2, (args, r.stdout + r.stderr))
            self.assertIn(words, r.stderr, args)
            self.assertFalse(os.path.exists(sw), args)
        r = self.sweep(base, base, "--vary", "env.K=a,b", "--sweep-dir", os.path.join(self.dir, "never"))
        self.assertEqual(r.returncode, 2)
        self.assertIn("exactly one CONFIG", r.stderr)


class DisturbedTest(ProxyCase):
    def test_a_trial_disturbed_by_a_neighbour_is_run_again_and_then_invalid(self):
        # A neighbour busy on one core for the whole sweep: every trial's window sees it. The
        # threshold is a quarter core, not the default three quarters: on a loaded machine (the
        # suite's other tests on the same 2 cores) the neighbour gets less than a whole core.
        burner = subprocess.Popen([sys.executable, "-c", "import time\nend=time.monotonic()+300\n"
                                   "while time.monotonic()<end: pass"])
        try:
            # The neighbour is spinning before the sweep starts (its CPU time counted by the kernel).
            def spun():
                with open(f"/proc/{burner.pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                return int(fields[11]) + int(fields[12]) >= 10  # utime + stime, clock ticks
            deadline = time.monotonic() + 60
            while not spun():
                self.assertLess(time.monotonic(), deadline, "the busy neighbour never ran")
                time.sleep(0.01)
            # Windows of about 20 x 4 x 10 ms: several of the 100 ms sampler's samples fall in each
            # however loaded the machine is (with 1 ms tokens a window could fall between two).
            a = write_config(self.dir, "a.yaml", ["--tokens", "4", "--itl-ms", "10"], extra="warmup: 1")
            sw = os.path.join(self.dir, "sw")
            r = subprocess.run([BENCH_PROXY, "sweep", a, "--trials", "2", "--redo-disturbed", "1",
                                "--disturbance-cores", "0.25", "--queries", WORKLOAD,
                                "-n", "20", "--max-tokens", "4", "--sweep-dir", sw, "--telemetry-interval-ms", "100",
                                "--results", os.path.join(self.dir, "r.tsv"), "--no-progress"],
                               capture_output=True, text=True, cwd=self.dir, timeout=300)
        finally:
            burner.kill()
            burner.wait()
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("disturbed", r.stderr)
        self.assertIn("run again", r.stderr)
        with open(os.path.join(sw, "1_a", "trials.json")) as f:
            agg = json.load(f)
        self.assertEqual(len(agg["disturbed"]), 2)  # each trial once, then still disturbed
        self.assertFalse(agg["valid"])
        self.assertTrue(any("the machine was busy" in x for x in agg["invalid_reasons"]), agg["invalid_reasons"])
        self.assertTrue(os.path.isdir(os.path.join(sw, "1_a", "trial-1-redo-1")))


class MovedFolderTest(ProxyCase):
    def test_a_sweep_folder_moved_or_copied_reads_its_own_files(self):
        a = write_config(self.dir, "a.yaml", ["--tokens", "4", "--itl-ms", "1"], extra="warmup: 1")
        sw = os.path.join(self.dir, "sw")
        r = subprocess.run([BENCH_PROXY, "sweep", a, a, "--trials", "2", "--redo-disturbed", "0", "--queries", WORKLOAD,
                            "-n", "10", "--max-tokens", "4", "--sweep-dir", sw, "--telemetry-interval-ms", "0",
                            "--results", os.path.join(self.dir, "r.tsv"), "--no-progress"],
                           capture_output=True, text=True, cwd=self.dir, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(os.path.join(sw, "sweep.json")) as f:
            doc = json.load(f)
        self.assertFalse(any(os.path.isabs(p) for c in doc["configs"] for p in c["results"]), doc["configs"])
        moved = os.path.join(self.dir, "moved")
        os.rename(sw, moved)
        compare = lambda d: subprocess.run([BENCH_PROXY, "compare", d, "--json"], capture_output=True, text=True,
                                           timeout=120)
        r = compare(moved)
        self.assertIn(r.returncode, (0, 1), r.stdout + r.stderr)
        # A copy whose first result is edited reads the edit, not the original.
        copy = os.path.join(self.dir, "copy")
        shutil.copytree(moved, copy)
        res = os.path.join(copy, "1_a", "trial-1", "result.json")
        with open(res) as f:
            d = json.load(f)
        d["valid"] = False
        d["invalid_reason"] = "edited in the copy"
        os.chmod(res, 0o644)
        with open(res, "w") as f:
            json.dump(d, f)
        r = compare(copy)
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        self.assertIn("edited in the copy", r.stdout)
        self.assertNotIn("edited in the copy", compare(moved).stdout)
        # An older sweep.json with absolute paths of the original folder: rebased onto the copy.
        with open(os.path.join(copy, "sweep.json")) as f:
            old = json.load(f)
        for c in old["configs"]:
            c["results"] = [os.path.join(sw, p) for p in c["results"]]
        old["sweep_dir"] = sw
        os.chmod(os.path.join(copy, "sweep.json"), 0o644)
        with open(os.path.join(copy, "sweep.json"), "w") as f:
            json.dump(old, f)
        r = compare(copy)
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        self.assertIn("edited in the copy", r.stdout)


if __name__ == "__main__":
    unittest.main()
