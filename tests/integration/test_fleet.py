"""A fleet on real network stacks: agents in network namespaces this test creates (a bridge, one
veth pair per namespace, addresses of its own test hosts), the coordinator in a third. Needs root
(CI runs as root); the namespaces and the bridge are removed at the end, also on failure."""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from bp import BENCH_PROXY, MOCK, SRC, Proxy, wait_for, write_config

WORKLOAD = os.path.join(SRC, "configs", "workloads", "bank-intents.csv")
SUFFIX = str(os.getpid() % 100000)
BRIDGE = "bpbr" + SUFFIX
NS = {n: f"bpfleet-{n}-{SUFFIX}" for n in ("a", "b", "c")}
ADDR = {"a": "10.231.0.1", "b": "10.231.0.2", "c": "10.231.0.3"}
PORT = 7700


def sh(*cmd, check=True):
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


def can_make_namespaces():
    if os.geteuid() != 0 or not shutil.which("ip"):
        return False
    # Everything the test needs: a namespace, a bridge, a veth pair.
    probe = f"bpprobe{SUFFIX}"
    ok = (sh("ip", "netns", "add", probe, check=False).returncode == 0 and
          sh("ip", "link", "add", f"bpq{SUFFIX}", "type", "bridge", check=False).returncode == 0 and
          sh("ip", "link", "add", f"bpqa{SUFFIX}", "type", "veth", "peer", "name", f"bpqb{SUFFIX}",
             check=False).returncode == 0 and shutil.which("openssl") is not None)
    sh("ip", "link", "del", f"bpqa{SUFFIX}", check=False)
    sh("ip", "link", "del", f"bpq{SUFFIX}", check=False)
    sh("ip", "netns", "del", probe, check=False)
    return ok


def net_setup():
    sh("ip", "link", "add", BRIDGE, "type", "bridge")
    sh("ip", "link", "set", BRIDGE, "up")
    for n, ns in NS.items():
        sh("ip", "netns", "add", ns)
        host, peer = f"bpv{n}{SUFFIX}", f"bpp{n}{SUFFIX}"
        sh("ip", "link", "add", host, "type", "veth", "peer", "name", peer)
        sh("ip", "link", "set", peer, "netns", ns)
        sh("ip", "link", "set", host, "master", BRIDGE)
        sh("ip", "link", "set", host, "up")
        sh("ip", "-n", ns, "addr", "add", ADDR[n] + "/24", "dev", peer)
        sh("ip", "-n", ns, "link", "set", peer, "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")  # the engines listen on the namespace's own loopback


def net_teardown():
    for n, ns in NS.items():
        sh("ip", "netns", "del", ns, check=False)
        sh("ip", "link", "del", f"bpv{n}{SUFFIX}", check=False)
    sh("ip", "link", "del", BRIDGE, check=False)


