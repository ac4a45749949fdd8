#include "net/client/http_client.hpp"

#include "base/text.hpp"

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
#include <cstring>
#include <thread>

namespace bp::net {

namespace {

bool iequal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string trim(const std::string& s) { return std::string(base::trim(s)); }

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

bool response_reader::on_headers_complete() {
  std::string te = resp_.header("transfer-encoding");
  std::string cl = resp_.header("content-length");
  std::string conn = resp_.header("connection");
  for (auto& c : conn) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (conn.find("close") != std::string::npos) keep_alive_ = false;
  bool no_body = head_ || resp_.status / 100 == 1 || resp_.status == 204 || resp_.status == 304;
  if (no_body) {
    st_ = state::done;
  } else if (!te.empty() && te.find("chunked") != std::string::npos) {
    st_ = state::chunk_size;
  } else if (!cl.empty()) {
    try {
      remain_ = std::stoull(cl);
    } catch (const std::exception&) {
      return fail("bad Content-Length '" + cl + "'");
    }
    st_ = remain_ == 0 ? state::done : state::body_length;
  } else {
    keep_alive_ = false;
    st_ = state::body_eof;
  }
  return true;
}

bool response_reader::feed(std::string_view data, const std::function<void(std::string_view)>& on_body) {
  bool too_big = false;
  auto emit = [&](std::string_view piece) {
    if (piece.empty()) return;
    if (on_body) {
      on_body(piece);
    } else if (resp_.body.size() + piece.size() > max_body_) {
      too_big = true;
    } else {
      resp_.body.append(piece.data(), piece.size());
    }
  };
  std::size_t i = 0;
  while (i < data.size() && st_ != state::done && st_ != state::error) {
    switch (st_) {
      case state::status_line:
      case state::headers:
      case state::chunk_size:
      case state::chunk_crlf:
      case state::trailers: {
        auto nl = data.find('\n', i);
        if (nl == std::string_view::npos) {
          line_.append(data.substr(i));
          if (line_.size() > 64 * 1024) return fail("header line too long");
          i = data.size();
          break;
        }
        line_.append(data.substr(i, nl - i));
        i = nl + 1;
        if (st_ == state::status_line || st_ == state::headers || st_ == state::trailers) {
          header_bytes_ += line_.size() + 2;
          if (header_bytes_ > max_header_bytes)
            return fail("response header larger than " + std::to_string(max_header_bytes) + " bytes");
        }
        if (!line_.empty() && line_.back() == '\r') line_.pop_back();
        std::string line = std::move(line_);
        line_.clear();
        if (st_ == state::status_line) {
          // HTTP/1.1 200 OK
          if (line.rfind("HTTP/1.", 0) != 0 || line.size() < 12) return fail("bad status line '" + line + "'");
          if (line[7] == '0') keep_alive_ = false;
          resp_.status = std::atoi(line.c_str() + 9);
          resp_.reason = line.size() > 13 ? line.substr(13) : "";
          st_ = state::headers;
        } else if (st_ == state::headers) {
          if (line.empty()) {
            if (resp_.status / 100 == 1) {  // interim response: wait for the final one
              resp_ = http_response{};
              st_ = state::status_line;
              break;
            }
            if (!on_headers_complete()) return false;
            break;
          }
          auto colon = line.find(':');
          if (colon == std::string::npos) return fail("bad header line '" + line + "'");
          resp_.headers.emplace_back(trim(line.substr(0, colon)), trim(line.substr(colon + 1)));
        } else if (st_ == state::chunk_size) {
          auto semi = line.find(';');
          std::string hex = trim(line.substr(0, semi));
          if (hex.empty()) return fail("empty chunk size");
          char* end = nullptr;
          remain_ = std::strtoull(hex.c_str(), &end, 16);
          if (*end != '\0') return fail("bad chunk size '" + hex + "'");
          st_ = remain_ == 0 ? state::trailers : state::chunk_data;
        } else if (st_ == state::chunk_crlf) {
          if (!line.empty()) return fail("missing CRLF after chunk");
          st_ = state::chunk_size;
        } else {  // trailers
          if (line.empty()) st_ = state::done;
        }
        break;
      }
      case state::body_length:
      case state::chunk_data: {
        std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(remain_, data.size() - i));
        emit(data.substr(i, n));
        i += n;
        remain_ -= n;
        if (remain_ == 0) st_ = st_ == state::body_length ? state::done : state::chunk_crlf;
        break;
      }
      case state::body_eof:
        emit(data.substr(i));
        i = data.size();
        break;
      default:
        break;
    }
    if (too_big) return fail("response body larger than the limit of " + std::to_string(max_body_) + " bytes");
  }
  return st_ != state::error;
}

bool response_reader::feed_eof() {
  if (st_ == state::body_eof) {
    st_ = state::done;
    return true;
  }
  if (st_ == state::done) return true;
  return fail(st_ == state::status_line && resp_.status == 0 ? "connection closed before a response"
                                                            : "connection closed mid-response");
}

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
                                        std::uint64_t max_body) {
  url_parts u;
  if (!parse_url(url, u, err)) return std::nullopt;
  http_connection c;
  if (!c.connect(u.host, u.port, timeout, err)) return std::nullopt;
  http_response r;
  if (!c.request(method, u.target, body, {{"Connection", "close"}}, timeout, r, err, nullptr, max_body))
    return std::nullopt;
  return r;
}

}  // namespace bp::net
