// One proxied HTTP/1 connection: the session (see docs/architecture.md, "Byte path").
//
// The whole per-request path lives in this unit: the client's request read and parsed with
// Beast's parser (http1.hpp), answered locally or forwarded to the engine, its response parsed
// and relayed as it arrives, the stopwatch (request_timing.hpp) fed, and the connection's close
// and drain. The listener (proxy_server.cpp) only opens, starts, sweeps and closes sessions
// (session.hpp). Design choices measured on this machine kind (docs/benchmarks.md has the figures):
// - plain non-blocking sockets in one edge-triggered epoll set per I/O thread (event_loop.hpp),
//   registered once: no epoll_ctl and no speculative recv per operation; a socket whose last
//   read came back short waits for the kernel's next edge instead of being asked again
//   (io_buffers.hpp);
// - no beast::tcp_stream, no per-operation timers: one coarse sweep per thread;
// - parsers driven by hand (read once, put(), write at once on the non-blocking socket, wait only
//   when it would block): no composed async_read/async_write on the hot path;
// - one write per read batch: the response header leaves with whatever body bytes came with it,
//   and every SSE event already read leaves in the same write; nothing is held back for more.
// GCC inlines Beast's parser into this unit with room to spare (net/proxy/CMakeLists.txt).
#include "net/proxy/session.hpp"

#include "net/proxy/http1.hpp"
#include "net/proxy/io_buffers.hpp"
#include "net/proxy/routes.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <optional>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace bp::net::detail {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using error_code = beast::error_code;
using sv = beast::string_view;

namespace {

using http1::header_rewriter;
using http1::request_line;
using http1::request_parser;
using http1::response_parser;
using http1::route;

class session_impl final : public std::enable_shared_from_this<session_impl>, public session {
 public:
  session_impl(server_state& srv, thread_ctx& tc, int fd, std::uint64_t id);
  ~session_impl();
  /// Before start(): the handle that hears of this session's end.
  void set_handle(std::shared_ptr<session_handle> h) override { handle_ = std::move(h); }
  void start() override;
  /// Ends the connection: a FIN after what was written, or with `reset` a reset (abort).
  void close(const std::string& reason, bool reset = false) override;
  /// Takes no new request: closes now when idle, else once the response in flight is complete.
  void drain(const std::string& reason) override;
  void sweep(clock_type::time_point now) override;
  std::uint64_t id() const { return id_; }

 private:
  enum class phase { request, upstream_write, response, closed };

  /// The loop's view of one of the session's two sockets.
  struct watch final : io_watch {
    session_impl* s;
    bool upstream;
    watch(session_impl* owner, bool up) : s(owner), upstream(up) {}
    void on_events(std::uint32_t e) override { s->on_events(upstream, e); }
  };
  void on_events(bool upstream, std::uint32_t e);
  /// Waits to read `side` with `read`: after this batch if the kernel already said it is
  /// readable (never inside the caller, so a long body is not read by recursion), else at its
  /// next edge.
  void want_read(readiness& side, void (session_impl::*read)());

  void read_client();
  void do_read_client();
  void on_client_read(const error_code& ec, std::size_t n);
  void parse_request();
  void request_done();
  bool request_line_too_long() const;
  void local_response(int status, const char* reason, const std::string& body, const std::string& extra = {},
                      bool force_close = false, bool head = false, const char* content_type = "application/json");
  void forward();
  bool begin_upstream(bool force_close_on_error);
  void start_response();
  bool connect_upstream(std::string& err);
  void write_upstream();
  void upstream_failed(const std::string& what);
  void upstream_timed_out(const std::string& what);
  void close_upstream() {
    if (ufd_ >= 0) {
      tc_.loop.remove(ufd_);
      ::close(ufd_);
      ufd_ = -1;
    }
    up_ready_.reset();
    writing_upstream_ = false;
  }
  void read_upstream();
  void do_read_upstream();
  void on_upstream_read(const error_code& ec, std::size_t n);
  void parse_response();
  void flush_client();
  void response_done();
  void begin_request();
  void touch() { last_activity_ = tc_.now; }
  // Per-request timing (request_timing.hpp): only proxied /v1 requests get a record.
  void begin_record();
  void finish_record(const std::string& why);
  void mark_upstream_error() {
    if (rec_active_) rec_->upstream_error = true;
  }
  void mark_client_abort() {
    stats_.client_aborts++;
    if (rec_active_) rec_->client_aborted = true;
  }
  double since_t0(clock_type::time_point t) const {
    return std::chrono::duration<double, std::milli>(t - t0_).count();
  }

