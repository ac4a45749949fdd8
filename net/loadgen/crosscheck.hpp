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

/// A measured request that failed after the engine answered 200 (an error event mid-stream, a
/// stream cut or timed out): the engine read its prompt and may have generated for it, and its
/// counters say so, though the bench counts only completed requests.
struct failed_request_tokens {
  int output_seen = 0;   ///< output tokens the bench saw before the failure (usage, else content events)
  int max_tokens = -1;   ///< what the request allowed (-1: no max_tokens: not bounded)
  int prompt = -1;       ///< its prompt tokens when the engine reported them (-1: unknown)
};

/// The engine-counter cross-check (`cross_check` of analysis' engine_metrics) with the failed
/// requests' tokens accounted for (docs/metrics.md, "Engine counters"): per count, `bench` becomes
/// the completed requests' count plus what was seen of the failed ones (`bench_failed`), and
/// where the engine counted more, the difference is explained when the failed requests could
/// have generated it (at most their max_tokens each, minus what was seen; prompts the bench never
/// learnt the size of: any amount): `equal` then holds and `explained` says by what. With no
/// such request the check is left as it was.
void account_failed_requests(nlohmann::json& cross_check, const std::vector<failed_request_tokens>& failed);

}  // namespace bp::bench
