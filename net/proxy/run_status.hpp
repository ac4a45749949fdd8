#pragma once
/// What bench-proxy itself answers on /healthz and /meta: state shared between the actors (writers)
/// and the I/O threads (readers). Boost-free and lock-light: the hot proxy path never touches it.
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

namespace bp::net {

enum class run_state : int { starting = 0, warming, snapshotting, ready, stopping, failed };
const char* to_string(run_state s);

/// The frozen /meta document: produced once, served as immutable bytes.
struct meta_document {
  std::string bytes;
  std::string sha256;  ///< snapshot id; also the ETag
};

class run_status {
 public:
  run_status();
  void set_state(run_state s) { state_.store(static_cast<int>(s)); }
  run_state state() const { return static_cast<run_state>(state_.load()); }
  void set_engine_pid(pid_t p) { pid_.store(p); }
  pid_t engine_pid() const { return pid_.load(); }
  void set_engine_port(int p) { port_.store(p); }
  int engine_port() const { return port_.load(); }
  void set_config_description(std::string d);
  std::string config_description() const;
  /// The engine's Prometheus path for GET /engine/metrics ("" : its kind exposes none); set once
  /// before the proxy serves, read by I/O threads afterwards.
  void set_engine_metrics(std::string path, std::string kind) {
    engine_metrics_path_ = std::move(path);
    engine_kind_ = std::move(kind);
  }
  const std::string& engine_metrics_path() const { return engine_metrics_path_; }
  const std::string& engine_kind() const { return engine_kind_; }
  void set_detail(std::string d);  ///< e.g. why it failed; shown on /healthz and /meta's 503 body

  /// Publishes the snapshot exactly once; later calls are ignored and return false.
  bool publish(std::shared_ptr<const meta_document> doc);
  std::shared_ptr<const meta_document> meta() const;

  /// The proxy counts an engine that did not answer in time (504 or a cut response).
  void count_upstream_timeout() { upstream_timeouts_.fetch_add(1, std::memory_order_relaxed); }
  std::uint64_t upstream_timeouts() const { return upstream_timeouts_.load(std::memory_order_relaxed); }

  std::string healthz_json() const;
  std::string meta_pending_json() const;

 private:
  std::atomic<int> state_{0};
  std::string engine_metrics_path_, engine_kind_;
  std::atomic<pid_t> pid_{0};
  std::atomic<int> port_{0};
  std::atomic<std::uint64_t> upstream_timeouts_{0};
  std::chrono::steady_clock::time_point started_;
  std::chrono::system_clock::time_point started_wall_;
  mutable std::mutex mu_;
  std::string description_;
  std::string detail_;
  std::shared_ptr<const meta_document> meta_;
};

}  // namespace bp::net
