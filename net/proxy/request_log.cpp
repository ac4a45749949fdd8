#include "net/proxy/request_log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <chrono>
#include <ctime>

namespace bp::net {

namespace {

/// "00".."99": two digits at a time.
constexpr char kDigits2[] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

/// Bytes a JSON string cannot hold as they are: control bytes, '"', '\\', and (to keep the line
/// ASCII whatever an error message holds) everything from DEL up.
struct escape_table {
  bool v[256];
  constexpr escape_table() : v() {
    for (int c = 0; c < 256; ++c) v[c] = c < 0x20 || c >= 0x7f || c == '"' || c == '\\';
  }
};
constexpr escape_table kEscape;

/// Writes a line straight into memory reserved for its longest possible form (line_bound):
/// fixed pieces are memcpy of a size known at compile time (a few moves), numbers two digits at a
/// time (most of a record's numbers have one to three digits), no bounds check per piece. An
/// append per piece, then a stack buffer flushed into a string, each cost more than the relay of
/// the request (docs/benchmarks.md).
class line_writer {
 public:
  explicit line_writer(char* at) : p_(at) {}
  char* end() const { return p_; }
  template <std::size_t N>
  void lit(const char (&s)[N]) {
    std::memcpy(p_, s, N - 1);
    p_ += N - 1;
  }
  void ch(char c) { *p_++ = c; }
  void uint(std::uint64_t v) {
    if (v < 10) {
      *p_++ = static_cast<char>('0' + v);
    } else if (v < 100) {
      std::memcpy(p_, kDigits2 + 2 * v, 2);
      p_ += 2;
    } else if (v < 1000) {
      p_[0] = static_cast<char>('0' + v / 100);
      std::memcpy(p_ + 1, kDigits2 + 2 * (v % 100), 2);
      p_ += 3;
    } else {
      p_ = std::to_chars(p_, p_ + 24, v).ptr;
    }
  }
  void sint(long long v) {
    if (v < 0) {
      *p_++ = '-';
      uint(0 - static_cast<std::uint64_t>(v));
    } else {
      uint(static_cast<std::uint64_t>(v));
    }
  }
  /// Milliseconds with three decimals from whole microseconds (packed_record::us_of); null
  /// when negative (absent).
  void ms_us(std::int64_t us) {
    if (us < 0) return lit("null");
    auto u = static_cast<std::uint64_t>(us);
    uint(u / 1000);
    unsigned frac = static_cast<unsigned>(u % 1000);
    p_[0] = '.';
    p_[1] = static_cast<char>('0' + frac / 100);
    std::memcpy(p_ + 2, kDigits2 + 2 * (frac % 100), 2);
    p_ += 4;
  }
  void str(std::string_view v) {
    *p_++ = '"';
    std::size_t i = 0;
    // Eight bytes at a time while none of them needs escaping (a path or a method, usually).
    for (std::uint64_t x; i + 8 <= v.size(); i += 8) {
      std::memcpy(&x, v.data() + i, 8);
      if (any_escape(x)) break;
      std::memcpy(p_, &x, 8);
      p_ += 8;
    }
    std::size_t run = i;  // bytes that need no escaping, copied in one piece
    for (; i < v.size(); ++i) {
      unsigned char c = static_cast<unsigned char>(v[i]);
      if (!kEscape.v[c]) continue;
      copy(v.data() + run, i - run);
      run = i + 1;
      if (c == '"' || c == '\\') {
        p_[0] = '\\';
        p_[1] = static_cast<char>(c);
        p_ += 2;
      } else {
        // Control bytes, and anything not ASCII (the line must stay valid JSON whatever an error
        // message holds): \u00XX.
        static const char hex[] = "0123456789abcdef";
        char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        copy(e, 6);
      }
    }
    copy(v.data() + run, v.size() - run);
    *p_++ = '"';
  }
  void iso_us(std::int64_t unix_us) {
    // The date and time to the second change once a second: formatted then, reused otherwise.
    thread_local std::int64_t cached_s = -1;
    thread_local char cached[24];
    thread_local std::size_t cached_n = 0;
    std::int64_t sec = unix_us / 1000000;
    if (sec != cached_s) {
      std::time_t t = static_cast<std::time_t>(sec);
      std::tm tm{};
      ::gmtime_r(&t, &tm);
      cached_n = std::strftime(cached, sizeof(cached), "%Y-%m-%dT%H:%M:%S", &tm);
      cached_s = sec;
    }
    auto us = static_cast<unsigned>(unix_us % 1000000);
    *p_++ = '"';
    copy(cached, cached_n);
    p_[0] = '.';
    std::memcpy(p_ + 1, kDigits2 + 2 * (us / 10000), 2);
    std::memcpy(p_ + 3, kDigits2 + 2 * (us / 100 % 100), 2);
    std::memcpy(p_ + 5, kDigits2 + 2 * (us % 100), 2);
    p_[7] = 'Z';
    p_[8] = '"';
    p_ += 9;
  }
  void boolean(bool b) {
    if (b)
      lit("true");
    else
      lit("false");
  }

