#pragma once
/// Internal to the proxy: how a connection's handle (proxy_server.hpp) reaches its session, and how
/// the session tells the handle of its end. Nothing here runs per request; it has its own
/// translation unit (connection_handle.cpp), so session.cpp keeps to the byte path.
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "net/proxy/proxy_server.hpp"

namespace bp::net {

class event_loop;

/// What a handle's commands act on: the session, on its own I/O thread.
class connection_control {
 public:
  /// Ends the connection: a FIN after what was written, or with `reset` a reset (abort).
  virtual void close(const std::string& reason, bool reset) = 0;
  /// Takes no new request: closes now when idle, else once the response in flight is complete.
  virtual void drain(const std::string& reason) = 0;

 protected:
  ~connection_control() = default;
};

/// How handles reach an I/O thread's loop: under a lock, so that a command from an owner that
/// outlives the server by a moment (a connection actor) is dropped, not posted to a loop that is
/// gone.
class loop_door {
 public:
  explicit loop_door(event_loop& l) : loop_(&l) {}
  /// `f` runs on the loop's thread (posted through its eventfd), or nowhere once shut.
  void post(std::function<void()> f);
  /// From here on every post is dropped (the server shut its loops down).
  void shut();

 private:
  std::mutex mu_;
  event_loop* loop_;  // null once shut
};

/// A connection's handle. Held by the session (for the end) and by whoever owns the connection (a
/// connection actor), never the other way round: it reaches the session through a weak pointer.
class session_handle final : public connection_handle {
 public:
  session_handle(std::weak_ptr<connection_control> s, std::shared_ptr<loop_door> door, std::uint64_t id,
                 std::string peer);
  std::uint64_t id() const override { return id_; }
  std::string peer() const override { return peer_; }
  void on_end(end_listener f) override;
  void close(const std::string& reason) override;
  void drain(const std::string& reason) override;
  void abort(const std::string& reason) override;
  /// On the session's I/O thread, once: the connection ended.
  void ended(const conn_stats& st, const std::string& why);

 private:
  void command(std::function<void(connection_control&)> f);
  std::weak_ptr<connection_control> s_;
  std::shared_ptr<loop_door> door_;
  std::uint64_t id_;
  std::string peer_;
  std::mutex mu_;
  bool ended_ = false;  // guarded by mu_, as the three below
  conn_stats stats_;
  std::string reason_;
  end_listener listener_;
};

}  // namespace bp::net
