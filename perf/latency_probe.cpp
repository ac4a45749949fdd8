// bp-latency-probe: the measuring client of perf/proxy_overhead.py.
//
//   bp-latency-probe seq URL N            N sequential non-streaming POSTs on one keep-alive
//                                         connection; prints one latency (us) per line
//   bp-latency-probe stream URL N         N streamed requests; prints, per request, each content
//                                         event's arrival time (us after sending), space-separated
//
// The same client code runs against every target, so its own cost cancels out in the differences.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "net/loadgen/bench.hpp"
#include "net/client/http_client.hpp"

using clock_type = std::chrono::steady_clock;

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: bp-latency-probe seq|stream URL N\n");
    return 2;
  }
  std::string mode = argv[1], url = argv[2];
  long n = std::atol(argv[3]);
  bp::net::url_parts u;
  std::string err;
  if (!bp::net::parse_url(url, u, err)) {
    std::fprintf(stderr, "%s\n", err.c_str());
    return 2;
  }
  bp::net::http_connection c;
  if (!c.connect(u.host, u.port, std::chrono::seconds(5), err)) {
    std::fprintf(stderr, "%s\n", err.c_str());
    return 1;
  }
  std::vector<std::pair<std::string, std::string>> headers;
  if (mode == "seq") {
    const std::string body = R"({"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":4})";
    std::vector<double> us;
    us.reserve(static_cast<std::size_t>(n));
    for (long i = 0; i < n; ++i) {
      bp::net::http_response r;
      auto t0 = clock_type::now();
      if (!c.request("POST", "/v1/chat/completions", body, headers, std::chrono::seconds(10), r, err) || r.status != 200) {
        std::fprintf(stderr, "request %ld failed: %s (status %d)\n", i, err.c_str(), r.status);
        return 1;
      }
      us.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
    }
    for (double v : us) std::printf("%.2f\n", v);
    return 0;
  }
  if (mode == "stream") {
    const std::string body =
        R"({"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":32,"mock_itl_ms":5,"stream":true})";
    for (long i = 0; i < n; ++i) {
      bp::net::http_response r;
      std::vector<double> at;
      bp::bench::sse_parser sse;
      auto t0 = clock_type::now();
      bool ok = c.request("POST", "/v1/chat/completions", body, headers, std::chrono::seconds(10), r, err,
                          [&](std::string_view piece) {
                            auto now = clock_type::now();
                            sse.feed(piece, [&](const std::string& data) {
                              if (data != "[DONE]" && data.find("\"content\"") != std::string::npos)
                                at.push_back(std::chrono::duration<double, std::micro>(now - t0).count());
                            });
                          });
      if (!ok || r.status != 200) {
        std::fprintf(stderr, "stream %ld failed: %s\n", i, err.c_str());
        return 1;
      }
      for (std::size_t k = 0; k < at.size(); ++k) std::printf(k ? " %.1f" : "%.1f", at[k]);
      std::printf("\n");
    }
    return 0;
  }
  std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
  return 2;
}
