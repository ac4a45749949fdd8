// mock-engine: a no-compute OpenAI-compatible server (see docs/mock-engine.md).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include "cmd/cli.hpp"
#include "net/mock/mock_server.hpp"

namespace {

const char* kAbout = R"(A no-compute OpenAI-compatible engine for bench-proxy's demo, tests and benchmarks.
Serves GET /health, GET /v1/models, GET /version, GET /mock/stats, /v1/mock/echo,
POST /v1/chat/completions and POST /v1/completions (plain, and SSE with "stream": true).)";

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 3 && std::strcmp(argv[1], "--worker") == 0)
    return bp::mock::run_worker(std::atoi(argv[2]), argc >= 4 ? std::atoi(argv[3]) : -1);
  if (argc >= 2 && std::strcmp(argv[1], "--detached") == 0) return bp::mock::run_worker(-1, -1);
  using bp::cli::finite_in;
  using bp::cli::whole_in;
  bp::mock::options o;
  CLI::App app{kAbout, "mock-engine"};
  app.get_formatter()->column_width(28);
  bool version = false;
  app.add_flag("--version", version, "print the version");
  app.add_option("--host", o.host, "address to listen on (default 127.0.0.1)")->type_name("H");
  app.add_option("--port", o.port, "port (default 8000; 0 = any)")->type_name("P")->check(whole_in(0, 65535));
  app.add_option("--model", o.model, "served model name (default mock-model)")->type_name("NAME");
  app.add_option("--tokens", o.tokens,
                 "output tokens per response (default 16); max_tokens or the body field mock_tokens override it")
      ->type_name("N")
      ->check(whole_in(0, 100000000));
  app.add_option("--ttft-ms", o.ttft_ms, "time to first token (body field: mock_ttft_ms)")
      ->type_name("MS")
      ->check(finite_in(0, 1e9));
  app.add_option("--itl-ms", o.itl_ms, "delay between tokens (body field: mock_itl_ms)")
      ->type_name("MS")
      ->check(finite_in(0, 1e9));
  app.add_option("--jitter,--jitter-cv", o.jitter,
                 "per-request noise: each request's pace and each token's delay are multiplied by exp(CV z), z "
                 "standard normal (default 0; body field: mock_jitter)")
      ->type_name("CV")
      ->check(finite_in(0, 5));
  app.add_option("--pace-cv", o.pace_cv,
                 "lifecycle spread: one pace factor exp(CV z), drawn at startup (logged on stderr, in /mock/stats), "
                 "multiplies every TTFT and inter-token delay for the process's whole life (default 0)")
      ->type_name("CV")
      ->check(finite_in(0, 5));
  app.add_option("--interaction-delay-ms", o.interaction_delay_ms,
                 "add MS to each inter-token delay only when both MOCK_SLOW_A=1 and MOCK_SLOW_B=1 are in the "
                 "environment (either alone changes nothing); MOCK_EXTRA_ITL_MS=MS adds to every one")
      ->type_name("MS")
      ->check(finite_in(0, 1e9));
  app.add_option("--slots", o.slots,
                 "queueing model: at most N requests generate at once, the rest wait in FIFO order and their wait "
                 "is part of their TTFT, as in a real engine's batch (default 0: no limit)")
      ->type_name("N")
      ->check(whole_in(0, 1000000));
  app.add_option("--batch-cost", o.batch_cost,
                 "queueing model: every inter-token delay is multiplied by 1 + F * (other requests generating), so "
                 "throughput per request falls as the batch grows (default 0)")
      ->type_name("F")
      ->check(finite_in(0, 1000));
  app.add_flag("--stamp-events", o.stamp_events,
               "stamp mock_received_us and mock_sent_us (wall-clock microseconds), and on tokens mock_due_us, "
               "into every streamed event and plain answer (plain answers: also as X-Mock-*-Us headers); see "
               "docs/mock-engine.md (body field: mock_stamp_events)");
  app.add_flag("--role-event", o.role_event,
               "stream a role-only first event ({\"role\":\"assistant\",\"content\":\"\"}) with the header, as vLLM "
               "does, before the first token (body field: mock_role_event)");
  app.add_option("--seed,--jitter-seed", o.jitter_seed,
                 "seed of the pace factor and the jitter (default 0: pace from the pid and the clock, jitter from "
                 "the random device)")
      ->type_name("N")
      ->check(whole_in(0, 1ll << 62));
  app.add_option("--startup-delay-ms", o.startup_delay_ms, "/health answers 503 until then")
      ->type_name("MS")
      ->check(finite_in(0, 1e9));
  app.add_option("--threads", o.threads, "I/O threads (default 1)")->type_name("N")->check(whole_in(1, 256));
  app.add_option("--workers", o.workers, "start N helper processes named MOCK::Worker_<i>")
      ->type_name("N")
      ->check(whole_in(0, 256));
  app.add_flag("--worker-rank-env", o.worker_rank_env, "give worker i CUDA_VISIBLE_DEVICES=i");
  app.add_option("--chat-template", o.chat_template, "read a template file at startup (an input file, as real engines take)")
      ->type_name("FILE");
  const char* faults = "Fault switches (tests)";
  app.add_option("--fail-startup", o.fail_startup, "print MSG on stderr and exit 3 while starting")
      ->type_name("MSG")
      ->group(faults);
  app.add_option("--crash-after", o.crash_after, "answer N requests, abort on the next one")
      ->type_name("N")
      ->check(whole_in(0, 1ll << 40))
      ->group(faults);
  app.add_option("--crash-mid-stream", o.crash_mid_stream, "abort after K events of a stream")
      ->type_name("K")
      ->check(whole_in(0, 1ll << 40))
      ->group(faults);
  app.add_option("--fail-every", o.fail_every, "answer every Nth completion request with HTTP 500")
      ->type_name("N")
      ->check(whole_in(1, 1ll << 40))
      ->group(faults);
  app.add_option("--error-every", o.error_every,
                 "every Nth streamed completion request ends after half its tokens with an error event "
                 "(data: {\"error\": ...}, no [DONE]), as llama-server fails mid-stream (body field: mock_error_after)")
      ->type_name("N")
      ->check(whole_in(1, 1ll << 40))
      ->group(faults);
  app.add_flag("--ignore-sigterm", o.ignore_sigterm, "ignore SIGTERM (only SIGKILL stops it)")->group(faults);
  app.add_flag("--stall", o.stall, "accept completion requests but never answer")->group(faults);
  app.add_flag("--detached-grandchild", o.detached_grandchild,
               "start a new-session grandchild that tries to outlive the tree")
      ->group(faults);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {
      std::cout << app.help();
      return 0;
    }
    std::cerr << "mock-engine: " << e.what() << "\n(see mock-engine --help)\n";
    return 2;
  }
  if (version) {
    std::printf("mock-engine (bench-proxy) version: %s\n", BENCH_PROXY_VERSION);
    return 0;
  }
  return bp::mock::run(o, argc, argv);
}
