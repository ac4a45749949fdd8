#pragma once
/// Every actor of bench-proxy and the message vocabulary between them: the typed protocol. Each
/// actor's handle is a caf::typed_actor, so the compiler checks what actors say to each other;
/// each atom has one meaning. docs/architecture.md has the map (who spawns, monitors, restarts
/// and escalates whom).
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "actors/errors.hpp"
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
using reaped = caf::atom_constant<caf::atom("reaped")>;
using terminate = caf::atom_constant<caf::atom("terminate")>;
using close = caf::atom_constant<caf::atom("close")>;
// The fleet's (actors/fleet/): the first five travel between hosts, their values are the wire's.
using fhello = caf::atom_constant<caf::atom("fhello")>;
using frun = caf::atom_constant<caf::atom("frun")>;
using fprogress = caf::atom_constant<caf::atom("fprogress")>;
using fresult = caf::atom_constant<caf::atom("fresult")>;
using fstop = caf::atom_constant<caf::atom("fstop")>;
using fdial = caf::atom_constant<caf::atom("fdial")>;
using fretry = caf::atom_constant<caf::atom("fretry")>;
using listening = caf::atom_constant<caf::atom("listening")>;
using abort = caf::atom_constant<caf::atom("abort")>;
}  // namespace atom

/// How a run ended: `error` is none for an orderly stop, else an errc (actors/errors.hpp) with
/// the reason; the CLI maps it to the exit status (cmd/exit_status.cpp).
struct run_result {
  caf::error error;
  std::string snapshot_id;
  std::string meta_path;
  /// The proxy's connections of this run: how many opened, and their counters summed (every
  /// connection actor's report, and those of connections whose actor failed).
  std::uint64_t connections = 0;
  net::conn_stats connection_totals;
};

struct run_context;

// ---------------------------------------------------------------------------------------------
// The fleet's messages (actors/fleet/, docs/fleet.md): data only, each with its 0.17 `inspect`;
// job, hello and result travel between hosts, announced on both nodes (fleet::configure_network).

namespace fleet {

/// One config to run on an agent: named by its path under the agent's --config-root and the
/// sha256 of the content the coordinator expects; the workload travels as data.
struct job {
  std::string token;
  std::string config_path;    ///< relative, under the agent's --config-root
  std::string config_sha256;  ///< of the file's bytes, as the coordinator has them
  std::string workload_name;  ///< file name (its extension picks CSV or JSONL)
  std::string workload;       ///< the workload's bytes
  std::string workload_sha256;
  std::vector<std::string> bench_args;  ///< bench options, as on the command line (-n 20 ...)
  std::string row;                      ///< e.g. "2_vllm-fp8/trial-1": the agent's folder name
};

/// What an agent says of itself.
struct hello {
  std::string agent, host, version;
  std::vector<std::string> labels;  ///< k=v, from --label
  std::vector<std::string> gpus;    ///< "NAME" per GPU nvidia-smi lists (empty without one)
  std::int64_t clock_unix_us = 0;   ///< its wall clock when it answered
  bool insecure = false;            ///< --insecure-plaintext off loopback
};

/// A finished (or refused, or failed) job: the run folder's files travel back by name.
struct result {
  bool ok = false;      ///< the run produced a result (valid or not)
  std::string error;    ///< why not (refusal, engine failure...)
  std::string agent, host;
  bool insecure = false;
  std::vector<std::string> files;  ///< name, content, name, content, ...
  std::string agent_run_dir;       ///< where the agent keeps its own copy
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, job& x) {
  return f(caf::meta::type_name("bp_fleet_job"), x.token, x.config_path, x.config_sha256, x.workload_name, x.workload,
           x.workload_sha256, x.bench_args, x.row);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, hello& x) {
  return f(caf::meta::type_name("bp_fleet_hello"), x.agent, x.host, x.version, x.labels, x.gpus, x.clock_unix_us,
           x.insecure);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, result& x) {
  return f(caf::meta::type_name("bp_fleet_result"), x.ok, x.error, x.agent, x.host, x.insecure, x.files,
           x.agent_run_dir);
}

struct dial_outcome;

}  // namespace fleet

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

// ---------------------------------------------------------------------------------------------
// Interfaces. A child holds only the narrow interface of its supervisor that it talks to; the
// run supervisor implements all of them (a typed handle converts to any subset of itself).

/// What the engine actor tells its supervisor.
using engine_listener = caf::typed_actor<
    /// The engine child is up: PIDs, port, output handle (immutable data only).
    caf::reacts_to<atom::started, engine_started>,
    /// The engine answers its readiness probe on this loopback port.
    caf::reacts_to<atom::ready, int>,
    /// The engine ended on its own: description, last output lines, whether it had been ready.
    caf::reacts_to<atom::exited, std::string, std::string, bool>,
    /// The engine was stopped as asked and its whole tree is gone: description.
    caf::reacts_to<atom::stopped, std::string>,
    /// A child gives up on the run: who, and the error (an errc with the reason) to end with.
    caf::reacts_to<atom::failed, std::string, caf::error>>;

