#pragma once
/// Variance where it lives (docs/statistics.md, "Variance components"): with `--repeats R` each
/// lifecycle runs R passes over the workload on the same warm engine, so a headline can be split
/// into its spread between passes of one lifecycle (within) and between lifecycles (between).
/// Decisions use one value per lifecycle; this says how much of their spread comes from where.
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "analysis/metrics.hpp"

namespace bp::analysis {

struct variance_components {
  std::size_t lifecycles = 0, passes = 0;
  double mean = 0;
  double within_cv = 0;   ///< spread of one pass's value around its lifecycle's mean (pooled)
  double between_cv = 0;  ///< spread of lifecycles beyond what their passes explain (0 when none)
  std::string covers;     ///< what an interval over these lifecycles covers, in words
};

/// The metric's value of each pass of `result` (its measured requests split by pass: request
/// index / (requests / repeats)); empty when the result has one pass or cannot be split.
std::vector<double> pass_values(const nlohmann::json& result, const std::string& metric, const bench::slo_map& slo);

/// Method of moments over L lifecycles of R passes each: within = pooled variance of passes
/// around their lifecycle means (L(R-1) df); between = variance of the lifecycle means minus
/// within / R, floored at 0. Nothing when no lifecycle has two passes.
std::optional<variance_components> components(const std::vector<nlohmann::json>& lifecycle_results,
                                              const std::string& metric, const bench::slo_map& slo);

nlohmann::json to_json(const variance_components& v);

}  // namespace bp::analysis
