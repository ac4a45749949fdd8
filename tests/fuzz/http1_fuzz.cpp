// libFuzzer target: the proxy's HTTP/1 reframing (net/proxy/http1.hpp), both directions.
// The first byte picks the direction and a read size; the rest is fed in pieces of that size, the
// way the session feeds socket reads. What must hold for any input: no crash, no sanitizer report,
// and a request the parser refused forwards nothing.
#include <cstddef>
#include <cstdint>
#include <string>

#include "net/proxy/http1.hpp"
#include "tests/net/proxy/feed_in_steps.hpp"

using namespace bp::net::http1;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  bool response = data[0] & 1;
  std::size_t step = 1 + (data[0] >> 1);
  std::string bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  header_rewriter hr;
  std::string out;
  request_line line;
  if (response) {
    response_parser p(hr, out, 11, true, false);
    p.eager(true);
    feed_in_steps(p, bytes, step);
  } else {
    request_parser p(hr, out, line);
    p.eager(true);
    p.header_limit(64 * 1024);
    p.body_limit(1 << 20);
    bool ok = !feed_in_steps(p, bytes, step);
    // A refused request forwards nothing: the forwarded header is written only after every check.
    if (!ok && p.rejected.status && !out.empty()) __builtin_trap();
  }
  return 0;
}
