#pragma once
/// Every actor of bench-proxy and the message vocabulary between them (docs/actors.md has the map:
/// who spawns, monitors, restarts and escalates whom).
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "configs/engine_config.hpp"
#include "net/proxy/proxy_server.hpp"
#include "net/proxy/run_status.hpp"

namespace bp {

class output_capture;

namespace atom {
using start = caf::atom_constant<caf::atom("start")>;
using started = caf::atom_constant<caf::atom("started")>;
using ready = caf::atom_constant<caf::atom("ready")>;
using poll = caf::atom_constant<caf::atom("poll")>;
using exited = caf::atom_constant<caf::atom("exited")>;
using failed = caf::atom_constant<caf::atom("failed")>;
using stop = caf::atom_constant<caf::atom("stop")>;
using kill = caf::atom_constant<caf::atom("kill")>;
using stopped = caf::atom_constant<caf::atom("stopped")>;
using warmup = caf::atom_constant<caf::atom("warmup")>;
using collect = caf::atom_constant<caf::atom("collect")>;
using published = caf::atom_constant<caf::atom("published")>;
using opened = caf::atom_constant<caf::atom("opened")>;
using closed = caf::atom_constant<caf::atom("closed")>;
using drain = caf::atom_constant<caf::atom("drain")>;
using stats = caf::atom_constant<caf::atom("stats")>;
}  // namespace atom

/// How a run ended; the CLI maps `exit_code` to the process exit status (docs/cli.md).
struct run_result {
  int exit_code = 0;
  std::string message;
  std::string snapshot_id;
  std::string meta_path;
};

/// Exit codes (docs/cli.md).
namespace exit_code {
constexpr int ok = 0;
constexpr int failure = 1;
constexpr int usage = 2;
constexpr int listen_failed = 3;
constexpr int engine_start_failed = 4;
constexpr int engine_died = 5;
constexpr int warmup_failed = 6;
constexpr int interrupted = 130;
}  // namespace exit_code

/// Everything one run needs; shared by the supervisor and its children.
struct run_context {
  engine_config config;
  std::string run_dir;       ///< engine.log and meta.json land here
  std::string shim_exe;      ///< bench-proxy binary (engine shim)
  net::run_status* status = nullptr;
  net::proxy_server* proxy = nullptr;
  int hash_threads = 0;
  std::vector<std::string> bench_proxy_argv;
  std::string listen_address;
  /// Test-only fault hooks (BENCH_PROXY_FAULTS, see docs/fault-injection.md); empty in normal runs.
  std::string faults;
};

/// Engine facts the engine actor reports once the child is up: immutable data only. The engine
/// actor alone owns the engine_child (so the child dies with the actor, on the actor's own
/// thread); others get its PIDs, port and a read-only handle on the captured output.
struct engine_started {
  int pid = 0;
  int shim_pid = 0;
  int port = 0;
  std::string exe;
  std::shared_ptr<const output_capture> output;
};

/// A collector's report: its section, or why it has none.
struct collector_report {
  std::string name;
  bool ok = false;
  nlohmann::json section;
  std::string error;
  double elapsed_ms = 0;
  int attempts = 1;
};

/// The supervisor of one engine run: engine, warmup, snapshot, connections. Delivers `result`
/// once, when the run has ended and the engine's tree is gone.
caf::actor spawn_run_supervisor(caf::actor_system& sys, std::shared_ptr<run_context> ctx,
                                std::shared_ptr<std::promise<run_result>> result);

/// Owns the engine child: launch, readiness, exit detection, stop (TERM -> grace -> KILL).
/// Detached (readiness probes and launches block); monitored by `parent`.
caf::actor spawn_engine_actor(caf::event_based_actor* parent, std::shared_ptr<run_context> ctx);

/// N timed chat completions after readiness. Detached.
caf::behavior warmup_actor(caf::event_based_actor* self, std::shared_ptr<run_context> ctx, int port,
                           caf::actor supervisor);

/// Starts every collector, waits for all (or their deadlines), assembles, freezes, publishes.
/// Monitored by `parent`.
caf::actor spawn_meta_actor(caf::event_based_actor* parent, std::shared_ptr<run_context> ctx, engine_started engine,
                            nlohmann::json warmup);

/// One snapshot collector. Detached: its work reads /proc, runs tools and hashes files.
caf::behavior collector_actor(caf::event_based_actor* self, std::string name, std::shared_ptr<run_context> ctx,
                              engine_started engine);

/// Owns one proxied connection's lifecycle: statistics, cancellation on shutdown.
caf::behavior connection_actor(caf::event_based_actor* self, std::shared_ptr<net::connection_handle> handle,
                               caf::actor supervisor);

/// Test-only fault hook: does `actor_name` have fault `kind` at `point`? (docs/fault-injection.md)
std::string fault_for(const std::string& faults, const std::string& actor_name);

}  // namespace bp

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bp::engine_started)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bp::collector_report)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bp::net::conn_stats)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(nlohmann::json)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::shared_ptr<bp::net::connection_handle>)
