#pragma once
/// The engine child: launched through a small supervising shim so that nothing of the engine's
/// tree can outlive bench-proxy (see docs/architecture.md, "Process containment").
///
///   bench-proxy ──fork/exec──▶ shim (`bench-proxy-shim __engine-shim`: a small executable of its
///                               own, engine_shim.cpp; child subreaper, parent-death signal SIGTERM)
///                                └─fork/exec──▶ engine (own process group, parent-death SIGKILL,
///                                               exactly the YAML env, configured cwd)
///
/// When the engine exits, or bench-proxy dies (even by SIGKILL), the shim SIGKILLs the engine's
/// process group and every process re-parented to it, reaps them all, and exits.
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/redact.hpp"

namespace bp {

class sha256_hasher;

struct launch_spec {
  std::string shim_exe;               ///< bench-proxy-shim, or the bench-proxy binary (find_engine_shim)
  std::string exe;                    ///< resolved engine executable
  std::vector<std::string> argv;      ///< argv[0] is the cmd as configured
  std::vector<std::string> envp;      ///< "NAME=value", exactly what the engine gets
  std::string cwd;
  std::string log_path;               ///< engine.log (stdout and stderr, secrets scrubbed)
  std::string err_log_path;           ///< set: stderr goes here instead of log_path (a --client's)
  base::redactor redact;              ///< applied to every line bench-proxy logs or writes
  std::string log_prefix = "engine";
  /// Engine output lines on bench-proxy's log at info (serve); false: at debug only, the lines
  /// still in log_path and the capture (a measured run: its last lines are shown when it fails).
  bool output_at_info = true;
};

/// Captured engine output: a rolling tail for error reports, head/tail windows and a hash for
/// the snapshot's engine_log section.
class output_capture {
 public:
  output_capture();
  ~output_capture();
  static constexpr std::size_t kWindow = 256 * 1024;
  void append(const std::string& scrubbed);
  std::vector<std::string> tail_lines(std::size_t n) const;
  struct view {
    std::string head, tail;
    std::uint64_t total_bytes = 0;
    bool truncated = false;
    std::string sha256;
  };
  view snapshot() const;

 private:
  mutable std::mutex mu_;
  std::string head_;
  std::string tail_;
  std::uint64_t total_ = 0;
  std::deque<std::string> lines_;
  std::string partial_;
  std::unique_ptr<sha256_hasher> hasher_;
};

class engine_child {
 public:
  using exit_fn = std::function<void(int wait_status)>;
  ~engine_child();

  /// Starts the shim and the engine. `on_exit` runs on a reaper thread once the engine exited
  /// (with its wait status), after the shim has cleaned up the whole tree.
  static std::unique_ptr<engine_child> launch(const launch_spec& spec, exit_fn on_exit, std::string& err);

  pid_t pid() const { return pid_; }        ///< the engine's root process (also its pgid)
  pid_t shim_pid() const { return shim_; }
  /// Signals the engine's process group.
  void signal_group(int sig) const;
  /// Blocks until the engine and the shim are gone, up to `timeout`.
  bool wait_gone(std::chrono::milliseconds timeout);
  const output_capture& output() const { return *capture_; }
  /// The captured output, for readers that must not own the child (the engine_log collector).
  std::shared_ptr<const output_capture> output_handle() const { return capture_; }

 private:
  engine_child() = default;
  void reaper_loop(exit_fn on_exit);
  void pump_loop(base::redactor redact, std::string prefix, bool at_info);

  pid_t shim_ = -1, pid_ = -1;
  int status_fd_ = -1, out_fd_ = -1, err_fd_ = -1, log_fd_ = -1, err_log_fd_ = -1;
  std::atomic<bool> exited_{false};
  std::atomic<bool> gone_{false};
  std::atomic<bool> pump_done_{false};
  int pump_wake_fd_ = -1;
  std::atomic<int> status_{0};
  std::thread reaper_, pump_;
  std::shared_ptr<output_capture> capture_ = std::make_shared<output_capture>();
  std::mutex mu_;
  std::condition_variable cv_;
};

/// Kills and reaps every child of bench-proxy it did not fork itself: the orphans a dead shim's
/// engine tree left behind (re-parented here, since bench-proxy is a child subreaper).
void kill_orphans();

/// "exited with status 3" / "killed by signal 9 (SIGKILL)".
std::string describe_wait_status(int status);

/// The shim to exec: `bench-proxy-shim` next to `self_exe` (bench-proxy's own binary; a
/// " (deleted)" suffix of /proc/self/exe is ignored) when it is there and executable
/// (`standalone` true), else `self_exe` itself, whose `__engine-shim` runs the same code.
std::string find_engine_shim(const std::string& self_exe, bool& standalone);

/// Entry point of `bench-proxy __engine-shim` (the fallback shim: engine_shim.cpp inside
/// bench-proxy); never returns to normal CLI handling.
int engine_shim_main(int argc, char** argv);

/// Makes bench-proxy a child subreaper (re-parented descendants come back to it).
void become_subreaper();

/// A free TCP port on 127.0.0.1 assigned by the kernel.
int free_loopback_port(std::string& err);

}  // namespace bp
