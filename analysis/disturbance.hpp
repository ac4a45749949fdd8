#pragma once
/// Was a lifecycle's measured window disturbed? (docs/statistics.md, "Disturbed lifecycles").
/// The telemetry already sees other processes' CPU, steal, iowait and GPU throttling per sample
/// (snapshot/telemetry); a lifecycle is disturbed when, within its measured window:
///  - other processes used at least `others_burst_cores` in some sample (a bursty neighbour:
///    busy and idle in turns is invisible in the mean), or
///  - any of telemetry's condition warnings fired (others' mean above 0.5 cores, CPU steal above
///    2%, iowait above 10%, a GPU throttled, power-capped or its SM clock varying by more than 5%).
/// `try` re-runs such a lifecycle (--redo-disturbed), and a disturbance that persists ends the
/// decision as "inconclusive: the machine was busy" rather than a verdict. Pure logic.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace bp::analysis {

struct disturbance_rule {
  double others_burst_cores = 0.75;  ///< per-sample CPU of other processes that counts as a burst
};

/// Why the result's measured window was disturbed (empty: it was not, or it has no telemetry).
std::vector<std::string> disturbances(const nlohmann::json& conditions, const disturbance_rule& rule);

}  // namespace bp::analysis
