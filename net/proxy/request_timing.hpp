#pragma once
/// The proxy as the stopwatch: what is timed of one proxied /v1 request, and the incremental
/// scanner that finds content-bearing Server-Sent Events in the engine's response as it passes.
///
/// Header-only and Boost-free: the scanner runs inside the response parser's body callbacks on
/// the I/O thread (no copy of the byte path, no mailbox hop, nothing held back); the record is
/// handed to request_log (net/proxy/request_log.hpp) once the request is over. Definitions of
/// every field: docs/metrics.md, "Proxy-side timing".
#include <charconv>
#include <chrono>
#include <cstring>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace bp::net {

using steady_clock = std::chrono::steady_clock;

/// The longest measurement window name (POST /proxy/window, x-bench-proxy-window).
inline constexpr std::size_t kMaxWindowName = 64;

/// A window name is 1 to 64 printable ASCII characters (space to '~'), without '/', not starting
/// with '.' (it names a folder of the run: windows/NAME). Empty when `name` is one; else why not.
inline std::string window_name_problem(std::string_view name) {
  if (name.empty()) return "a window name must not be empty";
  if (name.size() > kMaxWindowName)
    return "a window name is at most " + std::to_string(kMaxWindowName) + " characters, got " + std::to_string(name.size());
  for (unsigned char c : name)
    if (c < 0x20 || c > 0x7e) return "a window name must be printable ASCII (space to '~'), got byte " + std::to_string(c);
  if (name.find('/') != std::string_view::npos) return "a window name must not contain '/'";
  if (name[0] == '.') return "a window name must not start with '.'";
  return {};
}

/// One proxied request as the proxy saw it. Times are milliseconds after the request's header
/// was complete at the proxy (t = 0); -1 where the request never got there. No prompt or
/// response content is ever kept.
struct request_record {
  std::uint64_t id = 0;          ///< also the x-bench-proxy-request-id response header
  std::uint64_t connection = 0;  ///< the client connection it came on
  std::string method, path;      ///< path without the query (a query may hold credentials)
  std::int64_t start_unix_us = 0;  ///< wall clock at t = 0 (for joins across machines)
  int status = 0;                ///< status sent to the client; 0: none was sent
  bool stream = false;           ///< the response was text/event-stream
  bool local = false;            ///< answered by bench-proxy itself (502/503/504/413...)
  bool client_aborted = false;   ///< the client went away before the response was complete
  bool upstream_error = false;   ///< the engine could not be reached or failed mid-response
  std::string error;             ///< why it did not complete normally ("" when it did)
  double request_body_ms = -1;   ///< request body complete
  double forwarded_ms = -1;      ///< the last request byte written to the engine
  double response_header_ms = -1;  ///< the engine's response header parsed
  double first_content_ms = -1;  ///< first content-bearing event (non-streamed: the whole body)
  double last_byte_ms = -1;      ///< the last response byte written to the client
  std::vector<double> content_ms;  ///< every content-bearing event (streamed), the first included
  std::uint64_t bytes_in = 0;    ///< request bytes read from the client (header and body)
  std::uint64_t bytes_out = 0;   ///< response bytes written to the client
  int prompt_tokens = -1;        ///< from the engine's usage (-1: not reported)
  int completion_tokens = -1;
  std::string window;            ///< the client's x-bench-proxy-window header ("" when none)

  /// Back to a fresh record, keeping the strings' and the vector's storage (records circulate
  /// between the sessions and the log without allocating; request_log::add).
  void reset() {
    id = connection = 0;
    method.clear();
    path.clear();
    start_unix_us = 0;
    status = 0;
    stream = local = client_aborted = upstream_error = false;
    error.clear();
    request_body_ms = forwarded_ms = response_header_ms = first_content_ms = last_byte_ms = -1;
    content_ms.clear();
    bytes_in = bytes_out = 0;
    prompt_tokens = completion_tokens = -1;
    window.clear();
  }

