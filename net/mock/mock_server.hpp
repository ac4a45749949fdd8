#pragma once
/// The mock engine: a no-compute OpenAI-compatible server for the demo, the tests and the proxy
/// benchmarks. Boost-free header; the Beast code lives in mock_server.cpp.
#include <cstdint>
#include <string>

namespace bp::mock {

struct options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8000;
  std::string model = "mock-model";
  int tokens = 16;             ///< output tokens per response unless max_tokens / mock_tokens say otherwise
  double ttft_ms = 0;          ///< time to first token
  double itl_ms = 0;           ///< delay between tokens
  double jitter = 0;           ///< lognormal noise of this relative size on each request's pace and each token
  std::uint64_t jitter_seed = 0;  ///< --seed: 0 = from the pid and the clock (pace) / the random device (jitter)
  double pace_cv = 0;          ///< log-sd of the one lognormal pace factor drawn at startup (lifecycle spread)
  double interaction_delay_ms = 0;  ///< added to each inter-token delay only when MOCK_SLOW_A=1 and MOCK_SLOW_B=1
  bool stamp_events = false;   ///< stamp mock_received_us / mock_sent_us into each event and plain answer
  bool role_event = false;     ///< stream a role-only event first, at once (vLLM's habit)
  double startup_delay_ms = 0; ///< /health answers 503 "Loading model" until then
  // The queueing model (docs/mock-engine.md, "Saturation"): like a real engine's batch.
  int slots = 0;               ///< at most this many requests generate at once; the rest wait in FIFO order (0: no limit)
  double batch_cost = 0;       ///< each inter-token delay is itl * (1 + batch_cost * (requests generating - 1))
  int threads = 1;
  int workers = 0;             ///< helper child processes named MOCK::Worker_<i>
  bool worker_rank_env = false;  ///< give worker i CUDA_VISIBLE_DEVICES=i (per-rank env divergence)
  std::string chat_template;     ///< a file read at startup, like an engine's template or options file
  // Fault switches (tests only).
  std::string fail_startup;    ///< non-empty: print it on stderr and exit 3 during startup
  long crash_after = -1;       ///< abort after this many completed requests
  long crash_mid_stream = -1;  ///< abort after this many events of a stream
  long fail_every = 0;         ///< answer every Nth completion request with a 500
  long error_every = 0;        ///< every Nth streamed completion: an error event after half its tokens
  bool ignore_sigterm = false;
  bool stall = false;          ///< accept /v1 requests but never answer
  bool detached_grandchild = false;  ///< start a new-session grandchild that tries to outlive the tree
};

/// Runs the server until SIGINT/SIGTERM. Returns the process exit code.
int run(const options& opts, int argc, char** argv);

/// Entry point for the helper worker processes (argv[0] = MOCK::Worker_<i>).
/// A worker process: renames itself, then writes one byte to `ready_fd` (when >= 0) so the
/// engine answers /health only once every worker is up, as real engines do.
int run_worker(int rank, int ready_fd);

}  // namespace bp::mock
