#pragma once
/// What makes a number suspect (docs/metrics.md, "Warnings"): a slow start (warmup too short),
/// drift within a run, outliers, high variation, too few requests for a percentile, a first
/// trial unlike the rest. Warnings never change a verdict; they are printed beside it.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "analysis/metrics.hpp"

namespace bp::bench {

/// Warnings about one result (its "requests", in start order). `percentiles`: those reported.
std::vector<std::string> result_warnings(const nlohmann::json& result, const std::vector<double>& percentiles);

/// The warnings of a config's trials, each said once, in the order first seen, with the trials
/// that gave it: `who` is "" for a single trial, "every trial" or "trial 1, 3". `results` holds
/// one entry per trial (nullptr for a trial without a result; it counts for "every").
struct trial_warning {
  std::string text, who;
};
std::vector<trial_warning> merge_trial_warnings(const std::vector<const nlohmann::json*>& results);

/// Warnings about a config's trials of `metric`: the first trial much worse than the others.
std::vector<std::string> trial_warnings(const estimate& e, const metric_def& metric, double noise);

}  // namespace bp::bench
