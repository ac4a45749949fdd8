#pragma once
/// The streaming reverse proxy. Boost-free and CAF-free header: Boost stays in the .cpp files.
///
/// Bytes never cross a CAF mailbox: each I/O thread owns an edge-triggered epoll loop
/// (event_loop.hpp) and the sessions accepted onto it. The rest of the process hears about a
/// connection twice, at its birth (`hooks.on_open`, with its handle) and at its end (the handle's
/// `on_end`, with its counters), and reaches it only through that handle: close, drain, abort,
/// each a command its I/O thread picks up through the loop's eventfd. Nothing per request.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "net/proxy/request_log.hpp"
#include "net/proxy/run_status.hpp"

namespace bp::net {

struct server_options {
  std::string listen = "127.0.0.1:8080";  ///< HOST:PORT, [V6]:PORT or :PORT
  int threads = 0;                        ///< 0: one per core
  std::uint64_t max_request_body = 32ull << 20;
  double idle_timeout_s = 75;     ///< keep-alive connection with no request in progress
  double request_timeout_s = 60;  ///< from a request's first byte to its last
  double send_timeout_s = 60;     ///< client not reading what we have to send
  double upstream_header_timeout_s = 1800;  ///< request forwarded -> the engine's response header (504)
  double upstream_idle_timeout_s = 300;     ///< longest gap between response body bytes
  std::size_t max_connections = 0;          ///< 0: (RLIMIT_NOFILE soft - 64) / 2
  std::size_t request_window = 10000;       ///< records GET /proxy/requests keeps (requests.jsonl keeps all)
};

/// Per-connection counters, reported once when the connection closes.
struct conn_stats {
  std::uint64_t requests = 0;
  std::uint64_t proxied = 0;
  std::uint64_t bytes_from_client = 0;
  std::uint64_t bytes_to_client = 0;
  std::uint64_t client_aborts = 0;  ///< client went away while a response was in flight
  std::uint64_t upstream_errors = 0;
  std::uint64_t bad_requests = 0;
  std::uint64_t upstream_timeouts = 0;  ///< 504s and responses cut for an engine that went quiet
};

/// Adds every counter of `b` to `a` (a run's totals). A counter added to conn_stats is added
/// here and in describe() too: connection_handle.cpp's static_assert on the struct's size says so.
inline conn_stats& operator+=(conn_stats& a, const conn_stats& b) {
  a.requests += b.requests;
  a.proxied += b.proxied;
  a.bytes_from_client += b.bytes_from_client;
  a.bytes_to_client += b.bytes_to_client;
  a.client_aborts += b.client_aborts;
  a.upstream_errors += b.upstream_errors;
  a.bad_requests += b.bad_requests;
  a.upstream_timeouts += b.upstream_timeouts;
  return a;
}
inline bool operator==(const conn_stats& a, const conn_stats& b) {
  return a.requests == b.requests && a.proxied == b.proxied && a.bytes_from_client == b.bytes_from_client &&
         a.bytes_to_client == b.bytes_to_client && a.client_aborts == b.client_aborts &&
         a.upstream_errors == b.upstream_errors && a.bad_requests == b.bad_requests &&
         a.upstream_timeouts == b.upstream_timeouts;
}
/// Every counter, for a log line: "7 requests, 5 proxied, 812 B in, ... , 0 upstream timeouts".
std::string describe(const conn_stats& s);

/// One connection as the rest of the process sees it, and the only way to act on it from outside
/// its I/O thread. Thread-safe. Nothing here waits for that thread: each command is posted to the
/// connection's loop (its eventfd wakes it) and done there, in order; a command for a connection
/// that already ended (or for a server that shut down) does nothing.
class connection_handle {
 public:
  /// The connection ended: its final counters, and why.
  using end_listener = std::function<void(const conn_stats&, const std::string& reason)>;
  virtual ~connection_handle() = default;
  virtual std::uint64_t id() const = 0;
  virtual std::string peer() const = 0;
  /// Who hears of the end: `f` is called once, on the connection's I/O thread as it ends, or at
  /// once on the caller's thread when it already has (the counters are kept for that). Replaces a
  /// listener that was not called yet.
  virtual void on_end(end_listener f) = 0;
  /// Closes now: a request in flight is cut; the client gets what was already written, then a FIN.
  virtual void close(const std::string& reason) = 0;
  /// Takes no new request: an idle connection closes now, a busy one as soon as its response is
  /// complete (the deadline is the caller's to keep, with abort).
  virtual void drain(const std::string& reason) = 0;
  /// Cuts now: the engine's socket is closed (it stops generating) and the client gets a reset
  /// (SO_LINGER 0), so that a response cut short cannot pass for a complete one.
  virtual void abort(const std::string& reason) = 0;
};

struct server_hooks {
  /// On the accepting I/O thread, once per connection: its handle.
  std::function<void(std::shared_ptr<connection_handle>)> on_open;
  /// On the connection's I/O thread, exactly once per opened connection (beside the handle's
  /// on_end; for a user of the proxy without handles).
  std::function<void(std::uint64_t id, const conn_stats&, const std::string& reason)> on_close;
  /// On an I/O thread: something went wrong outside any one request (logged by the caller).
  std::function<void(const std::string& what)> on_error;
};

class proxy_server {
 public:
  virtual ~proxy_server() = default;
  /// Binds and listens now. Returns nullptr with `err` set when the address cannot be used.
  static std::unique_ptr<proxy_server> create(const server_options& o, run_status& status,
                                              std::string& err);
  /// Where the engine listens (loopback). 0 until known: /v1 answers 503 meanwhile.
  virtual void set_upstream_port(std::uint16_t port) = 0;
  virtual void start(server_hooks hooks) = 0;
  virtual std::string local_address() const = 0;
  virtual std::uint16_t local_port() const = 0;
  /// Closes the listener on its I/O thread (new connections are refused; open ones go on) and
  /// then calls `closed` there; returns at once, never waiting for that thread.
  virtual void stop_accepting(std::function<void()> closed = nullptr) = 0;
  /// The per-request records (GET /proxy/requests; requests.jsonl once a file is opened).
  virtual request_log& requests() = 0;
  /// Requests in flight (a request read or a response not yet fully sent).
  virtual std::size_t in_flight() const = 0;
  virtual std::size_t open_connections() const = 0;
  /// Stops the I/O threads and joins them. A connection still open then (nobody closed it through
  /// its handle) is closed here, as a last resort; its handle's commands do nothing from now on.
  virtual void shutdown() = 0;
};

/// Parses HOST:PORT, [V6]:PORT, :PORT or PORT. Returns false with `err` on bad input.
bool parse_listen_address(const std::string& s, std::string& host, std::uint16_t& port, std::string& err);

}  // namespace bp::net
