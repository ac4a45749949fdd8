#pragma once
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
/// Returns false and sets err on failure.
bool sha256_file(const std::string& path, std::string& hex, std::uint64_t& size, std::string& err);

std::string to_hex(const unsigned char* p, std::size_t n);

}  // namespace bp
