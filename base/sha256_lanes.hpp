#pragma once
/// SHA-256 of several messages at once on one thread: four independent hashes advanced block by
/// block in lockstep. One SHA-256 is a chain (each block's 64 rounds wait on the last), so one
/// stream leaves the CPU's SHA unit idle between dependent instructions; four streams fill it. On
/// the 2-vCPU EPYC this project is built on, one core hashes ~1.8 GB/s as one stream (what
/// `openssl speed sha256` reports) and ~3.6 GB/s as four (docs/benchmarks.md, "Hashing at the
/// hardware limit"). The digests are plain SHA-256, byte for byte what sha256_file gives.
///
/// With the x86-64 SHA extensions (and SSSE3, SSE4.1) the lanes are interleaved SHA-NI code; on
/// any other CPU each lane is OpenSSL's SHA256_Update, one after the other (the same digests).
#include <fcntl.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/sha256.hpp"

namespace bp {

/// How many files each of `threads` hashing threads may hold open at once (1..4): what the
/// descriptor limit leaves once the process's open descriptors and 64 more are set aside (four
/// per thread on many cores could otherwise take descriptors the process needs, and a thread
/// can only wait for its own lanes to close one).
int sha256_lanes_per_thread(int threads);

/// Whether the interleaved SHA-NI code runs on this CPU (false: OpenSSL per lane).
bool sha256_lanes_in_hardware();

/// Turns the SHA-NI lanes off (false: OpenSSL per lane, as on a CPU without them) or back on
/// where the CPU has them. For tests of the portable path and perf comparisons.
void sha256_lanes_use_hardware(bool on);

/// Hex digests of `messages`, hashed four at a time. For tests and the in-memory limit that
/// perf/venv_hash.sh prints beside `openssl speed`.
std::vector<std::string> sha256_hex_lanes(const std::vector<std::string_view>& messages);

/// Files hashed four at a time on the calling thread. add() opens a file and, when every lane is
/// busy, hashes until one is free; finish() hashes what is left. Each file's result comes through
/// `done`, in the order files end (not the order they were added). A file is read as sha256_file
/// reads it: open, fstat, reads into its lane's quarter of one buffer (`buffer` bytes, mapped once
/// for this object's life; a short read at or past fstat's size ends the file), fstat again to
/// tell whether it changed while it was read. A caller that has just stat'ed a regular file
/// passes that stamp instead of the first fstat; such a file of kMapFrom bytes or more is hashed
/// from windows of kWindow bytes of a mapping instead of read(2) (no copy out of the page cache;
/// each window unmapped before the next: up to 4 x kWindow of page cache mapped per thread while it
/// hashes, counted in its RSS). After its last byte a mapped file is fstat'ed; one that no longer
/// has the caller's stamp, or was truncated under a window (SIGBUS, caught: sha256_lanes.cpp,
/// on_sigbus), is hashed again from its start by read(2): the digest is always what read(2) gives.
/// Out of descriptors, add() finishes a lane and opens the file again. One object per thread,
/// used and destroyed on the thread that made it (its windows are in that thread's fault table).
class sha256_file_lanes {
 public:
  static constexpr int kLanes = 4;
  static constexpr std::uint64_t kMapFrom = 1 << 20;
  static constexpr std::size_t kWindow = 4 << 20;
  struct result {
    std::size_t token = 0;  ///< what add() was given
    bool ok = false;
    std::string hex, err;  ///< err: the reason when !ok (strerror's; the caller names the file)
    std::uint64_t size = 0;
    file_stamp stamp;  ///< the caller's `known`, or fstat's before the first read
    bool stable = false;  ///< the stamp after the last read was `stamp`, and the size read its size
  };
  using done_fn = std::function<void(result&&)>;

  /// Throws std::runtime_error when the buffer cannot be mapped. Without `check_after` no file
  /// read by read(2) is fstat'ed after its last read and none is `stable` (for callers that
  /// remember nothing; a mapped file is always checked). At most `lanes` (1..kLanes) files open
  /// at once (sha256_lanes_per_thread). `done` must not call add() or finish().
  sha256_file_lanes(done_fn done, std::size_t buffer = read_buffer::default_size, bool check_after = true,
                    int lanes = kLanes);
  ~sha256_file_lanes();  ///< closes what is still open (a deadline passed): no result for those
  sha256_file_lanes(const sha256_file_lanes&) = delete;
  sha256_file_lanes& operator=(const sha256_file_lanes&) = delete;

  /// `path` relative to the folder open as `at` (or the working directory), never following a
  /// symlink at its end; `known`: the stamp of the regular file the caller found there.
  void add(const std::string& path, std::size_t token, const file_stamp* known = nullptr, int at = AT_FDCWD);
  void finish();
  /// Past it, add() and finish() return at once and late() is true; the files still in the lanes
  /// (and any added after) give no result.
  void set_deadline(std::chrono::steady_clock::time_point t) { deadline_ = t; }
  bool late() const { return late_; }
  int busy() const;

 private:
  struct lane;
  bool step(bool until_free);
  bool map_next(lane& l);
  void unmap(lane& l);
  bool reread(lane& l);
  bool check_mapped(lane& l);
  static bool held_still(const lane& l);

  void end(lane& l, bool ok, const std::string& err);
  done_fn done_;
  bool check_after_;
  int lanes_open_;
  std::chrono::steady_clock::time_point deadline_ = std::chrono::steady_clock::time_point::max();
  bool late_ = false;
  std::size_t block_;
  read_buffer buf_;
  std::unique_ptr<lane[]> lanes_;
};

}  // namespace bp
