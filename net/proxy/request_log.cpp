#include "net/proxy/request_log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
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
  /// Milliseconds with microsecond resolution, from whole microseconds (no floating-point
  /// formatting); null when negative (never reached).
  void ms(double v) {
    if (!(v >= 0) || v > 9e15) return lit("null");
    auto us = static_cast<std::uint64_t>(v * 1000.0 + 0.5);  // v >= 0: rounds half away from zero
    uint(us / 1000);
    unsigned frac = static_cast<unsigned>(us % 1000);
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

/// The longest line `r` can give: the fixed text and numbers (under 1 KiB; 1.5 KiB kept), the
/// strings escaped at 6 bytes per byte at worst, 24 bytes per inter-token latency.
std::size_t line_bound(const request_record& r) {
  return 1536 + 6 * (r.method.size() + r.path.size() + r.error.size()) + 24 * r.content_ms.size();
}

/// The line of `r`, written at `at` (line_bound(r) bytes available); returns its end.
char* write_json_line(char* at, const request_record& r) {
  line_writer w(at);
  w.lit("{\"id\":");
  w.uint(r.id);
  w.lit(",\"connection\":");
  w.uint(r.connection);
  w.lit(",\"started_at\":");
  w.iso_us(r.start_unix_us);
  w.lit(",\"start_unix_us\":");
  w.sint(r.start_unix_us);
  w.lit(",\"method\":");
  w.str(r.method);
  w.lit(",\"path\":");
  w.str(r.path);
  w.lit(",\"status\":");
  w.sint(r.status);
  w.lit(",\"stream\":");
  w.boolean(r.stream);
  w.lit(",\"local\":");
  w.boolean(r.local);
  w.lit(",\"client_aborted\":");
  w.boolean(r.client_aborted);
  w.lit(",\"upstream_error\":");
  w.boolean(r.upstream_error);
  w.lit(",\"error\":");
  if (r.error.empty())
    w.lit("null");
  else
    w.str(r.error);
  w.lit(",\"t_ms\":{\"request_header\":0,\"request_body\":");
  w.ms(r.request_body_ms);
  w.lit(",\"forwarded\":");
  w.ms(r.forwarded_ms);
  w.lit(",\"response_header\":");
  w.ms(r.response_header_ms);
  w.lit(",\"first_content\":");
  w.ms(r.first_content_ms);
  w.lit(",\"last_byte\":");
  w.ms(r.last_byte_ms);
  w.lit("},\"ttft_ms\":");
  w.ms(r.ttft_ms());
  w.lit(",\"e2e_ms\":");
  w.ms(r.e2e_ms());
  w.lit(",\"itl_ms\":[");
  for (std::size_t i = 1; i < r.content_ms.size(); ++i) {
    if (i > 1) w.ch(',');
    w.ms(r.content_ms[i] - r.content_ms[i - 1]);
  }
  w.lit("],\"content_events\":");
  w.uint(r.content_ms.size());
  int tokens = r.output_tokens();
  w.lit(",\"output_tokens\":");
  w.sint(tokens);
  if (r.completion_tokens >= 0)
    w.lit(",\"output_tokens_source\":\"usage\"");
  else
    w.lit(",\"output_tokens_source\":\"content_events\"");
  w.lit(",\"output_tps\":");
  if (r.complete() && r.e2e_ms() > 0)
    w.ms(tokens / (r.e2e_ms() / 1000.0));  // three decimals, formatted as an integer
  else
    w.lit("null");
  w.lit(",\"usage\":");
  if (r.completion_tokens >= 0 || r.prompt_tokens >= 0) {
    w.lit("{\"prompt_tokens\":");
    if (r.prompt_tokens >= 0)
      w.sint(r.prompt_tokens);
    else
      w.lit("null");
    w.lit(",\"completion_tokens\":");
    if (r.completion_tokens >= 0)
      w.sint(r.completion_tokens);
    else
      w.lit("null");
    w.ch('}');
  } else {
    w.lit("null");
  }
  w.lit(",\"bytes_in\":");
  w.uint(r.bytes_in);
  w.lit(",\"bytes_out\":");
  w.uint(r.bytes_out);
  w.ch('}');
  return w.end();
}

}  // namespace

void append_json_line(std::string& o, const request_record& r) {
  std::size_t at = o.size();
  o.resize(at + line_bound(r));
  o.resize(static_cast<std::size_t>(write_json_line(o.data() + at, r) - o.data()));
}

request_log::request_log(std::size_t window) : window_(std::max<std::size_t>(1, window)) {}

request_log::~request_log() { close_file(); }

void request_log::add(std::unique_ptr<request_record>& r) {
  bool wake;
  {
    std::lock_guard<std::mutex> g(mu_);
    pending_.push_back(std::move(r));
    // Under load the writer is woken every kWakeEvery records (one futex wake per thousand
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
  // Formatting and writing happen outside mu_, so an I/O thread handing a record over never
  // waits for them; each line is formatted straight into one reused 64 KiB buffer (no
  // batch-sized strings: peak memory is the window, not the load).
  std::lock_guard<std::mutex> fg(format_mu_);
  std::size_t n;
  int fd;
  {
    std::lock_guard<std::mutex> g(mu_);
    batch_.swap(pending_);  // batch_ was empty: pending_ keeps its capacity for the next batch
    n = batch_.size();
    fd = fd_;
  }
  if (n == 0) return;
  if (fd >= 0) {
    // Lines are written straight into one 64 KiB buffer, one write(2) whenever it is full and
    // one at the end of the batch.
    char* buf = file_buf_.get();
    std::size_t used = 0;
    for (std::size_t k = 0; k < n; ++k) {
      std::size_t bound = line_bound(*batch_[k]) + 1;
      if (used + bound > kFileBuffer) {
        write_all(fd, buf, used);
        used = 0;
      }
      if (bound > kFileBuffer) {  // a stream of thousands of events: a line of its own
        std::string line;
        append_json_line(line, *batch_[k]);
        line += '\n';
        write_all(fd, line.data(), line.size());
        continue;
      }
      char* e = write_json_line(buf + used, *batch_[k]);
      *e++ = '\n';
      used = static_cast<std::size_t>(e - buf);
    }
    write_all(fd, buf, used);
  }
  std::lock_guard<std::mutex> g(mu_);
  for (std::size_t k = 0; k < n; ++k) {
    if (ring_.size() < window_) {
      ring_.push_back(std::move(batch_[k]));
    } else {
      std::swap(ring_[ring_head_], batch_[k]);  // the oldest leaves the window: for reuse
      ring_head_ = (ring_head_ + 1) % window_;
      free_.push_back(std::move(batch_[k]));
    }
  }
  batch_.clear();
}

std::vector<std::string> request_log::after(std::uint64_t after, std::size_t limit, bool* more,
                                            std::uint64_t* last) const {
  drain();
  std::vector<const request_record*> hits;
  std::vector<std::string> out;
  std::lock_guard<std::mutex> g(mu_);
  for (std::size_t k = 0; k < ring_.size(); ++k) {
    const auto& r = *ring_[(ring_head_ + k) % ring_.size()];
    if (r.id > after) hits.push_back(&r);
  }
  // Records arrive in completion order; ids in arrival order.
  std::sort(hits.begin(), hits.end(), [](const auto* a, const auto* b) { return a->id < b->id; });
  if (more) *more = hits.size() > limit;
  if (hits.size() > limit) hits.resize(limit);
  if (last) *last = hits.empty() ? after : hits.back()->id;
  out.reserve(hits.size());
  for (const auto* h : hits) out.push_back(to_json_line(*h));
  return out;
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
