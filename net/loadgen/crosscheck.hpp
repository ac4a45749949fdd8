#pragma once
/// The client checked against the proxy's stopwatch: each request the client timed is joined by
/// its x-bench-proxy-request-id with the proxy's own record of it (GET /proxy/requests), and the
/// difference, client minus proxy, is the client's own overhead (docs/metrics.md, "Client
/// overhead"). Works for bench's client and, by the same recipe, for any other client.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace bp::bench {

/// The proxy's records of `ids` from BASE/proxy/requests (paged with after=, limit=). Records
/// the proxy no longer holds are simply missing. Empty with `err` when the route cannot be read.
std::map<std::uint64_t, nlohmann::json> fetch_proxy_records(const std::string& base_url,
                                                            const std::vector<std::uint64_t>& ids, std::string& err);

/// One request as both sides timed it.
struct timed_pair {
  double client_ttft_ms = 0, client_e2e_ms = 0;
  double proxy_ttft_ms = 0, proxy_e2e_ms = 0;
};

/// client_overhead_ms: {matched, ttft: {median, p99}, e2e: {median, p99}, client/proxy medians}.
nlohmann::json client_overhead(const std::vector<timed_pair>& pairs, std::size_t requests);

/// A warning when the client's own overhead is large against what it measures: its median TTFT
/// overhead above 5% of the proxy's median TTFT (and above 0.5 ms), or the same for E2E.
std::vector<std::string> client_overhead_warnings(const nlohmann::json& overhead);

}  // namespace bp::bench
