#include "net/proxy/connection_handle.hpp"

#include "net/proxy/event_loop.hpp"

namespace bp::net {

static_assert(sizeof(conn_stats) == 8 * sizeof(std::uint64_t),
              "a new conn_stats counter goes into operator+=, operator== and describe() too");

std::string describe(const conn_stats& s) {
  return std::to_string(s.requests) + " requests, " + std::to_string(s.proxied) + " proxied, " +
         std::to_string(s.bytes_from_client) + " B in, " + std::to_string(s.bytes_to_client) + " B out, " +
         std::to_string(s.client_aborts) + " client aborts, " + std::to_string(s.upstream_errors) +
         " upstream errors, " + std::to_string(s.upstream_timeouts) + " upstream timeouts, " +
         std::to_string(s.bad_requests) + " bad requests";
}

void loop_door::post(std::function<void()> f) {
  std::lock_guard<std::mutex> lk(mu_);
  if (loop_) loop_->post(std::move(f));
}

void loop_door::shut() {
  std::lock_guard<std::mutex> lk(mu_);
  loop_ = nullptr;
}

session_handle::session_handle(std::weak_ptr<connection_control> s, std::shared_ptr<loop_door> door,
                               std::uint64_t id, std::string peer)
    : s_(std::move(s)), door_(std::move(door)), id_(id), peer_(std::move(peer)) {}

void session_handle::on_end(end_listener f) {
  std::unique_lock<std::mutex> lk(mu_);
  if (!ended_) {
    listener_ = std::move(f);
    return;
  }
  conn_stats st = stats_;
  std::string why = reason_;
  lk.unlock();
  if (f) f(st, why);
}

void session_handle::close(const std::string& reason) {
  command([reason](connection_control& s) { s.close(reason, false); });
}

void session_handle::drain(const std::string& reason) {
  command([reason](connection_control& s) { s.drain(reason); });
}

void session_handle::abort(const std::string& reason) {
  command([reason](connection_control& s) { s.close(reason, true); });
}

void session_handle::ended(const conn_stats& st, const std::string& why) {
  end_listener f;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (ended_) return;
    ended_ = true;
    stats_ = st;
    reason_ = why;
    f.swap(listener_);
  }
  if (f) f(st, why);
}

void session_handle::command(std::function<void(connection_control&)> f) {
  // Runs on the session's I/O thread, if the session is still there then.
  door_->post([w = s_, f = std::move(f)] {
    if (auto s = w.lock()) f(*s);
  });
}

}  // namespace bp::net