  server_state& srv_;
  thread_ctx& tc_;
  int cfd_ = -1;  // the client's socket
  int ufd_ = -1;  // the engine's socket, -1 when none is open
  watch cw_{this, false}, uw_{this, true};
  readiness cl_ready_, up_ready_;
  std::uint64_t id_;
  phase phase_ = phase::request;
  byte_buffer cin_, uin_;
  out_buffer up_out_, cl_out_;
  header_rewriter req_hr_, resp_hr_;
  request_line req_line_;
  std::optional<request_parser> rp_;
  std::optional<response_parser> sp_;
  bool upstream_reused_ = false;
  clock_type::time_point forwarded_at_, last_upstream_byte_;
  bool upstream_got_bytes_ = false;
  bool retried_ = false;
  bool response_complete_ = false;
  bool close_after_ = false;
  bool writing_client_ = false;
  bool streaming_ = false;         // this request's body is forwarded while it still arrives
  bool writing_upstream_ = false;  // waiting for the engine's socket to take more bytes
  bool compacted_ = false;         // bytes of this request already left up_out_: no retry possible
  static constexpr std::size_t kStreamAbove = 64 * 1024;  // larger bodies stream through
  static constexpr std::size_t kMaxPendingUp = 1 << 20;   // pause reading the client beyond this
  static constexpr std::size_t kReadSize = 8192;
  bool counted_in_flight_ = false;
  bool counted_open_ = false;
  bool continue_sent_ = false;
  clock_type::time_point last_activity_;
  clock_type::time_point request_started_;
  conn_stats stats_;
  std::string close_reason_;
  bool reported_ = false;
  bool draining_ = false;    // drain(): close after the response in flight
  std::string drain_reason_;
  std::shared_ptr<session_handle> handle_;
  std::unique_ptr<request_record> rec_ = std::make_unique<request_record>();  // swapped with the log's
  bool rec_active_ = false;
  response_watch watch_;
  clock_type::time_point read_at_{}, t0_{};  // the last client read; this request's t = 0
  std::uint64_t req_bytes_ = 0, resp_bytes_ = 0;  // this request's bytes from / to the client
  bool relayed_ = false;  // this request's response comes from the engine
};

session_impl::session_impl(server_state& srv, thread_ctx& tc, int fd, std::uint64_t id)
    : srv_(srv), tc_(tc), cfd_(fd), id_(id) {
  int one = 1;
  ::setsockopt(cfd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  srv_.open_++;
  counted_open_ = true;
  last_activity_ = tc_.now;
}

session_impl::~session_impl() {
  if (!reported_) close("connection released");
  if (cfd_ >= 0) ::close(cfd_);
}

void session_impl::start() {
  if (phase_ == phase::closed) return;
  tc_.sessions.emplace(id_, shared_from_this());
  if (int e = tc_.loop.add(cfd_, &cw_)) return close("cannot watch the connection: " + sys_error(e).message());
  begin_request();
}

// The kernel reports a change on one of the two sockets. Each side remembers what it was told;
// whoever waits for it goes on.
void session_impl::on_events(bool upstream, std::uint32_t e) {
  if (phase_ == phase::closed) return;
  if (upstream) {
    up_ready_.on_events(e);
    if ((e & kReadable) && up_ready_.waiting) do_read_upstream();
    if (phase_ == phase::closed) return;
    if ((e & kWritable) && writing_upstream_) {
      writing_upstream_ = false;
      if (phase_ != phase::response) write_upstream();
    }
  } else {
    cl_ready_.on_events(e);
    if ((e & kReadable) && cl_ready_.waiting) do_read_client();
    if (phase_ == phase::closed) return;
    if ((e & kWritable) && writing_client_) {
      writing_client_ = false;
      touch();
      flush_client();
    }
  }
}

void session_impl::begin_request() {
  if (phase_ == phase::closed) return;
  phase_ = phase::request;
  rp_.emplace(req_hr_, up_out_.data, req_line_);
  rp_->eager(true);
  rp_->header_limit(64 * 1024);
  rp_->body_limit(srv_.opts().max_request_body);
  continue_sent_ = false;
  response_complete_ = false;
  streaming_ = false;
  compacted_ = false;
  req_bytes_ = resp_bytes_ = 0;
  relayed_ = false;
  cl_out_.clear();
  up_out_.clear();
  cin_.release_if_idle();
  uin_.release_if_idle();
  if (!cin_.empty())
    parse_request();
  else
    read_client();  // no-op while the read armed during the last response is still outstanding
}

// One client read is outstanding at (almost) any time: while a request is being read it feeds the
// parser; while the response is in flight it notices the client going away (so the engine's work
// is cancelled at once, not at the next write) and keeps pipelined bytes for later.
void session_impl::read_client() {
  // Nothing is asked of the kernel unless it said there is something to read (the client has
  // usually not sent its next request yet).
  if (cl_ready_.waiting || phase_ == phase::closed) return;
  want_read(cl_ready_, &session_impl::do_read_client);
}

void session_impl::want_read(readiness& side, void (session_impl::*read)()) {
  side.waiting = true;
  if (!side.readable || side.queued) return;
  side.queued = true;
  tc_.loop.defer([self = shared_from_this(), &side, read] {
    side.queued = false;
    if (side.waiting && side.readable && self->phase_ != phase::closed) (self.get()->*read)();
  });
}

void session_impl::do_read_client() {
  // Straight into the request buffer (it keeps what is not parsed yet, pipelined requests too).
  error_code ec;
  std::size_t n = 0;
  if (recv_into(cfd_, cin_, kReadSize, cl_ready_, n, ec)) on_client_read(ec, n);
}

void session_impl::on_client_read(const error_code& ec, std::size_t n) {
  if (phase_ == phase::closed) return;
  if (ec) {
    if (phase_ != phase::request && !response_complete_) {
      // The client is gone while the engine still works for it: closing upstream stops it.
      mark_client_abort();
      return close("client disconnected mid-response");
    }
    return close(ec == asio::error::eof ? "client closed the connection" : "client read: " + ec.message());
  }
  cin_.commit(n);  // do_read_client read it into cin_'s free space (recv_into)
  stats_.bytes_from_client += n;
  read_at_ = clock_type::now();
  touch();
  if (phase_ == phase::request) return parse_request();
  // Pipelined bytes during a response: keep them (up to a bound) and keep watching.
  if (cin_.size() < 64 * 1024) read_client();
}

void session_impl::parse_request() {
  if (!counted_in_flight_ && !cin_.empty()) {
    counted_in_flight_ = true;
    srv_.in_flight_++;
    request_started_ = tc_.now;
  }
  error_code ec;
  while (!cin_.empty() && !rp_->is_done()) {
    std::size_t n = rp_->feed(as_sv(cin_), ec);
    cin_.consume(n);
    req_bytes_ += n;
    if (ec == http::error::need_more) {
      ec = {};
      break;
    }
    if (ec) break;
    if (n == 0) break;
  }
  if (!rec_active_ && rp_->where == route::proxy && rp_->is_header_done()) begin_record();
  if (rec_active_ && rp_->is_done() && rec_->request_body_ms < 0) rec_->request_body_ms = since_t0(read_at_);
  if (ec) {
    stats_.bad_requests++;
    if (rp_->rejected.status) {
      const auto& r = rp_->rejected;
      return local_response(r.status, r.reason,
                            json_error(r.status, "invalid_request_error", r.message), r.extra_headers, true);
    }
    if (ec == http::error::header_limit && request_line_too_long())
      return local_response(414, "URI Too Long",
                            json_error(414, "invalid_request_error", "request line too long"), {}, true);
    if (ec == http::error::body_limit)
      return local_response(413, "Payload Too Large",
                            json_error(413, "invalid_request_error",
                                       "request body exceeds the limit of " +
                                           std::to_string(srv_.opts().max_request_body) + " bytes"),
                            {}, true);
    if (ec == http::error::header_limit)
      return local_response(431, "Request Header Fields Too Large",
                            json_error(431, "invalid_request_error", "request header too large"), {}, true);
    return local_response(400, "Bad Request",
                          json_error(400, "invalid_request_error", "malformed HTTP request: " + ec.message()), {},
                          true);
  }
  if (rp_->is_header_done() && rp_->expect_continue && !continue_sent_ && !rp_->is_done()) {
    continue_sent_ = true;
    static const char k100[] = "HTTP/1.1 100 Continue\r\n\r\n";
    [[maybe_unused]] auto n = ::send(cfd_, k100, sizeof(k100) - 1, MSG_NOSIGNAL);
  }
  if (rp_->is_done()) return request_done();
  if (rp_->where == route::proxy && rp_->is_header_done()) {
    // A large body is not held whole: it streams to the engine as it arrives.
    if (!streaming_ && (rp_->chunked() || rp_->content_length().value_or(0) > kStreamAbove ||
                        up_out_.data.size() > kStreamAbove)) {
      if (!begin_upstream(true)) return;
      streaming_ = true;
    }
    if (streaming_) {
      if (!writing_upstream_) write_upstream();
      if (phase_ != phase::request) return;
      if (up_out_.data.size() - up_out_.off > kMaxPendingUp) return;  // resumed once the engine reads
    }
  }
  read_client();
}

// The header limit was hit: was it the request line alone? (nginx answers 414 for that.)
bool session_impl::request_line_too_long() const {
  // Parsed already: the fields after it are what is too large (431; a 64 KiB field was 414).
  if (rp_ && rp_->line_seen) return false;
  sv in = as_sv(cin_);
  auto eol = in.find("\r\n");
  return eol == sv::npos || eol > http1::max_target;
}

void session_impl::request_done() {
  stats_.requests++;
  close_after_ = draining_ || !rp_->keep_alive();
  bool head = rp_->verb == http::verb::head;
  switch (rp_->where) {
    case route::proxy:
      if (streaming_) {
        stats_.proxied++;
        phase_ = phase::upstream_write;
        if (!writing_upstream_) write_upstream();
        return;
      }
      return forward();
    case route::engine_metrics:
      if (srv_.status().engine_metrics_path().empty())
        return local_response(404, "Not Found",
                              json_error(404, "not_found",
                                         "the engine kind '" + srv_.status().engine_kind() +
                                             "' exposes no Prometheus /metrics that bench-proxy knows of"),
                              "", false, head);
      return forward();
    case route::healthz:
    case route::meta:
    case route::metrics:
    case route::proxy_requests:
    case route::proxy_window:
    case route::not_found:
      break;
  }
  local_request lr;
  lr.where = rp_->where;
  lr.method = rp_->method;
  lr.target = rp_->target;
  lr.get = rp_->verb == http::verb::get;
  lr.head = head;
  lr.if_none_match = rp_->if_none_match;
  lr.body = rp_->local_body;
  local_sources src{srv_.status(), &srv_.requests(), &srv_.metrics(),
                    {srv_.in_flight_.load(), srv_.open_.load()}};
  src.windows = &srv_.requests();
  auto a = answer_locally(lr, src);
  local_response(a.status, a.reason, a.body, a.headers, false, a.body_omitted, a.content_type);
}

void session_impl::begin_record() {
  rec_active_ = true;
  rec_->reset();  // a record that came back from the log: its storage is reused
  rec_->id = srv_.requests().next_id();
  rec_->connection = id_;
  rec_->method = rp_->method;
  rec_->path.assign(rp_->target, 0, rp_->target.find('?'));
  rec_->window = rp_->window;
  t0_ = read_at_;
  auto wall = std::chrono::system_clock::now() - std::chrono::duration_cast<std::chrono::system_clock::duration>(
                                                     clock_type::now() - read_at_);
  rec_->start_unix_us = std::chrono::duration_cast<std::chrono::microseconds>(wall.time_since_epoch()).count();
}

void session_impl::finish_record(const std::string& why) {
  if (!rec_active_) return;
  rec_active_ = false;
  watch_.settle();  // what the stopwatch left for after the last byte (a plain body's usage)
  rec_->bytes_in = req_bytes_;
  rec_->bytes_out = resp_bytes_;
  if (!why.empty() && rec_->error.empty()) rec_->error = why;
  srv_.record(rec_);
}

void session_impl::local_response(int status, const char* reason, const std::string& body, const std::string& extra,
                             bool force_close, bool head, const char* content_type) {
  if (phase_ == phase::closed) return;
  if (force_close) close_after_ = true;
  cl_out_.clear();
  std::string& o = cl_out_.data;
  o = "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\nServer: bench-proxy\r\n";
  if (status != 304)
    o += std::string("Content-Type: ") + content_type + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  o += extra;
  if (rec_active_) {
    // A proxied request bench-proxy had to answer itself (engine unreachable, body too large...).
    rec_->local = true;
    rec_->status = status;
    http1::append_number_field(o, http1::request_id_header, rec_->id);
  } else {
    srv_.metrics().count_local(rp_ ? std::string_view(rp_->target) : std::string_view(), status, req_bytes_,
                               o.size() + 2 + (head ? 0 : body.size()));
  }
  if (close_after_) o += "Connection: close\r\n";
  o += "\r\n";
  if (!head) o += body;
  response_complete_ = true;
  phase_ = phase::response;
  flush_client();
}

bool session_impl::connect_upstream(std::string& err) {
  std::uint16_t port = srv_.upstream_port();
  if (port == 0) {
    err = "engine is not ready";
    return false;
  }
  close_upstream();
  auto fail = [&](int fd, int e) {
    err = "cannot connect to the engine on 127.0.0.1:" + std::to_string(port) + ": " + sys_error(e).message();
    if (fd >= 0) ::close(fd);
    return false;
  };
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(-1, errno);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // Loopback: the handshake completes inside connect(), so a blocking connect costs no wait.
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) return fail(fd, errno);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::ioctl(fd, FIONBIO, &one) != 0) return fail(fd, errno);
  if (int e = tc_.loop.add(fd, &uw_)) return fail(fd, e);
  ufd_ = fd;
  upstream_reused_ = false;
  return true;
}