  /// TTFT at the proxy: first content event (or whole body) after the request header.
  double ttft_ms() const { return first_content_ms; }
  /// E2E at the proxy: last byte to the client after the request header.
  double e2e_ms() const { return last_byte_ms; }
  /// Output tokens: the engine's usage when reported, else the content events counted.
  int output_tokens() const {
    return completion_tokens >= 0 ? completion_tokens : static_cast<int>(content_ms.size());
  }
  /// A successful response relayed in full from the engine.
  bool complete() const {
    return status / 100 == 2 && !local && last_byte_ms >= 0 && !client_aborted && error.empty();
  }
};

namespace sse {

inline std::size_t skip_ws(std::string_view s, std::size_t i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')) ++i;
  return i;
}

/// Position just after `"key":` and its whitespace, searching from `from`; npos when absent.
/// In JSON a quote inside a string is always escaped, so `"key"` followed by ':' is a key.
/// The search looks for `key"` (its first letter is far rarer than a quote, so memchr skips
/// most of the text) and then checks the quote before it.
inline std::size_t value_after(std::string_view s, std::string_view quoted_key, std::size_t from = 0) {
  std::string_view bare = quoted_key.substr(1);
  for (std::size_t p = s.find(bare, from + 1); p != std::string_view::npos; p = s.find(bare, p + 1)) {
    if (s[p - 1] != '"') continue;
    std::size_t i = skip_ws(s, p + bare.size());
    if (i < s.size() && s[i] == ':') return skip_ws(s, i + 1);
  }
  return std::string_view::npos;
}

/// Does this event's JSON carry generated content? A non-empty "content", "text",
/// "reasoning_content" or "reasoning" string, or non-empty "tool_calls" / a "function_call".
/// A role-only delta ({"role":"assistant","content":""}), a null content, finish-only and
/// usage-only events are not content.
inline bool content_bearing(std::string_view data) {
  static constexpr std::string_view string_keys[] = {"\"content\"", "\"text\"", "\"reasoning_content\"",
                                                     "\"reasoning\""};
  for (auto key : string_keys)
    for (std::size_t i = value_after(data, key); i != std::string_view::npos; i = value_after(data, key, i)) {
      if (i + 1 < data.size() && data[i] == '"' && data[i + 1] != '"') return true;
    }
  for (std::size_t i = value_after(data, "\"tool_calls\""); i != std::string_view::npos;
       i = value_after(data, "\"tool_calls\"", i))
    if (i < data.size() && data[i] == '[' && skip_ws(data, i + 1) < data.size() && data[skip_ws(data, i + 1)] != ']')
      return true;
  std::size_t f = value_after(data, "\"function_call\"");
  return f != std::string_view::npos && f < data.size() && data[f] == '{';
}

/// Does a fraction or an exponent go on at `i`, after a number's digits (1.5, 2e1: not counts)?
inline bool fraction_at(std::string_view s, std::size_t i) {
  return i < s.size() && (s[i] == '.' || s[i] == 'e' || s[i] == 'E');
}

/// The integer after `"key":` inside `obj`; -1 when absent or not a whole number.
inline int int_field(std::string_view obj, std::string_view quoted_key) {
  std::size_t i = value_after(obj, quoted_key);
  if (i == std::string_view::npos) return -1;
  int v = -1;
  auto r = std::from_chars(obj.data() + i, obj.data() + obj.size(), v);
  if (r.ec != std::errc() || v < 0) return -1;
  return fraction_at(obj, static_cast<std::size_t>(r.ptr - obj.data())) ? -1 : v;
}

/// The unsigned integer at `i` when a whole one (digits, then neither '.', 'e' nor 'E'), at most
/// nine digits; -1 otherwise. `i` is left after the digits.
inline int small_uint_at(std::string_view s, std::size_t& i) {
  std::size_t b = i;
  int v = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9' && i - b < 9) v = v * 10 + (s[i++] - '0');
  if (i == b || (i < s.size() && s[i] >= '0' && s[i] <= '9') || fraction_at(s, i)) return -1;
  return v;
}

/// Tells JSON string content from structure, one byte at a time (escapes inside strings
/// included): the scanners below count braces and commas only where step() says `outside`.
struct json_strings {
  enum where { inside, opened, closed, outside };
  bool in_str = false, esc = false;
  where step(char c) {
    if (in_str) {
      if (esc) esc = false;
      else if (c == '\\') esc = true;
      else if (c == '"') {
        in_str = false;
        return closed;
      }
      return inside;
    }
    if (c == '"') {
      in_str = true;
      return opened;
    }
    return outside;
  }
};

/// Reads prompt_tokens / completion_tokens of a "usage" object in `text` (an event or the tail
/// of a plain body). Returns false when there is no usage object.
inline bool usage(std::string_view text, int& prompt, int& completion) {
  // The last "usage" key whose value is an object wins. Searched from the end, by its 'g' (a
  // rare letter in JSON: memrchr skips to it): a plain body's top-level usage is at its end, so
  // this reads tens of bytes, not the whole 8 KiB tail.
  std::size_t i = std::string_view::npos;
  constexpr std::string_view key = "\"usage\"";  // the 'g' is key[4]
  for (std::size_t n = text.size(); n > 0 && i == std::string_view::npos;) {
    const void* g = ::memrchr(text.data(), 'g', n);
    if (g == nullptr) break;
    n = static_cast<std::size_t>(static_cast<const char*>(g) - text.data());
    if (n < 4 || text.compare(n - 4, key.size(), key) != 0) continue;
    std::size_t j = skip_ws(text, n - 4 + key.size());
    if (j < text.size() && text[j] == ':') {
      j = skip_ws(text, j + 1);
      if (j < text.size() && text[j] == '{') i = j;
    }
  }
  if (i == std::string_view::npos) return false;
  // Usually the object starts with plain "key": count pairs holding both counts (OpenAI: prompt,
  // completion, total, then the details objects; vLLM: prompt, total, completion): read in one
  // pass. Anything else (a nested value before both, a string, a fraction) takes the general way.
  {
    int p = -1, c = -1;
    std::size_t k = skip_ws(text, i + 1);
    while (k < text.size() && text[k] == '"') {
      std::size_t q = text.find('"', k + 1);
      if (q == std::string_view::npos || text[q - 1] == '\\') break;
      std::string_view name = text.substr(k + 1, q - k - 1);
      k = skip_ws(text, q + 1);
      if (k >= text.size() || text[k] != ':') break;
      k = skip_ws(text, k + 1);
      int v = small_uint_at(text, k);
      if (v < 0) break;
      if (p < 0 && name == "prompt_tokens") p = v;
      else if (c < 0 && name == "completion_tokens") c = v;
      if (p >= 0 && c >= 0) {
        prompt = p;
        completion = c;
        return true;
      }
      k = skip_ws(text, k);
      if (k >= text.size() || text[k] != ',') break;
      k = skip_ws(text, k + 1);
    }
  }
  // Both counts before any nested object: up to the first '}' is enough.
  if (std::size_t close = text.find('}', i); close != std::string_view::npos) {
    std::string_view flat = text.substr(i, close - i + 1);
    int p = int_field(flat, "\"prompt_tokens\""), c = int_field(flat, "\"completion_tokens\"");
    if (p >= 0 && c >= 0) {
      prompt = p;
      completion = c;
      return true;
    }
  }
  // The object's extent: braces outside strings.
  int depth = 0;
  json_strings js;
  std::size_t end = i;
  for (; end < text.size(); ++end) {
    char c = text[end];
    if (js.step(c) != json_strings::outside) continue;
    if (c == '{') ++depth;
    else if (c == '}' && --depth == 0) break;
  }
  if (end >= text.size()) return false;
  std::string_view obj = text.substr(i, end - i + 1);
  int p = int_field(obj, "\"prompt_tokens\""), c = int_field(obj, "\"completion_tokens\"");
  if (p < 0 && c < 0) return false;
  prompt = p;
  completion = c;
  return true;
}

/// Where the JSON value starting at `i` ends (one past it): a string, an object or array (to its
/// matching close, strings skipped), or a bare value (up to ',', '}' or ']'). s.size() if cut.
inline std::size_t value_end(std::string_view s, std::size_t i) {
  int depth = 0;
  json_strings js;
  for (std::size_t k = i; k < s.size(); ++k) {
    char c = s[k];
    auto where = js.step(c);
    if (where == json_strings::closed && depth == 0) return k + 1;
    if (where != json_strings::outside) continue;
    if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      if (depth == 0) return k;
      if (--depth == 0) return k + 1;
    } else if (c == ',' && depth == 0) {
      return k;
    }
  }
  return s.size();
}

