#pragma once
/// From per-request results to a result's numbers: the summary (every metric with its spread,
/// percentiles and bootstrap interval), the per-request array, the headline and the warnings.
/// One code path for every source of requests: bench's own client (net/loadgen/bench.cpp) and the
/// proxy's records of any other client's requests (net/loadgen/proxy_result.cpp).
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "net/loadgen/bench.hpp"

namespace bp::bench {

/// How the requests were sent, as the summary states it beside the metrics.
struct request_shape {
  long total = 0;           ///< requests in the measurement (failed and unsent ones included)
  double wall_s = 0;        ///< the measurement's wall time
  int concurrency = 1;
  double rate = 0;          ///< 0: none (summary.rate is null)
  bool stream = true;
};

/// One request as result.json's `requests` array holds it.
nlohmann::json request_json(const request_result& r);

/// result["summary"] (requests, completed, errors and their kinds, every metric with its
/// interval, throughputs) and result["requests"] from `results`. A request that failed without an
/// error text is counted as "cancelled: not sent".
void summarize_requests(nlohmann::json& result, std::vector<request_result>& results, const request_shape& shape,
                        const stats_options& stats);

/// summary.headline (the chosen metric with its interval, read back from result["requests"]) and
/// result["warnings"] (replaced). Throws std::invalid_argument for an unknown metric.
void add_headline_and_warnings(nlohmann::json& result, const std::string& headline, const slo_map& slo,
                               const stats_options& stats);

}  // namespace bp::bench
