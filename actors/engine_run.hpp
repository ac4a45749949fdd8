#pragma once
/// One supervised engine run behind the proxy, as `serve`, `run` and each `sweep` row use it.
/// Boost-free and CAF-light for the CLI: it owns the proxy server and the run supervisor.
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "actors/actors.hpp"

namespace bp {

struct run_options {
  std::string config_path;
  std::string listen = "127.0.0.1:0";
  int threads = 0;
  std::string run_dir;  ///< empty: runs/<UTC time>_<config stem>_<pid> under the current directory
  int hash_threads = 0;
  bool rehash = false;  ///< --rehash: read every venv file and library (as the config's `hash_cache: off`)
  std::vector<std::string> argv;  ///< bench-proxy's own argv, recorded in /meta
  net::server_options server;     ///< listen/threads are filled from the fields above
  int telemetry_interval_ms = 200;  ///< 0: no telemetry.csv
  bool engine_output_at_info = true;  ///< false (run, sweep): the engine's output on the console only at debug
  bool keep_published = false;  ///< run, sweep, try: take_published() hands this process /meta as JSON
};

class engine_run {
 public:
  /// Loads the config, binds the listen address (before anything starts), starts the proxy and
  /// the run supervisor. Fails with an error of bench-proxy's category (actors/errors.hpp): usage
  /// (the config, the run folder, requests.jsonl) or listen_failed, its text naming the file,
  /// key or address.
  static caf::expected<std::unique_ptr<engine_run>> start(caf::actor_system& sys, const run_options& o);
  ~engine_run();

  /// http://HOST:PORT of the proxy.
  std::string url() const;
  net::run_status& status() { return *status_; }
  const engine_config& config() const { return ctx_->config; }
  const std::string& run_dir() const { return ctx_->run_dir; }
  /// Asks for an orderly stop (drain, TERM, KILL after the grace period); `why` is logged.
  void stop(const std::string& why = "signal");
  /// SIGKILLs the engine's process group now (a second Ctrl-C); the run then ends as usual.
  void kill_now();
  bool finished() const;
  /// Blocks until the run ended and the engine's tree is gone; shuts the proxy down.
  run_result wait();
  /// With run_options::keep_published, once published: the snapshot's id and its document as
  /// JSON, taken (a second call, or without the option: an empty id and null).
  std::pair<std::string, std::shared_ptr<nlohmann::json>> take_published();
  /// Waits until /meta is published or the run ended; true when published.
  bool wait_published(std::chrono::milliseconds timeout);

 private:
  engine_run() = default;
  std::shared_ptr<run_context> ctx_;
  std::unique_ptr<net::run_status> status_;
  std::unique_ptr<net::proxy_server> proxy_;
  run_supervisor_actor supervisor_;
  std::shared_ptr<std::promise<run_result>> promise_;
  std::shared_future<run_result> future_;
  bool waited_ = false;
  run_result result_;
};

/// The scheduler bench-proxy's actors run on (serve, run and sweep alike), and its error category.
void configure_actor_system(caf::actor_system_config& cfg);

/// Path of the running bench-proxy binary (the engine shim re-executes it).
std::string self_exe();

/// The current UTC time as 20261127T215816Z, for folder names.
std::string utc_stamp();

/// Default run folder for a config: runs/<UTC time>_<config stem>_<pid>.
std::string default_run_dir(const std::string& config_path);

/// The run folder to use: `wanted`, refused (std::runtime_error) when it already holds a result,
/// meta.json or engine.log; or, when empty, a fresh default folder (never an existing one).
std::string claim_run_dir(const std::string& wanted, const std::string& config_path);

}  // namespace bp
