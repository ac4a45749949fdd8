#pragma once
/// Internal to the proxy: one proxied HTTP/1 connection as the listener sees it, and what the
/// connection sees of the listener.
///
/// The listener (proxy_server.cpp) accepts a socket, opens a session on one of its I/O threads
/// and from then on only starts it, sweeps it for timeouts and closes it. Everything the session
/// does per request (parse, forward, relay; session.cpp) needs of the server only the state
/// below: the options, the counters, the request log and the metrics. So the session's unit
/// does not know the listener, and the listener's does not hold Beast's parser.
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>

#include "net/proxy/connection_handle.hpp"
#include "net/proxy/event_loop.hpp"
#include "net/proxy/proxy_metrics.hpp"
#include "net/proxy/proxy_server.hpp"
#include "net/proxy/request_log.hpp"
#include "net/proxy/request_timing.hpp"
#include "net/proxy/run_status.hpp"

namespace bp::net::detail {

using clock_type = std::chrono::steady_clock;

class session;

/// One I/O thread: its event loop, the sessions it owns, one coarse sweep for every timeout.
struct thread_ctx {
  event_loop loop;
  std::shared_ptr<loop_door> door = std::make_shared<loop_door>(loop);
  std::unordered_map<std::uint64_t, std::shared_ptr<session>> sessions;
  clock_type::time_point now = clock_type::now();
  bool had_sessions = false;
  std::thread thread;
};

/// What every session shares with the server: owned by the server, outliving its sessions.
/// Read per request, so everything here is inline.
struct server_state {
  server_state(const server_options& o, run_status& st) : opts_(o), status_(st) {}
  const server_options& opts() const { return opts_; }
  run_status& status() { return status_; }
  request_log& requests() { return log_; }
  proxy_metrics& metrics() { return metrics_; }
  server_hooks& hooks() { return hooks_; }
  std::uint16_t upstream_port() const { return upstream_port_.load(); }
  /// A proxied request is over: counted in /metrics, kept for /proxy/requests and requests.jsonl.
  void record(std::unique_ptr<request_record>& r) {
    metrics_.observe(*r);
    log_.add(r);  // r comes back as a used record to reuse
  }

  server_options opts_;
  run_status& status_;
  request_log log_{opts_.request_window};
  proxy_metrics metrics_;
  server_hooks hooks_;
  std::atomic<std::uint16_t> upstream_port_{0};
  std::atomic<std::size_t> in_flight_{0};  // requests in flight, over every thread
  std::atomic<std::size_t> open_{0};       // connections open, over every thread
};

/// One proxied connection (client socket, and the engine's while a request is forwarded), on its
/// I/O thread. The class is session.cpp's own; the listener holds this interface.
class session : public connection_control {
 public:
  /// A session for the accepted socket `fd` (TCP_NODELAY set, counted open), not started yet.
  static std::shared_ptr<session> open(server_state& srv, thread_ctx& tc, int fd, std::uint64_t id);
  /// Before start(): the handle that hears of this session's end.
  virtual void set_handle(std::shared_ptr<session_handle> h) = 0;
  /// On its I/O thread: watches the socket and reads the first request.
  virtual void start() = 0;
  /// The thread's coarse sweep: closes or answers what waited too long.
  virtual void sweep(clock_type::time_point now) = 0;

 protected:
  ~session() = default;
};

}  // namespace bp::net::detail