/// Is position `i` of the JSON object `s` at its top level (inside the outer braces only)?
inline bool top_level(std::string_view s, std::size_t i) {
  int depth = 0;
  json_strings js;
  for (std::size_t k = 0; k < i && k < s.size(); ++k) {
    char c = s[k];
    if (js.step(c) != json_strings::outside) continue;
    if (c == '{' || c == '[') ++depth;
    else if (c == '}' || c == ']') --depth;
  }
  return depth == 1;
}

/// The engine's error event, as bench reads one (net/loadgen/bench.cpp): an event whose object
/// has a top-level "error" key (llama-server, vLLM and SGLang end a failing stream with
/// `data: {"error": {...}}` after the 200 went out). Returns false when it has none; else `why`
/// is the error's "message" string when it has one, else the value's JSON text (escapes as
/// sent, at most 240 bytes).
inline bool error_event(std::string_view data, std::string& why) {
  for (std::size_t i = value_after(data, "\"error\""); i != std::string_view::npos;
       i = value_after(data, "\"error\"", i)) {
    if (!top_level(data, i)) continue;
    std::string_view v = data.substr(i, value_end(data, i) - i);
    if (!v.empty() && v.front() == '{') {
      std::size_t m = value_after(v, "\"message\"");
      if (m != std::string_view::npos && top_level(v, m) && v[m] == '"') {
        std::size_t e = value_end(v, m);
        if (e >= m + 2 && v[e - 1] == '"') v = v.substr(m + 1, e - m - 2);
      }
    }
    why.assign(v.data(), std::min<std::size_t>(v.size(), 240));
    return true;
  }
  return false;
}

}  // namespace sse

