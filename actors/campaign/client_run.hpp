#pragma once
/// `run --client -- COMMAND ARGS...` (issue 31): after warmup and the snapshot, any client is the
/// measurement. It runs in a process group of its own behind the engine shim (nothing of its tree
/// outlives the run: base/process/engine_child.hpp), with `{url}`, `{host_port}`, `{model}`,
/// `{queries}` and `{run_dir}` in its arguments and BENCH_PROXY_URL, BENCH_PROXY_MODEL (and BENCH_PROXY_QUERIES,
/// BENCH_PROXY_CLIENT_TIMINGS, BENCH_PROXY_RUN_DIR) in its environment; its stdout and stderr go
/// to the run folder, secrets scrubbed. The result comes from the proxy's records of the requests
/// made while it ran (net/loadgen/proxy_result.hpp), one more per measurement window.
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/redact.hpp"
#include "net/loadgen/bench.hpp"

namespace bp {
class engine_child;
}

namespace bp::measure {

struct client_options {
  std::vector<std::string> command;  ///< after `--`; empty: bench is the measurement
  double timeout_s = 3600;           ///< --client-timeout: then its process group is killed
};

/// Before anything starts: is the command's program found (bench-proxy's PATH for a bare name)
/// and executable? Empty when it is, else the error naming it.
std::string client_problem(const std::vector<std::string>& command);

/// {url}, {host_port}, {model}, {queries}, {run_dir} replaced in every argument.
std::vector<std::string> expand_client_args(const std::vector<std::string>& command, const std::string& url,
                                            const std::string& model, const std::string& queries,
                                            const std::string& run_dir);

/// One client measurement, in place of bench::run. Thread-safe interrupt() and kill() for the
/// thread that takes the signals.
class client_session {
 public:
  client_session(client_options o, std::string run_dir, base::redactor redact);
  ~client_session();
  /// Runs the client against the proxy at bo.url and returns the result (as bench::run: throws on
  /// setup errors; a client that fails, hangs or exits non-zero gives an invalid result).
  nlohmann::json measure(const bench::options& bo);
  /// The first Ctrl-C: SIGINT to the client's process group (then SIGKILL after 10 s).
  void interrupt();
  /// A second Ctrl-C: SIGKILL to the client's process group now.
  void kill();
  /// One result per measurement window (its name in result["window"]); empty without windows.
  const std::vector<nlohmann::json>& window_results() const { return windows_; }

 private:
  client_options o_;
  std::string run_dir_;
  base::redactor redact_;
  std::mutex mu_;
  std::unique_ptr<engine_child> child_;
  std::atomic<int> interrupts_{0};
  std::vector<nlohmann::json> windows_;
};

/// Writes each window's result into RUN_DIR/windows/NAME/result.json (never over one) and a
/// ledger row for each when `tsv` is set; returns their paths. `finish` completes each as the
/// run's own result was completed (config, repo state, redaction).
std::vector<std::string> write_window_results(std::vector<nlohmann::json> windows, const std::string& run_dir,
                                              const std::string& tsv);

}  // namespace bp::measure
