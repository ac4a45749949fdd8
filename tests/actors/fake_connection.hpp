#pragma once
// A proxied connection as the actor tests see it: a connection_handle that records the commands
// it is given (close, drain, abort) instead of posting them to an I/O thread, and whose end the
// test announces, as the connection's I/O thread would, with end().
#include <memory>
#include <string>
#include <vector>

#include "net/proxy/proxy_server.hpp"

namespace bp::testing {

struct fake_connection final : net::connection_handle {
  explicit fake_connection(std::uint64_t id = 42, std::string peer = "127.0.0.1:5555")
      : id_(id), peer_(std::move(peer)) {}
  std::uint64_t id() const override { return id_; }
  std::string peer() const override { return peer_; }
  void on_end(end_listener f) override {
    if (!ended) {
      listener = std::move(f);
      return;
    }
    if (f) f(final, why);
  }
  void close(const std::string& reason) override { commands.push_back("close: " + reason); }
  void drain(const std::string& reason) override { commands.push_back("drain: " + reason); }
  void abort(const std::string& reason) override { commands.push_back("abort: " + reason); }

  /// What the connection's I/O thread does when the connection ends: once, to the listener.
  void end(const net::conn_stats& st, const std::string& reason) {
    if (ended) return;
    ended = true;
    final = st;
    why = reason;
    auto f = std::move(listener);
    listener = nullptr;
    if (f) f(st, reason);
  }
  /// How many commands start with `prefix` ("close", "drain", "abort").
  int count(const std::string& prefix) const {
    int n = 0;
    for (const auto& c : commands) n += c.rfind(prefix, 0) == 0;
    return n;
  }
  bool listening() const { return static_cast<bool>(listener); }

  std::vector<std::string> commands;
  end_listener listener;
  bool ended = false;
  net::conn_stats final;
  std::string why;

 private:
  std::uint64_t id_;
  std::string peer_;
};

/// Counters with every field set, each to a different value: a sum that leaves one out shows.
inline net::conn_stats every_counter(std::uint64_t base) {
  net::conn_stats s;
  s.requests = base + 1;
  s.proxied = base + 2;
  s.bytes_from_client = base + 3;
  s.bytes_to_client = base + 4;
  s.client_aborts = base + 5;
  s.upstream_errors = base + 6;
  s.bad_requests = base + 7;
  s.upstream_timeouts = base + 8;
  return s;
}

}  // namespace bp::testing
