"""Conditions during a run: a scripted fake nvidia-smi on the config's PATH (an older driver, a
power-cap episode), and a process loading a core from outside the engine tree."""
import json
import os
import subprocess
import sys
import unittest

from bp import BENCH_PROXY, SRC, ProxyCase, write_config

WORKLOAD = os.path.join(SRC, "configs", "workloads", "bank-intents.csv")
FAKE_SMI_DIR = os.path.join(SRC, "tests", "data", "telemetry")


class TelemetryTest(ProxyCase):
    def test_gpu_power_cap_and_a_noisy_neighbour_are_recorded_and_warned_about(self):
        cfg = write_config(self.dir, "gpu.yaml", ["--tokens", "8", "--itl-ms", "5"],
                           env={"PATH": FAKE_SMI_DIR + ":/usr/bin:/bin"}, extra="warmup: 1")
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            r = subprocess.run([BENCH_PROXY, "run", "--config", cfg, "--queries", WORKLOAD, "-n", "40",
                                "--max-tokens", "8", "--telemetry-interval-ms", "100", "--run-dir",
                                os.path.join(self.dir, "run"), "--results", os.path.join(self.dir, "r.tsv"),
                                "--no-progress"], capture_output=True, text=True, cwd=self.dir, timeout=120)
        finally:
            busy.kill()
            busy.wait()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(os.path.join(self.dir, "run", "result.json")) as f:
            res = json.load(f)
        src = res["conditions"]["sources"]
        self.assertIn("gpu0", src)
        share = src["gpu0"]["clock_event_reasons"]["sw_power_cap"]["share"]
        self.assertGreater(share, 0.15)  # every third line of the fake is power-capped
        self.assertLess(share, 0.5)
        self.assertEqual(src["gpu0"]["sm_clock_mhz"]["min"], 1410)
        self.assertGreaterEqual(src["others"]["cpu_cores"]["mean"], 0.5)  # the busy loop, outside the tree
        warnings = "\n".join(res["warnings"])
        self.assertIn("GPU 0 power-capped in", warnings)
        self.assertIn("other processes used", warnings)
        self.assertIn("conditions:", r.stdout)
        with open(os.path.join(self.dir, "run", "telemetry.csv")) as f:
            header = f.readline().strip()
            rows = f.read().splitlines()
        self.assertEqual(header, "time_unix_s,source,series,value")
        self.assertTrue(any(",gpu0,sm_clock_mhz," in row for row in rows))
        # The run's report draws them (the charts themselves are checked in a browser by test_report).
        with open(os.path.join(self.dir, "run", "report.html")) as f:
            page = f.read()
        self.assertIn('"gpu0.sm_clock_mhz"', page)
        self.assertIn('"gpu0.sw_power_cap"', page)

    def test_without_nvidia_smi_the_gpu_section_says_so_and_zero_turns_it_off(self):
        cfg = write_config(self.dir, "cpu.yaml", ["--tokens", "4"], extra="warmup: 0")
        r = subprocess.run([BENCH_PROXY, "run", "--config", cfg, "--queries", WORKLOAD, "-n", "5", "--run-dir",
                            os.path.join(self.dir, "a"), "--results", os.path.join(self.dir, "r.tsv"), "--no-progress"],
                           capture_output=True, text=True, cwd=self.dir, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(self.dir, "a", "result.json")) as f:
            res = json.load(f)
        self.assertIn("no nvidia-smi", res["conditions"]["sources"]["gpu"]["absent"])
        r = subprocess.run([BENCH_PROXY, "run", "--config", cfg, "--queries", WORKLOAD, "-n", "5", "--run-dir",
                            os.path.join(self.dir, "b"), "--telemetry-interval-ms", "0", "--results",
                            os.path.join(self.dir, "r.tsv"), "--no-progress"],
                           capture_output=True, text=True, cwd=self.dir, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "b", "telemetry.csv")))
        with open(os.path.join(self.dir, "b", "result.json")) as f:
            self.assertNotIn("conditions", json.load(f))


if __name__ == "__main__":
    unittest.main()