 private:
  /// Does any byte of `x` need escaping (below 0x20, DEL and above, '"' or '\\')? Each test is
  /// exact for "any byte" (the borrow of the subtraction cannot set a high bit where no byte
  /// qualifies); a false answer lets all eight bytes be copied as they are.
  static bool any_escape(std::uint64_t x) {
    constexpr std::uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    auto has_zero = [](std::uint64_t v) { return (v - ones) & ~v & highs; };
    std::uint64_t below_space = (x - 0x20 * ones) & ~x & highs;  // some byte < 0x20 (or >= 0x80)
    return ((x & highs) | below_space | has_zero(x ^ (0x7f * ones)) | has_zero(x ^ ('"' * ones)) |
            has_zero(x ^ ('\\' * ones))) != 0;
  }
  void copy(const char* s, std::size_t n) {
    std::memcpy(p_, s, n);
    p_ += n;
  }
  char* p_;
};

/// The whole of [p, p + n) to `fd`, across short writes; a failing disk loses the batch, not the
/// process (the records stay in the window).
void write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

/// The longest line `p` can give: the fixed text and numbers (under 1 KiB; 1.5 KiB kept), the
/// strings escaped at 6 bytes per byte at worst, 24 bytes per inter-token latency.
std::size_t line_bound(const packed_record& p) {
  return 1536 + 6 * (p.method_len + p.path_len + p.error_len + p.window_len) + 24 * std::size_t{p.events};
}

/// The line of `p`, written at `at` (line_bound(p) bytes available); returns its end.
char* write_json_line(char* at, const packed_record& p) {
  line_writer w(at);
  w.lit("{\"id\":");
  w.uint(p.id);
  w.lit(",\"connection\":");
  w.uint(p.connection);
  w.lit(",\"started_at\":");
  w.iso_us(p.start_unix_us);
  w.lit(",\"start_unix_us\":");
  w.sint(p.start_unix_us);
  w.lit(",\"method\":");
  w.str(p.method());
  w.lit(",\"path\":");
  w.str(p.path());
  w.lit(",\"status\":");
  w.sint(p.status);
  w.lit(",\"stream\":");
  w.boolean(p.flags & packed_record::kStream);
  w.lit(",\"local\":");
  w.boolean(p.flags & packed_record::kLocal);
  w.lit(",\"client_aborted\":");
  w.boolean(p.flags & packed_record::kClientAborted);
  w.lit(",\"upstream_error\":");
  w.boolean(p.flags & packed_record::kUpstreamError);
  w.lit(",\"error\":");
  if (p.error_len == 0)
    w.lit("null");
  else
    w.str(p.error());
  w.lit(",\"t_ms\":{\"request_header\":0,\"request_body\":");
  w.ms_us(p.us[packed_record::kRequestBody]);
  w.lit(",\"forwarded\":");
  w.ms_us(p.us[packed_record::kForwarded]);
  w.lit(",\"response_header\":");
  w.ms_us(p.us[packed_record::kResponseHeader]);
  w.lit(",\"first_content\":");
  w.ms_us(p.us[packed_record::kFirstContent]);
  w.lit(",\"last_byte\":");
  w.ms_us(p.us[packed_record::kLastByte]);
  w.lit("},\"ttft_ms\":");
  w.ms_us(p.us[packed_record::kFirstContent]);
  w.lit(",\"e2e_ms\":");
  w.ms_us(p.us[packed_record::kLastByte]);
  w.lit(",\"itl_ms\":[");
  for (std::uint32_t i = 1; i < p.events; ++i) {
    if (i > 1) w.ch(',');
    w.ms_us(p.gap(i - 1));
  }
  w.lit("],\"content_events\":");
  w.uint(p.events);
  w.lit(",\"output_tokens\":");
  w.sint(p.output_tokens);
  if (p.completion_tokens >= 0)
    w.lit(",\"output_tokens_source\":\"usage\"");
  else
    w.lit(",\"output_tokens_source\":\"content_events\"");
  w.lit(",\"output_tps\":");
  w.ms_us(p.tps);  // tokens per second with three decimals: the same formatting
  w.lit(",\"usage\":");
  if (p.completion_tokens >= 0 || p.prompt_tokens >= 0) {
    w.lit("{\"prompt_tokens\":");
    if (p.prompt_tokens >= 0)
      w.sint(p.prompt_tokens);
    else
      w.lit("null");
    w.lit(",\"completion_tokens\":");
    if (p.completion_tokens >= 0)
      w.sint(p.completion_tokens);
    else
      w.lit("null");
    w.ch('}');
  } else {
    w.lit("null");
  }
  w.lit(",\"bytes_in\":");
  w.uint(p.bytes_in);
  w.lit(",\"bytes_out\":");
  w.uint(p.bytes_out);
  if (p.window_len) {
    w.lit(",\"window\":");
    w.str(p.window());
  }
  w.ch('}');
  return w.end();
}

}  // namespace

std::int64_t packed_record::us_of(double ms) {
  if (!(ms >= 0) || ms > 9e15) return -1;
  return static_cast<std::int64_t>(ms * 1000.0 + 0.5);  // ms >= 0: rounds half away from zero
}

void packed_record::pack(const request_record& r) {
  id = r.id;
  connection = r.connection;
  start_unix_us = r.start_unix_us;
  bytes_in = r.bytes_in;
  bytes_out = r.bytes_out;
  us[kRequestBody] = us_of(r.request_body_ms);
  us[kForwarded] = us_of(r.forwarded_ms);
  us[kResponseHeader] = us_of(r.response_header_ms);
  us[kFirstContent] = us_of(r.first_content_ms);
  us[kLastByte] = us_of(r.last_byte_ms);
  status = static_cast<std::int16_t>(r.status);
  prompt_tokens = r.prompt_tokens;
  completion_tokens = r.completion_tokens;
  output_tokens = r.output_tokens();
  tps = r.complete() && r.e2e_ms() > 0 ? us_of(output_tokens / (r.e2e_ms() / 1000.0)) : -1;
  flags = static_cast<std::uint8_t>((r.stream ? kStream : 0) | (r.local ? kLocal : 0) |
                                    (r.client_aborted ? kClientAborted : 0) | (r.upstream_error ? kUpstreamError : 0));
  // (The request line is bounded far below 64 KiB by the parser's header limit.)
  method_len = static_cast<std::uint16_t>(std::min<std::size_t>(r.method.size(), 0xffff));
  path_len = static_cast<std::uint16_t>(std::min<std::size_t>(r.path.size(), 0xffff));
  error_len = static_cast<std::uint32_t>(r.error.size());
  window_len = static_cast<std::uint8_t>(std::min<std::size_t>(r.window.size(), kMaxWindowName));
  events = static_cast<std::uint32_t>(r.content_ms.size());
  std::size_t text = std::size_t{method_len} + path_len + error_len + window_len;
  std::size_t gaps = events > 1 ? events - 1 : 0;
  std::size_t need = text + gaps * sizeof(std::int64_t);
  char* d = inline_;
  if (need > sizeof(inline_)) {
    if (heap_cap_ < need) {
      heap_.reset(new char[need]);
      heap_cap_ = static_cast<std::uint32_t>(need);
    }
    d = heap_.get();
  } else if (heap_cap_ > 4096) {
    heap_.reset();  // a long stream's storage is not kept for a short request
    heap_cap_ = 0;
  }
  on_heap_ = need > sizeof(inline_);
  std::memcpy(d, r.method.data(), method_len);
  std::memcpy(d + method_len, r.path.data(), path_len);
  std::memcpy(d + method_len + path_len, r.error.data(), error_len);
  std::memcpy(d + method_len + path_len + error_len, r.window.data(), window_len);
  for (std::size_t i = 0; i < gaps; ++i) {
    std::int64_t g = us_of(r.content_ms[i + 1] - r.content_ms[i]);
    std::memcpy(d + text + i * sizeof(g), &g, sizeof(g));
  }
}

std::int64_t packed_record::gap(std::size_t i) const {
  std::int64_t g;
  std::memcpy(&g, chars() + method_len + path_len + error_len + window_len + i * sizeof(g), sizeof(g));
  return g;
}

void append_json_line(std::string& o, const packed_record& p) {
  std::size_t at = o.size();
  o.resize(at + line_bound(p));
  o.resize(static_cast<std::size_t>(write_json_line(o.data() + at, p) - o.data()));
}

void append_json_line(std::string& o, const request_record& r) {
  packed_record p;
  p.pack(r);
  append_json_line(o, p);
}

bool request_log::window_action(std::string_view name, std::string_view action, std::string& err) {
  if (std::string why = window_name_problem(name); !why.empty()) {
    err = why;
    return false;
  }
  auto now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                    std::chrono::system_clock::now().time_since_epoch()).count();
  std::lock_guard<std::mutex> g(windows_mu_);
  auto it = std::find_if(windows_.begin(), windows_.end(), [&](const window_record& w) { return w.name == name; });
  if (action == "start") {
    if (it != windows_.end()) {
      err = "window '" + std::string(name) + "' was already started (a name starts once)";
      return false;
    }
    if (windows_.size() >= 1000) {
      err = "at most 1000 windows per run";
      return false;
    }
    window_record w;
    w.name = std::string(name);
    w.after_id = last_id();
    w.start_unix_us = now_us;
    windows_.push_back(w);
    record_window(w);
    return true;
  }
  if (action == "stop") {
    if (it == windows_.end()) {
      err = "no window named '" + std::string(name) + "' was started";
      return false;
    }
    if (!it->open) {
      err = "window '" + std::string(name) + "' was already stopped";
      return false;
    }
    it->open = false;
    it->through_id = last_id();
    it->stop_unix_us = now_us;
    record_window(*it);
    return true;
  }
  err = "unknown action '" + std::string(action) + "' (use \"start\" or \"stop\")";
  return false;
}

