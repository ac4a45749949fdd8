#pragma once
/// A small blocking HTTP/1.1 client over POSIX sockets (Boost-free): readiness probes, warmup,
/// engine_reported collectors, `meta diff` on URLs, and the benchmark client. Every call has a
/// deadline. Keep-alive is reused across requests on one connection.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bp::net {

struct http_response {
  int status = 0;
  std::string reason;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  /// The server answered (and closed) before it had read the whole request: sending failed
  /// (EPIPE, ECONNRESET) but its answer, a 413 say, arrived complete.
  bool request_cut = false;
  /// Case-insensitive header lookup; empty when absent.
  std::string header(std::string_view name) const;
};

/// Incremental HTTP/1.1 response decoder: Boost.Beast's parser (the one the proxy uses) behind
/// this Boost-free interface. Fed bytes as they are read, it hands each body piece on the moment
/// it is decoded (Content-Length, chunked or close-delimited), which bench's TTFT and ITL rely on.
/// Interim 1xx responses are skipped; trailers are read and dropped.
class response_reader {
 public:
  /// Header bytes of one response, at most (endless headers are an error, not a memory leak);
  /// also the longest chunk-size line or trailer section.
  static constexpr std::size_t max_header_bytes = 256 * 1024;
  /// `max_body`: the most body bytes accumulated into response().body (an endless body is an
  /// error); a streaming `on_body` consumer sees every byte regardless.
  explicit response_reader(bool head_request = false, std::uint64_t max_body = 256ull << 20);
  ~response_reader();
  response_reader(const response_reader&) = delete;
  response_reader& operator=(const response_reader&) = delete;
  /// Feeds bytes; body pieces go to `on_body` (or into response().body when null).
  /// Returns false on a protocol error (see error(), which names what was wrong).
  bool feed(std::string_view data, const std::function<void(std::string_view)>& on_body = nullptr);
  /// The peer closed: completes a close-delimited body; false if the message was cut short.
  bool feed_eof();
  bool done() const;
  bool header_done() const;
  const http_response& response() const;
  http_response& response();
  const std::string& error() const;
  /// Whether the connection may carry another request (HTTP/1.1 without `Connection: close`,
  /// HTTP/1.0 with `Connection: keep-alive`; never after a close-delimited body).
  bool keep_alive() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

struct url_parts {
  std::string host;
  std::uint16_t port = 80;
  std::string target = "/";  ///< path and query
};
bool parse_url(const std::string& url, url_parts& out, std::string& err);

/// One client connection (keep-alive). Not thread-safe; one per thread.
class http_connection {
 public:
  http_connection() = default;
  ~http_connection();
  http_connection(const http_connection&) = delete;
  http_connection& operator=(const http_connection&) = delete;

  bool connect(const std::string& host, std::uint16_t port, std::chrono::milliseconds timeout, std::string& err);
  bool connected() const { return fd_ >= 0; }
  void close();

  /// Sends one request and reads the whole response. `on_body` (optional) sees each body piece
  /// the moment it is decoded (streaming); the body is then not accumulated.
  /// Reconnects transparently when a kept-alive connection was closed by the server before any
  /// response byte arrived.
  bool request(const std::string& method, const std::string& target, const std::string& body,
               const std::vector<std::pair<std::string, std::string>>& headers,
               std::chrono::milliseconds timeout, http_response& out, std::string& err,
               const std::function<void(std::string_view)>& on_body = nullptr,
               std::uint64_t max_body = 256ull << 20);

  /// Stops waiting for the current response from another thread (closes the socket).
  int native_fd() const { return fd_; }
  /// Waits this long before every read of a response: a slow client, to see what that does
  /// to its own numbers against the proxy's (bench --read-delay-ms).
  void set_read_delay(std::chrono::microseconds d) { read_delay_ = d; }

 private:
  bool send_all(const std::string& data, std::chrono::steady_clock::time_point deadline, std::string& err);
  int fd_ = -1;
  std::string host_;
  std::uint16_t port_ = 0;
  std::string rbuf_;
  bool reused_ = false;
  std::chrono::microseconds read_delay_{0};
};

/// One-shot GET/POST to a URL with a deadline (new connection, closed afterwards).
/// The response body may be at most `max_body` bytes (an error beyond it). `headers` are sent
/// beside Connection: close (e.g. If-None-Match).
std::optional<http_response> http_fetch(const std::string& method, const std::string& url, const std::string& body,
                                        std::chrono::milliseconds timeout, std::string& err,
                                        std::uint64_t max_body = 256ull << 20,
                                        const std::vector<std::pair<std::string, std::string>>& headers = {});

}  // namespace bp::net
