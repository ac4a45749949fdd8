"""Helpers for the integration tests: they drive the real bench-proxy and mock-engine binaries."""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

BIN = os.environ.get("BP_BIN_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build", "bin"))
SRC = os.environ.get("BP_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
BENCH_PROXY = os.path.join(BIN, "bench-proxy")
MOCK = os.path.join(BIN, "mock-engine")


def wait_for(cond, timeout=60.0, step=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def children_map():
    """ppid -> [pid] for every live process."""
    m = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        rest = s[s.rfind(")") + 2:].split()
        if rest[0] == "Z":
            continue
        m.setdefault(int(rest[1]), []).append(int(d))
    return m


def descendants(pid):
    m = children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in m.get(p, []):
            out.append(c)
            todo.append(c)
    return out


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
        return s[s.rfind(")") + 2] != "Z"
    except OSError:
        return False


def pids_with_marker(marker):
    """Processes whose environment holds MARKER (the tests put a unique one in each config's env)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/environ", "rb") as f:
                if marker.encode() in f.read() and alive(int(d)):
                    out.append(int(d))
        except OSError:
            pass
    return out


def write_config(dir, name="engine.yaml", mock_args=(), env=None, extra=""):
    env = dict(env or {})
    env.setdefault("PATH", "/usr/bin:/bin")
    lines = [
        "description: integration test mock engine",
        "engine: mock",
        f"cmd: {MOCK}",
        "args: [" + ", ".join(f"{{ secret: {json.dumps(a['secret'])} }}" if isinstance(a, dict) else json.dumps(str(a))
                              for a in mock_args) + "]",
        "env:",
    ]
    for k, v in env.items():
        if isinstance(v, dict):
            lines.append(f"  {k}: {{ secret: {json.dumps(v['secret'])} }}")
        else:
            lines.append(f"  {k}: {json.dumps(v)}")
    lines.append(extra)
    path = os.path.join(dir, name)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


class Proxy:
    """A running `bench-proxy serve`; stderr is collected line by line."""

    def __init__(self, config, listen="127.0.0.1:0", args=(), env=None, cwd=None, preexec_fn=None, exe=None):
        self.lines = []
        self.cwd = cwd or tempfile.mkdtemp(prefix="bp_it_")
        full_env = dict(os.environ)
        full_env.update(env or {})
        # Each run gets its own folder: run folders are never reused (results are never overwritten).
        self.run_dir = os.path.join(self.cwd, "run")
        n = 1
        while os.path.exists(self.run_dir):
            n += 1
            self.run_dir = os.path.join(self.cwd, f"run{n}")
        self.p = subprocess.Popen([exe or BENCH_PROXY, "--listen", listen, "--config", config, "--run-dir",
                                   self.run_dir, *args],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=self.cwd, env=full_env,
                                  preexec_fn=preexec_fn)
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()
        self.port = None
        # bench-proxy's own line: the mock engine's "listening on" line, logged by bench-proxy as it
        # comes, can come first (the engine starts while the proxy does).
        m = wait_for(lambda: self.grep(r"bench-proxy \S+ listening on [\d.]+:(\d+)") or
                     (self.p.poll() is not None and "exited"),
                     timeout=60, what="bench-proxy to listen")
        if m == "exited":
            return
        self.port = int(m.group(1))

    def _read(self):
        for raw in self.p.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    def grep(self, pattern):
        for l in list(self.lines):
            m = re.search(pattern, l)
            if m:
                return m
        return None

    def log(self):
        return "\n".join(self.lines)

    def conn(self, timeout=30):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def get(self, path, headers=None):
        c = self.conn()
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), body

    def post(self, path, obj, timeout=30):
        c = self.conn(timeout)
        c.request("POST", path, body=json.dumps(obj), headers={"Content-Type": "application/json"})
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, body

    def healthz(self):
        try:
            return json.loads(self.get("/healthz")[2])
        except OSError:
            return {}

    def wait_ready(self, timeout=120):
        def ready():
            if self.p.poll() is not None:
                raise AssertionError("bench-proxy exited early:\n" + self.log())
            return self.healthz().get("state") == "ready"
        wait_for(ready, timeout=timeout, what="state ready")
        return self.healthz()

    def engine_pid(self):
        return self.healthz().get("engine_pid")

    def tree(self):
        return descendants(self.p.pid)

    def stop(self, sig=signal.SIGINT, timeout=30):
        if self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            raise AssertionError("bench-proxy did not exit:\n" + self.log())
        self._t.join(5)
        self.p.stdout.close()
        return self.p.returncode

    def kill_all(self):
        for pid in self.tree():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        if not self.p.stdout.closed:
            self._t.join(5)
            self.p.stdout.close()


class ProxyCase(unittest.TestCase):
    """Starts nothing itself; tracks every Proxy so none outlives a failing test."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="bp_it_")
        self.proxies = []

    def tearDown(self):
        for p in self.proxies:
            p.kill_all()

    def start(self, config, **kw):
        p = Proxy(config, cwd=self.dir, **kw)
        self.proxies.append(p)
        return p

    def config(self, **kw):
        return write_config(self.dir, **kw)


def _sse_events(r):
    """Yields (monotonic time, data) per SSE event of an http.client response, as it arrives."""
    buf = b""
    while True:
        chunk = r.read1(65536)
        if not chunk:
            break
        buf += chunk
        while b"\n\n" in buf:
            ev, buf = buf.split(b"\n\n", 1)
            for line in ev.split(b"\n"):
                if line.startswith(b"data: "):
                    yield time.monotonic(), line[6:].decode()


def _post_stream(port, body, timeout):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request("POST", "/v1/chat/completions", body=json.dumps(body), headers={"Content-Type": "application/json"})
    return c, c.getresponse()


def stream_events(port, body, timeout=30):
    """POSTs a streamed chat completion; yields (monotonic time, data) per SSE event."""
    c, r = _post_stream(port, body, timeout)
    assert r.status == 200, r.status
    yield from _sse_events(r)
    c.close()


def stream_with_headers(port, body, timeout=30):
    """A streamed chat completion read to its end: (status, lower-cased headers, [(time, data)])."""
    c, r = _post_stream(port, body, timeout)
    headers = {k.lower(): v for k, v in r.getheaders()}
    events = list(_sse_events(r))
    c.close()
    return r.status, headers, events


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p