bool session_impl::begin_upstream(bool force_close_on_error) {
  if (ufd_ < 0) {
    std::string err;
    if (!connect_upstream(err)) {
      stats_.upstream_errors++;
      mark_upstream_error();
      bool not_ready = srv_.upstream_port() == 0;
      local_response(not_ready ? 503 : 502, not_ready ? "Service Unavailable" : "Bad Gateway",
                     json_error(not_ready ? 503 : 502, "upstream_error", err), {}, force_close_on_error);
      return false;
    }
  }
  retried_ = false;
  upstream_got_bytes_ = false;
  compacted_ = false;
  up_out_.off = 0;
  return true;
}

void session_impl::forward() {
  if (phase_ == phase::closed) return;
  stats_.proxied++;
  if (!begin_upstream(false)) return;
  phase_ = phase::upstream_write;
  write_upstream();
}

void session_impl::write_upstream() {
  while (up_out_.pending()) {
    ssize_t n = ::send(ufd_, up_out_.data.data() + up_out_.off, up_out_.data.size() - up_out_.off, MSG_NOSIGNAL);
    if (n < 0) {
      int e = errno;
      if (e == EINTR) continue;
      if (would_block(e)) {
        writing_upstream_ = true;  // on_events goes on when the kernel says it takes more
        return;
      }
      return upstream_failed("writing to the engine: " + sys_error(e).message());
    }
    up_out_.off += static_cast<std::size_t>(n);
  }
  if (!rp_->is_done()) {
    // Streaming: everything so far is with the engine; the rest of the body is still arriving.
    up_out_.clear();
    compacted_ = true;
    read_client();  // resumes a read paused for back-pressure
    return;
  }
  if (rec_active_) rec_->forwarded_ms = since_t0(clock_type::now());
  start_response();
}

