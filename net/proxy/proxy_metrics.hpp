#pragma once
/// bench-proxy's own Prometheus metrics (GET /metrics), kept with Debian's prometheus-cpp core
/// library: histograms of TTFT, inter-token latency and E2E as the proxy measured them, counters
/// of requests by route and status, client aborts, upstream errors and bytes, and the
/// bench_proxy_info gauge naming the snapshot. Names and buckets: docs/metrics.md, "bench-proxy's
/// /metrics". Header free of prometheus-cpp (pimpl): the session includes it.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "net/proxy/request_timing.hpp"
#include "net/proxy/run_status.hpp"

namespace bp::net {

/// Route label of a request path: the OpenAI routes by name, anything else under /v1 as "/v1/other"
/// (an unbounded label set would let any client grow the exposition without limit).
std::string_view route_label(std::string_view path);

/// Histogram bucket upper bounds, seconds: 100 µs to ~210 s, 2^(1/3) apart (fine enough for a
/// batch-size-1 inter-token latency of a few milliseconds).
const std::vector<double>& latency_buckets();

class proxy_metrics {
 public:
  proxy_metrics();
  ~proxy_metrics();
  proxy_metrics(const proxy_metrics&) = delete;
  proxy_metrics& operator=(const proxy_metrics&) = delete;

  /// A proxied request is over (any I/O thread).
  void observe(const request_record& r);
  /// A request bench-proxy answered itself on one of its own routes.
  void count_local(std::string_view route, int status, std::uint64_t bytes_in, std::uint64_t bytes_out);

  struct gauges {
    std::size_t in_flight = 0, open_connections = 0;
  };
  /// The exposition in the text format (version 0.0.4).
  std::string exposition(const run_status& st, const gauges& g) const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace bp::net