def pids_in(ns):
    """Processes whose network namespace is `ns`."""
    try:
        target = os.stat(f"/run/netns/{ns}").st_ino
    except OSError:
        return []
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            if os.stat(f"/proc/{p}/ns/net").st_ino == target:
                out.append(int(p))
        except OSError:
            pass
    return out


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@unittest.skipUnless(can_make_namespaces(), "needs root, ip netns, bridges, veth pairs and openssl (CI runs as root)")
class FleetTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        net_teardown()  # leftovers of an earlier, killed run with the same pid
        try:
            net_setup()
        except Exception:
            net_teardown()
            raise

    @classmethod
    def tearDownClass(cls):
        net_teardown()

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="bp_fleet_")
        self.root = os.path.join(self.dir, "configs")  # the agents' --config-root
        self.coord = os.path.join(self.dir, "coord")   # the coordinator's copy of the same tree
        os.makedirs(self.root)
        os.makedirs(self.coord)
        self.token = os.path.join(self.dir, "token")
        with open(self.token, "w") as f:
            f.write("fleet-test-token-0123456789abcdef\n")
        os.chmod(self.token, 0o600)
        shutil.copy(WORKLOAD, os.path.join(self.coord, "w.csv"))
        self.agents = {}
        self.logs = {}

    def tearDown(self):
        for name, p in self.agents.items():
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait()
        for ns in NS.values():
            for pid in pids_in(ns):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def config(self, name, mock_args=("--tokens", "4", "--itl-ms", "2"), placement=None, where=("root", "coord")):
        text = (f"description: fleet {name}\nengine: mock\ncmd: {MOCK}\nargs: [" +
                ", ".join(json.dumps(a) for a in mock_args) + "]\nwarmup: 1\nenv:\n  PATH: /usr/bin:/bin\n")
        if placement:
            text += "placement:\n" + "".join(f"  {k}: {v}\n" for k, v in placement.items())
        for w in where:
            with open(os.path.join(self.root if w == "root" else self.coord, name), "w") as f:
                f.write(text)
        return name

    def make_ca(self, name):
        """A CA and one certificate per node it signs (openssl, keys without a passphrase)."""
        d = os.path.join(self.dir, name)
        os.makedirs(d)
        sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
           "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.pem")
        for node in ("a", "c"):
            sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN=node-{node}", "-keyout",
               f"{d}/{node}.key", "-out", f"{d}/{node}.csr")
            sh("openssl", "x509", "-req", "-in", f"{d}/{node}.csr", "-CA", f"{d}/ca.pem", "-CAkey", f"{d}/ca.key",
               "-CAcreateserial", "-days", "2", "-out", f"{d}/{node}.pem")
        return d

    def test_tls_with_a_ca_works_and_a_certificate_from_another_ca_is_refused(self):
        ca = self.make_ca("ca1")
        other = self.make_ca("ca2")
        path = os.path.join(self.dir, "agent-a.log")
        self.logs["a"] = path
        with open(path, "w") as log:
            p = subprocess.Popen(["ip", "netns", "exec", NS["a"], BENCH_PROXY, "agent", "--listen", f"{ADDR['a']}:{PORT}",
                                  "--config-root", self.root, "--token-file", self.token, "--run-root",
                                  os.path.join(self.dir, "runs-a"), "--name", "a", "--tls-cert", f"{ca}/a.pem",
                                  "--tls-key", f"{ca}/a.key", "--tls-ca", f"{ca}/ca.pem"],
                                 stdout=log, stderr=subprocess.STDOUT)
        self.agents["a"] = p
        wait_for(lambda: "agent listening on port" in read(path) or p.poll() is not None, timeout=60,
                 what="the TLS agent to listen")
        self.assertIn("(TLS;", read(path))
        self.agents_file(["a"])
        cfg = self.config("t.yaml")
        r = self.sweep([cfg], "--tls-cert", f"{ca}/c.pem", "--tls-key", f"{ca}/c.key", "--tls-ca", f"{ca}/ca.pem")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        res = self.results()["1_t"]
        self.assertTrue(res["valid"])
        self.assertFalse(res["fleet"]["insecure_plaintext"])
        # A coordinator whose certificate another CA signed gets nowhere.
        shutil.rmtree(os.path.join(self.coord, "sw"))
        r = self.sweep([cfg], "--tls-cert", f"{other}/c.pem", "--tls-key", f"{other}/c.key", "--tls-ca", f"{ca}/ca.pem")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("no agent could run it", self.results()["1_t"]["invalid_reasons"][0])

    def start_agent(self, n, extra=()):
        path = os.path.join(self.dir, f"agent-{n}.log")
        self.logs[n] = path
        with open(path, "w") as log:
            p = subprocess.Popen(["ip", "netns", "exec", NS[n], BENCH_PROXY, "agent", "--listen", f"{ADDR[n]}:{PORT}",
                              "--config-root", self.root, "--token-file", self.token, "--run-root",
                              os.path.join(self.dir, f"runs-{n}"), "--name", n, "--label", f"site={n}",
                                  "--insecure-plaintext", *extra], stdout=log, stderr=subprocess.STDOUT)
        self.agents[n] = p
        wait_for(lambda: "agent listening on port" in read(path) or p.poll() is not None,
                 timeout=60, what=f"agent {n} to listen")
        self.assertIsNone(p.poll(), read(path))
        return p

    def agents_file(self, names, token_ok=True):
        path = os.path.join(self.coord, "agents.yaml")
        with open(path, "w") as f:
            f.write("agents:\n")
            for n in names:
                f.write(f"  - name: {n}\n    address: {ADDR[n]}:{PORT}\n    labels: {{site: {n}}}\n")
        return path

    def sweep(self, configs, *extra, n=4, wait=True):
        cmd = ["ip", "netns", "exec", NS["c"], BENCH_PROXY, "sweep", "--agents", "agents.yaml", "--token-file",
               self.token, *configs, "--queries", "w.csv", "-n", str(n), "--max-tokens", "4", "--sweep-dir", "sw",
               "--results", "r.tsv", "--no-progress", *extra]
        if not wait:
            with open(os.path.join(self.dir, "coordinator.log"), "w") as log:
                return subprocess.Popen(cmd, cwd=self.coord, stdout=log, stderr=subprocess.STDOUT)
        return subprocess.run(cmd, cwd=self.coord, capture_output=True, text=True, timeout=600)

    def sweep_json(self):
        with open(os.path.join(self.coord, "sw", "sweep.json")) as f:
            return json.load(f)

    def results(self):
        out = {}
        for d in sorted(os.listdir(os.path.join(self.coord, "sw"))):
            p = os.path.join(self.coord, "sw", d, "result.json")
            if os.path.exists(p):
                with open(p) as f:
                    out[d] = json.load(f)
        return out

    def test_the_serving_binary_maps_no_network_layer_and_agent_hands_over_in_the_same_process(self):
        # bench-proxy serve: no libcaf_io, libcaf_openssl or libssl in its address space.
        proxy = Proxy(write_config(self.dir))
        try:
            self.assertIsNotNone(proxy.port, "\n".join(proxy.lines))
            maps = read(f"/proc/{proxy.p.pid}/maps")
            self.assertIn("libcaf_core", maps)
            for lib in ("libcaf_io", "libcaf_openssl", "libssl"):
                self.assertNotIn(lib, maps)
        finally:
            proxy.stop()
        # bench-proxy agent: the same PID becomes bench-proxy-fleet, which has them.
        p = self.start_agent("a")
        exe = os.readlink(f"/proc/{p.pid}/exe")
        self.assertTrue(exe.endswith("/bench-proxy-fleet"), exe)
        self.assertIn("libcaf_io", read(f"/proc/{p.pid}/maps"))

    def test_four_configs_across_two_agents_each_on_the_agent_it_names(self):
        self.start_agent("a")
        self.start_agent("b")
        self.agents_file(["a", "b"])
        cfgs = [self.config("c1.yaml", placement={"site": "a"}), self.config("c2.yaml", placement={"site": "b"}),
                self.config("c3.yaml", placement={"site": "a"}), self.config("c4.yaml", placement={"site": "b"})]
        r = self.sweep(cfgs)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        res = self.results()
        self.assertEqual(len(res), 4, res.keys())
        for d, want in (("1_c1", "a"), ("2_c2", "b"), ("3_c3", "a"), ("4_c4", "b")):
            self.assertEqual(res[d]["fleet"]["agent"], want)
            self.assertTrue(res[d]["valid"], res[d].get("invalid_reasons"))
            self.assertTrue(res[d]["fleet"]["insecure_plaintext"])
            self.assertTrue(any("plaintext" in w for w in res[d]["warnings"]))
            # Stored locally, in the local sweep's layout: the snapshot, the engine log, the proxy's records.
            for f in ("meta.json", "engine.log", "requests.jsonl"):
                self.assertTrue(os.path.exists(os.path.join(self.coord, "sw", d, f)), f)
            # And the agent kept its own copy.
            self.assertTrue(os.path.exists(os.path.join(res[d]["fleet"]["agent_run_dir"], "result.json")))
        self.assertEqual(len(self.sweep_json()["rows"]), 4)
        # compare and report work unchanged on the folder.
        c = subprocess.run([BENCH_PROXY, "compare", os.path.join(self.coord, "sw")], capture_output=True, text=True)
        self.assertIn(c.returncode, (0, 1), c.stdout + c.stderr)
        rep = subprocess.run([BENCH_PROXY, "report", os.path.join(self.coord, "sw"), "--out",
                              os.path.join(self.dir, "rep.html")], capture_output=True, text=True)
        self.assertEqual(rep.returncode, 0, rep.stdout + rep.stderr)

    def test_wrong_token_config_outside_the_root_and_changed_config_are_refused(self):
        self.start_agent("a")
        self.agents_file(["a"])
        # Outside the root: a symlink in the agent's root pointing elsewhere; the coordinator has a file.
        outside = os.path.join(self.dir, "elsewhere.yaml")
        self.config("x.yaml", where=("coord",))
        shutil.copy(os.path.join(self.coord, "x.yaml"), outside)
        os.symlink(outside, os.path.join(self.root, "x.yaml"))
        # Changed: the agent's copy differs from the coordinator's.
        self.config("y.yaml")
        with open(os.path.join(self.root, "y.yaml"), "a") as f:
            f.write("# changed on the agent\n")
        r = self.sweep(["x.yaml", "y.yaml"])
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        res = self.results()
        self.assertIn("resolves outside the agent's --config-root", res["1_x"]["invalid_reasons"][0])
        self.assertIn("differs from the coordinator's", res["2_y"]["invalid_reasons"][0])
        log = read(self.logs["a"])
        self.assertIn("refused row", log)
        self.assertNotIn("accepted row", log)  # nothing was started
        # A wrong token: the hello is refused, and logged by the agent.
        shutil.rmtree(os.path.join(self.coord, "sw"))
        with open(os.path.join(self.dir, "bad-token"), "w") as f:
            f.write("not-the-fleet-token-at-all-000000\n")
        os.chmod(os.path.join(self.dir, "bad-token"), 0o600)
        self.token = os.path.join(self.dir, "bad-token")
        self.config("z.yaml")
        r = self.sweep(["z.yaml"])
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("refused the hello", r.stdout + r.stderr)
        wait_for(lambda: "wrong token" in read(self.logs["a"]), what="the agent to log the wrong token")
        # Logged with the peer's address (the connections to the agent's port at that moment).
        line = [l for l in read(self.logs["a"]).splitlines() if "wrong token" in l][0]
        self.assertIn(ADDR["c"] + ":", line)

    def kill_mid_row(self, how, retry):
        self.start_agent("a")
        self.start_agent("b")
        self.agents_file(["a", "b"])
        slow = self.config("slow.yaml", mock_args=("--ttft-ms", "500", "--itl-ms", "50"))  # >= 0.5 s per request
        quick = self.config("quick.yaml")
        p = self.sweep([slow, quick], *(["--retry-elsewhere"] if retry else []), n=10, wait=False)
        log = os.path.join(self.dir, "coordinator.log")
        m = wait_for(lambda: __import__("re").search(r"1_slow on (\w): 1/10 requests", read(log)),
                     timeout=120, what="the slow row to be under way")
        victim = m.group(1)
        t0 = time.monotonic()
        if how == "kill":
            self.agents[victim].send_signal(signal.SIGKILL)  # `ip netns exec` execs: this is the agent
        else:
            sh("ip", "link", "set", f"bpv{victim}{SUFFIX}", "down")
        try:
            p.wait(300)
            lost_after = time.monotonic() - t0
        finally:
            if how != "kill":
                sh("ip", "link", "set", f"bpv{victim}{SUFFIX}", "up")
        text = read(log)
        self.assertIn(f"agent {victim} lost mid-row", text)
        res = self.results()
        other = "b" if victim == "a" else "a"
        self.assertTrue(res["2_quick"]["valid"], text)
        if retry:
            self.assertEqual(p.returncode, 0, text)
            self.assertEqual(res["1_slow"]["fleet"]["agent"], other)
            self.assertTrue(res["1_slow"]["valid"])
            self.assertIn(f"{victim}: lost mid-row", " ".join(res["1_slow"]["fleet"]["attempts"]))
        else:
            self.assertEqual(p.returncode, 1, text)
            self.assertIn(f"agent {victim} lost mid-row", res["1_slow"]["invalid_reasons"][0])
        print(f"\n[fleet] agent {victim} lost ({how}); the sweep ended {lost_after:.1f} s later", flush=True)
        # Nothing of the killed agent's engine survives in its namespace.
        if how == "kill":
            wait_for(lambda: not [q for q in pids_in(NS[victim]) if "mock-engine" in cmdline(q)],
                     timeout=60, what="the killed agent's engine tree to go")

    def test_sigkill_of_an_agent_mid_row_fails_that_row_and_the_rest_complete(self):
        self.kill_mid_row("kill", retry=False)

    def test_sigkill_mid_row_with_retry_elsewhere_completes_on_the_other_agent(self):
        self.kill_mid_row("kill", retry=True)

    def test_a_cut_link_mid_row_with_retry_elsewhere_completes_on_the_other_agent(self):
        self.kill_mid_row("link", retry=True)

    def test_an_agent_unreachable_at_start_fails_its_rows_with_the_reason_and_the_others_go_on(self):
        self.start_agent("a")  # b is listed but never started: nothing listens at its address
        self.agents_file(["a", "b"])
        on_a = self.config("on-a.yaml", placement={"site": "a"})
        on_b = self.config("on-b.yaml", placement={"site": "b"})
        r = self.sweep([on_a, on_b])
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        res = self.results()
        self.assertTrue(res["1_on-a"]["valid"])
        why = res["2_on-b"]["invalid_reasons"][0]
        self.assertIn("no agent could run it", why)
        self.assertIn(f"b: unreachable at {ADDR['b']}:{PORT}", why)

    def test_an_agent_restarted_during_a_sweep_is_seen_as_new_and_gets_work_again(self):
        self.start_agent("a")
        self.agents_file(["a"])
        slow = self.config("slow.yaml", mock_args=("--ttft-ms", "500", "--itl-ms", "50"), placement={"site": "a"})
        quick = self.config("quick.yaml", placement={"site": "a"})
        p = self.sweep([slow, quick], n=10, wait=False)
        log = os.path.join(self.dir, "coordinator.log")
        wait_for(lambda: "1_slow on a: 1/10 requests" in read(log), timeout=120, what="the slow row under way")
        self.agents["a"].send_signal(signal.SIGKILL)
        self.agents["a"].wait()
        wait_for(lambda: "agent a lost mid-row" in read(log), timeout=60, what="the coordinator to see the loss")
        self.start_agent("a")  # the same host, a new process
        self.assertEqual(p.wait(300), 1, read(log))  # the lost row failed...
        res = self.results()
        self.assertIn("agent a lost mid-row", res["1_slow"]["invalid_reasons"][0])
        self.assertTrue(res["2_quick"]["valid"], read(log))  # ...and the restarted agent ran the next one
        self.assertEqual(res["2_quick"]["fleet"]["agent"], "a")
        self.assertIn("ran on: 1_slow=- 2_quick=a@", read(log))

    def test_ctrl_c_of_the_coordinator_tears_every_run_down(self):
        self.start_agent("a")
        self.start_agent("b")
        self.agents_file(["a", "b"])
        s1 = self.config("s1.yaml", mock_args=("--ttft-ms", "500", "--itl-ms", "50"))
        s2 = self.config("s2.yaml", mock_args=("--ttft-ms", "500", "--itl-ms", "50"))
        p = self.sweep([s1, s2], n=10, wait=False)
        log = os.path.join(self.dir, "coordinator.log")
        wait_for(lambda: read(log).count("1/10 requests") >= 2, timeout=120, what="both rows under way")
        p.send_signal(signal.SIGINT)
        self.assertEqual(p.wait(300), 130, read(log))
        for n in ("a", "b"):
            wait_for(lambda: not [q for q in pids_in(NS[n]) if "mock-engine" in cmdline(q)], timeout=60,
                     what=f"agent {n}'s engine to be torn down")
            self.assertIsNone(self.agents[n].poll())  # the agents themselves stay up for the next sweep


if __name__ == "__main__":
    unittest.main()
