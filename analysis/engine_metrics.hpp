#pragma once
/// The engine's own counters around a bench (docs/metrics.md, "Engine counters"): its Prometheus
/// /metrics scraped before and after the measured requests, the deltas of the series its kind
/// names (configs/engine_kinds.cpp), and what they mean at batch size 1: speculative-decoding
/// acceptance, prefix-cache hit rate, preemptions, token counts cross-checked against the bench's.
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace bp::bench {

/// One sample of the text exposition format: name, labels, value.
struct prom_sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

/// Every sample of an exposition text (comments and malformed lines skipped).
std::vector<prom_sample> parse_exposition(const std::string& text);

/// The engine_metrics record for `kind` from the two scrapes: per series its delta (counters) or
/// value at the end (gauges), "absent" when the engine does not expose it (never zero), derived
/// figures, and `counter_reset` when a counter went backwards (the deltas are then invalid).
/// `bench_prompt_tokens` / `bench_output_tokens`: the bench's own counts (-1 unknown), compared.
nlohmann::json engine_metrics(const std::string& kind, const std::string& before, const std::string& after,
                              double bench_prompt_tokens, double bench_output_tokens);

/// Warnings from that record (a counter reset, token counts that disagree with the bench's).
std::vector<std::string> engine_metric_warnings(const nlohmann::json& m);

/// "mean acceptance length 2.31, prefix-cache hit rate 42.0%" (empty when there is nothing).
std::string engine_metric_line(const nlohmann::json& m);

}  // namespace bp::bench