/// What the warmup actor tells its supervisor.
using warmup_listener = caf::typed_actor<
    /// Warmup finished: elapsed ms per request, the model asked for.
    caf::reacts_to<atom::warmup, std::vector<double>, std::string>,
    caf::reacts_to<atom::failed, std::string, caf::error>>;

/// What the meta actor tells its supervisor.
using meta_listener = caf::typed_actor<
    /// The snapshot is published: its id (sha256 of the bytes), the meta.json path.
    caf::reacts_to<atom::published, std::string, std::string>>;

/// What a connection actor tells its supervisor.
using connection_listener = caf::typed_actor<
    /// A closed connection's final counters (every one of them), once.
    caf::reacts_to<atom::stats, net::conn_stats>>;

/// The supervisor of one engine run: engine, warmup, snapshot, connections. Delivers its
/// run_result once, when the run has ended and the engine's tree is gone.
using run_supervisor_actor = caf::typed_actor<
    caf::reacts_to<atom::started, engine_started>, caf::reacts_to<atom::ready, int>,
    caf::reacts_to<atom::exited, std::string, std::string, bool>, caf::reacts_to<atom::stopped, std::string>,
    caf::reacts_to<atom::failed, std::string, caf::error>,
    caf::reacts_to<atom::warmup, std::vector<double>, std::string>,
    caf::reacts_to<atom::published, std::string, std::string>, caf::reacts_to<atom::stats, net::conn_stats>,
    /// Stop the run (the CLI): why, for the log.
    caf::reacts_to<atom::stop, std::string>,
    /// Internal: the listener is closed: each connection actor drains (drain_timeout_s) or closes
    /// its connection; once all have reported, stop the engine. Again after the deadline: go on
    /// without the actors that never reported.
    caf::reacts_to<atom::drain>,
    /// From the proxy's accepting I/O thread: a new connection (its birth), its handle.
    caf::reacts_to<atom::opened, std::shared_ptr<net::connection_handle>>>;

/// Owns the engine child: launch, readiness, exit detection, stop (TERM -> grace -> KILL).
using engine_actor = caf::typed_actor<
    /// Internal: one readiness probe.
    caf::reacts_to<atom::poll>,
    /// Internal, from the reaper thread: the engine's wait status (its tree is gone).
    caf::reacts_to<atom::reaped, int>,
    /// Stop: SIGTERM to the process group, SIGKILL after this grace period (s).
    caf::reacts_to<atom::terminate, double>,
    /// The grace period is over: SIGKILL to the process group.
    caf::reacts_to<atom::kill>>;

/// N timed chat completions after readiness.
using warmup_actor = caf::typed_actor<
    /// Internal: connect and find the model.
    caf::reacts_to<atom::start>,
    /// Internal: send warmup request i, one message each, so an exit between requests is heard.
    caf::reacts_to<atom::warmup, int>>;

/// One snapshot collector.
using collector_actor = caf::typed_actor<
    /// Collect this section within the budget (s); the report says ok or why not.
    caf::replies_to<atom::collect, double>::with<collector_report>>;

/// Starts every collector, waits for all (or their deadlines), assembles, freezes, publishes.
using meta_actor = caf::typed_actor<
    /// Stop (why): ignored, it works from its start and quits once published; the supervisor
    /// ends it with an exit message when the run ends first.
    caf::reacts_to<atom::stop, std::string>>;

/// Samples the run's conditions (host, processes, GPUs) into telemetry.csv from warmup to the end.
using telemetry_actor = caf::typed_actor<
    /// Internal: take one sample of every source, then re-arm.
    caf::reacts_to<atom::poll>>;

/// Owns one proxied connection from its birth (spawned with its handle) to its end: the only way
/// the rest of the process closes, drains or aborts it, and the one that reports its counters.
/// Never on the byte path: it hears of the connection twice (birth, end) and acts on it only
/// through the handle's commands.
using connection_actor = caf::typed_actor<
    /// From the connection's I/O thread: it ended, with these counters, for this reason. The
    /// actor reports them to its supervisor and quits.
    caf::reacts_to<atom::closed, net::conn_stats, std::string>,
    /// Close now (a failed run's shutdown): the reason. What is in flight is cut.
    caf::reacts_to<atom::close, std::string>,
    /// Drain (an orderly shutdown): no new request; close once the one in flight is complete, and
    /// abort it if it is not within this time. The reason.
    caf::reacts_to<atom::drain, caf::timespan, std::string>,
    /// Abort now (a drain's deadline passed, a fault): the client gets a reset. The reason.
    caf::reacts_to<atom::abort, std::string>,
    /// Fault injection only: fail (throw); the actor's failure aborts its connection.
    caf::reacts_to<atom::kill>>;

