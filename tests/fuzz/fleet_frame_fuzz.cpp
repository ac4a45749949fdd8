// libFuzzer target: the fleet's network edge (actors/fleet/frame.hpp), issue 26 items 4 and 5:
// what the guard reads from a peer before and after it proved the token. The first byte picks:
//   0: the rest is a BASP byte stream, fed whole and in pieces whose sizes the second byte
//      seeds: both ways must agree (verdict, frames), and a stream the checker passes never held
//      a frame beyond its bound or an operation BASP does not have (checked by a separate walk).
//   1: the rest is a greeting: accepted exactly when its first 8 bytes are the magic, and every
//      refusal says what it saw.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "actors/fleet/frame.hpp"

using namespace bp::fleet;

namespace {

[[noreturn]] void trap() { std::abort(); }

void stream(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return;
  unsigned seed = data[0];
  const char* p = reinterpret_cast<const char*>(data + 1);
  std::size_t n = size - 1;
  frame_limits lim;
  lim.max_handshake_payload = 64;  // small bounds so short inputs reach both sides of each
  lim.max_payload = 512;
  basp_checker whole(lim), pieces(lim);
  std::string a = whole.feed(p, n);
  std::string b;
  std::size_t at = 0, k = 0;
  while (at < n && b.empty()) {
    std::size_t piece = 1 + ((seed * 31u + k++ * 17u) % 40u);
    if (piece > n - at) piece = n - at;
    b = pieces.feed(p + at, piece);
    at += piece;
  }
  if (a != b) trap();
  if (a.empty() && whole.frames() != pieces.frames()) trap();
  if (!a.empty()) return;
  // The separate walk: every complete header the checker passed is within its bounds.
  std::size_t pos = 0, frames = 0;
  while (pos + basp_header_size <= n) {
    const auto* h = reinterpret_cast<const unsigned char*>(p + pos);
    std::uint32_t len = (std::uint32_t{h[4]} << 24) | (std::uint32_t{h[5]} << 16) | (std::uint32_t{h[6]} << 8) | h[7];
    if (h[0] > 6) trap();
    if (len > (frames == 0 ? lim.max_handshake_payload : lim.max_payload)) trap();
    if (frames == 0 && h[0] > 1) trap();
    pos += basp_header_size + len;
    ++frames;
  }
  if (frames != whole.frames()) trap();
}

void greeting(const std::uint8_t* data, std::size_t size) {
  const char* g = reinterpret_cast<const char*>(data);
  std::string why = greeting_problem(g, size);
  bool magic = size >= sizeof(greeting_magic);
  for (std::size_t i = 0; magic && i < sizeof(greeting_magic); ++i) magic = g[i] == greeting_magic[i];
  if (magic != why.empty()) trap();
  if (!magic && why.empty()) trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  if (data[0] % 2 == 0)
    stream(data + 1, size - 1);
  else
    greeting(data + 1, size - 1);
  return 0;
}
