#pragma once
/// The fleet's wire checks, without sockets (so a fuzz target and unit tests drive them alone):
/// the guard's own greeting (docs/fleet.md, "The network edge") and a checker for the stream of
/// BASP frames (CAF 0.17's wire format: a 32-byte header, then `payload_len` bytes) that the guard
/// relays only after the peer proved the token. Header only: no CAF, no OpenSSL.
#include <cstddef>
#include <cstdint>
#include <string>

namespace bp::fleet {

/// BASP as CAF 0.17.6 writes it (libcaf_io/caf/io/basp/header.hpp, all integers big-endian):
/// operation (1), two padding bytes, flags (1), payload_len (4), operation_data (8),
/// source_actor (8), dest_actor (8).
constexpr std::size_t basp_header_size = 32;
constexpr std::uint64_t basp_version = 3;  ///< operation_data of a server handshake

struct frame_limits {
  std::uint32_t max_handshake_payload = 64 * 1024;  ///< the first frame each way (BASP handshake)
  std::uint32_t max_payload = 1u << 30;             ///< every later frame (1 GiB: a run's files travel in one)
};

/// Checks a byte stream as BASP frames, in whatever pieces it arrives. Holds at most one header
/// (32 bytes); payload bytes are only counted. `feed` returns "" while the stream is fine, else
/// why not (and stays failed).
class basp_checker {
 public:
  explicit basp_checker(frame_limits l = {}) : limits_(l) {}

  std::string feed(const char* p, std::size_t n) {
    if (!error_.empty()) return error_;
    while (n > 0) {
      if (payload_left_ > 0) {
        std::size_t take = n < payload_left_ ? n : static_cast<std::size_t>(payload_left_);
        payload_left_ -= take;
        p += take;
        n -= take;
        continue;
      }
      std::size_t take = basp_header_size - have_;
      if (take > n) take = n;
      for (std::size_t i = 0; i < take; ++i) header_[have_ + i] = static_cast<unsigned char>(p[i]);
      have_ += take;
      p += take;
      n -= take;
      if (have_ < basp_header_size) break;
      have_ = 0;
      error_ = check_header();
      if (!error_.empty()) return error_;
      ++frames_;
    }
    return {};
  }

  std::uint64_t frames() const { return frames_; }
  /// Between frames (no partial header, no payload outstanding).
  bool at_boundary() const { return have_ == 0 && payload_left_ == 0; }

 private:
  std::uint64_t be(std::size_t at, std::size_t len) const {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < len; ++i) v = (v << 8) | header_[at + i];
    return v;
  }

  std::string check_header() {
    unsigned op = header_[0];
    auto len = static_cast<std::uint32_t>(be(4, 4));
    std::uint64_t data = be(8, 8), src = be(16, 8), dst = be(24, 8);
    if (op > 6) return "not a BASP frame (operation " + std::to_string(op) + ")";
    if (frames_ == 0 && op > 1)
      return "the first frame is not a BASP handshake (operation " + std::to_string(op) + ")";
    if (frames_ > 0 && op <= 1 && op_first_ != op)
      return "a second BASP handshake of another kind (operation " + std::to_string(op) + ")";
    if (frames_ == 0) op_first_ = op;
    std::uint32_t bound = frames_ == 0 ? limits_.max_handshake_payload : limits_.max_payload;
    if (len > bound)
      return "a BASP frame claims " + std::to_string(len) + " bytes of payload (at most " + std::to_string(bound) +
             (frames_ == 0 ? " before the handshake)" : ")");
    if (op == 0 && data != basp_version)
      return "BASP version " + std::to_string(data) + " (this build speaks " + std::to_string(basp_version) + ")";
    if (op == 6 && (len != 0 || data != 0 || src != 0 || dst != 0)) return "a malformed BASP heartbeat";
    if ((op == 2 || op == 3) && (dst == 0 || len == 0)) return "a malformed BASP message header";
    payload_left_ = len;
    return {};
  }

  frame_limits limits_;
  unsigned char header_[basp_header_size] = {};
  std::size_t have_ = 0;
  std::uint64_t payload_left_ = 0;
  std::uint64_t frames_ = 0;
  unsigned op_first_ = 0;
  std::string error_;
};

/// The guard's greeting, the first bytes each way on every connection (inside TLS when TLS is
/// on), before a single BASP byte: 8 bytes of magic and version, then a 32-byte random nonce.
/// The connecting side then sends HMAC-SHA256(token, "client" | agent nonce | its nonce); the
/// agent answers one status byte ('K' accepted, 'T' wrong token) and, after 'K',
/// HMAC-SHA256(token, "agent" | agent nonce | client nonce): each side proves the token without
/// sending it. Fixed sizes: nothing a peer says before it proved the token is buffered beyond them.
constexpr char greeting_magic[8] = {'B', 'P', 'F', 'L', 'E', 'E', 'T', '1'};
constexpr std::size_t nonce_size = 32;
constexpr std::size_t mac_size = 32;
constexpr std::size_t greeting_size = sizeof(greeting_magic) + nonce_size;

/// "" when `g` (at least the magic's 8 bytes: checked as soon as they arrive) starts a greeting
/// of this version, else what it is instead.
inline std::string greeting_problem(const char* g, std::size_t n) {
  if (n < sizeof(greeting_magic)) return "a short greeting";
  bool same = true;
  for (std::size_t i = 0; i < sizeof(greeting_magic); ++i) same = same && g[i] == greeting_magic[i];
  if (same) return {};
  bool family = true;
  for (std::size_t i = 0; i < 7; ++i) family = family && g[i] == greeting_magic[i];
  if (family) return std::string("a bench-proxy fleet greeting of another version ('") + g[7] + "')";
  if (static_cast<unsigned char>(g[0]) <= 6 && g[1] == 0 && g[2] == 0)
    return "plain BASP (a CAF node without the fleet's guard: an older bench-proxy?)";
  if (static_cast<unsigned char>(g[0]) == 0x16) return "a TLS handshake (is this side missing --tls-*?)";
  return "not a bench-proxy fleet peer";
}

}  // namespace bp::fleet
