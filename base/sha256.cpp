// OpenSSL's SHA256_* functions, not EVP: the first EVP call loads the default provider and
// names every algorithm it has, which made 2 MiB more of libcrypto resident in every
// bench-proxy process for one hash (docs/benchmarks.md, "Memory"). The SHA256_* calls are
// deprecated in OpenSSL 3 (still there, no provider behind them); this file asks for the 1.1.1
// API level, under which they are declared without the deprecation mark.
#define OPENSSL_API_COMPAT 10101
#include "base/sha256.hpp"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace bp {

std::string to_hex(const unsigned char* p, std::size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string out(n * 2, '0');
  for (std::size_t i = 0; i < n; ++i) {
    out[2 * i] = digits[p[i] >> 4];
    out[2 * i + 1] = digits[p[i] & 0xf];
  }
  return out;
}

struct sha256_hasher::impl {
  SHA256_CTX ctx;
};

sha256_hasher::sha256_hasher() : impl_(std::make_unique<impl>()) {
  if (SHA256_Init(&impl_->ctx) != 1) throw std::runtime_error("SHA256_Init failed");
}

sha256_hasher::~sha256_hasher() = default;

void sha256_hasher::update(const void* data, std::size_t n) { SHA256_Update(&impl_->ctx, data, n); }

std::string sha256_hasher::final_hex() {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256_Final(md, &impl_->ctx);
  SHA256_Init(&impl_->ctx);
  return to_hex(md, sizeof(md));
}

std::string sha256_hasher::peek_hex() const {
  SHA256_CTX copy = impl_->ctx;
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256_Final(md, &copy);
  return to_hex(md, sizeof(md));
}

namespace {
// Not OpenSSL's one-shot SHA256(): in OpenSSL 3 that one goes through EVP (EVP_Q_digest).
void sha256(const void* data, std::size_t n, unsigned char* md) {
  SHA256_CTX c;
  SHA256_Init(&c);
  SHA256_Update(&c, data, n);
  SHA256_Final(md, &c);
}
}  // namespace

std::string sha256_hex(std::string_view data) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  sha256(data.data(), data.size(), md);
  return to_hex(md, sizeof(md));
}

std::string hmac_sha256_hex(std::string_view key, std::string_view message) {
  // RFC 2104 over SHA-256 (block 64 bytes): H((K ^ opad) || H((K ^ ipad) || message)), a key
  // longer than a block hashed first. Checked against RFC 4231's vectors and OpenSSL's HMAC()
  // (tests/base/redact_test.cpp).
  constexpr std::size_t block = 64;
  unsigned char k[block] = {};
  if (key.size() > block)
    sha256(key.data(), key.size(), k);
  else if (!key.empty())
    std::memcpy(k, key.data(), key.size());
  // One pass: H((K ^ x) || data).
  auto pass = [&k](unsigned char x, const void* data, std::size_t n, unsigned char* out) {
    unsigned char pad[block];
    for (std::size_t i = 0; i < block; ++i) pad[i] = k[i] ^ x;
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, pad, block);
    SHA256_Update(&c, data, n);
    SHA256_Final(out, &c);
    OPENSSL_cleanse(pad, sizeof(pad));
  };
  unsigned char inner[SHA256_DIGEST_LENGTH], md[SHA256_DIGEST_LENGTH];
  pass(0x36, message.data(), message.size(), inner);
  pass(0x5c, inner, sizeof(inner), md);
  OPENSSL_cleanse(k, sizeof(k));
  return to_hex(md, sizeof(md));
}

read_buffer::read_buffer(std::size_t bytes) : size_(bytes) {
  void* mem = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) throw std::runtime_error(std::string("no memory for a hashing read buffer: ") + std::strerror(errno));
  data_ = static_cast<char*>(mem);
}

read_buffer::~read_buffer() { ::munmap(data_, size_); }

file_stamp stamp_of(const struct stat& st) {
  file_stamp s;
  s.dev = static_cast<std::uint64_t>(st.st_dev);
  s.ino = static_cast<std::uint64_t>(st.st_ino);
  s.size = static_cast<std::uint64_t>(st.st_size);
  s.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  s.ctime_ns = static_cast<std::int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec;
  return s;
}

bool sha256_file(const std::string& path, std::string& hex, std::uint64_t& size, std::string& err, read_buffer& buf,
                 file_stamp* stamp, bool* stable) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    err = path + ": " + std::strerror(errno);
    return false;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    err = path + ": " + std::strerror(errno);
    ::close(fd);
    return false;
  }
  const std::uint64_t expected = S_ISREG(st.st_mode) ? static_cast<std::uint64_t>(st.st_size) : ~0ull;
  // Large files: ask for the kernel's larger read-ahead (cold page cache).
  if (expected != ~0ull && expected > buf.size()) ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  thread_local sha256_hasher h;
  char* b = buf.data();
  const std::size_t block = buf.size();
  size = 0;
  for (;;) {
    ssize_t n = ::read(fd, b, block);
    if (n < 0) {
      if (errno == EINTR) continue;
      err = path + ": " + std::strerror(errno);
      ::close(fd);
      h.final_hex();
      return false;
    }
    if (n == 0) break;
    h.update(b, static_cast<std::size_t>(n));
    size += static_cast<std::uint64_t>(n);
    // A regular file's read is short only at its end: past the size fstat gave, that is the end.
    if (static_cast<std::size_t>(n) < block && size >= expected) break;
  }
  if (stamp) *stamp = stamp_of(st);
  if (stable) {
    struct stat after {};
    *stable = ::fstat(fd, &after) == 0 && stamp_of(after) == stamp_of(st) && size == expected;
  }
  ::close(fd);
  hex = h.final_hex();
  return true;
}

bool sha256_file(const std::string& path, std::string& hex, std::uint64_t& size, std::string& err) {
  try {
    read_buffer buf;
    return sha256_file(path, hex, size, err, buf);
  } catch (const std::exception& e) {
    err = path + ": " + e.what();
    return false;
  }
}

}  // namespace bp