void session_impl::start_response() {
  if (phase_ == phase::closed) return;
  phase_ = phase::response;
  forwarded_at_ = last_upstream_byte_ = tc_.now;
  sp_.emplace(resp_hr_, cl_out_.data, rp_->version, !close_after_, rp_->verb == http::verb::head);
  sp_->eager(true);
  sp_->body_limit(boost::none);
  relayed_ = true;
  if (rec_active_) {
    watch_.begin(rec_.get(), t0_);
    sp_->observe(rec_->id, &watch_);
  }
  read_upstream();
  read_client();
}

void session_impl::upstream_failed(const std::string& what) {
  error_code ec;
  // A kept-alive upstream connection the engine already closed: retry once on a fresh one.
  if (upstream_reused_ && !upstream_got_bytes_ && !retried_ && !compacted_) {
    retried_ = true;
    std::string err;
    if (connect_upstream(err)) {
      up_out_.off = 0;
      if (rp_->is_done()) phase_ = phase::upstream_write;  // else: still reading a streaming body
      return write_upstream();
    }
  }
  stats_.upstream_errors++;
  mark_upstream_error();
  close_upstream();
  if (phase_ != phase::response || !sp_ || !sp_->header_sent) {
    // A body that was streaming cannot be finished for anyone: close after answering.
    return local_response(502, "Bad Gateway", json_error(502, "upstream_error", what), {}, streaming_);
  }
  // Headers already went out: the only honest signal left is to cut the connection.
  close("engine failed mid-response: " + what);
}

