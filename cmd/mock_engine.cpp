// mock-engine: a no-compute OpenAI-compatible server (see docs/mock-engine.md).
#include "base/numbers.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "net/mock/mock_server.hpp"

namespace {

const char* kUsage = R"(usage: mock-engine [--host H] [--port P] [options]

A no-compute OpenAI-compatible engine for bench-proxy's demo, tests and benchmarks.
Serves GET /health, GET /v1/models, GET /version, GET /mock/stats, /v1/mock/echo,
POST /v1/chat/completions and POST /v1/completions (plain, and SSE with "stream": true).

Options:
  --host H                 address to listen on (default 127.0.0.1)
  --port P                 port (default 8000; 0 = any)
  --model NAME             served model name (default mock-model)
  --tokens N               output tokens per response (default 16); max_tokens or the
                           extra body field mock_tokens override it per request
  --ttft-ms MS             time to first token (body field: mock_ttft_ms)
  --itl-ms MS              delay between tokens (body field: mock_itl_ms)
  --startup-delay-ms MS    /health answers 503 until then
  --threads N              I/O threads (default 1)
  --workers N              start N helper processes named MOCK::Worker_<i>
  --worker-rank-env        give worker i CUDA_VISIBLE_DEVICES=i
  --chat-template FILE     read a template file at startup (an input file, as real engines take)
Fault switches (tests):
  --fail-startup MSG       print MSG on stderr and exit 3 while starting
  --crash-after N          answer N requests, abort on the next one
  --crash-mid-stream K     abort after K events of a stream
  --ignore-sigterm         ignore SIGTERM (only SIGKILL stops it)
  --stall                  accept completion requests but never answer
  --detached-grandchild    start a new-session grandchild that tries to outlive the tree
)";

[[noreturn]] void usage_error(const std::string& msg) {
  std::fprintf(stderr, "mock-engine: %s\n%s", msg.c_str(), kUsage);
  std::exit(2);
}

double number(const char* flag, const char* v) {
  auto d = bp::base::parse_number(v, 0, 1e12);
  if (!d) usage_error(std::string(flag) + ": expected a finite number >= 0, got '" + v + "'");
  return *d;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 3 && std::strcmp(argv[1], "--worker") == 0)
    return bp::mock::run_worker(std::atoi(argv[2]), argc >= 4 ? std::atoi(argv[3]) : -1);
  if (argc >= 2 && std::strcmp(argv[1], "--detached") == 0) return bp::mock::run_worker(-1, -1);
  bp::mock::options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    std::string val;
    bool has_inline = false;
    if (auto eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string::npos) {
      val = a.substr(eq + 1);
      a = a.substr(0, eq);
      has_inline = true;
    }
    auto next = [&]() -> const char* {
      if (has_inline) return strdup(val.c_str());
      if (i + 1 >= argc) usage_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--version") {
      std::printf("mock-engine (bench-proxy) version: %s\n", BENCH_PROXY_VERSION);
      return 0;
    }
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "--host") o.host = next();
    else if (a == "--port") o.port = static_cast<std::uint16_t>(number("--port", next()));
    else if (a == "--model") o.model = next();
    else if (a == "--tokens") o.tokens = static_cast<int>(number("--tokens", next()));
    else if (a == "--ttft-ms") o.ttft_ms = number("--ttft-ms", next());
    else if (a == "--itl-ms") o.itl_ms = number("--itl-ms", next());
    else if (a == "--startup-delay-ms") o.startup_delay_ms = number("--startup-delay-ms", next());
    else if (a == "--threads") o.threads = std::max(1, static_cast<int>(number("--threads", next())));
    else if (a == "--workers") o.workers = static_cast<int>(number("--workers", next()));
    else if (a == "--worker-rank-env") o.worker_rank_env = true;
    else if (a == "--chat-template") o.chat_template = next();
    else if (a == "--fail-startup") o.fail_startup = next();
    else if (a == "--crash-after") o.crash_after = static_cast<long>(number("--crash-after", next()));
    else if (a == "--crash-mid-stream") o.crash_mid_stream = static_cast<long>(number("--crash-mid-stream", next()));
    else if (a == "--ignore-sigterm") o.ignore_sigterm = true;
    else if (a == "--stall") o.stall = true;
    else if (a == "--detached-grandchild") o.detached_grandchild = true;
    else usage_error("unknown option '" + a + "'");
  }
  return bp::mock::run(o, argc, argv);
}
