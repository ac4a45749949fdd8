#pragma once
/// A set of requests as numbers: percentiles and summaries, result.json's `requests` rows, the
/// summary with its intervals and the headline; and the result record's own helpers (validity,
/// redaction, the last line). Shared by bench and by results built from the proxy's records
/// (net/loadgen/proxy_result.hpp).
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "net/loadgen/stream_client.hpp"

namespace bp::bench {

struct options;  // net/loadgen/bench.hpp

struct summary_stats {
  std::size_t n = 0;
  double mean = 0, median = 0, p90 = 0, p99 = 0, min = 0, max = 0;
};
summary_stats summarize(std::vector<double> v);
nlohmann::json to_json(const summary_stats& s);

/// Percentile with linear interpolation between closest ranks (numpy's default).
double percentile(std::vector<double> values, double p);

/// One request as result.json's `requests` array holds it.
nlohmann::json request_json(const request_result& r);
/// The summary of a set of requests (a result's, a load point's, or the proxy's records of a
/// client's: net/loadgen/proxy_result.hpp): counts and error kinds (a failed request without an
/// error text counts as "cancelled: not sent"), each metric with its spread and interval, throughput
/// over `wall_s`; `o` gives the statistics options, concurrency, rate and streaming.
nlohmann::json summarize_requests(const std::vector<request_result>& results, double wall_s, const options& o);
/// summary.headline: `o.headline` with its interval, read back from `doc`'s requests.
nlohmann::json headline_json(const nlohmann::json& doc, const options& o);

/// Redacts every string of `result` that is a secret the snapshot names by its keyed digest.
void redact_like_snapshot(nlohmann::json& result, const nlohmann::json& snapshot);

/// Marks `result` invalid with one more reason (kept once; `invalid_reason` joins them all).
void add_invalid_reason(nlohmann::json& result, const std::string& reason);

/// The last line bench/run/sweep print: the headline number for a valid result, otherwise a line
/// no shell loop can mistake for a number ("invalid: ...", "failed: ...").
std::string headline_line(const nlohmann::json& result);

/// The headline number (summary.headline.value): by default the median of the per-request
/// output tokens per second; --headline chooses another metric (analysis/metrics.hpp).
double headline(const nlohmann::json& result);

}  // namespace bp::bench
