#pragma once
/// One measured run (engine up, warmup, snapshot, bench through the proxy, teardown verified) and
/// what `run` and `sweep` make of it: the result folder, the ledger row, the printed summary.
/// cmd/ only parses options and calls this; tests call it directly.
///
/// Rules kept here (docs/cli.md, "Results"):
/// - a result is valid only if the snapshot was unchanged, the engine lived throughout as the same
///   process, the run was not interrupted, and errors stayed within max_error_rate;
/// - no result file is ever overwritten (exclusive atomic writes, fresh folders);
/// - failed and invalid runs get ledger rows too.
#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "net/loadgen/bench.hpp"

#include "actors/errors.hpp"
#include "actors/campaign/client_run.hpp"

namespace caf {
class actor_system;
}

namespace bp::measure {

struct options {
  std::string config_path;
  std::string listen = "127.0.0.1:0";
  int threads = 1;
  std::string run_dir;  ///< empty: a fresh runs/<UTC>_<config>_<pid>; else must not hold a result yet
  std::string results_tsv = "results.tsv";  ///< empty: no ledger row
  std::vector<std::string> argv;            ///< bench-proxy's own argv (recorded in /meta)
  bench::options bench;                     ///< url and cancel are filled in here
  std::string label;                        ///< --label: recorded in the result and the ledger
  int telemetry_interval_ms = 200;          ///< 0: none; else telemetry.csv and result.conditions
  bool rehash = false;                      ///< --rehash: the snapshot reads every venv file and library
  client_options client;                    ///< --client -- COMMAND: it is the measurement, not bench
};

/// Ctrl-C as the CLI sees it: the first asks for an orderly teardown, the second kills the
/// engine's tree at once.
struct interrupt_state {
  std::atomic<int> signals{0};
  std::atomic<bool> cancel{false};  ///< no new request is started
  const std::atomic<bool>* external = nullptr;  ///< set by someone else (a fleet coordinator): as a first signal
  /// false: SIGINT/SIGTERM are someone else's to take (a fleet agent's signal thread), who says
  /// so through `external`; run_interruptible then only watches `external`.
  bool take_signals = true;
  bool interrupted() const { return signals.load() > 0; }
};

struct outcome {
  bool started = false;    ///< the engine was launched
  bool published = false;  ///< /meta was published
  bool valid = false;      ///< a result exists and is valid
  caf::error error;    ///< none when valid; else an errc (actors/errors.hpp) with the reason
  std::string reason;  ///< why it is not valid (first line is the short form)
  nlohmann::json result;
  std::string result_path, run_dir, meta_path;
  bool teardown_verified = false;
  std::string engine_exit;  ///< how the engine ended, when it did so on its own
};

/// Runs `work` on another thread while this one takes SIGINT/SIGTERM (blocked everywhere else;
/// unless `st.take_signals` is false): `first` on the first signal (or `external`), `again` on
/// each later one. Returns what `work` returned.
void run_interruptible(const std::function<void()>& work, interrupt_state& st, const std::function<void()>& first,
                       const std::function<void()>& again);

/// The whole run of one config.
outcome measure(caf::actor_system& sys, const options& o, interrupt_state& st);

/// Everything a run or sweep can check before anything starts: the workload parses and every
/// config loads and is launchable here. Returns every error (file:line where known).
std::vector<std::string> preflight(const std::vector<std::string>& configs, const std::string& workload);

/// result.json in `dir`, written atomically and never over an existing one; the engine's raw
/// /metrics texts (engine_metrics.raw) go beside it as engine_metrics_{before,after}.txt and leave
/// `result`, which then names those files as result.json does (written from `result` itself, no
/// copy: with a large venv it holds megabytes of snapshot). Returns the path.
std::string write_result(nlohmann::json& result, const std::string& dir);

/// Replaces engine_metrics.raw by the names of the files write_result wrote.
void strip_raw_engine_metrics(nlohmann::json& result);

/// One ledger row for a run that produced no result (config error, engine never ready, ...).
nlohmann::json failed_result(const std::string& config_path, const std::string& reason, const std::string& run_dir,
                             const std::string& label = "");

/// The text summary bench/run print (medians with p90/p99, errors, validity with every reason).
std::string summary_text(const nlohmann::json& result);

}  // namespace bp::measure
