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


# A peer on the network, run inside a namespace by `ip netns exec NS python3 -c PEER ...`: the
# attacks of issue 26 items 4 and 5, and a peer that knows the token (the guard's proofs done in
# Python) to reach the frame checks behind them. Prints one JSON line of what it saw.
PEER = r"""
import hashlib, hmac, json, os, socket, struct, sys, time
mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
arg = sys.argv[4] if len(sys.argv) > 4 else ""
def recv_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            break
        b += c
    return b
def closed_by_peer(s, deadline_s=60):
    s.settimeout(deadline_s)
    try:
        while True:
            c = s.recv(65536)
            if not c:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
huge = struct.pack(">BBBBIQQQ", 1, 0, 0, 0, 0xFFFFFFFF, 1, 0, 0)
out = {}
if mode == "huge":          # issue 26 item 4 as filed: a greeting read, then a 4 GiB header
    socks = []
    for i in range(int(arg or 4)):
        s = socket.create_connection((host, port))
        g = recv_exact(s, 40)
        s.sendall(huge)
        socks.append((s, g))
    out["greeting"] = socks[0][1][:8].decode(errors="replace")
    out["closed"] = sum(closed_by_peer(s) for s, _ in socks)
elif mode == "token":       # proves the token, then sends a header: arg = operation,length (hex)
    tok = open(os.environ["BP_TOKEN_FILE"]).read().split("\n")[0].strip().encode()
    s = socket.create_connection((host, port))
    g = recv_exact(s, 40)
    an, cn = g[8:], os.urandom(32)
    s.sendall(b"BPFLEET1" + cn + hmac.new(tok, b"client" + an + cn, hashlib.sha256).digest())
    st = recv_exact(s, 1 + 32)
    out["status"] = st[:1].decode()
    out["agent_proved"] = st[1:] == hmac.new(tok, b"agent" + an + cn, hashlib.sha256).digest()
    op, length = (int(x, 16) for x in arg.split(","))
    s.sendall(struct.pack(">BBBBIQQQ", op, 0, 0, 0, length, 3, 0, 0))
    out["closed"] = closed_by_peer(s)
elif mode == "idle":        # arg connections that send nothing; how many the agent closed, and when
    socks = []
    for i in range(int(arg)):
        try:
            socks.append(socket.create_connection((host, port), timeout=30))
        except OSError as e:
            out.setdefault("connect_errors", []).append(str(e))
    print(json.dumps({"open": len(socks)}), flush=True)
    t0 = time.monotonic()
    out["closed"] = sum(closed_by_peer(s) for s in socks)
    out["seconds"] = time.monotonic() - t0
elif mode == "plain":       # one plain TCP connection with a few bytes (against a TLS agent)
    s = socket.create_connection((host, port))
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    out["closed"] = closed_by_peer(s)
elif mode == "fake-agent":  # listens as an agent: arg "basp" (a 4 GiB BASP header) or "proof" (a wrong proof)
    ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, port)); ls.listen(8)
    print(json.dumps({"listening": True}), flush=True)
    ls.settimeout(120)
    c, _ = ls.accept()
    if arg == "basp":
        c.sendall(struct.pack(">BBBBIQQQ", 0, 0, 0, 0, 0xFFFFFFFF, 3, 0, 0) + bytes(64))
    else:
        c.sendall(b"BPFLEET1" + os.urandom(32))
        recv_exact(c, 72)
        c.sendall(b"K" + os.urandom(32))
    out["closed"] = closed_by_peer(c)
print(json.dumps(out), flush=True)
"""


