#pragma once
/// Curves over load points (docs/statistics.md, "Curves, saturation and capacity"): latency
/// objectives with intervals per point, over-saturation within a point, the knee of the
/// throughput curve, and the capacity at an SLO. Pure logic over numbers and result documents.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "analysis/metrics.hpp"

namespace bp::bench {

/// One latency objective: the p-th percentile of a per-request metric at most `limit` ms
/// ("ttft_p99_ms<=200": metric ttft_ms, p 99, limit 200).
struct slo_objective {
  std::string metric;  ///< ttft_ms, itl_ms (every gap), tpot_ms, e2e_ms
  double p = 50;
  double limit = 0;
  std::string text;    ///< as written, normalised ("ttft_p99_ms<=200")
};

/// --slo's text: items "METRIC_pNN_ms<=MS" are objectives (and also each request's goodput
/// threshold for that metric, unless one is given), items "METRIC_ms=MS" are goodput thresholds
/// only. Throws std::invalid_argument naming the bad item.
void parse_slo_text(const std::string& text, slo_map& thresholds, std::vector<slo_objective>& objectives);

/// An objective measured at one point: the percentile with its bootstrap interval over requests,
/// and whether the point meets it: "yes" (even the interval's high end is within the limit), "no"
/// (even its low end is over), "likely" / "unlikely" (the estimate is within / over, the interval
/// straddles the limit). Reads the samples from a result document (one point's requests).
nlohmann::json objective_at(const nlohmann::json& point_result, const slo_objective& o, int resamples,
                            double confidence, std::uint64_t seed);

/// Over-saturation within one point: are the in-flight count and the TTFT growing over its
/// duration? Arguments per request in send order: send offset, end offset (send + e2e; NaN when
/// it never ended) and TTFT (NaN when it failed). Spearman's rank correlation of TTFT with send
/// time, and the first and last thirds' medians of TTFT and of in-flight requests at send.
nlohmann::json saturation(const std::vector<double>& send_ms, const std::vector<double>& end_ms,
                          const std::vector<double>& ttft_ms);

/// The knee of a throughput curve (Kneedle: the point farthest above the chord of the normalised
/// curve), or null when throughput still grows about linearly up to the highest load.
nlohmann::json knee(const std::vector<double>& load, const std::vector<double>& throughput);

/// The capacity: the highest load whose point meets every objective, with every lower point
/// meeting them too, and its interval from the points' intervals: from the highest load below
/// which every point surely meets ("yes") to the highest load below the first point that surely
/// fails ("no"). `points` are result.load.points (each with load and objectives), in load order.
nlohmann::json capacity(const nlohmann::json& points, const std::vector<slo_objective>& objectives);

/// Where a capacity search measures next: the middle between the capacity's point and the next
/// (failing) point, rounded down to a whole number for concurrency; nullopt when there is no
/// boundary inside the measured range or the gap cannot be split any more.
std::optional<double> refine_load(const nlohmann::json& points, const std::vector<slo_objective>& objectives,
                                  bool whole_numbers);

/// One point of a curve result as a result document of its own (its summary and requests, the
/// rest of the result as it is), or null when `result` has no point with that label.
nlohmann::json point_result(const nlohmann::json& result, const std::string& label);

/// The labels of a curve result's points as --load asked for them (not the capacity search's).
std::vector<std::string> asked_points(const nlohmann::json& result);

/// A capacity (capacity()'s document) in a few characters, for tables: "4 [2, 6]", ">= 8 [4, >= 8]"
/// (every load measured met the objectives), "[below lowest, 4]" where not even the lowest load surely
/// met them, "below lowest" (not even the lowest load met them), "-" (none, or not a capacity).
std::string capacity_short(const nlohmann::json& capacity);

}  // namespace bp::bench