/// Watches one response body as the proxy relays it. For text/event-stream it splits events at
/// blank lines (LF or CRLF), notes the time of each content-bearing one and reads usage from a
/// usage event; for other bodies it keeps the last few KiB to read usage at the end.
///
/// Nothing of this stands between a read and its write: the parser's body callbacks only copy
/// the bytes aside (feed), and the session examines them (process) once the bytes of that read
/// have been written to the client, before it reads again; the time of each event is the time
/// of the read that brought it (at), whenever it is examined. A plain body's usage is read after
/// its last byte went out (settle).
class response_watch {
 public:
  /// A new response of the request that started at `t0`, recorded into `rec`.
  void begin(request_record* rec, steady_clock::time_point t0) {
    rec_ = rec;
    t0_ = t0;
    rec_->stream = false;
    cur_.clear();
    line_start_ = 0;
    tail_.clear();
    held_.clear();
    finished_ = false;
  }
  /// From the response header: text/event-stream or not (kept in the record).
  void set_stream(bool s) {
    if (rec_) rec_->stream = s;
  }
  /// The time the bytes now being parsed were read from the engine.
  void at(steady_clock::time_point now) { now_ = now; }
  double ms(steady_clock::time_point t) const {
    return std::chrono::duration<double, std::milli>(t - t0_).count();
  }
  double now_ms() const { return ms(now_); }

  /// De-chunked body bytes (called from the response parser): kept aside for process().
  void feed(std::string_view body) {
    if (!rec_) return;
    if (!rec_->stream) {
      tail_.append(body.data(), body.size());
      if (tail_.size() > 2 * kTail) tail_.erase(0, tail_.size() - kTail);
      return;
    }
    held_.append(body.data(), body.size());
  }

