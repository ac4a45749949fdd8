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
#include <thread>
#include <vector>

#include "net/proxy/request_timing.hpp"

namespace bp::net {

/// One record as its requests.jsonl line (no newline): a JSON object, written by hand with
/// std::to_chars (a per-request nlohmann tree cost more than the whole relay; docs/benchmarks.md).
void append_json_line(std::string& out, const request_record& r);
inline std::string to_json_line(const request_record& r) {
  std::string s;
  append_json_line(s, r);
  return s;
}

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
                                 std::uint64_t* last = nullptr) const;

  /// Appends every record (from now on) to `path`, which must not exist yet (results are never
  /// overwritten). False with `err` when it cannot be created.
  bool open_file(const std::string& path, std::string& err);
  /// Writes what is pending and closes the file; idempotent.
  void close_file();

 private:
  /// Writes what is pending to the file and moves it into the window; any thread.
  void drain() const;
  void writer();
  std::atomic<std::uint64_t> ids_{0};
  std::size_t window_;
  mutable std::mutex mu_;
  mutable std::mutex format_mu_;  // one drain at a time (the writer, or a /proxy/requests reader)
  static constexpr std::size_t kWakeEvery = 1024;
  // Records circulate without allocating: a session hands its record over into pending_ and
  // gets a recycled one back from free_; a drain swaps pending_ with batch_, writes batch_'s
  // records and moves them into the ring (the window), whose oldest go to free_.
  using record_ptr = std::unique_ptr<request_record>;
  mutable std::vector<record_ptr> pending_;  // handed over, not yet written
  mutable std::vector<record_ptr> batch_;    // the drain's (empty between drains)
  mutable std::vector<record_ptr> free_;     // written, out of the window: for reuse
  mutable std::vector<record_ptr> ring_;     // the window; oldest at ring_head_ once full
  mutable std::size_t ring_head_ = 0;
  std::condition_variable cv_;
  bool stop_ = false;
  static constexpr std::size_t kFileBuffer = 64 * 1024;
  std::unique_ptr<char[]> file_buf_;  // the lines of a batch, written to fd_ when full
  int fd_ = -1;
  std::string path_;
  std::thread thread_;
};

}  // namespace bp::net
