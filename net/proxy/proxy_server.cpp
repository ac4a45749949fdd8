// The proxy's listener (see docs/architecture.md, "Byte path"): the listening socket, the I/O
// threads (one edge-triggered event loop each, event_loop.hpp), accepting a connection onto one
// of them as a session (session.hpp), each thread's coarse sweep for timeouts, and the shutdown.
// Nothing here runs per request: the byte path is the session's (session.cpp), and this unit
// does not include Beast's parser. parse_listen_address is the listener's address syntax.
#include "net/proxy/proxy_server.hpp"

#include "net/proxy/connection_handle.hpp"
#include "net/proxy/event_loop.hpp"
#include "net/proxy/io_buffers.hpp"
#include "net/proxy/routes.hpp"
#include "net/proxy/session.hpp"

#include <malloc.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>

namespace bp::net {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

bool parse_listen_address(const std::string& s, std::string& host, std::uint16_t& port, std::string& err) {
  std::string h, p;
  if (!s.empty() && s[0] == '[') {
    auto close = s.find(']');
    if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':') {
      err = "expected [IPv6]:PORT, got '" + s + "'";
      return false;
    }
    h = s.substr(1, close - 1);
    p = s.substr(close + 2);
  } else if (auto colon = s.rfind(':'); colon != std::string::npos) {
    h = s.substr(0, colon);
    p = s.substr(colon + 1);
  } else {
    p = s;
  }
  if (h.empty()) h = "127.0.0.1";
  if (h == "localhost") h = "127.0.0.1";
  if (p.empty() || p.size() > 5 || !std::all_of(p.begin(), p.end(), ::isdigit) || std::stoi(p) > 65535) {
    err = "invalid port in listen address '" + s + "'";
    return false;
  }
  error_code ec;
  asio::ip::make_address(h, ec);
  if (ec) {
    err = "invalid IP address '" + h + "' in listen address '" + s + "' (use a numeric address)";
    return false;
  }
  host = h;
  port = static_cast<std::uint16_t>(std::stoi(p));
  return true;
}