// ---------------------------------------------------------------------------------------------
// The fleet (actors/fleet/, docs/fleet.md): one coordinator actor supervises every agent; each
// agent publishes one actor (on loopback, behind its guard) and runs its jobs in a runner.

/// What an agent tells the coordinator about a row (it is handed this handle with the job).
using fleet_listener = caf::typed_actor<
    /// A progress line of a row: the row, the line ("started on a (host)", "3/10 requests, 0 errors").
    caf::reacts_to<atom::fprogress, std::string, std::string>,
    /// The row ended on the agent: the row, its result (files, ok, or why not).
    caf::reacts_to<atom::fresult, std::string, fleet::result>>;

/// An agent as a coordinator sees it (published, reached through the guards): every message
/// carries the token, checked again in constant time.
using fleet_agent_actor = caf::typed_actor<
    /// Greeting: the token -> what the agent says of itself; a wrong token is an error.
    caf::replies_to<atom::fhello, std::string>::with<fleet::hello>,
    /// Run this job (token inside) and tell the listener: progress lines, then one result.
    caf::reacts_to<atom::frun, fleet::job, fleet_listener>,
    /// Tear the running row down (its result still comes back): the token.
    caf::reacts_to<atom::fstop, std::string>>;

/// The agent actor as its own process holds it: the published face, and what only that process
/// may send (a sender of another node is refused).
using fleet_agent_local = caf::typed_actor<
    caf::replies_to<atom::fhello, std::string>::with<fleet::hello>,
    caf::reacts_to<atom::frun, fleet::job, fleet_listener>, caf::reacts_to<atom::fstop, std::string>,
    /// The guard listens on this port (a refusal lists the peers connected to it): set once.
    caf::reacts_to<atom::listening, std::uint16_t>,
    /// SIGINT/SIGTERM: tear the running row down, send its result back, then quit: the signal.
    caf::reacts_to<atom::stop, std::string>>;

/// Runs the agent's accepted jobs, one at a time (detached: a run blocks its thread throughout).
using fleet_runner_actor = caf::typed_actor<
    /// Run this checked job from its config file; progress lines to the listener -> its result.
    caf::replies_to<atom::frun, fleet::job, std::string, fleet_listener>::with<fleet::result>>;

/// Reaches one agent for the coordinator: its guard dials (TCP, TLS, the token proofs), then CAF
/// connects to the guard's loopback port. It blocks, so each attempt is a short-lived detached actor.
using fleet_dialer_actor = caf::typed_actor<
    /// Dial now -> the agent's handle, or why not (and whether retrying can help).
    caf::replies_to<atom::fdial>::with<fleet::dial_outcome>>;

/// The coordinator of `sweep --agents`: one event-based actor for every agent (per-agent state,
/// requests with `then`, monitors, timers); hands each free agent the next row it may run.
using fleet_coordinator_actor = caf::typed_actor<
    caf::reacts_to<atom::fprogress, std::string, std::string>,
    caf::reacts_to<atom::fresult, std::string, fleet::result>,
    /// Ctrl-C (the CLI): every running row is stopped on its agent, nothing new starts: why.
    caf::reacts_to<atom::stop, std::string>,
    /// Internal timer: try agent K again (its generation: a timer of an older attempt is ignored).
    caf::reacts_to<atom::fretry, std::size_t, std::uint64_t>>;

namespace measure {
struct lifecycle_job;  // actors/campaign/campaign.hpp
}

/// Runs a campaign's lifecycles, one at a time (detached: a lifecycle blocks its thread for
/// minutes, driving an engine tree and the load generator).
using campaign_worker_actor = caf::typed_actor<
    /// Run this job (its `run`), timed -> the same job with its outcome, seconds or error.
    caf::replies_to<atom::start, std::shared_ptr<measure::lifecycle_job>>::with<std::shared_ptr<measure::lifecycle_job>>>;

/// One campaign (a try, a sweep, a bisect): steps its plan, one lifecycle at a time through its
/// worker, and stays responsive while a lifecycle runs (actors/campaign/campaign.hpp).
using campaign_actor = caf::typed_actor<
    /// Internal: ask the plan for the next lifecycle.
    caf::reacts_to<atom::start>,
    /// Ctrl-C or a fleet's stop: nothing new starts (the running lifecycle tears down on its own
    /// signal): why.
    caf::reacts_to<atom::stop, std::string>>;

