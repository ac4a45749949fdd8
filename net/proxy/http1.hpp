#pragma once
/// HTTP/1 reframing for the proxy, with no sockets: the request and response parsers that turn
/// bytes from one side into the bytes sent to the other, the hop-by-hop header rules, and the
/// request checks that keep smuggled or malformed requests away from the engine.
///
/// Header-only on purpose: it sits on the proxy's hot path (inlined into the session) and is fed
/// byte by byte by tests/net/proxy/http1_test.cpp. Include it only from Beast translation units.
///
/// Lifetime rule: nothing here keeps a view into parser input past the callback that received it.
/// Beast consumes a header field by field (a header split over reads is parsed across put()
/// calls), and unfolds obs-fold values into a buffer local to its field parser: the rewriter
/// copies what it keeps (requests with obs-fold are rejected, folded response values relayed
/// unfolded, each fold replaced by SP).
#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "net/proxy/route_table.hpp"

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "net/proxy/request_timing.hpp"

namespace bp::net::http1 {

namespace beast = boost::beast;
namespace http = beast::http;
using error_code = beast::error_code;
using sv = beast::string_view;

/// The longest request target accepted (nginx's default large header buffer is 8 KiB).
inline constexpr std::size_t max_target = 8192;

/// RFC 9110 7.6.1: connection-specific fields are never forwarded.
inline bool hop_by_hop(http::field f) {
  switch (f) {
    case http::field::connection:
    case http::field::keep_alive:
    case http::field::proxy_connection:
    case http::field::te:
    case http::field::trailer:
    case http::field::transfer_encoding:
    case http::field::upgrade:
    case http::field::content_length:  // re-framed by the proxy
      return true;
    default:
      return false;
  }
}

inline bool iequals(sv a, sv b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

inline sv trim_ows(sv s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

/// RFC 9110 7.2 / RFC 3986 3.2.2: uri-host [ ":" port ]; reg-name, IPv4 or an IP-literal.
inline bool reg_name_char(unsigned char c) {
  // unreserved / pct-encoded ('%') / sub-delims, as a table (no locale call per byte).
  static constexpr auto table = [] {
    std::array<bool, 256> t{};
    for (int c = '0'; c <= '9'; ++c) t[static_cast<std::size_t>(c)] = true;
    for (int c = 'a'; c <= 'z'; ++c) t[static_cast<std::size_t>(c)] = true;
    for (int c = 'A'; c <= 'Z'; ++c) t[static_cast<std::size_t>(c)] = true;
    for (char c : std::string_view("-._~%!$&'()*+,;=")) t[static_cast<unsigned char>(c)] = true;
    return t;
  }();
  return table[c];
}

inline bool valid_host(sv h) {
  if (h.empty()) return false;
  sv port;
  if (h.front() == '[') {
    auto close = h.find(']');
    if (close == sv::npos) return false;
    for (char c : h.substr(1, close - 1))
      if (!(std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.')) return false;
    sv rest = h.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return false;
      port = rest.substr(1);
    }
  } else {
    auto colon = h.rfind(':');
    sv name = colon == sv::npos ? h : h.substr(0, colon);
    if (colon != sv::npos) port = h.substr(colon + 1);
    if (name.empty()) return false;
    for (char c : name)
      if (!reg_name_char(static_cast<unsigned char>(c))) return false;
  }
  if (port.size() > 5) return false;
  return std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
}

/// A request target the proxy may forward: origin-form, printable ASCII only, no dot-segments
/// (plain or percent-encoded). Dot-segments are rejected, not normalised, so what the engine sees
/// is always byte for byte what the client sent (docs/architecture.md, "Byte path").
/// One pass over the target; `query_at` gets the position of its '?' (npos when none).
inline const char* target_problem(sv t, std::size_t* query_at = nullptr) {
  static constexpr const char* kDotSegment = "the request target holds a dot-segment ('.' or '..')";
  if (t.empty() || t.front() != '/') return "the request target must start with '/'";
  std::size_t q = sv::npos;
  // The path segment being read: how many bytes, how many dots ('.', "%2e" or "%2E"), and
  // whether it is nothing but dots. "." and ".." are refused; "..." is a name.
  std::size_t seg_len = 0;
  int dots = 0;
  bool only_dots = true;
  auto dot_segment = [&] { return seg_len > 0 && only_dots && (dots == 1 || dots == 2); };
  for (std::size_t i = 1; i < t.size(); ++i) {
    unsigned char u = static_cast<unsigned char>(t[i]);
    if (u <= 0x20 || u >= 0x7f) return "the request target holds a byte that is not printable ASCII";
    if (q != sv::npos) continue;  // the query: printable is all it must be
    if (u == '/' || u == '?') {
      if (dot_segment()) return kDotSegment;
      if (u == '?') q = i;
      seg_len = 0;
      dots = 0;
      only_dots = true;
      continue;
    }
    ++seg_len;
    if (!only_dots) continue;
    if (u == '.') {
      ++dots;
    } else if (u == '%' && i + 2 < t.size() && t[i + 1] == '2' && (t[i + 2] == 'e' || t[i + 2] == 'E')) {
      // Decode only the dots: "%2e" and "%2E" are the only spellings of '.' that matter here
      // (the two bytes skipped are '2' and 'e': printable).
      ++dots;
      i += 2;
    } else {
      only_dots = false;
    }
  }
  if (q == sv::npos && dot_segment()) return kDotSegment;
  if (query_at) *query_at = q;
  return nullptr;
}

/// "NAME: <decimal>\r\n" written at `buf` (name.size() + 24 bytes available); returns its length.
inline std::size_t format_number_field(char* buf, sv name, std::uint64_t n) {
  std::memcpy(buf, name.data(), name.size());
  char* p = buf + name.size();
  *p++ = ':';
  *p++ = ' ';
  p = std::to_chars(p, p + 20, n).ptr;
  *p++ = '\r';
  *p++ = '\n';
  return static_cast<std::size_t>(p - buf);
}

/// "NAME: <decimal>\r\n" without printf (snprintf was a tenth of the relay's instructions).
inline void append_number_field(std::string& out, sv name, std::uint64_t n) {
  std::size_t at = out.size();
  out.resize(at + name.size() + 24);
  out.resize(at + format_number_field(out.data() + at, name, n));
}

/// Appends the pieces to `out` with one change of its size: an append per piece cost about
/// sixty instructions each, most of a header's emission.
inline void append_all(std::string& out, std::initializer_list<sv> pieces) {
  std::size_t n = 0;
  for (sv piece : pieces) n += piece.size();
  std::size_t at = out.size();
  out.resize(at + n);
  char* d = out.data() + at;
  for (sv piece : pieces) {
    if (piece.empty()) continue;  // an absent piece may have no data() at all
    std::memcpy(d, piece.data(), piece.size());
    d += piece.size();
  }
}

inline void append_hex_chunk(std::string& out, sv body) {
  char hex[24];
  auto r = std::to_chars(hex, hex + sizeof(hex) - 2, static_cast<std::uint64_t>(body.size()), 16);
  *r.ptr++ = '\r';
  *r.ptr++ = '\n';
  out.append(hex, static_cast<std::size_t>(r.ptr - hex));
  out.append(body.data(), body.size());
  out.append("\r\n", 2);
}

/// Bytes appended in place without the zero fill of std::string::resize (a header field is
/// stored in one step); the capacity is kept across requests.
class byte_store {
 public:
  void clear() { n_ = 0; }
  std::size_t size() const { return n_; }
  bool empty() const { return n_ == 0; }
  const char* data() const { return p_.get(); }
  operator sv() const { return sv(p_.get(), n_); }
  /// `k` more bytes at the end, for the caller to fill; valid until the next extend().
  char* extend(std::size_t k) {
    if (cap_ - n_ < k) grow(n_ + k);
    char* at = p_.get() + n_;
    n_ += k;
    return at;
  }

 private:
  void grow(std::size_t need) {
    std::size_t cap = std::max(need, std::max<std::size_t>(256, 2 * cap_));
    std::unique_ptr<char[]> q(new char[cap]);
    if (n_ > 0) std::memcpy(q.get(), p_.get(), n_);
    p_ = std::move(q);
    cap_ = cap;
  }
  std::unique_ptr<char[]> p_;
  std::size_t n_ = 0, cap_ = 0;
};

/// Filters and re-emits header fields; shared by both directions.
///
/// It keeps no view into any parser input: every name and value it keeps is copied into `store`.
/// Beast reports a field and consumes its bytes as soon as the field is complete (a header that
/// arrives in several reads is consumed field by field, across put() calls), and it unfolds
/// obs-fold values into a buffer local to its field parser; a view into either would dangle.
///
/// `store` holds the kept fields already as they leave ("Name: value\r\n", in order), so the
/// usual header (no Connection tokens naming a field, no Expect to drop) leaves in one append.
struct header_rewriter {
  struct span {
    std::uint32_t off = 0, len = 0;
  };
  byte_store store;    ///< the kept fields, wire format
  std::string tokens;  ///< the Connection header's tokens (spans below point here)
  std::vector<std::pair<span, span>> fields;  ///< name and value of each kept field, in `store`
  std::vector<span> connection_tokens;
  const char* in_begin = nullptr;  ///< the bytes of the current feed() (for obs-fold detection only)
  const char* in_end = nullptr;
  bool header_done = false;
  bool has_expect = false;

  void reset() {
    store.clear();
    tokens.clear();
    fields.clear();
    connection_tokens.clear();
    header_done = false;
    has_expect = false;
  }
  /// Is `s` inside the bytes currently being parsed? (Beast's unfolded values are not.)
  bool in_input(sv s) const { return s.empty() || (s.data() >= in_begin && s.data() + s.size() <= in_end); }
  sv at(span s) const { return sv(store.data() + s.off, s.len); }
  sv token(span s) const { return sv(tokens.data() + s.off, s.len); }
  void on_field(http::field f, sv name, sv value) {
    if (header_done) return;  // trailers are dropped
    if (f == http::field::connection) {
      std::size_t pos = 0;
      while (pos <= value.size()) {
        auto comma = value.find(',', pos);
        sv tok = trim_ows(value.substr(pos, comma == sv::npos ? sv::npos : comma - pos));
        if (!tok.empty()) {
          connection_tokens.push_back({static_cast<std::uint32_t>(tokens.size()), static_cast<std::uint32_t>(tok.size())});
          tokens.append(tok.data(), tok.size());
        }
        if (comma == sv::npos) break;
        pos = comma + 1;
      }
    }
    if (hop_by_hop(f)) return;
    if (f == http::field::expect) has_expect = true;
    std::size_t at = store.size();
    char* p = store.extend(name.size() + 2 + value.size() + 2);
    std::memcpy(p, name.data(), name.size());
    p[name.size()] = ':';
    p[name.size() + 1] = ' ';
    std::memcpy(p + name.size() + 2, value.data(), value.size());
    p[name.size() + 2 + value.size()] = '\r';
    p[name.size() + 3 + value.size()] = '\n';
    auto n32 = static_cast<std::uint32_t>(name.size()), v32 = static_cast<std::uint32_t>(value.size());
    fields.push_back({{static_cast<std::uint32_t>(at), n32}, {static_cast<std::uint32_t>(at) + n32 + 2, v32}});
  }
  /// The kept fields leave exactly as stored (what emit() appends then is `store`).
  bool verbatim(bool skip_expect = false) const { return connection_tokens.empty() && !(skip_expect && has_expect); }
  void emit(std::string& out, bool skip_expect = false) const {
    if (verbatim(skip_expect)) {
      out.append(store.data(), store.size());
      return;
    }
    for (const auto& field : fields) {
      sv n = at(field.first);
      if (!connection_tokens.empty() && std::any_of(connection_tokens.begin(), connection_tokens.end(),
                                                    [&](span t) { return iequals(token(t), n); }))
        continue;
      if (skip_expect && iequals(n, "expect")) continue;
      out.append(store.data() + field.first.off, field.first.len + 2 + field.second.len + 2);
    }
  }
};

using net::route;  // net/proxy/route_table.hpp: the one table of paths and routes

/// The response header naming the proxy's record of a request (GET /proxy/requests).
inline constexpr sv request_id_header = "x-bench-proxy-request-id";
/// A client's request header naming the measurement window its request belongs to (kept in the
/// record, never forwarded to the engine).
inline constexpr sv window_header = "x-bench-proxy-window";
/// The most of a local route's request body kept (POST /proxy/window).
inline constexpr std::size_t max_local_body = 4096;

/// Request-line strings live in the session so their capacity is reused across requests.
struct request_line {
  std::string method, target, if_none_match;
  std::string window;      ///< x-bench-proxy-window
  std::string local_body;  ///< a local route's body (at most max_local_body + 1 bytes kept)
};

/// Why a request was refused before anything reached the engine.
struct rejection {
  int status = 0;  ///< 0: not rejected
  const char* reason = "";
  std::string message;
  std::string extra_headers;
};

/// Parses a client's request and, for proxied routes, writes the request the engine gets into
/// `out`: the request line, the end-to-end fields, and a body re-framed by the proxy.
class request_parser final : public http::basic_parser<true> {
 public:
  request_parser(header_rewriter& hr, std::string& out, request_line& line)
      : method(line.method), target(line.target), if_none_match(line.if_none_match), window(line.window),
        local_body(line.local_body), hr_(hr), out_(out) {
    hr_.reset();
    if_none_match.clear();
    window.clear();
    local_body.clear();
  }
  std::string& method;
  std::string& target;
  std::string& if_none_match;
  std::string& window;
  std::string& local_body;
  http::verb verb = http::verb::unknown;
  int version = 11;
  route where = route::not_found;
  bool expect_continue = false;
  bool line_seen = false;  ///< the request line was parsed (a header limit hit after it is 431, not 414)
  std::uint64_t body_bytes = 0;
  rejection rejected;  ///< set together with a parse error when a check refuses the request

  /// Parses what it can of `in`; returns the bytes used (basic_parser::put with the lifetime rule).
  std::size_t feed(sv in, error_code& ec) {
    hr_.in_begin = in.data();
    hr_.in_end = in.data() + in.size();
    return put(boost::asio::const_buffer(in.data(), in.size()), ec);
  }

 private:
  void reject(error_code& ec, int status, const char* reason, std::string message, std::string extra = {}) {
    rejected.status = status;
    rejected.reason = reason;
    rejected.message = std::move(message);
    rejected.extra_headers = std::move(extra);
    ec = http::error::bad_value;
  }
  void on_request_impl(http::verb v, sv m, sv t, int ver, error_code& ec) override {
    line_seen = true;
    verb = v;
    method.assign(m.data(), m.size());
    target.assign(t.data(), t.size());
    version = ver;
    if (t.size() > max_target)
      return reject(ec, 414, "URI Too Long",
                    "request target of " + std::to_string(t.size()) + " bytes exceeds the limit of " +
                        std::to_string(max_target));
    std::size_t query_at = sv::npos;
    if (auto why = target_problem(t, &query_at)) return reject(ec, 400, "Bad Request", why);
    sv path = t.substr(0, query_at);
    where = find_route(std::string_view(path.data(), path.size()));
    if (v == http::verb::connect) return reject(ec, 400, "Bad Request", "CONNECT is not supported");
    if (where == route::engine_metrics && v != http::verb::get && v != http::verb::head)
      return reject(ec, 405, "Method Not Allowed", "use GET for /engine/metrics", "Allow: GET, HEAD\r\n");
    if (where == route::proxy && !proxied_method(v))
      return reject(ec, 405, "Method Not Allowed", "method " + method + " is not proxied",
                    "Allow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\n");
  }
  // "Name:\r\n value": Beast skips a fold before the first non-blank byte in place.
  static bool folded_in_place(sv name, sv value) {
    const char* after_name = name.data() + name.size();
    return !value.empty() && value.data() > after_name &&
           std::find(after_name, value.data(), '\n') != value.data();
  }
  static bool proxied_method(http::verb v) {
    switch (v) {
      case http::verb::get:
      case http::verb::head:
      case http::verb::post:
      case http::verb::put:
      case http::verb::patch:
      case http::verb::delete_:
      case http::verb::options:
        return true;
      default:
        return false;
    }
  }
  void on_response_impl(int, sv, int, error_code&) override {}
  void on_field_impl(http::field f, sv name, sv value, error_code& ec) override {
    if (hr_.header_done) return;  // a trailer: dropped unread, never forwarded
    // RFC 9112 5.2: a server may reject obs-fold with 400; nginx does, and so do we.
    if (!hr_.in_input(value) || folded_in_place(name, value))
      return reject(ec, 400, "Bad Request",
                    "header field '" + std::string(name) + "' uses obsolete line folding (RFC 9112 5.2)");
    if (f == http::field::host) {
      if (++hosts_ > 1) return reject(ec, 400, "Bad Request", "more than one Host header");
      if (!valid_host(value)) return reject(ec, 400, "Bad Request", "invalid Host header");
    }
    if (f == http::field::transfer_encoding) {
      ++te_fields_;
      // Only exactly one coding, "chunked", is understood (RFC 9112 6.1, 6.3): anything else
      // would leave the body's end to guess, which is how requests are smuggled.
      if (te_fields_ > 1 || !iequals(trim_ows(value), "chunked"))
        return reject(ec, 501, "Not Implemented",
                      "Transfer-Encoding '" + std::string(value) + "' is not supported (only 'chunked')");
    }
    if (f == http::field::content_length) has_cl_ = true;
    if (te_fields_ && has_cl_)
      return reject(ec, 400, "Bad Request", "both Content-Length and Transfer-Encoding");
    if (f == http::field::expect && iequals(value, "100-continue")) expect_continue = true;
    if (f == http::field::if_none_match) if_none_match.assign(value.data(), value.size());
    // Only bench-proxy names its records: a client's own id never reaches the engine.
    if (name.size() == request_id_header.size() && iequals(name, request_id_header)) return;
    // The window a client names is bench-proxy's to record, not the engine's to see.
    if (name.size() == window_header.size() && iequals(name, window_header)) {
      sv v = trim_ows(value);
      if (!window.empty()) return reject(ec, 400, "Bad Request", "more than one x-bench-proxy-window header");
      if (auto why = window_name_problem(v); !why.empty())
        return reject(ec, 400, "Bad Request", "x-bench-proxy-window: " + why);
      window.assign(v.data(), v.size());
      return;
    }
    hr_.on_field(f, name, value);
  }
  void on_header_impl(error_code& ec) override {
    hr_.header_done = true;
    if (version >= 11 && hosts_ == 0) return reject(ec, 400, "Bad Request", "HTTP/1.1 request without Host");
    // A hop-by-hop list never removes Host or the body's framing (nginx answers 400 too).
    for (const auto& t : hr_.connection_tokens) {
      sv tok = hr_.token(t);
      if (iequals(tok, "host") || iequals(tok, "content-length") || iequals(tok, "transfer-encoding"))
        return reject(ec, 400, "Bad Request",
                      "Connection names '" + std::string(tok) + "': Host and the body's framing are never hop-by-hop");
    }
    if (te_fields_ && version < 11)
      return reject(ec, 400, "Bad Request", "Transfer-Encoding in an HTTP/1.0 request");
    if (where != route::proxy && where != route::engine_metrics) return;
    out_.clear();
    // Every engine kind bench-proxy knows serves Prometheus at /metrics; the query passes through.
    sv path = target, query;
    if (where == route::engine_metrics) {
      path = "/metrics";
      if (auto q = target.find('?'); q != std::string::npos) query = sv(target).substr(q);
    }
    char cl_field[48];
    sv framing;
    if (chunked()) {
      framing = "Transfer-Encoding: chunked\r\n";
    } else if (auto cl = content_length(); cl && (*cl > 0 || verb == http::verb::post || verb == http::verb::put)) {
      framing = sv(cl_field, format_number_field(cl_field, "Content-Length", *cl));
    }
    out_.reserve(method.size() + path.size() + query.size() + hr_.store.size() + framing.size() + 16 +
                 (where == route::proxy ? content_length().value_or(0) : 0));
    if (hr_.verbatim(true)) {
      // The usual request: its header leaves in one piece.
      append_all(out_, {method, " ", path, query, " HTTP/1.1\r\n", hr_.store, framing, "\r\n"});
    } else {
      append_all(out_, {method, " ", path, query, " HTTP/1.1\r\n"});
      hr_.emit(out_, true);
      append_all(out_, {framing, "\r\n"});
    }
  }
  void on_body_init_impl(boost::optional<std::uint64_t> const& cl, error_code&) override {
    if (where == route::proxy && cl) out_.reserve(out_.size() + *cl);
  }
  std::size_t on_body_impl(sv body, error_code&) override {
    body_bytes += body.size();
    if (where == route::proxy) out_.append(body.data(), body.size());
    else if (where == route::proxy_window) keep_local(body);
    return body.size();
  }
  void on_chunk_header_impl(std::uint64_t, sv, error_code&) override {}
  std::size_t on_chunk_body_impl(std::uint64_t, sv body, error_code&) override {
    body_bytes += body.size();
    if (where == route::proxy && !body.empty()) append_hex_chunk(out_, body);
    else if (where == route::proxy_window) keep_local(body);
    return body.size();
  }
  void on_finish_impl(error_code&) override {
    if (where == route::proxy && chunked()) out_ += "0\r\n\r\n";
  }

  void keep_local(sv body) {
    std::size_t room = max_local_body + 1 - std::min(local_body.size(), max_local_body + 1);
    local_body.append(body.data(), std::min(room, body.size()));
  }
  header_rewriter& hr_;
  std::string& out_;
  int hosts_ = 0;
  int te_fields_ = 0;
  bool has_cl_ = false;
};

/// Parses the engine's response and writes what the client gets into `out`.
class response_parser final : public http::basic_parser<false> {
 public:
  response_parser(header_rewriter& hr, std::string& out, int client_version, bool client_keep_alive, bool head)
      : hr_(hr), out_(out), client_version_(client_version), client_keep_alive_(client_keep_alive), head_(head) {
    hr_.reset();
    skip(head);
  }
  int status = 0;
  bool event_stream = false;  ///< Content-Type text/event-stream
  bool header_sent = false;   ///< header bytes queued for the client
  bool close_client = false;  ///< the client connection ends after this response
  bool chunk_out = false;     ///< the body is re-framed as chunked
  bool raw_close_delimited = false;

  std::size_t feed(sv in, error_code& ec) {
    hr_.in_begin = in.data();
    hr_.in_end = in.data() + in.size();
    return put(boost::asio::const_buffer(in.data(), in.size()), ec);
  }
  /// Stamps `x-bench-proxy-request-id: id` on the response and shows the body to `watch`.
  void observe(std::uint64_t id, response_watch* watch) {
    request_id_ = id;
    watch_ = watch;
  }

 private:
  void on_request_impl(http::verb, sv, sv, int, error_code&) override {}
  void on_response_impl(int code, sv reason, int, error_code&) override {
    status = code;
    reason_.assign(reason.data(), reason.size());
  }
  // RFC 9112 5.2: a proxy replaces each obs-fold in a response with SP (Beast's unfolded value is
  // exactly that; the rewriter copies it, as every value it keeps).
  void on_field_impl(http::field f, sv name, sv value, error_code&) override {
    if (request_id_ && iequals(name, request_id_header)) return;  // only bench-proxy names its records
    if (f == http::field::content_type && value.size() >= 17 && iequals(value.substr(0, 17), "text/event-stream"))
      event_stream = true;
    hr_.on_field(f, name, value);
  }
  void on_header_impl(error_code&) override {
    hr_.header_done = true;
    if (watch_) watch_->set_stream(event_stream);
    bool no_body = head_ || status / 100 == 1 || status == 204 || status == 304;
    auto cl = content_length();
    close_client = !client_keep_alive_;
    if (!no_body && !cl) {
      if (client_version_ >= 11) {
        chunk_out = true;
      } else {
        raw_close_delimited = true;
        close_client = true;
      }
    }
    char line[16] = "HTTP/1.1 ";
    char* e = std::to_chars(line + 9, line + sizeof(line) - 1, status).ptr;
    *e++ = ' ';
    sv reason = reason_.empty() ? http::obsolete_reason(static_cast<http::status>(status)) : sv(reason_);
    char id_field[request_id_header.size() + 24];
    sv id = request_id_ && status / 100 != 1
                ? sv(id_field, format_number_field(id_field, request_id_header, request_id_))
                : sv();
    char cl_field[48];
    sv length = cl && (status / 100 != 1 && status != 204)
                    ? sv(cl_field, format_number_field(cl_field, "Content-Length", *cl))
                    : sv();
    sv te = chunk_out ? sv("Transfer-Encoding: chunked\r\n") : sv();
    sv connection = close_client ? sv("Connection: close\r\n") : sv();
    sv status_line(line, static_cast<std::size_t>(e - line));
    if (hr_.verbatim()) {
      // The header in one piece: one size change instead of an append per line.
      append_all(out_, {status_line, reason, "\r\n", hr_.store, id, length, te, connection, "\r\n"});
    } else {
      append_all(out_, {status_line, reason, "\r\n"});
      hr_.emit(out_);
      append_all(out_, {id, length, te, connection, "\r\n"});
    }
    header_sent = true;
  }
  void on_body_init_impl(boost::optional<std::uint64_t> const&, error_code&) override {}
  std::size_t on_body_impl(sv body, error_code&) override {
    if (watch_) watch_->feed(std::string_view(body.data(), body.size()));
    if (chunk_out)
      append_hex_chunk(out_, body);
    else
      out_.append(body.data(), body.size());
    return body.size();
  }
  void on_chunk_header_impl(std::uint64_t, sv, error_code&) override {}
  std::size_t on_chunk_body_impl(std::uint64_t, sv body, error_code&) override {
    if (body.empty()) return 0;
    if (watch_) watch_->feed(std::string_view(body.data(), body.size()));
    if (chunk_out)
      append_hex_chunk(out_, body);
    else
      out_.append(body.data(), body.size());
    return body.size();
  }
  void on_finish_impl(error_code&) override {
    if (chunk_out) out_ += "0\r\n\r\n";
  }

  header_rewriter& hr_;
  std::string& out_;
  std::uint64_t request_id_ = 0;
  response_watch* watch_ = nullptr;
  std::string reason_;
  int client_version_;
  bool client_keep_alive_;
  bool head_;
};

}  // namespace bp::net::http1
