#include "net/client/http_client.hpp"

#include <boost/beast/core/error.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/optional.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <thread>

namespace bp::net {

namespace {

bool iequal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

int remaining_ms(std::chrono::steady_clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  return static_cast<int>(std::max<long long>(0, left.count()));
}

}  // namespace

std::string http_response::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (iequal(k, name)) return v;
  return {};
}

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using beast_error = beast::error_code;

/// The first line of `rest` (where the parser stopped), printable and at most 200 bytes: what an
/// error message quotes.
std::string quote_line(std::string_view rest) {
  if (rest.substr(0, 2) == "\r\n") rest.remove_prefix(2);  // the CRLF that ends a chunk's data
  std::string out;
  for (char c : rest.substr(0, std::min(rest.find_first_of("\r\n"), std::size_t{200}))) {
    auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f) {
      out += c;
    } else {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "\\x%02x", u);
      out += hex;
    }
  }
  return out;
}

}  // namespace

struct response_reader::impl {
  /// Beast's response parser, driven by hand (as net/proxy/http1.hpp drives it): every callback
  /// copies what it keeps into `resp`, and body pieces go out as they are decoded.
  class parser final : public http::basic_parser<false> {
   public:
    explicit parser(impl& r) : r_(r) {
      header_limit(static_cast<std::uint32_t>(max_header_bytes));
      body_limit(boost::none);  // max_body bounds what is accumulated, not what streams
      skip(r.head);
      // Not eager until the header is done, so the put() that ends the header stops there and
      // the header's size is known exactly (Beast checks header_limit per call, not in total).
      eager(false);
    }

   private:
    void on_request_impl(http::verb, beast::string_view, beast::string_view, int, beast_error&) override {}
    void on_response_impl(int code, beast::string_view reason, int, beast_error&) override {
      r_.resp.status = code;
      r_.resp.reason.assign(reason.data(), reason.size());
    }
    void on_field_impl(http::field, beast::string_view name, beast::string_view value, beast_error&) override {
      if (is_header_done()) return;  // a trailer: read, dropped
      r_.resp.headers.emplace_back(std::string(name.data(), name.size()), std::string(value.data(), value.size()));
    }
    void on_header_impl(beast_error&) override {
      r_.keep_alive = keep_alive();
      eager(true);
    }
    void on_body_init_impl(boost::optional<std::uint64_t> const&, beast_error&) override {}
    std::size_t on_body_impl(beast::string_view body, beast_error& ec) override {
      r_.emit(std::string_view(body.data(), body.size()), ec);
      return body.size();
    }
    void on_chunk_header_impl(std::uint64_t, beast::string_view, beast_error&) override { ++r_.chunks; }
    std::size_t on_chunk_body_impl(std::uint64_t, beast::string_view body, beast_error& ec) override {
      r_.emit(std::string_view(body.data(), body.size()), ec);
      return body.size();
    }
    void on_finish_impl(beast_error&) override {}

    impl& r_;
  };

  impl(bool head_request, std::uint64_t max_body) : head(head_request), max_body(max_body) { p.emplace(*this); }

  void emit(std::string_view piece, beast_error& ec) {
    if (piece.empty()) return;
    if (on_body && *on_body) {
      (*on_body)(piece);
    } else if (resp.body.size() + piece.size() > max_body) {
      body_too_big = true;
      ec = http::error::body_limit;
    } else {
      resp.body.append(piece.data(), piece.size());
    }
  }

  bool fail(std::string e) {
    err = std::move(e);
    failed = true;
    return false;
  }

  /// What was wrong, in words, from Beast's error and the bytes where it stopped.
  std::string describe(const beast_error& ec, std::string_view rest) const {
    std::string line = quote_line(rest);
    if (body_too_big) return "response body larger than the limit of " + std::to_string(max_body) + " bytes";
    if (ec == http::error::header_limit) return header_too_big();
    if (!p->is_header_done()) {
      if (resp.status == 0) return "bad status line '" + line + "'";
      if (ec == http::error::bad_content_length || ec == http::error::multiple_content_length)
        return "bad Content-Length in '" + line + "'";
      if (ec == http::error::bad_transfer_encoding)
        return "bad Transfer-Encoding in '" + line + "' (a second one, or beside Content-Length)";
      return "bad header line '" + line + "' (" + ec.message() + ")";
    }
    if (ec == http::error::bad_chunk || ec == http::error::bad_chunk_extension) {
      if (chunks > 0 && rest.substr(0, 2) != "\r\n" && rest.size() >= 2)
        return "missing CRLF after chunk data (got '" + line + "')";
      return "bad chunk size line '" + line + "'";
    }
    if (p->is_header_done() && p->chunked()) return "bad chunked body at '" + line + "' (" + ec.message() + ")";
    return ec.message();
  }
  std::string header_too_big() const {
    return "response header larger than " + std::to_string(max_header_bytes) + " bytes";
  }