  /// Examines the stream bytes fed since the last call, as read at the time last given to at().
  void process() {
    if (!rec_ || held_.empty()) return;
    scan(held_);
    held_.clear();
  }

  /// The body is complete (at the time last given to at()); examined in settle().
  void finish() {
    if (!rec_) return;
    if (!rec_->stream && rec_->status / 100 == 2 && rec_->first_content_ms < 0) rec_->first_content_ms = now_ms();
    finished_ = true;
  }

  /// After the last byte went out (or the response ended otherwise): what could wait.
  void settle() {
    if (!rec_) return;
    process();
    if (finished_ && rec_->stream && !cur_.empty()) {
      event(cur_);  // an event the stream did not end with a blank line
      cur_.clear();
    }
    if (finished_ && !rec_->stream) {
      int p = -1, c = -1;
      if (sse::usage(tail_, p, c)) {
        rec_->prompt_tokens = p;
        rec_->completion_tokens = c;
      }
    }
    rec_ = nullptr;
  }

 private:
  void scan(std::string_view body) {
    std::size_t pos = 0;
    while (pos < body.size()) {
      std::size_t nl = body.find('\n', pos);
      std::size_t take = (nl == std::string_view::npos ? body.size() : nl + 1) - pos;
      if (cur_.size() < kMaxEvent) cur_.append(body.data() + pos, std::min(take, kMaxEvent - cur_.size()));
      pos += take;
      if (nl == std::string_view::npos) break;
      std::size_t line_len = cur_.size() - line_start_;
      bool blank = line_len == 1 || (line_len == 2 && cur_[line_start_] == '\r');
      if (blank) {
        event(std::string_view(cur_).substr(0, line_start_));
        cur_.clear();
        line_start_ = 0;
      } else {
        line_start_ = cur_.size();
      }
    }
  }

  void event(std::string_view ev) {
    // The data: lines; events normally hold one.
    std::string_view data;
    std::string joined;
    int lines = 0;
    for (std::size_t p = 0; p < ev.size();) {
      std::size_t nl = ev.find('\n', p);
      std::string_view line = ev.substr(p, nl == std::string_view::npos ? std::string_view::npos : nl - p);
      p = nl == std::string_view::npos ? ev.size() : nl + 1;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.substr(0, 5) != "data:") continue;
      line.remove_prefix(5);
      if (!line.empty() && line.front() == ' ') line.remove_prefix(1);
      if (++lines == 1) {
        data = line;
      } else {
        if (lines == 2) joined.assign(data.data(), data.size());
        joined += '\n';
        joined.append(line.data(), line.size());
        data = joined;
      }
    }
    if (lines == 0) return;
    if (data == "[DONE]") return;  // the end marker carries no token
    if (sse::content_bearing(data)) {
      double t = now_ms();
      if (rec_->first_content_ms < 0) rec_->first_content_ms = t;
      rec_->content_ms.push_back(t);
    } else if (rec_->error.empty() && sse::error_event(data, why_)) {
      // An error event after the 200 (the engine failed mid-stream): the request failed, as
      // bench counts it (docs/metrics.md, "Proxy-side timing"). Only events without content
      // are looked at, so a token's event costs nothing more.
      rec_->upstream_error = true;
      rec_->error = "stream error: the engine sent an error event: ";
      rec_->error += why_;
    }
    int p = -1, c = -1;
    if (data.find("usage\"") != std::string_view::npos && sse::usage(data, p, c)) {
      rec_->prompt_tokens = p;
      rec_->completion_tokens = c;
    }
  }

  static constexpr std::size_t kTail = 8192;
  static constexpr std::size_t kMaxEvent = 1 << 20;  // beyond this an event is judged by its start
  request_record* rec_ = nullptr;
  steady_clock::time_point t0_{}, now_{};
  std::string cur_;
  std::size_t line_start_ = 0;
  std::string tail_;
  std::string held_;  // stream bytes fed, not yet examined
  std::string why_;   // an error event's message (storage kept between requests)
  bool finished_ = false;  // finish() was called: the body is complete
};

}  // namespace bp::net
