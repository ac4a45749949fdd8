"""The portable bundle (scripts/bundle.sh) on a machine without our build dependencies.

A bare Debian root made with `debootstrap --variant=minbase` (no libcaf, Boost, yaml-cpp, spdlog,
fmt, prometheus-cpp or OpenSSL libraries; only glibc, libstdc++ and what apt needs) gets the
tarball, unpacks it with its own tar, and runs it: `--version`, `validate`, `serve` of the mock
(/healthz until ready, /meta, a completion, stopped by PID), `run` with the shipped workload,
`report` of that run, and a TLS fleet agent (bench-proxy hands over to bench-proxy-fleet, which
loads libssl and reads no CA store). ldd inside the root must resolve every library outside glibc
into the bundle. The tarball must be the same bytes when made twice.

The root is made once per suite and architecture, from this machine's own apt sources, and kept
as a tarball in the cache ($BENCH_PROXY_CACHE, else ~/.cache/bench-proxy): about a minute of
downloads cold, two seconds to unpack afterwards. Every command runs in a mount namespace of its own
(unshare) with /proc mounted inside it, so nothing stays mounted whatever happens; afterwards no
process may have its root in the test's root (any found is SIGKILLed by PID, and the test fails).
Needs root (CI runs as root) and debootstrap (scripts/deps.sh installs it; the test installs it
when missing). When debootstrap cannot be installed or the mirror cannot be reached the test
FAILS, saying why: it never skips.
"""
import fcntl
import glob
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest

from bp import BIN, SRC, wait_for

BUILD_DIR = os.path.dirname(os.path.abspath(BIN))
CACHE = os.environ.get("BENCH_PROXY_CACHE") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.join(os.environ.get("HOME") or "/root", ".cache"), "bench-proxy")
# What the bare root must not have: the build dependencies' runtime libraries (the bundle brings them).
ABSENT = ("libcaf_", "libyaml-cpp", "libspdlog", "libfmt", "libprometheus-cpp", "libboost", "libssl.so", "libcrypto.so")
GLIBC = re.compile(r"^(linux-vdso\.so\.1|ld-linux-x86-64\.so\.2|libc\.so\.6|libm\.so\.6|libmvec\.so\.1|libpthread\.so\.0|"
                   r"libdl\.so\.2|librt\.so\.1|libresolv\.so\.2|libutil\.so\.1|libanl\.so\.1)$")


def sh(*args, timeout=600, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)


def os_release():
    out = {}
    with open("/etc/os-release") as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            out[k] = v.strip('"')
    return out


