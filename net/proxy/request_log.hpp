#pragma once
/// Where the proxy's per-request records go: a bounded in-memory window served by
/// GET /proxy/requests?after=ID, and (for a run) every record appended to requests.jsonl in the
/// run folder by a writer thread. The I/O threads only take a short lock to hand a record over:
/// no system call, no formatting and no wake-up per request on the byte path.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "net/proxy/request_timing.hpp"

namespace bp::net {

/// A finished record as its line prints it: every time already in whole microseconds, the
/// strings and the inter-token gaps in one piece of storage (inline for a plain request, whose
/// method and path fit in 24 bytes). The /proxy/requests window holds these: about 150 bytes per
/// plain request and 8 per gap, instead of a request_record (about 250 bytes, its path allocated
/// apart, 8 bytes per event).
struct packed_record {
  enum : std::uint8_t { kStream = 1, kLocal = 2, kClientAborted = 4, kUpstreamError = 8 };
  enum { kRequestBody, kForwarded, kResponseHeader, kFirstContent, kLastByte };
  std::uint64_t id = 0, connection = 0, bytes_in = 0, bytes_out = 0;
  std::int64_t start_unix_us = 0;
  std::int64_t us[5] = {-1, -1, -1, -1, -1};  ///< request_body .. last_byte (-1: absent)
  std::int64_t tps = -1;                      ///< output tokens/s in thousandths (-1: none)
  std::int32_t prompt_tokens = -1, completion_tokens = -1, output_tokens = 0;
  std::uint32_t error_len = 0, events = 0;
  std::uint16_t method_len = 0, path_len = 0;  // a method or target longer than 64 KiB never got here
  std::int16_t status = 0;
  std::uint8_t flags = 0;
  std::uint8_t window_len = 0;  // x-bench-proxy-window: at most kMaxWindowName bytes

  /// `ms` in whole microseconds as the line prints it (rounded half up); -1 when negative.
  static std::int64_t us_of(double ms);
  /// Takes `r` over (its storage reused when large enough).
  void pack(const request_record& r);
  std::string_view method() const { return {chars(), method_len}; }
  std::string_view path() const { return {chars() + method_len, path_len}; }
  std::string_view error() const { return {chars() + method_len + path_len, error_len}; }
  std::string_view window() const { return {chars() + method_len + path_len + error_len, window_len}; }
  /// The i-th inter-token gap (between content events i and i + 1), microseconds.
  std::int64_t gap(std::size_t i) const;

 private:
  const char* chars() const { return on_heap_ ? heap_.get() : inline_; }
  bool on_heap_ = false;     // the strings and gaps are in heap_, not inline_
  char inline_[24];          // "POST" and "/v1/chat/completions" fit
  std::uint32_t heap_cap_ = 0;
  std::unique_ptr<char[]> heap_;
};

/// One record as its requests.jsonl line (no newline): a JSON object, written by hand (a
/// per-request nlohmann tree cost more than the whole relay; docs/benchmarks.md).
void append_json_line(std::string& out, const packed_record& p);
void append_json_line(std::string& out, const request_record& r);
inline std::string to_json_line(const request_record& r) {
  std::string s;
  append_json_line(s, r);
  return s;
}

/// A measurement window (docs/clients.md, "Measurement windows"): the requests that arrived
/// between its start and its stop, by id.
struct window_record {
  std::string name;
  std::uint64_t after_id = 0;    ///< the last request id given out when it started
  std::uint64_t through_id = 0;  ///< the last id given out when it stopped (open: 0)
  std::int64_t start_unix_us = 0, stop_unix_us = 0;
  bool open = true;
};

class request_log {
 public:
  /// `window`: how many of the latest records /proxy/requests can still serve.
  explicit request_log(std::size_t window = 10000);
  ~request_log();
  request_log(const request_log&) = delete;
  request_log& operator=(const request_log&) = delete;

  /// A fresh request id (ids grow in the order requests arrive, across all I/O threads).
  std::uint64_t next_id() { return ids_.fetch_add(1, std::memory_order_relaxed) + 1; }

  /// Hands a finished request over (any thread): two pointer moves under a short lock, nothing
  /// else; `r` comes back as a used record whose storage the caller reuses (reset() it first),
  /// or a fresh one while the window is still filling.
  void add(std::unique_ptr<request_record>& r);
  void add(request_record&& r) {
    auto p = std::make_unique<request_record>(std::move(r));
    add(p);
  }

  /// The lines of completed records with id > `after`, by id, at most `limit`; `more` says
  /// whether the window held more than `limit` of them; `last` gets the last id returned (or
  /// `after`). Records older than the window are gone from here (not from requests.jsonl).
  std::vector<std::string> after(std::uint64_t after, std::size_t limit, bool* more = nullptr,
                                 std::uint64_t* last = nullptr, std::uint64_t* first = nullptr) const;
  /// The last request id given out so far (0: none): every record up to it has been or will be
  /// handed over.
  std::uint64_t last_id() const { return ids_.load(std::memory_order_relaxed); }

  /// Starts or stops measurement window `name` (POST /proxy/window). A name starts once and stops
  /// once; false with `err` (said to the client as a 400) otherwise. With a requests file open,
  /// each start and stop is also a line of windows.jsonl beside it.
  bool window_action(std::string_view name, std::string_view action, std::string& err);
  /// Every window so far, in the order they started.
  std::vector<window_record> windows() const;

  /// The highest id of a record that has left the window (0: none has); a reader asking after a
  /// smaller id has missed records (requests.jsonl still has them).
  std::uint64_t evicted_through() const;

  /// Appends every record (from now on) to `path`, which must not exist yet (results are never
  /// overwritten). False with `err` when it cannot be created.
  bool open_file(const std::string& path, std::string& err);
  /// Writes what is pending and closes the file; idempotent.
  void close_file();

 private:
  /// Appends `w`'s state to windows.jsonl beside the requests file (when one is open).
  void record_window(const window_record& w) const;
  /// Writes what is pending to the file and packs it into the window; any thread.
  void drain() const;
  void drain_locked() const;  // format_mu_ held
  void writer();
  std::atomic<std::uint64_t> ids_{0};
  std::size_t window_;
  mutable std::mutex mu_;         // pending_, free_, fd_, stop_
  mutable std::mutex format_mu_;  // one drain at a time (the writer, or a /proxy/requests reader); the ring
  static constexpr std::size_t kWakeEvery = 256;  // also bounds the records in circulation (memory)
  // Records circulate without allocating: a session hands its record over into pending_ and
  // gets a recycled one back from free_; a drain swaps pending_ with batch_, writes each record's
  // line, packs it into the ring (the window, its oldest entry overwritten once full) and gives
  // the record back to free_.
  using record_ptr = std::unique_ptr<request_record>;
  mutable std::vector<record_ptr> pending_;  // handed over, not yet written
  mutable std::vector<record_ptr> batch_;    // the drain's (empty between drains)
  mutable std::vector<record_ptr> free_;     // written: for reuse
  mutable std::vector<packed_record> ring_;  // the window; oldest at ring_head_ once full
  mutable std::size_t ring_head_ = 0;
  mutable std::uint64_t evicted_through_ = 0;  // under format_mu_
  std::condition_variable cv_;
  bool stop_ = false;
  mutable std::mutex windows_mu_;
  std::vector<window_record> windows_;
  static constexpr std::size_t kFileBuffer = 64 * 1024;
  std::unique_ptr<char[]> file_buf_;  // the lines of a batch, written to fd_ when full
  int fd_ = -1;
  std::string path_;
  std::thread thread_;
};

}  // namespace bp::net
