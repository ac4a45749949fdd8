// libFuzzer target: the benchmark client's response reader (net/client/http_client.hpp, Beast's
// parser behind a Boost-free interface, with the reader's own buffering between reads). The
// first byte picks a read size; the rest is fed once whole and once in reads of that size, the
// way http_connection feeds socket reads, then the peer closes. What must hold for any input: no
// crash, no sanitizer report, and the same answer either way (accepted or refused, status,
// reason, fields, body, keep-alive): how the bytes were split never changes what they mean.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "net/client/http_client.hpp"

using bp::net::response_reader;

namespace {

struct outcome {
  bool ok = true;
  bool done = false;
  std::string body;
};

outcome read_all(response_reader& r, std::string_view bytes, std::size_t step) {
  outcome o;
  bool streamed = step % 2 == 0;  // half the runs stream the body, half accumulate it
  auto sink = [&](std::string_view p) { o.body.append(p.data(), p.size()); };
  for (std::size_t off = 0; o.ok && !r.done() && off < bytes.size(); off += step) {
    auto piece = bytes.substr(off, step);
    o.ok = streamed ? r.feed(piece, sink) : r.feed(piece);
  }
  if (o.ok && !r.done()) o.ok = r.feed_eof();
  if (o.ok && r.error().size()) __builtin_trap();  // accepted, yet an error recorded
  if (!o.ok && r.error().empty()) __builtin_trap();  // refused without saying why
  o.done = r.done();
  if (!streamed) o.body = r.response().body;
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  std::size_t step = 1 + data[0] % 64;
  bool head = data[0] & 0x80;
  std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  response_reader whole(head), pieces(head);
  outcome a = read_all(whole, bytes, bytes.empty() ? 1 : bytes.size());
  outcome b = read_all(pieces, bytes, step);
  if (a.ok != b.ok || a.done != b.done) __builtin_trap();
  if (!a.ok) return 0;
  const auto& x = whole.response();
  const auto& y = pieces.response();
  if (x.status != y.status || x.reason != y.reason || x.headers != y.headers || a.body != b.body ||
      whole.keep_alive() != pieces.keep_alive())
    __builtin_trap();
  return 0;
}