namespace fleet {

/// A dialer's answer: the agent's handle, or why there is none.
struct dial_outcome {
  fleet_agent_actor agent;
  std::string error;     ///< "" when `agent` is set
  bool refused = false;  ///< the agent refused us (token, certificate): retrying does not help
};

}  // namespace fleet

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
  /// Telemetry sample interval (ms); 0: no telemetry.
  int telemetry_interval_ms = 200;
  /// The engine's output lines on the console at info (serve), or only at debug (run, sweep, try:
  /// engine.log has them, and a failure shows the last ones).
  bool engine_output_at_info = true;
  /// `caches: fresh`: VAR=directory pairs the engine gets on top of the YAML env (documented
  /// exception to "exactly the YAML env"); and the cache scan from before the engine started.
  std::vector<std::pair<std::string, std::string>> cache_env;
  nlohmann::json caches_before = nlohmann::json::object();
  /// The environment the engine is launched with: the YAML env, with each `cache_env` variable
  /// replacing the YAML's value or added after it. The one place that composes it.
  std::vector<std::pair<std::string, std::string>> engine_env() const;
  nlohmann::json caches_injected = nlohmann::json::object();
  /// run, sweep, try: the meta actor leaves the published /meta as JSON here too, for this
  /// process's bench to take once (engine_run::take_published) instead of parsing its bytes back
  /// (megabytes with a large venv). Empty in serve: nothing holds the document there.
  struct published_slot {
    std::mutex mu;
    std::string id;
    std::shared_ptr<nlohmann::json> doc;
  };
  std::shared_ptr<published_slot> keep_published;
  /// How the supervisor spawns its children; empty members mean the real actors below. Tests on
  /// CAF's test coordinator put stand-ins here (tests/actors/run_supervisor_test.cpp).
  struct spawners {
    std::function<engine_actor(caf::local_actor*, engine_listener, std::shared_ptr<run_context>)> engine;
    std::function<warmup_actor(caf::local_actor*, warmup_listener, std::shared_ptr<run_context>, int)> warmup;
    std::function<meta_actor(caf::local_actor*, meta_listener, std::shared_ptr<run_context>, engine_started,
                             nlohmann::json)>
        meta;
    std::function<telemetry_actor(caf::local_actor*, std::shared_ptr<run_context>, engine_started)> telemetry;
    /// Spawns monitored by the supervisor (the first argument) and returns the connection actor.
    std::function<connection_actor(caf::local_actor*, std::shared_ptr<net::connection_handle>, connection_listener)>
        connection;
  } spawn;
};

// ---------------------------------------------------------------------------------------------
// Spawn functions.

run_supervisor_actor spawn_run_supervisor(caf::actor_system& sys, std::shared_ptr<run_context> ctx,
                                          std::shared_ptr<std::promise<run_result>> result);

/// Each child is spawned monitored by `parent` and reports to `listener` (the supervisor itself,
/// or a test's stand-in implementing that narrow interface).

/// `detached`: on a thread of its own (readiness probes and launches block); false only on CAF's
/// test coordinator, where the test thread runs every step.
engine_actor spawn_engine_actor(caf::local_actor* parent, engine_listener listener, std::shared_ptr<run_context> ctx,
                                bool detached = true);

/// `detached` as for the engine actor (its requests block).
warmup_actor spawn_warmup_actor(caf::local_actor* parent, warmup_listener listener, std::shared_ptr<run_context> ctx,
                                int port, bool detached = true);

meta_actor spawn_meta_actor(caf::local_actor* parent, meta_listener listener, std::shared_ptr<run_context> ctx,
                            engine_started engine, nlohmann::json warmup);

/// Detached (it reads /proc and a child's pipe); writes <run_dir>/telemetry.csv.
telemetry_actor spawn_telemetry_actor(caf::local_actor* parent, std::shared_ptr<run_context> ctx,
                                      engine_started engine);

/// One collector's behavior (spawned detached by the meta actor: it reads /proc, runs tools,
/// hashes files).
collector_actor::behavior_type collector_behavior(collector_actor::pointer self, std::string name,
                                                  std::shared_ptr<run_context> ctx, engine_started engine);

/// One connection's behavior (spawned monitored by the supervisor, at the connection's birth). It
/// registers itself for the connection's end (the handle's on_end), and aborts the connection
/// if one of its handlers throws.
connection_actor::behavior_type connection_behavior(connection_actor::pointer self,
                                                    std::shared_ptr<net::connection_handle> handle,
                                                    connection_listener supervisor);

/// Test-only fault hook: does `actor_name` have fault `kind` at `point`? (docs/fault-injection.md)
std::string fault_for(const std::string& faults, const std::string& actor_name);

}  // namespace bp

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bp::engine_started)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bp::fleet::dial_outcome)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bp::collector_report)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(bp::net::conn_stats)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(nlohmann::json)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::shared_ptr<bp::net::connection_handle>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::shared_ptr<bp::measure::lifecycle_job>)
