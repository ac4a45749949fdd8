"""A stand-in llama-server for the hardening tests (tests/integration/test_hardening.py): it answers
what bench-proxy asks of an engine of kind llama.cpp (/health, /props, /v1/models, /metrics, chat
completions, streamed or not), and misbehaves on purpose as its environment says:

  FAKE_PROPS_DEPTH=N     /props is {"a": {"a": ... }} nested N deep
  FAKE_PROPS_PAD=N       ... with N bytes of padding beside it (to reach a size)
  FAKE_METRICS=huge      /metrics is 300 MB of comment lines before the counters (Content-Length)
  FAKE_METRICS=endless   /metrics never ends (a close-delimited body that goes on at full speed)
  FAKE_METRICS=trickle   /metrics sends a line, then nothing, and never ends
  FAKE_USAGE=string      a stream's usage says "completion_tokens": "3" (a string)

bench-proxy appends --host H --port N."""
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

if "--version" in sys.argv:
    print("fake-llama version: 1 (test stand-in)")
    sys.exit(0)

PORT = int(sys.argv[sys.argv.index("--port") + 1])
HOST = sys.argv[sys.argv.index("--host") + 1] if "--host" in sys.argv else "127.0.0.1"
PROPS_DEPTH = int(os.environ.get("FAKE_PROPS_DEPTH", "2"))
PROPS_PAD = int(os.environ.get("FAKE_PROPS_PAD", "0"))
METRICS = os.environ.get("FAKE_METRICS", "")
USAGE = os.environ.get("FAKE_USAGE", "")
COUNTERS = b"".join(
    b"# TYPE llamacpp:%s counter\nllamacpp:%s %d\n" % (n, n, v)
    for n, v in ((b"prompt_tokens_total", 100), (b"tokens_predicted_total", 200), (b"n_decode_total", 50)))


def props():
    inner = "1"
    text = '{"a":' * PROPS_DEPTH + inner + "}" * PROPS_DEPTH
    return ('{"pad": "%s", "deep": %s, "build_info": "fake"}' % ("x" * PROPS_PAD, text)).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_body(self, status, body, ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/health":
            return self.send_body(200, b'{"status":"ok"}')
        if self.path == "/props":
            return self.send_body(200, props())
        if self.path == "/v1/models":
            return self.send_body(200, b'{"object":"list","data":[{"id":"fake-model","object":"model"}]}')
        if self.path == "/metrics":
            return self.metrics()
        return self.send_body(404, b'{"error":"not found"}')

    def metrics(self):
        if METRICS == "huge":
            line = b"# " + b"x" * 1021 + b"\n"  # 1 KiB a line
            n = 300 * 1024
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(n * len(line) + len(COUNTERS)))
            self.end_headers()
            block = line * 1024
            try:
                for _ in range(n // 1024):
                    self.wfile.write(block)
                self.wfile.write(COUNTERS)
            except OSError:
                pass
            return
        if METRICS in ("endless", "trickle"):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            try:
                self.wfile.write(COUNTERS)
                self.wfile.flush()
                if METRICS == "trickle":
                    threading.Event().wait()  # never another byte; the client gives up
                block = (b"# " + b"y" * 1021 + b"\n") * 1024
                while True:
                    self.wfile.write(block)
            except OSError:
                pass
            return
        return self.send_body(200, COUNTERS, "text/plain")

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        req = json.loads(self.rfile.read(n) or b"{}")
        if self.path != "/v1/chat/completions":
            return self.send_body(404, b'{"error":"not found"}')
        usage = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
        if not req.get("stream"):
            return self.send_body(200, json.dumps({
                "id": "c", "object": "chat.completion", "model": req.get("model", ""),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "a b c"}, "finish_reason": "stop"}],
                "usage": usage}).encode())
        events = [{"choices": [{"index": 0, "delta": {"content": w}}]} for w in ("a", " b", " c")]
        events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if USAGE == "string":
            usage = dict(usage, completion_tokens="3")
        events.append({"choices": [], "usage": usage})
        body = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"
        self.send_body(200, body, "text/event-stream")


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer((HOST, PORT), Handler).serve_forever()
