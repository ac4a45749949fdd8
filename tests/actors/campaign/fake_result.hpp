#pragma once
/// A result record for the measure tests (sweep_test, try_test), built in memory: what a lifecycle
/// stand-in returns instead of running an engine.
#include <string>

#include <nlohmann/json.hpp>

namespace bp::measure::testing {

/// A valid result whose per-request output tok/s are `speed` (the headline is their median).
inline nlohmann::json result_of(double speed, const std::string& workload = "w1") {
  using json = nlohmann::json;
  json reqs = json::array();
  for (int i = 0; i < 20; ++i) {
    double tps = speed * (1 + 0.001 * (i % 5));
    double e2e = 32 / tps * 1000;
    reqs.push_back({{"index", i}, {"query_line", 2 + i}, {"ok", true}, {"start_ms", i * e2e}, {"e2e_ms", e2e},
                    {"ttft_ms", e2e / 32}, {"output_tokens", 32}, {"itl_ms", json::array({e2e / 32})}});
  }
  return {{"kind", "bench-proxy bench result"},
          {"valid", true},
          {"model", "m"},
          {"workload", {{"sha256", workload}}},
          {"options", {{"concurrency", 1}, {"rate", 0}, {"max_tokens", nullptr}, {"requests", 20}, {"repeats", 1}, {"stream", true}}},
          {"summary", {{"wall_s", 1.0}, {"completed", 20}, {"total_output_tps", 640.0},
                       {"headline", {{"metric", "output_tps"}, {"value", speed}}}}},
          {"requests", reqs}};
}

}  // namespace bp::measure::testing