def apt_sources():
    """(types, uris, suites) of every enabled entry of this machine's apt sources, both formats."""
    entries = []
    files = ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")) + \
        sorted(glob.glob("/etc/apt/sources.list.d/*.sources"))
    for path in files:
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        if path.endswith(".sources"):
            for para in re.split(r"\n\s*\n", text):
                fields, key = {}, None
                for line in para.splitlines():
                    if line.startswith("#") or not line.strip():
                        continue
                    if line[0] in " \t" and key:
                        fields[key] += " " + line.strip()
                        continue
                    key, _, v = line.partition(":")
                    key = key.strip().lower()
                    fields[key] = v.strip()
                if fields.get("enabled", "yes").lower() == "no":
                    continue
                entries.append((fields.get("types", "").split(), fields.get("uris", "").split(),
                                fields.get("suites", "").split()))
        else:
            for line in text.splitlines():
                line = line.split("#", 1)[0].strip()
                line = re.sub(r"\[[^\]]*\]", "", line).split()
                if len(line) >= 3:
                    entries.append(([line[0]], [line[1]], [line[2]]))
    return entries


def mirror_for(suite):
    """The first `deb` entry of this machine's apt sources that carries SUITE itself (not -updates)."""
    for types, uris, suites in apt_sources():
        if "deb" in types and suite in suites:
            for u in uris:
                if u.startswith(("http://", "https://", "file:/")):
                    return u
    return None


def ensure_debootstrap():
    if shutil.which("debootstrap"):
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    r = sh("apt-get", "-o", "DPkg::Lock::Timeout=600", "update", "-qq", env=env)
    if r.returncode == 0:
        r = sh("apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-qq", "--no-install-recommends",
               "debootstrap", env=env)
    if r.returncode != 0 or not shutil.which("debootstrap"):
        raise AssertionError("debootstrap is missing and could not be installed (apt-get install debootstrap): "
                             + (r.stderr or r.stdout)[-2000:])


def minbase_tarball():
    """The cached minbase root of this machine's suite and architecture; made on first use."""
    suite = os_release().get("VERSION_CODENAME")
    if not suite:
        raise AssertionError("/etc/os-release names no VERSION_CODENAME: which Debian suite to bootstrap?")
    arch = sh("dpkg", "--print-architecture").stdout.strip()
    os.makedirs(CACHE, exist_ok=True)
    path = os.path.join(CACHE, f"minbase-{suite}-{arch}.tar.gz")
    with open(path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two suites at once: one bootstraps, the other waits
        if os.path.exists(path):
            return path, suite
        ensure_debootstrap()
        mirror = mirror_for(suite)
        if not mirror:
            raise AssertionError(f"no deb entry for suite {suite} in /etc/apt/sources.list{{,.d/*}}: "
                                 "no mirror to bootstrap the bare root from")
        work = tempfile.mkdtemp(prefix="bp_minbase_", dir="/var/tmp")
        try:
            root = os.path.join(work, "root")
            t0 = time.monotonic()
            r = sh("debootstrap", "--variant=minbase", f"--arch={arch}", suite, root, mirror, timeout=1800)
            if r.returncode != 0:
                log = ""
                try:
                    with open(os.path.join(root, "debootstrap", "debootstrap.log")) as f:
                        log = f.read()[-2000:]
                except OSError:
                    pass
                raise AssertionError(f"debootstrap --variant=minbase {suite} {root} {mirror} failed "
                                     f"(exit {r.returncode}; is the mirror reachable?):\n{r.stderr[-2000:]}\n{log}")
            for d in ("var/cache/apt/archives", "var/lib/apt/lists"):
                for f in glob.glob(os.path.join(root, d, "*")):
                    if os.path.isfile(f):
                        os.unlink(f)
            r = sh("tar", "-C", root, "--numeric-owner", "-czf", path + ".tmp", ".")
            if r.returncode != 0:
                raise AssertionError("cannot cache the minbase root: " + r.stderr)
            os.replace(path + ".tmp", path)
            print(f"\nbootstrapped {suite}/{arch} minbase from {mirror} in {time.monotonic() - t0:.0f} s; cached as {path}",
                  flush=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return path, suite


def make_bundle(out, epoch=None):
    env = dict(os.environ)
    if epoch is not None:
        env["SOURCE_DATE_EPOCH"] = str(epoch)
    r = sh("bash", os.path.join(SRC, "scripts", "bundle.sh"), "--build-dir", BUILD_DIR, "--out", out, env=env)
    if r.returncode != 0:
        raise AssertionError(f"scripts/bundle.sh failed (exit {r.returncode}):\n{r.stderr}")
    return r.stdout.strip().splitlines()[-1], r.stderr


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class BundleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise AssertionError("test_bundle needs root (chroot, mounts): CI runs as root")
        cls.work = tempfile.mkdtemp(prefix="bp_bundle_")
        cls.root = None
        try:
            cls.epoch = int(sh("git", "-C", SRC, "log", "-1", "--format=%ct").stdout.strip() or "0")
            cls.tarball, cls.bundle_log = make_bundle(os.path.join(cls.work, "dist"), cls.epoch)
            cls.name = os.path.basename(cls.tarball)[:-len(".tar.gz")]
            t0 = time.monotonic()
            base, cls.suite = minbase_tarball()
            cls.root = os.path.join(cls.work, "root")
            os.mkdir(cls.root)
            r = sh("tar", "-C", cls.root, "--numeric-owner", "-xzf", base)
            if r.returncode != 0:
                raise AssertionError(f"cannot unpack {base}: {r.stderr}")
            cls.root_s = time.monotonic() - t0
            os.makedirs(os.path.join(cls.root, "work"))
            shutil.copy(cls.tarball, os.path.join(cls.root, "tmp"))
            # Unpacked by the bare root's own tar and gzip, where a user would put it.
            r = cls.inroot(["tar", "-xzf", "/tmp/" + os.path.basename(cls.tarball), "-C", "/opt"])
            if r.returncode != 0:
                raise AssertionError("the bare root's tar cannot unpack the bundle: " + r.stderr)
            cls.opt = "/opt/" + cls.name
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        leftovers = cls.sweep()
        mounted = []
        if cls.root:
            with open("/proc/self/mountinfo") as f:
                mounted = [l.split()[4] for l in f if l.split()[4].startswith(cls.root)]
        shutil.rmtree(cls.work, ignore_errors=True)
        assert not leftovers, f"processes left running in the bare root (SIGKILLed): {leftovers}"
        assert not mounted, f"left mounted: {mounted}"

    @classmethod
    def sweep(cls):
        """SIGKILLs, by PID, every process whose root is the bare root; returns what it found."""
        if not cls.root:
            return []
        found = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                if os.path.realpath(f"/proc/{d}/root") == os.path.realpath(cls.root):
                    with open(f"/proc/{d}/cmdline", "rb") as f:
                        found.append((int(d), f.read().replace(b"\0", b" ").decode(errors="replace")[:200]))
                    os.kill(int(d), signal.SIGKILL)
            except OSError:
                pass
        return found

    @classmethod
    def argv(cls, args, cwd="/work"):
        # unshare execs chroot execs env execs the command: one PID all along, so a signal sent
        # to Popen.pid reaches the command itself. /proc is mounted in the new mount namespace
        # only, and goes with it.
        return ["unshare", "--mount", "--propagation", "private", f"--mount-proc={cls.root}/proc",
                "chroot", cls.root, "/usr/bin/env", "-i", "-C", cwd, "PATH=/usr/bin:/bin", "HOME=/root",
                *args]

    @classmethod
    def inroot(cls, args, cwd="/work", timeout=300):
        return sh(*cls.argv(args, cwd), timeout=timeout)

    def tearDown(self):
        left = self.sweep()
        self.assertEqual(left, [], "processes left running in the bare root (SIGKILLed)")

    def bp(self, *args, timeout=300):
        return self.inroot([self.opt + "/bin/bench-proxy", *args], timeout=timeout)

    # --- the tarball itself ---

    def test_1_tarball(self):
        """Name, layout, glibc floor, README, unit; the same bytes when made twice; the root is bare."""
        with open(os.path.join(SRC, "CMakeLists.txt")) as f:
            version = re.search(r"project\(bench_proxy VERSION ([0-9.]+)", f.read())
        self.assertEqual(self.name, f"bench-proxy-{version.group(1)}-linux-x86_64")
        top = os.path.join(self.root, "opt", self.name)
        for p in ("bin/bench-proxy", "bin/bench-proxy-fleet", "bin/bench-proxy-shim", "bin/mock-engine", "lib/libstdc++.so.6",
                  "lib/libgcc_s.so.1", "lib/libcaf_core.so.0.17.6", "lib/libcaf_io.so.0.17.6", "lib/libssl.so.3",
                  "lib/libcrypto.so.3", "share/bench-proxy/docs/README.md", "share/bench-proxy/docs/fleet.md",
                  "share/bench-proxy/configs/demo-mock.yaml", "share/bench-proxy/configs/workloads/bank-intents.csv",
                  "share/bench-proxy/systemd/bench-proxy-agent.service", "share/bench-proxy/systemd/agent.env",
                  "share/doc/third-party/LIBRARIES", "README", "SHA256SUMS"):
            self.assertTrue(os.path.isfile(os.path.join(top, p)), p)
        for lib in os.listdir(os.path.join(top, "lib")):
            self.assertFalse(GLIBC.match(lib), f"glibc's {lib} must stay the host's")
        floor = re.search(r"needs glibc >= ([0-9.]+)", self.bundle_log).group(1)
        with open(os.path.join(top, "README")) as f:
            self.assertIn(f"glibc, version {floor} or later", f.read())
        with open(os.path.join(SRC, "README.md")) as f:
            self.assertTrue(f"glibc {floor} " in f.read(), f"README.md must say the bundle needs glibc {floor}")
        with open(os.path.join(top, "share/bench-proxy/systemd/bench-proxy-agent.service")) as f:
            unit = f.read()
        for line in ("EnvironmentFile=/etc/bench-proxy/agent.env", "NoNewPrivileges=yes", "KillSignal=SIGINT",
                     "ExecStart=/opt/bench-proxy/bin/bench-proxy agent "):
            self.assertIn(line, unit)
        # Every entry owned by 0:0 with the commit's time; sorted.
        r = sh("tar", "-tvzf", self.tarball)
        names = [l.split()[-1] for l in r.stdout.splitlines()]
        self.assertEqual(names, sorted(names, key=lambda n: n.rstrip("/").split("/")))
        self.assertTrue(all(l.split()[1] == "0/0" for l in r.stdout.splitlines()))
        again, _ = make_bundle(os.path.join(self.work, "again"), self.epoch)
        self.assertEqual(sha256(again), sha256(self.tarball), "the bundle is not reproducible")
        # The root really lacks the build dependencies' libraries (outside /opt, where the bundle is).
        have = []
        for d, dirs, files in os.walk(self.root):
            if d == self.root:
                dirs[:] = [x for x in dirs if x not in ("opt", "proc", "work", "tmp")]
            have += [os.path.join(d, f) for f in files if f.startswith(ABSENT)]
        self.assertEqual(have, [], "the bare root has a library the bundle must bring")
        pkgs = self.inroot(["dpkg-query", "-W", "-f", "${Package}\\n"]).stdout.split()
        self.assertTrue(pkgs, "dpkg-query found no packages in the root")
        self.assertEqual([p for p in pkgs if p.endswith("-dev") or p.startswith(("libcaf", "libboost", "libssl"))], [])
        print(f"\n{self.name}: {os.path.getsize(self.tarball)} bytes, glibc >= {floor}; "
              f"bare {self.suite} root ready in {self.root_s:.1f} s", flush=True)

    def test_2_libraries_resolve_inside_the_bundle(self):
        """ldd inside the root: every library but glibc's comes from the bundle's lib/, also when
        LD_LIBRARY_PATH names a directory with other copies (the root's own libstdc++, libgcc_s)."""
        for b, env in [(b, e) for b in ("bench-proxy", "bench-proxy-fleet", "mock-engine")
                       for e in ([], ["LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu"])]:
            r = self.inroot([*env, "ldd", f"{self.opt}/bin/{b}"])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertNotIn("not found", r.stdout)
            for line in r.stdout.splitlines():
                parts = line.split()
                if len(parts) < 3 or parts[1] != "=>":
                    continue
                soname, path = parts[0], os.path.normpath(parts[2])
                if GLIBC.match(soname):
                    self.assertFalse(path.startswith(self.opt), f"{b}: glibc's {soname} from the bundle")
                else:
                    self.assertTrue(path.startswith(self.opt + "/lib/"), f"{b} {env}: {soname} => {path}, outside the bundle")

    def test_3_version_and_validate(self):
        r = self.bp("--version")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^bench-proxy [0-9.]+\n")
        self.assertIn(f"binary {self.opt}/bin/bench-proxy sha256 ", r.stdout)
        r = self.inroot([self.opt + "/bin/bench-proxy", "validate", "demo-mock.yaml"],
                        cwd=self.opt + "/share/bench-proxy/configs")
        self.assertEqual(r.returncode, 0, r.stderr)
        cfg = json.loads(r.stdout)
        self.assertEqual(cfg["resolved_cmd"], self.opt + "/bin/mock-engine")

    def test_4_serve(self):
        """serve of the mock: ready within a deadline, /meta, a completion, stopped by PID."""
        p = subprocess.Popen(self.argv([self.opt + "/bin/bench-proxy", "serve", "--listen", "127.0.0.1:0",
                                        "--config", self.opt + "/share/bench-proxy/configs/demo-mock.yaml",
                                        "--run-dir", "/work/serve"]),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        lines = []
        t = threading.Thread(target=lambda: [lines.append(l.decode(errors="replace")) for l in p.stdout], daemon=True)
        t.start()
        try:
            def port():
                if p.poll() is not None:
                    raise AssertionError("bench-proxy serve exited early:\n" + "".join(lines))
                m = re.search(r"listening on [\d.]+:(\d+)", "".join(lines))
                return m and int(m.group(1))
            port = wait_for(port, timeout=30, what="serve to listen")

            def get(path, method="GET", body=None):
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                try:
                    c.request(method, path, body=body, headers={"Content-Type": "application/json"} if body else {})
                    r = c.getresponse()
                    return r.status, dict(r.getheaders()), r.read()
                finally:
                    c.close()

            def ready():
                if p.poll() is not None:
                    raise AssertionError("bench-proxy serve exited early:\n" + "".join(lines))
                try:
                    return json.loads(get("/healthz")[2]).get("state") == "ready"
                except (OSError, ValueError):
                    return False
            wait_for(ready, timeout=60, step=0.1, what="/healthz ready")
            status, headers, body = get("/meta")
            self.assertEqual(status, 200)
            meta = json.loads(body)
            self.assertEqual(meta["bench_proxy"]["binary"], self.opt + "/bin/bench-proxy")
            # The engine's shim is the bundle's bench-proxy-shim (static: no library to find).
            self.assertEqual(os.readlink(f"/proc/{meta['engine']['supervisor_pid']}/exe"),
                             self.root + self.opt + "/bin/bench-proxy-shim")
            self.assertEqual(meta["gpus"], {"available": False, "reason": "nvidia-smi: not found"})
            libs = json.dumps(meta["loaded_libs"])
            self.assertIn(self.opt + "/lib/libstdc++.so.6", libs)  # the mock's own, from the bundle
            status, _, body = get("/v1/chat/completions", "POST", json.dumps(
                {"model": "demo-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}))
            self.assertEqual(status, 200, body)
            self.assertIn("choices", json.loads(body))
            p.send_signal(signal.SIGINT)
            self.assertEqual(p.wait(30), 0, "".join(lines))
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            t.join(5)
            p.stdout.close()

    def test_5_run_and_report(self):
        cfg = self.opt + "/share/bench-proxy/configs"
        r = self.bp("run", "--config", cfg + "/demo-mock.yaml", "--queries", cfg + "/workloads/bank-intents.csv",
                    "--run-dir", "/work/run", "--no-progress", "--bootstrap", "200")
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        headline = r.stdout.strip().splitlines()[-1]
        self.assertGreater(float(headline), 0, r.stdout)
        with open(os.path.join(self.root, "work/run/result.json")) as f:
            result = json.load(f)
        self.assertTrue(result["valid"], result.get("invalid_reasons"))
        self.assertTrue(os.path.isfile(os.path.join(self.root, "work/results.tsv")))
        r = self.bp("report", "/work/run", "-o", "/work/report.html")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(self.root, "work/report.html")) as f:
            html = f.read()
        self.assertIn("<html", html)
        self.assertGreater(len(html), 10000)

    def test_6_fleet_agent_with_tls(self):
        """bench-proxy agent execs bench-proxy-fleet (libcaf_io, libssl) and serves TLS in the bare root."""
        d = os.path.join(self.root, "work", "tls")
        os.makedirs(os.path.join(d, "configs"))
        def ossl(*a):
            r = sh("openssl", *a, cwd=d)
            self.assertEqual(r.returncode, 0, r.stderr)
        ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=ca", "-keyout", "ca.key",
             "-out", "ca.pem")
        ossl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=node", "-keyout", "node.key", "-out", "node.csr")
        ossl("x509", "-req", "-in", "node.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
             "-out", "node.pem")
        with open(os.path.join(d, "token"), "w") as f:
            f.write("bundle-test-token-" + "x" * 24 + "\n")
        os.chmod(os.path.join(d, "token"), 0o600)
        p = subprocess.Popen(self.argv([self.opt + "/bin/bench-proxy", "agent", "--listen", "127.0.0.1:0",
                                        "--config-root", "/work/tls/configs", "--token-file", "/work/tls/token",
                                        "--run-root", "/work/tls/runs", "--tls-cert", "/work/tls/node.pem",
                                        "--tls-key", "/work/tls/node.key", "--tls-ca", "/work/tls/ca.pem"]),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        lines = []
        t = threading.Thread(target=lambda: [lines.append(l.decode(errors="replace")) for l in p.stdout], daemon=True)
        t.start()
        try:
            def listening():
                if p.poll() is not None:
                    raise AssertionError("the agent exited early:\n" + "".join(lines))
                return "(TLS;" in "".join(lines) and "agent listening on port" in "".join(lines)
            wait_for(listening, timeout=30, what="the agent to listen")
            self.assertEqual(os.readlink(f"/proc/{p.pid}/exe"), self.root + self.opt + "/bin/bench-proxy-fleet")
            p.send_signal(signal.SIGINT)
            self.assertEqual(p.wait(30), 0, "".join(lines))
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            t.join(5)
            p.stdout.close()


if __name__ == "__main__":
    unittest.main()