namespace {
/// A window as its windows.jsonl line (the same object GET /proxy/window lists), no newline.
std::string window_line(const window_record& w) {
  std::string name;
  for (char c : w.name) {  // printable ASCII only (window_name_problem): '"' and '\\' need escaping
    if (c == '"' || c == '\\') name += '\\';
    name += c;
  }
  std::string l = "{\"name\":\"" + name + "\",\"after_id\":" + std::to_string(w.after_id) + ",\"through_id\":" +
                  (w.open ? std::string("null") : std::to_string(w.through_id)) +
                  ",\"start_unix_us\":" + std::to_string(w.start_unix_us) + ",\"stop_unix_us\":" +
                  (w.open ? std::string("null") : std::to_string(w.stop_unix_us)) +
                  ",\"open\":" + (w.open ? "true" : "false") + "}";
  return l;
}
}  // namespace

void request_log::record_window(const window_record& w) const {
  // Beside requests.jsonl, one line per start and stop (the last line of a name is its state), so a
  // plain serve's folder keeps its windows (docs/clients.md). Rare: one small append each.
  std::string path;
  {
    std::lock_guard<std::mutex> g(mu_);
    path = path_;
  }
  if (path.empty()) return;
  auto slash = path.rfind('/');
  std::string file = (slash == std::string::npos ? std::string() : path.substr(0, slash + 1)) + "windows.jsonl";
  int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return;
  std::string line = window_line(w) + "\n";
  write_all(fd, line.data(), line.size());
  ::close(fd);
}