namespace {

using detail::clock_type;
using detail::server_state;
using detail::session;
using detail::sys_error;
using detail::thread_ctx;
using detail::would_block;

class server_impl final : public proxy_server, private io_watch {
 public:
  server_impl(const server_options& o, run_status& st) : state_(o, st), threads_(make_threads(o)) {
    max_connections_ = o.max_connections;
    if (max_connections_ == 0) {
      // Each proxied connection holds two descriptors (client and engine); keep some for the rest.
      rlimit rl{};
      ::getrlimit(RLIMIT_NOFILE, &rl);
      std::uint64_t soft = rl.rlim_cur == RLIM_INFINITY ? 1u << 20 : rl.rlim_cur;
      max_connections_ = static_cast<std::size_t>(std::max<std::uint64_t>(16, soft > 64 ? (soft - 64) / 2 : 16));
    }
  }
  static std::vector<std::unique_ptr<thread_ctx>> make_threads(const server_options& o) {
    int n = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));  // I/O threads, one event loop each
    std::vector<std::unique_ptr<thread_ctx>> t;
    for (int i = 0; i < n; ++i) t.push_back(std::make_unique<thread_ctx>());
    return t;
  }
  ~server_impl() override {
    shutdown();
    close_listener();
  }

  bool bind(std::string& err) {
    std::string host;
    std::uint16_t port = 0;
    if (!parse_listen_address(state_.opts_.listen, host, port, err)) return false;
    tcp::endpoint ep(asio::ip::make_address(host), port);
    int fd = ::socket(ep.protocol().family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    bool ok = fd >= 0 && ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
              ::bind(fd, ep.data(), static_cast<socklen_t>(ep.size())) == 0 && ::listen(fd, SOMAXCONN) == 0;
    if (!ok) {
      err = "cannot listen on " + state_.opts_.listen + ": " + sys_error(errno).message();
      if (fd >= 0) ::close(fd);
      return false;
    }
    tcp::endpoint bound;
    socklen_t len = static_cast<socklen_t>(bound.capacity());
    if (::getsockname(fd, bound.data(), &len) == 0) {
      bound.resize(len);
      auto a = bound.address().to_string();
      if (bound.address().is_v6()) a = "[" + a + "]";
      bound_address_ = a + ":" + std::to_string(bound.port());
      bound_port_ = bound.port();
    }
    listen_fd_ = fd;
    return true;
  }

  void set_upstream_port(std::uint16_t port) override { state_.upstream_port_.store(port); }

  void start(server_hooks hooks) override {
    state_.hooks_ = std::move(hooks);
    if (int e = threads_[0]->loop.add(listen_fd_, this))
      if (state_.hooks_.on_error) state_.hooks_.on_error("cannot watch the listening socket: " + sys_error(e).message());
    for (auto& t : threads_) {
      schedule_sweep(*t);
      t->thread = std::thread([this, tc = t.get()] {
        // A failure in one connection's handler must not take the thread down, and is not
        // hidden either.
        tc->loop.run([this](const std::string& what) {
          if (state_.hooks_.on_error) state_.hooks_.on_error("I/O thread caught: " + what);
        });
      });
    }
    started_ = true;
  }

  std::string local_address() const override { return bound_address_; }
  std::uint16_t local_port() const override { return bound_port_; }

  void stop_accepting(std::function<void()> closed) override {
    if (!started_) {
      close_listener();
      if (closed) closed();
      return;
    }
    threads_[0]->loop.post([this, closed = std::move(closed)] {
      close_listener();
      if (closed) closed();
    });
  }

  std::size_t in_flight() const override { return state_.in_flight_.load(); }
  std::size_t open_connections() const override { return state_.open_.load(); }

  void shutdown() override {
    if (shut_) return;
    shut_ = true;
    if (!started_) {
      for (auto& t : threads_) t->door->shut();
      return;
    }
    threads_[0]->loop.post([this] { close_listener(); });
    for (auto& t : threads_) {
      t->loop.post([tc = t.get()] {
        std::vector<std::shared_ptr<session>> all;
        for (auto& [id, s] : tc->sessions) all.push_back(s);
        for (auto& s : all) s->close("bench-proxy shutting down", false);
        tc->loop.stop();
      });
    }
    for (auto& t : threads_)
      if (t->thread.joinable()) t->thread.join();
    // From here a handle's command is dropped: no loop runs it any more.
    for (auto& t : threads_) t->door->shut();
    // What the loops did not get to (a connection accepted as they stopped): closed here, on
    // this thread, while everything it reports to is still alive.
    for (auto& t : threads_) {
      t->loop.discard_pending();
      std::vector<std::shared_ptr<session>> all;
      for (auto& [id, s] : t->sessions) all.push_back(s);
      for (auto& s : all) s->close("bench-proxy shutting down", false);
      t->sessions.clear();
      t->loop.discard_pending();
    }
  }

  request_log& requests() override { return state_.requests(); }

 private:
  void close_listener() {
    if (listen_fd_ < 0) return;
    threads_[0]->loop.remove(listen_fd_);
    ::close(listen_fd_);
    listen_fd_ = -1;
  }

  // The listening socket is readable: accept until the backlog is empty (edge-triggered).
  void on_events(std::uint32_t) override { accept_all(); }

  void accept_all() {
    while (listen_fd_ >= 0 && !accept_paused_) {
      tcp::endpoint peer_ep;
      socklen_t len = static_cast<socklen_t>(peer_ep.capacity());
      int fd = ::accept4(listen_fd_, peer_ep.data(), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        int e = errno;
        if (would_block(e)) return;
        if (e == EINTR || e == ECONNABORTED || e == EPROTO) continue;
        // Out of descriptors (or kernel memory) the same accept fails again at once: pause
        // instead of spinning, and say so, as nginx does.
        return accept_failed(e);
      }
      if (state_.open_.load() >= max_connections_) {
        refuse_over_limit(fd);
        continue;
      }
      thread_ctx& target = *threads_[next_++ % threads_.size()];
      std::uint64_t id = ++ids_;
      std::string peer;
      peer_ep.resize(len);
      if (len > 0) peer = peer_ep.address().to_string() + ":" + std::to_string(peer_ep.port());
      auto sess = session::open(state_, target, fd, id);
      auto handle = std::make_shared<session_handle>(sess, target.door, id, std::move(peer));
      sess->set_handle(handle);
      target.loop.post([sess] { sess->start(); });
      if (state_.hooks_.on_open) state_.hooks_.on_open(std::move(handle));
    }
  }

  void accept_failed(int e) {
    auto now = clock_type::now();
    ++accept_failures_;
    if (now - last_accept_log_ >= std::chrono::seconds(1)) {
      if (state_.hooks_.on_error)
        state_.hooks_.on_error("accept4() failed (" + std::to_string(e) + ": " + sys_error(e).message() +
                        "); pausing accepts for 100 ms" +
                        (accept_failures_ > 1 ? " (" + std::to_string(accept_failures_) + " times since the last report)"
                                              : std::string()));
      last_accept_log_ = now;
      accept_failures_ = 0;
    }
    accept_paused_ = true;
    // No edge comes for connections already waiting: the timer accepts them.
    threads_[0]->loop.at(now + std::chrono::milliseconds(100), [this] {
      accept_paused_ = false;
      accept_all();
    });
  }

  void refuse_over_limit(int fd) {
    ++refused_;
    auto now = clock_type::now();
    if (now - last_refusal_log_ >= std::chrono::seconds(1)) {
      last_refusal_log_ = now;
      if (state_.hooks_.on_error)
        state_.hooks_.on_error("refused a connection with 503: " + std::to_string(state_.open_.load()) + " open, limit " +
                        std::to_string(max_connections_) + " (--max-connections); " + std::to_string(refused_) +
                        " refused so far");
    }
    std::string body = json_error(503, "overloaded",
                                  "bench-proxy serves at most " + std::to_string(max_connections_) +
                                      " connections at once (--max-connections)");
    std::string msg = "HTTP/1.1 503 Service Unavailable\r\nServer: bench-proxy\r\nContent-Type: application/json\r\n"
                      "Content-Length: " + std::to_string(body.size()) + "\r\nRetry-After: 1\r\nConnection: close\r\n\r\n" + body;
    [[maybe_unused]] auto n = ::send(fd, msg.data(), msg.size(), MSG_NOSIGNAL);  // best effort: a fresh socket's send buffer takes it
    ::shutdown(fd, SHUT_RDWR);
    ::close(fd);
  }

  void schedule_sweep(thread_ctx& tc) {
    tc.loop.at(clock_type::now() + std::chrono::milliseconds(500), [this, &tc] {
      tc.now = clock_type::now();
      std::vector<std::shared_ptr<session>> live;
      live.reserve(tc.sessions.size());
      for (auto& [id, s] : tc.sessions) live.push_back(s);
      for (auto& s : live) s->sweep(tc.now);
      // When a busy thread goes idle, hand freed buffers back to the system so RSS returns to its
      // idle level after a load (glibc keeps freed heap otherwise).
      if (live.empty() && tc.had_sessions) ::malloc_trim(0);
      tc.had_sessions = !live.empty();
      schedule_sweep(tc);
    });
  }

  server_state state_;  // first: built before the threads and their sessions, gone after them
  std::vector<std::unique_ptr<thread_ctx>> threads_;
  int listen_fd_ = -1;  // used on the first I/O thread once started
  std::string bound_address_;
  std::uint16_t bound_port_ = 0;
  std::atomic<std::uint64_t> ids_{0};
  std::size_t next_ = 0;
  std::size_t max_connections_ = 0;
  bool accept_paused_ = false;
  clock_type::time_point last_accept_log_{};
  clock_type::time_point last_refusal_log_{};
  std::uint64_t accept_failures_ = 0;
  std::uint64_t refused_ = 0;
  bool started_ = false;
  bool shut_ = false;
};

}  // namespace

std::unique_ptr<proxy_server> proxy_server::create(const server_options& o, run_status& status, std::string& err) {
  auto s = std::make_unique<server_impl>(o, status);
  if (!s->bind(err)) return nullptr;
  return s;
}

}  // namespace bp::net