void session_impl::read_upstream() {
  // As for the client: the engine's answer is rarely there yet right after the request went out.
  if (phase_ != phase::response || ufd_ < 0) return;
  want_read(up_ready_, &session_impl::do_read_upstream);
}

void session_impl::do_read_upstream() {
  if (phase_ != phase::response) {
    up_ready_.waiting = false;
    return;
  }
  constexpr std::size_t kUpRead = 16384;
  error_code ec;
  std::size_t n = 0;
  if (recv_into(ufd_, uin_, kUpRead, up_ready_, n, ec)) on_upstream_read(ec, n);
}

void session_impl::on_upstream_read(const error_code& ec, std::size_t n) {
  if (phase_ != phase::response) return;
  if (rec_active_) watch_.at(clock_type::now());
  if (ec) {
    if (ec == asio::error::eof && sp_->is_header_done() && !sp_->is_done()) {
      error_code pec;
      sp_->put_eof(pec);
      if (!pec && sp_->is_done()) {
        if (rec_active_) watch_.finish();
        close_upstream();
        response_complete_ = true;
        close_after_ = close_after_ || sp_->raw_close_delimited;
        return flush_client();
      }
    }
    return upstream_failed(ec == asio::error::eof ? "the engine closed the connection" : ec.message());
  }
  upstream_got_bytes_ = true;
  uin_.commit(n);
  touch();
  last_upstream_byte_ = tc_.now;
  parse_response();
}