  bool feed(std::string_view data) {
    std::string_view in = data;
    if (!pending.empty()) {
      pending.append(data.data(), data.size());
      in = pending;
    }
    std::size_t used = 0;
    while (used < in.size() && !finished) {
      bool in_header = !p->is_header_done();
      beast_error ec;
      std::size_t n = p->put(boost::asio::const_buffer(in.data() + used, in.size() - used), ec);
      used += n;
      if (in_header) header_bytes += n;
      if (ec == http::error::need_more || (!ec && n == 0 && !p->is_done())) break;
      if (ec) return fail(describe(ec, in.substr(used)));
      if (p->is_done()) {
        if (resp.status / 100 == 1) {  // an interim response: the final one follows
          resp = http_response{};
          header_bytes = 0;
          p.emplace(*this);
          continue;
        }
        finished = true;
      }
    }
    if (finished) {
      pending.clear();  // nothing follows a response that was not asked for
      return true;
    }
    // Beast keeps nothing between calls: what it did not consume is presented again with the
    // next bytes (a header line, a chunk-size line, trailers).
    if (in.data() == pending.data()) {
      pending.erase(0, used);
    } else {
      pending.assign(in.data() + used, in.size() - used);
    }
    if (!p->is_header_done() && header_bytes + pending.size() > max_header_bytes) return fail(header_too_big());
    if (pending.size() > max_header_bytes)
      return fail("a chunk-size line or trailer section larger than " + std::to_string(max_header_bytes) + " bytes");
    return true;
  }

  bool feed_eof() {
    if (resp.status == 0) return fail("connection closed before a response");
    beast_error ec;
    if (p->got_some()) p->put_eof(ec);
    if (ec || !p->is_done()) return fail("connection closed mid-response");
    finished = true;
    return true;
  }

  bool head;
  std::uint64_t max_body;
  boost::optional<parser> p;
  http_response resp;
  std::string pending;  ///< bytes read but not yet consumed by the parser
  std::size_t header_bytes = 0;
  std::uint64_t chunks = 0;
  const std::function<void(std::string_view)>* on_body = nullptr;
  bool keep_alive = false;
  bool body_too_big = false;
  bool finished = false;
  bool failed = false;
  std::string err;
};

response_reader::response_reader(bool head_request, std::uint64_t max_body)
    : impl_(std::make_unique<impl>(head_request, max_body)) {}
response_reader::~response_reader() = default;

bool response_reader::feed(std::string_view data, const std::function<void(std::string_view)>& on_body) {
  if (impl_->failed) return false;
  if (impl_->finished) return true;
  impl_->on_body = &on_body;
  bool ok = impl_->feed(data);
  impl_->on_body = nullptr;
  return ok;
}

bool response_reader::feed_eof() {
  if (impl_->failed) return false;
  if (impl_->finished) return true;
  return impl_->feed_eof();
}

bool response_reader::done() const { return impl_->finished; }
bool response_reader::header_done() const { return impl_->finished || impl_->p->is_header_done(); }
const http_response& response_reader::response() const { return impl_->resp; }
http_response& response_reader::response() { return impl_->resp; }
const std::string& response_reader::error() const { return impl_->err; }
bool response_reader::keep_alive() const { return impl_->keep_alive; }

bool parse_url(const std::string& url, url_parts& out, std::string& err) {
  std::string rest = url;
  if (rest.rfind("http://", 0) == 0) {
    rest = rest.substr(7);
  } else if (rest.find("://") != std::string::npos) {
    err = "only http:// URLs are supported: '" + url + "'";
    return false;
  }
  auto slash = rest.find('/');
  std::string hostport = rest.substr(0, slash);
  out.target = slash == std::string::npos ? "/" : rest.substr(slash);
  out.port = 80;
  std::string host = hostport;
  if (!hostport.empty() && hostport[0] == '[') {
    auto close = hostport.find(']');
    if (close == std::string::npos) {
      err = "bad IPv6 address in '" + url + "'";
      return false;
    }
    host = hostport.substr(1, close - 1);
    if (close + 1 < hostport.size() && hostport[close + 1] == ':') {
      std::string p = hostport.substr(close + 2);
      out.port = static_cast<std::uint16_t>(std::atoi(p.c_str()));
    }
  } else if (auto colon = hostport.rfind(':'); colon != std::string::npos) {
    host = hostport.substr(0, colon);
    std::string p = hostport.substr(colon + 1);
    if (p.empty() || !std::all_of(p.begin(), p.end(), ::isdigit) || std::stoul(p) > 65535) {
      err = "bad port in URL '" + url + "'";
      return false;
    }
    out.port = static_cast<std::uint16_t>(std::stoul(p));
  }
  if (host.empty()) {
    err = "no host in URL '" + url + "'";
    return false;
  }
  out.host = host;
  return true;
}

http_connection::~http_connection() { close(); }

void http_connection::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  rbuf_.clear();
  reused_ = false;
}