std::vector<window_record> request_log::windows() const {
  std::lock_guard<std::mutex> g(windows_mu_);
  return windows_;
}

request_log::request_log(std::size_t window) : window_(std::max<std::size_t>(1, window)) {}

request_log::~request_log() { close_file(); }

void request_log::add(std::unique_ptr<request_record>& r) {
  bool wake;
  {
    std::lock_guard<std::mutex> g(mu_);
    pending_.push_back(std::move(r));
    // Under load the writer is woken every kWakeEvery records (one futex wake per 256
    // requests), so what waits for it stays small; otherwise its 200 ms tick takes it.
    wake = pending_.size() == kWakeEvery;
    if (!free_.empty()) {
      r = std::move(free_.back());
      free_.pop_back();
    }
  }
  if (wake) cv_.notify_one();
  if (!r) r = std::make_unique<request_record>();  // until the window is full
}

void request_log::drain() const {
  std::lock_guard<std::mutex> fg(format_mu_);
  drain_locked();
}

void request_log::drain_locked() const {
  // Formatting and writing happen outside mu_, so an I/O thread handing a record over never
  // waits for them; each line is formatted straight into one reused 64 KiB buffer (no
  // batch-sized strings: peak memory is the window, not the load).
  std::size_t n;
  int fd;
  {
    std::lock_guard<std::mutex> g(mu_);
    batch_.swap(pending_);  // batch_ was empty: pending_ keeps its capacity for the next batch
    n = batch_.size();
    fd = fd_;
  }
  if (n == 0) return;
  if (ring_.capacity() < window_) ring_.reserve(window_);  // once; its pages are touched as it fills
  char* buf = fd >= 0 ? file_buf_.get() : nullptr;
  std::size_t used = 0;
  for (std::size_t k = 0; k < n; ++k) {
    // Into the window first (the ring is only touched under format_mu_), then the line from it.
    packed_record* slot;
    if (ring_.size() < window_) {
      slot = &ring_.emplace_back();
    } else {
      slot = &ring_[ring_head_];  // the oldest leaves the window
      if (slot->id > evicted_through_) evicted_through_ = slot->id;
      ring_head_ = (ring_head_ + 1) % window_;
    }
    slot->pack(*batch_[k]);
    if (!buf) continue;
    // Lines are written straight into one 64 KiB buffer, one write(2) whenever it is full and
    // one at the end of the batch.
    std::size_t bound = line_bound(*slot) + 1;
    if (used + bound > kFileBuffer) {
      write_all(fd, buf, used);
      used = 0;
    }
    if (bound > kFileBuffer) {  // a stream of thousands of events: a line of its own
      std::string line;
      append_json_line(line, *slot);
      line += '\n';
      write_all(fd, line.data(), line.size());
      continue;
    }
    char* e = write_json_line(buf + used, *slot);
    *e++ = '\n';
    used = static_cast<std::size_t>(e - buf);
  }
  if (buf) write_all(fd, buf, used);
  std::lock_guard<std::mutex> g(mu_);
  for (auto& r : batch_) free_.push_back(std::move(r));
  batch_.clear();
}