void session_impl::parse_response() {
  error_code ec;
  while (!uin_.empty() && !sp_->is_done()) {
    std::size_t used = sp_->feed(as_sv(uin_), ec);
    uin_.consume(used);
    if (ec == http::error::need_more) {
      ec = {};
      break;
    }
    if (ec || used == 0) break;
  }
  if (ec) return upstream_failed("malformed response from the engine: " + ec.message());
  if (rec_active_ && rec_->response_header_ms < 0 && sp_->is_header_done() && sp_->status / 100 != 1) {
    rec_->response_header_ms = watch_.now_ms();
    rec_->status = sp_->status;
  }
  if (sp_->is_done()) {
    if (sp_->status / 100 == 1 && sp_->status != 101) {
      // Interim response: relay it and parse the final one.
      sp_.emplace(resp_hr_, cl_out_.data, rp_->version, !close_after_, rp_->verb == http::verb::head);
      sp_->eager(true);
      sp_->body_limit(boost::none);
      if (rec_active_) sp_->observe(rec_->id, &watch_);
      if (!uin_.empty()) return parse_response();
    } else {
      if (rec_active_) watch_.finish();
      response_complete_ = true;
      if (!sp_->keep_alive()) {
        close_upstream();
      } else {
        upstream_reused_ = true;
      }
      close_after_ = close_after_ || sp_->close_client;
    }
  }
  flush_client();
}

void session_impl::flush_client() {
  while (cl_out_.pending()) {
    ssize_t n = ::send(cfd_, cl_out_.data.data() + cl_out_.off, cl_out_.data.size() - cl_out_.off, MSG_NOSIGNAL);
    if (n < 0) {
      int e = errno;
      if (e == EINTR) continue;
      if (would_block(e)) {
        writing_client_ = true;  // on_events goes on when the kernel says it takes more
        if (rec_active_) watch_.process();  // the stopwatch looks at what was read, now it is out
        return;
      }
      if (phase_ == phase::response && !response_complete_) mark_client_abort();
      return close("client went away: " + sys_error(e).message());
    }
    std::size_t sent = static_cast<std::size_t>(n);
    cl_out_.off += sent;
    stats_.bytes_to_client += sent;
    resp_bytes_ += sent;
  }
  cl_out_.clear();
  if (rec_active_) watch_.process();  // the stopwatch looks at what was read, now it is out
  if (response_complete_) {
    if (rec_active_) rec_->last_byte_ms = since_t0(clock_type::now());
    return response_done();
  }
  if (phase_ == phase::response) read_upstream();
}