def status_kib(pid, key):
    for line in read(f"/proc/{pid}/status").splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    fields = read(f"/proc/{pid}/stat").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
        self.assert_sweep_written(r.stdout + r.stderr, {"1_t": "no agent could run it"})
        self.assertIn("TLS handshake failed", self.results()["1_t"]["invalid_reasons"][0])
        wait_for(lambda: "TLS handshake failed" in read(path), what="the agent to log the refused certificate")
        line = [l for l in read(path).splitlines() if "TLS handshake failed" in l][0]
        self.assertIn(ADDR["c"] + ":", line)

    def start_agent(self, n, extra=(), prefix=(), env=None, tls=None):
        path = os.path.join(self.dir, f"agent-{n}.log")
        self.logs[n] = path
        security = (["--tls-cert", f"{tls}/a.pem", "--tls-key", f"{tls}/a.key", "--tls-ca", f"{tls}/ca.pem"] if tls
                    else ["--insecure-plaintext"])
        with open(path, "w") as log:
            p = subprocess.Popen(["ip", "netns", "exec", NS[n], *prefix, BENCH_PROXY, "agent", "--listen",
                                  f"{ADDR[n]}:{PORT}", "--config-root", self.root, "--token-file", self.token,
                                  "--run-root", os.path.join(self.dir, f"runs-{n}"), "--name", n, "--label",
                                  f"site={n}", *security, *extra], stdout=log, stderr=subprocess.STDOUT,
                                 env=None if env is None else {**os.environ, **env})
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

    def peer(self, ns, mode, host, port=PORT, arg="", wait=True):
        """Runs PEER in namespace `ns`; with wait, returns what it printed last (a dict)."""
        cmd = ["ip", "netns", "exec", NS[ns], "/usr/bin/python3", "-c", PEER, mode, host, str(port), arg]
        env = {**os.environ, "BP_TOKEN_FILE": self.token}
        if not wait:
            return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return json.loads(r.stdout.strip().splitlines()[-1])

    def assert_no_abort(self, *texts):
        for t in texts:
            self.assertNotIn("terminate called", t)
            self.assertNotIn("Aborted", t)

    def sweep(self, configs, *extra, n=4, wait=True, env=None):
        cmd = ["ip", "netns", "exec", NS["c"], BENCH_PROXY, "sweep", "--agents", "agents.yaml", "--token-file",
               self.token, *configs, "--queries", "w.csv", "-n", str(n), "--max-tokens", "4", "--sweep-dir", "sw",
               "--results", "r.tsv", "--no-progress", *extra]
        env = None if env is None else {**os.environ, **env}
        if not wait:
            with open(os.path.join(self.dir, "coordinator.log"), "w") as log:
                return subprocess.Popen(cmd, cwd=self.coord, stdout=log, stderr=subprocess.STDOUT, env=env)
        return subprocess.run(cmd, cwd=self.coord, capture_output=True, text=True, timeout=600, env=env)

    def sweep_json(self):
        with open(os.path.join(self.coord, "sw", "sweep.json")) as f:
            return json.load(f)

    def results(self):
        """Each row's result.json, or its failure.json (with the reason) when no result came back."""
        out = {}
        for d in sorted(os.listdir(os.path.join(self.coord, "sw"))):
            for name in ("result.json", "failure.json"):
                p = os.path.join(self.coord, "sw", d, name)
                if os.path.exists(p):
                    with open(p) as f:
                        out[d] = json.load(f)
                    break
        return out

    def assert_sweep_written(self, text, reasons):
        """A sweep with failed rows still ends as a sweep: the table with each failed row and its
        reason, sweep.json, report.html; `compare` and `report` read the folder; nothing crashed."""
        for bad in ("type_error", "terminate called", "json.exception"):
            self.assertNotIn(bad, text)
        sw = os.path.join(self.coord, "sw")
        self.assertTrue(os.path.exists(os.path.join(sw, "report.html")), text)
        rows = {os.path.basename(r["run_dir"]): r for r in self.sweep_json()["rows"]}
        for row, why in reasons.items():
            self.assertFalse(rows[row]["valid"], rows[row])
            self.assertIn(why, rows[row]["error"])
            self.assertIn(why, self.results()[row]["invalid_reasons"][0])
            self.assertRegex(text, r"(FAILED|INVALID) .*" + __import__("re").escape(why[:40]))
        out = tempfile.mktemp(suffix=".html", dir=self.dir)
        rep = subprocess.run([BENCH_PROXY, "report", sw, "--out", out], capture_output=True, text=True)
        self.assertEqual(rep.returncode, 0, rep.stdout + rep.stderr)

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
        # Plaintext off loopback: every line the agents logged says so, the run pipeline's included.
        for n in ("a", "b"):
            lines = [l for l in read(self.logs[n]).splitlines() if l.strip()]
            self.assertTrue(any("[engine] started" in l for l in lines), lines)
            for l in lines:
                self.assertIn("[INSECURE PLAINTEXT]", l)
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
        self.assert_sweep_written(r.stdout + r.stderr, {"1_x": "resolves outside the agent's --config-root",
                                                        "2_y": "differs from the coordinator's"})
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
        self.assert_sweep_written(r.stdout + r.stderr, {"1_z": "no agent could run it"})
        # '..' never leaves the coordinator: refused on its command line (exit 2), nothing sent.
        shutil.rmtree(os.path.join(self.coord, "sw"))
        r = self.sweep(["sub/../z.yaml"])
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("relative path", r.stdout + r.stderr)
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
            self.assert_sweep_written(text, {"1_slow": f"agent {victim} lost mid-row"})
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
        self.assert_sweep_written(r.stdout + r.stderr, {"2_on-b": f"b: unreachable at {ADDR['b']}:{PORT}"})

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
        self.assertTrue(os.path.exists(os.path.join(self.coord, "sw", "sweep.json")), read(log))
        self.assertTrue(self.sweep_json()["interrupted"])
        self.assert_sweep_written(read(log), {})
        for n in ("a", "b"):
            wait_for(lambda: not [q for q in pids_in(NS[n]) if "mock-engine" in cmdline(q)], timeout=60,
                     what=f"agent {n}'s engine to be torn down")
            self.assertIsNone(self.agents[n].poll())  # the agents themselves stay up for the next sweep

    # ---- issue 26 items 4-6: the network edge -------------------------------------------------

    def test_a_header_claiming_4_gib_costs_the_agent_nothing_and_every_refusal_names_the_peer(self):
        p = self.start_agent("a")
        wait_for(lambda: status_kib(p.pid, "VmRSS") > 0, what="the agent's RSS")
        before = status_kib(p.pid, "VmHWM")
        # As filed: four connections each read the greeting and claim a 4 GiB payload.
        seen = self.peer("c", "huge", ADDR["a"], arg="4")
        self.assertEqual(seen["greeting"], "BPFLEET1")
        self.assertEqual(seen["closed"], 4)  # each closed by the agent
        # A peer with the token that then breaks the frame rules: 4 GiB as its first (handshake)
        # frame, a second handshake of another kind, an operation BASP does not have.
        for arg, why in (("1,ffffffff", "claims 4294967295 bytes"), ("1,10001", "before the handshake"),
                         ("9,0", "not a BASP frame")):
            seen = self.peer("c", "token", ADDR["a"], arg=arg)
            self.assertEqual(seen["status"], "K")
            self.assertTrue(seen["agent_proved"])
            self.assertTrue(seen["closed"])
            wait_for(lambda: why in read(self.logs["a"]), what=f"the agent to log '{why}'")
        # At most a few MiB more at the peak (docs/fleet.md: what a refused peer costs).
        grown = status_kib(p.pid, "VmHWM") - before
        self.assertLess(grown, 16 * 1024, f"peak RSS grew by {grown} KiB")
        log = read(self.logs["a"])
        refusals = [l for l in log.splitlines() if "refused" in l]
        self.assertGreaterEqual(len([l for l in refusals if "plain BASP" in l]), 4, log)
        for l in refusals:
            self.assertIn(ADDR["c"] + ":", l)
        self.assert_no_abort(log)
        # And the agent still serves a real coordinator.
        self.agents_file(["a"])
        r = self.sweep([self.config("ok.yaml")])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_a_fake_agent_costs_the_coordinator_nothing(self):
        self.agents_file(["b"])
        cfg = self.config("f.yaml")
        for arg, why in (("basp", "plain BASP"), ("proof", "did not prove the token")):
            fake = self.peer("b", "fake-agent", ADDR["b"], arg=arg, wait=False)
            self.assertIn("listening", fake.stdout.readline())
            p = self.sweep([cfg], wait=False)
            peak = 0
            while p.poll() is None:
                try:
                    peak = max(peak, status_kib(p.pid, "VmHWM"))
                except (OSError, ValueError):
                    pass
                time.sleep(0.05)
            text = read(os.path.join(self.dir, "coordinator.log"))
            self.assertEqual(p.returncode, 1, text)
            self.assertLess(peak, 256 * 1024, f"coordinator peak RSS {peak} KiB")
            self.assert_sweep_written(text, {"1_f": why})
            self.assert_no_abort(text)
            fake.wait(60)
            shutil.rmtree(os.path.join(self.coord, "sw"))

    def test_idle_connections_are_capped_closed_after_the_deadline_and_never_spin_the_agent(self):
        # ulimit -n 256 and 300 connections that send nothing (issue 26 item 5).
        p = self.start_agent("a", prefix=("prlimit", "--nofile=256:256", "--"))
        idle = self.peer("c", "idle", ADDR["a"], arg="300", wait=False)
        self.assertIn("open", idle.stdout.readline())
        cpu0, t0 = cpu_seconds(p.pid), time.monotonic()
        out, err = idle.communicate(timeout=300)
        held = time.monotonic() - t0
        cpu = cpu_seconds(p.pid) - cpu0
        seen = json.loads(out.strip().splitlines()[-1])
        self.assertEqual(seen["closed"], 300, seen)  # every one closed by the agent, none left open
        self.assertLess(cpu, 0.5 * held + 0.5, f"the agent used {cpu:.2f} s of CPU in {held:.2f} s")
        log = read(self.logs["a"])
        self.assertIn("connections are already proving the token (the limit)", log)
        self.assertIn("no complete greeting within the deadline", log)
        for l in log.splitlines():
            if "refused" in l:
                self.assertIn(ADDR["c"] + ":", l)
        # A legitimate sweep works afterwards, under the same descriptor limit.
        self.agents_file(["a"])
        r = self.sweep([self.config("ok.yaml")])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIsNone(p.poll())
        self.assert_no_abort(read(self.logs["a"]))

    def test_tls_agent_loads_its_certificate_once_and_survives_plain_tcp_and_exhausted_descriptors(self):
        ca = self.make_ca("ca1")
        cert_dir = os.path.join(self.dir, "agent-cert")
        shutil.copytree(ca, cert_dir)
        p = self.start_agent("a", tls=cert_dir)
        self.assertIn("(TLS;", read(self.logs["a"]))
        # The certificate moves away after start; one plain TCP connection arrives.
        shutil.move(cert_dir, cert_dir + ".moved")
        self.assertTrue(self.peer("c", "plain", ADDR["a"])["closed"])
        wait_for(lambda: "TLS handshake failed" in read(self.logs["a"]), what="the refusal to be logged")
        # Descriptors exhausted: the limit lowered to 8 above what the agent holds, 40 idle connections.
        held = len(os.listdir(f"/proc/{p.pid}/fd"))
        sh("prlimit", "--pid", str(p.pid), f"--nofile={held + 8}:")  # the soft limit
        cpu0, t0 = cpu_seconds(p.pid), time.monotonic()
        seen = self.peer("c", "idle", ADDR["a"], arg="40")
        spent, cpu = time.monotonic() - t0, cpu_seconds(p.pid) - cpu0
        self.assertEqual(seen["closed"], 40, seen)
        self.assertLess(cpu, 0.5 * spent + 0.5, f"the agent used {cpu:.2f} s of CPU in {spent:.2f} s")
        self.assertIn("cannot accept a connection", read(self.logs["a"]))
        self.assertIsNone(p.poll(), read(self.logs["a"]))
        sh("prlimit", "--pid", str(p.pid), "--nofile=1024:")
        # The certificate loaded at start still serves a coordinator of the fleet's CA.
        self.agents_file(["a"])
        r = self.sweep([self.config("t.yaml")], "--tls-cert", f"{ca}/c.pem", "--tls-key", f"{ca}/c.key",
                       "--tls-ca", f"{ca}/ca.pem")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assert_no_abort(read(self.logs["a"]), r.stdout + r.stderr)

    def test_a_fault_in_each_thread_fails_a_row_and_never_aborts(self):
        # The agent: its guard's connection thread, its accept loop, its actor, its runner each
        # throw once (BENCH_PROXY_FAULTS, docs/fault-injection.md); the coordinator: its guard,
        # one agent's worker thread, the storing of a row.
        faults = "fleet:agent-guard=throw,fleet:agent-accept=throw,fleet:agent-actor=throw,fleet:agent-runner=throw"
        self.start_agent("a", env={"BENCH_PROXY_FAULTS": faults})
        self.start_agent("b")
        self.agents_file(["a"])
        cfgs = [self.config(f"q{i}.yaml") for i in range(3)]
        r = self.sweep(cfgs)
        text = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, text)
        self.assert_sweep_written(text, {"1_q0": "injected fault (fleet:agent-actor)",
                                         "2_q1": "injected fault (fleet:agent-runner)"})
        self.assertTrue(self.results()["3_q2"]["valid"], text)
        self.assertIsNone(self.agents["a"].poll())
        log = read(self.logs["a"])
        for hook in ("agent-guard", "agent-accept"):
            self.assertIn(f"injected fault (fleet:{hook})", log)
        shutil.rmtree(os.path.join(self.coord, "sw"))
        self.agents_file(["a", "b"])
        r = self.sweep(cfgs[:2], env={"BENCH_PROXY_FAULTS":
                                      "fleet:coordinator-guard=throw,fleet:coordinator-worker=throw,"
                                      "fleet:coordinator-row=throw"})
        text2 = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, text2)
        self.assert_sweep_written(text2, {"1_q0": "injected fault (fleet:coordinator-row)"})
        self.assertTrue(self.results()["2_q1"]["valid"], text2)
        self.assertIn("injected fault (fleet:coordinator-worker)", text2)
        self.assert_no_abort(text, text2, read(self.logs["a"]), read(self.logs["b"]))

    def test_faults_in_the_run_pipeline_under_an_agent_fail_the_row_and_the_agent_serves_on(self):
        # The pipeline's own fault hooks (docs/fault-injection.md) inside an agent's job: the
        # warmup throws (exit 6 locally), the meta actor throws once, a collector crashes.
        self.start_agent("a", env={"BENCH_PROXY_FAULTS": "warmup=throw,meta=throw-once,collector:host=crash"})
        self.agents_file(["a"])
        r = self.sweep([self.config("w1.yaml"), self.config("w2.yaml")])
        text = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, text)
        self.assert_sweep_written(text, {"1_w1": "warmup", "2_w2": "warmup"})
        self.assertIsNone(self.agents["a"].poll())
        self.assert_no_abort(text, read(self.logs["a"]))


if __name__ == "__main__":
    unittest.main()
