#pragma once
// Feeds bytes to an http1 parser the way a proxy session does: `step` bytes arrive at a time and
// whatever the parser did not consume stays buffered for the next read. Shared by the unit tests
// and the fuzz target.
#include <algorithm>
#include <string>

#include "net/proxy/http1.hpp"

namespace bp::net::http1 {

/// Returns the first error other than need_more (none when the input was taken or ran out).
template <class Parser>
error_code feed_in_steps(Parser& p, const std::string& bytes, std::size_t step) {
  std::string buf;
  for (std::size_t off = 0; off < bytes.size() && !p.is_done();) {
    std::size_t n = std::min(step, bytes.size() - off);
    buf.append(bytes, off, n);
    off += n;
    for (;;) {
      error_code ec;
      std::size_t used = p.feed(sv(buf.data(), buf.size()), ec);
      buf.erase(0, used);
      if (ec == http::error::need_more) break;
      if (ec) return ec;
      if (p.is_done() || used == 0 || buf.empty()) break;
    }
  }
  return {};
}

}  // namespace bp::net::http1