std::vector<std::string> request_log::after(std::uint64_t after, std::size_t limit, bool* more,
                                            std::uint64_t* last, std::uint64_t* first) const {
  std::lock_guard<std::mutex> fg(format_mu_);  // the ring stays as it is while it is read
  drain_locked();
  std::vector<const packed_record*> hits;
  std::vector<std::string> out;
  for (std::size_t k = 0; k < ring_.size(); ++k) {
    const auto& r = ring_[(ring_head_ + k) % ring_.size()];
    if (r.id > after) hits.push_back(&r);
  }
  // Records arrive in completion order; ids in arrival order.
  std::sort(hits.begin(), hits.end(), [](const auto* a, const auto* b) { return a->id < b->id; });
  if (more) *more = hits.size() > limit;
  if (hits.size() > limit) hits.resize(limit);
  if (last) *last = hits.empty() ? after : hits.back()->id;
  if (first) *first = hits.empty() ? 0 : hits.front()->id;
  out.reserve(hits.size());
  for (const auto* h : hits) {
    out.emplace_back();
    append_json_line(out.back(), *h);
  }
  return out;
}

std::uint64_t request_log::evicted_through() const {
  std::lock_guard<std::mutex> fg(format_mu_);
  drain_locked();
  return evicted_through_;
}

bool request_log::open_file(const std::string& path, std::string& err) {
  std::lock_guard<std::mutex> g(mu_);
  if (fd_ >= 0) {
    err = "requests log already open at " + path_;
    return false;
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    err = "cannot create " + path + ": " + std::strerror(errno) +
          (errno == EEXIST ? " (results are never overwritten)" : "");
    return false;
  }
  fd_ = fd;
  file_buf_ = std::make_unique<char[]>(kFileBuffer);
  path_ = path;
  stop_ = false;
  thread_ = std::thread([this] { writer(); });
  return true;
}

void request_log::writer() {
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    // A timed wake, or one per kWakeEvery records under load: never one per request.
    cv_.wait_for(lk, std::chrono::milliseconds(200), [this] { return stop_ || pending_.size() >= kWakeEvery; });
    bool stopping = stop_;
    lk.unlock();
    drain();
    lk.lock();
    if (stopping && pending_.empty()) return;
  }
}

void request_log::close_file() {
  {
    std::lock_guard<std::mutex> g(mu_);
    if (fd_ < 0) return;
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  drain();  // anything handed over after the writer's last look
  std::lock_guard<std::mutex> fg(format_mu_);  // no drain is writing to it any more
  std::lock_guard<std::mutex> g(mu_);
  ::close(fd_);
  fd_ = -1;
}

}  // namespace bp::net
