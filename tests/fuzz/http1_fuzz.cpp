// libFuzzer target: the proxy's HTTP/1 reframing (net/proxy/http1.hpp), both directions.
// The first byte picks the direction and a read size; the rest is fed in pieces of that size, the
// way the session feeds socket reads. What must hold for any input: no crash, no sanitizer report,
// and a request the parser refused forwards nothing.
#include <cstddef>
#include <cstdint>
#include <string>

#include "net/proxy/http1.hpp"

using namespace bp::net::http1;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  bool response = data[0] & 1;
  std::size_t step = 1 + (data[0] >> 1);
  std::string bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  header_rewriter hr;
  std::string out, buf;
  request_line line;
  auto drive = [&](auto& p) {
    for (std::size_t off = 0; off < bytes.size() && !p.is_done();) {
      std::size_t n = std::min(step, bytes.size() - off);
      buf.append(bytes, off, n);
      off += n;
      for (;;) {
        error_code ec;
        std::size_t used = p.feed(sv(buf.data(), buf.size()), ec);
        buf.erase(0, used);
        if (ec == http::error::need_more) break;
        if (ec) return false;
        if (p.is_done() || used == 0 || buf.empty()) break;
      }
    }
    return true;
  };
  if (response) {
    response_parser p(hr, out, 11, true, false);
    p.eager(true);
    drive(p);
  } else {
    request_parser p(hr, out, line);
    p.eager(true);
    p.header_limit(64 * 1024);
    p.body_limit(1 << 20);
    bool ok = drive(p);
    // A refused request forwards nothing: the forwarded header is written only after every check.
    if (!ok && p.rejected.status && !out.empty()) __builtin_trap();
  }
  return 0;
}