bool http_connection::connect(const std::string& host, std::uint16_t port, std::chrono::milliseconds timeout,
                              std::string& err) {
  close();
  host_ = host;
  port_ = port;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string h = host == "localhost" ? "127.0.0.1" : host;
  int rc = ::getaddrinfo(h.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (rc != 0) {
    err = "cannot resolve " + host + ": " + gai_strerror(rc);
    return false;
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) continue;
    int r = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (r < 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      int pr = ::poll(&p, 1, remaining_ms(deadline));
      if (pr <= 0) {
        ::close(fd);
        err = "connect to " + host + ":" + std::to_string(port) + ": timed out";
        continue;
      }
      int soerr = 0;
      socklen_t len = sizeof(soerr);
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
      r = soerr == 0 ? 0 : -1;
      errno = soerr;
    }
    if (r < 0) {
      err = "connect to " + host + ":" + std::to_string(port) + ": " + std::strerror(errno);
      ::close(fd);
      continue;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fd_ = fd;
    break;
  }
  ::freeaddrinfo(res);
  return fd_ >= 0;
}

bool http_connection::send_all(const std::string& data, std::chrono::steady_clock::time_point deadline,
                               std::string& err) {
  std::size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd_, POLLOUT, 0};
      if (::poll(&p, 1, remaining_ms(deadline)) <= 0) {
        err = "timed out sending the request";
        return false;
      }
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    err = std::string("send: ") + std::strerror(errno);
    return false;
  }
  return true;
}

bool http_connection::request(const std::string& method, const std::string& target, const std::string& body,
                              const std::vector<std::pair<std::string, std::string>>& headers,
                              std::chrono::milliseconds timeout, http_response& out, std::string& err,
                              const std::function<void(std::string_view)>& on_body, std::uint64_t max_body) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: " + host_ + ":" + std::to_string(port_) + "\r\n";
  bool has_ct = false;
  for (const auto& [k, v] : headers) {
    req += k + ": " + v + "\r\n";
    if (iequal(k, "content-type")) has_ct = true;
  }
  if (!body.empty() || method == "POST" || method == "PUT") {
    if (!has_ct) req += "Content-Type: application/json\r\n";
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  req += "\r\n";
  req += body;

  for (int attempt = 0; attempt < 2; ++attempt) {
    if (fd_ < 0 && !connect(host_, port_, std::chrono::milliseconds(remaining_ms(deadline)), err)) return false;
    bool was_reused = reused_;
    std::string send_error;
    if (!send_all(req, deadline, err)) {
      if (was_reused && attempt == 0) {
        close();
        continue;
      }
      // The server may have answered before reading the whole request (413 for a body over its
      // limit) and closed: that answer, when it came, says more than "Broken pipe".
      send_error = err;
    }
    response_reader rr(method == "HEAD", max_body);
    auto fail_read = [&](const std::string& e) {
      err = send_error.empty() ? e : send_error + " (and no answer from the server: " + e + ")";
      close();
      return false;
    };
    bool got_any = false;
    char buf[16384];
    // Bytes left over from an earlier response cannot exist: responses are read to their end.
    for (;;) {
      if (read_delay_.count() > 0) std::this_thread::sleep_for(read_delay_);  // a deliberately slow reader
      ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n > 0) {
        got_any = true;
        if (!rr.feed(std::string_view(buf, static_cast<std::size_t>(n)), on_body)) {
          return fail_read("bad response: " + rr.error());
        }
        if (rr.done()) break;
        continue;
      }
      if (n == 0) {
        if (!got_any && was_reused && attempt == 0) break;  // stale keep-alive: retry once
        if (!rr.feed_eof()) return fail_read(rr.error());
        break;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        pollfd p{fd_, POLLIN, 0};
        int left = remaining_ms(deadline);
        int pr = ::poll(&p, 1, left);
        if (pr == 0 || left == 0) {
          return fail_read("timed out waiting for the response");
        }
        if (pr < 0 && errno != EINTR) {
          return fail_read(std::string("poll: ") + std::strerror(errno));
        }
        continue;
      }
      if (!got_any && was_reused && attempt == 0) break;
      return fail_read(std::string("recv: ") + std::strerror(errno));
    }
    if (!send_error.empty() && !rr.done()) {
      err = send_error;
      close();
      return false;
    }
    if (!rr.done()) {  // stale connection, retry on a fresh one
      close();
      continue;
    }
    out = std::move(rr.response());
    out.request_cut = !send_error.empty();
    if (out.request_cut) {
      close();
      return true;
    }
    if (!rr.keep_alive()) {
      close();
    } else {
      reused_ = true;
    }
    return true;
  }
  if (err.empty()) err = "connection closed before a response";
  return false;
}

std::optional<http_response> http_fetch(const std::string& method, const std::string& url, const std::string& body,
                                        std::chrono::milliseconds timeout, std::string& err,
                                        std::uint64_t max_body,
                                        const std::vector<std::pair<std::string, std::string>>& headers) {
  url_parts u;
  if (!parse_url(url, u, err)) return std::nullopt;
  http_connection c;
  if (!c.connect(u.host, u.port, timeout, err)) return std::nullopt;
  http_response r;
  std::vector<std::pair<std::string, std::string>> h{{"Connection", "close"}};
  h.insert(h.end(), headers.begin(), headers.end());
  if (!c.request(method, u.target, body, h, timeout, r, err, nullptr, max_body))
    return std::nullopt;
  return r;
}

}  // namespace bp::net
