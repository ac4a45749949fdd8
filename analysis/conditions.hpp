#pragma once
/// What a run's conditions (the telemetry summary, snapshot/telemetry's `summarize`) mean for its
/// numbers: warnings about one run, and the differences that matter when two runs are compared.
/// Pure functions of result.json's `conditions` (thresholds in docs/telemetry.md).
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace bp::analysis {

/// Warnings from one run's conditions: GPU clock-event reasons, SM clock variation, CPU steal and
/// iowait, other processes' CPU use, failed samplers.
std::vector<std::string> condition_warnings(const nlohmann::json& conditions);

/// How two results' conditions differ in ways that matter for comparing them.
std::vector<std::string> conditions_differ(const nlohmann::json& a, const nlohmann::json& b);

}  // namespace bp::analysis