void session_impl::response_done() {
  if (counted_in_flight_) {
    counted_in_flight_ = false;
    srv_.in_flight_--;
  }
  if (rec_active_) {
    finish_record("");
  } else if (relayed_) {  // /engine/metrics, relayed from the engine (local answers count themselves)
    srv_.metrics().count_local("/engine/metrics", sp_->status, req_bytes_, resp_bytes_);
  }
  touch();
  if (close_after_ || draining_) return close(draining_ ? drain_reason_ : "client asked to close");
  begin_request();
}

void session_impl::sweep(clock_type::time_point now) {
  if (phase_ == phase::closed) return;
  using std::chrono::duration;
  const auto& o = srv_.opts();
  double idle = duration<double>(now - last_activity_).count();
  if (phase_ == phase::request) {
    if (!counted_in_flight_ && idle > o.idle_timeout_s) return close("idle timeout");
    if (counted_in_flight_ && duration<double>(now - request_started_).count() > o.request_timeout_s) {
      stats_.bad_requests++;
      return local_response(408, "Request Timeout",
                            json_error(408, "timeout", "request not received in time"), {}, true);
    }
  }
  if (writing_client_ && idle > o.send_timeout_s) return close("send timeout: client is not reading");
  if (phase_ == phase::response && sp_ && !response_complete_ && !writing_client_) {
    if (!sp_->is_header_done() && duration<double>(now - forwarded_at_).count() > o.upstream_header_timeout_s)
      return upstream_timed_out("the engine sent no response header within " +
                                std::to_string(static_cast<long>(o.upstream_header_timeout_s)) + " s");
    if (sp_->is_header_done() && duration<double>(now - last_upstream_byte_).count() > o.upstream_idle_timeout_s)
      return upstream_timed_out("the engine sent nothing for " +
                                std::to_string(static_cast<long>(o.upstream_idle_timeout_s)) + " s mid-response");
  }
}

void session_impl::upstream_timed_out(const std::string& what) {
  stats_.upstream_timeouts++;
  mark_upstream_error();
  srv_.status().count_upstream_timeout();
  close_upstream();
  if (!sp_->header_sent)
    return local_response(504, "Gateway Timeout", json_error(504, "upstream_timeout", what), {}, streaming_);
  close("engine timed out mid-response: " + what);
}

void session_impl::drain(const std::string& reason) {
  if (phase_ == phase::closed) return;
  draining_ = true;
  drain_reason_ = reason;
  // Idle between requests (no byte of the next one read): nothing to finish.
  if (phase_ == phase::request && !counted_in_flight_) close(reason);
  // Else response_done() closes (request_done() already says `Connection: close` when it can).
}

void session_impl::close(const std::string& reason, bool reset) {
  if (phase_ == phase::closed) return;
  phase_ = phase::closed;
  close_reason_ = reason;
  if (cfd_ >= 0) {
    tc_.loop.remove(cfd_);
    if (reset) {
      // Abort: close() with a zero linger sends a reset instead of a FIN.
      linger lg{1, 0};
      ::setsockopt(cfd_, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    } else {
      ::shutdown(cfd_, SHUT_RDWR);
    }
    ::close(cfd_);
    cfd_ = -1;
  }
  cl_ready_.waiting = writing_client_ = false;
  close_upstream();
  if (counted_in_flight_) {
    counted_in_flight_ = false;
    srv_.in_flight_--;
  }
  // Counted once, whatever happens: an underflow here once made every later connection a 503
  // (the open count wrapped to 2^64-1; seen under load in test_faults).
  if (counted_open_) {
    counted_open_ = false;
    srv_.open_--;
  }
  if (auto it = tc_.sessions.find(id_); it != tc_.sessions.end()) {
    tc_.loop.retire(std::move(it->second));  // this very object: alive until the batch is over
    tc_.sessions.erase(it);
  }
  finish_record(reason);
  if (!reported_) {
    reported_ = true;
    if (srv_.hooks().on_close) srv_.hooks().on_close(id_, stats_, reason);
    if (handle_) handle_->ended(stats_, reason);
  }
}

}  // namespace

std::shared_ptr<session> session::open(server_state& srv, thread_ctx& tc, int fd, std::uint64_t id) {
  return std::make_shared<session_impl>(srv, tc, fd, id);
}

}  // namespace bp::net::detail
