#pragma once
#include <sys/stat.h>
/// SHA-256 helpers over OpenSSL's SHA256_* functions (not EVP: see sha256.cpp), and HMAC-SHA256.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace bp {

/// Hex digest of a byte string.
std::string sha256_hex(std::string_view data);

/// HMAC-SHA256 (RFC 2104) of `message` under `key`, hex.
std::string hmac_sha256_hex(std::string_view key, std::string_view message);

/// Incremental hasher; one per thread, reusable after final_hex().
class sha256_hasher {
 public:
  sha256_hasher();
  ~sha256_hasher();
  sha256_hasher(const sha256_hasher&) = delete;
  sha256_hasher& operator=(const sha256_hasher&) = delete;
  void update(const void* data, std::size_t n);
  void update(std::string_view s) { update(s.data(), s.size()); }
  /// Finishes and resets, ready for the next message.
  std::string final_hex();
  /// Digest of what was fed so far, without finishing.
  std::string peek_hex() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// Hash of a file's contents, read in fixed-size blocks (never the whole file in memory).
/// Returns false and sets err on failure. Maps a read buffer for this one file: for hashing many
/// files, give each thread a read_buffer and use the overload below.
bool sha256_file(const std::string& path, std::string& hex, std::uint64_t& size, std::string& err);

/// A read buffer for hashing files: mapped once per thread and job, reused for every file that
/// thread hashes in that job, unmapped with it (a thread_local one stayed resident in every
/// thread that ever hashed; one mapped per file cost a mapping, page faults and an unmapping --
/// with its TLB shootdown across the other hashing threads -- per file).
class read_buffer {
 public:
  static constexpr std::size_t default_size = 256 * 1024;
  explicit read_buffer(std::size_t bytes = default_size);
  ~read_buffer();
  read_buffer(const read_buffer&) = delete;
  read_buffer& operator=(const read_buffer&) = delete;
  char* data() const { return data_; }
  std::size_t size() const { return size_; }

 private:
  char* data_ = nullptr;
  std::size_t size_ = 0;
};

/// A file's identity as fstat(2) gives it: what the hash cache keys on (git's index rule).
struct file_stamp {
  std::uint64_t dev = 0, ino = 0, size = 0;
  std::int64_t mtime_ns = 0, ctime_ns = 0;
  bool operator==(const file_stamp& o) const {
    return dev == o.dev && ino == o.ino && size == o.size && mtime_ns == o.mtime_ns && ctime_ns == o.ctime_ns;
  }
  bool operator!=(const file_stamp& o) const { return !(*this == o); }
};

/// The stamp of what fstat(2)/stat(2) returned.
file_stamp stamp_of(const struct stat& st);

/// The same hash through `buf`. A short read at or past the size fstat reported ends the file
/// (no extra read(2) for the end of a small file). When `stamp` is given it receives the file's
/// stamp from before the first read, and `stable` whether the stamp after the last read was the
/// same (false: the file changed while it was read; its hash must not be remembered).
bool sha256_file(const std::string& path, std::string& hex, std::uint64_t& size, std::string& err, read_buffer& buf,
                 file_stamp* stamp = nullptr, bool* stable = nullptr);

std::string to_hex(const unsigned char* p, std::size_t n);

}  // namespace bp
