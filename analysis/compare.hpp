#pragma once
/// Is this delta real? Two measurements of configs (each one or more trials), a ratio with its
/// confidence interval per metric, and a verdict against a noise threshold, after checking that
/// the two are comparable at all (docs/metrics.md, "Verdicts"). Pure logic over result.json
/// documents; `bench-proxy compare`, the sweep table and the ledger use it.
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "analysis/metrics.hpp"

namespace bp::bench {

/// One config's measurement: its trials' result.json documents.
struct side {
  std::string label;
  std::vector<nlohmann::json> trials;
  std::vector<std::string> paths;
  /// Sides with the same non-empty group were measured interleaved (one sweep or try: trial i of
  /// each side in round i), so their trials pair by round; otherwise they are independent.
  std::string group;
};

/// What is wrong with a result document's fields ("" when nothing): objects where objects belong,
/// `valid` a boolean, `requests` an array of objects whose times and counts are finite numbers
/// >= 0 (a negative or 1e308 latency is a broken file, not a measurement). Names the field.
std::string result_problem(const nlohmann::json& result);

/// A result.json; a run folder (result.json, or trials.json listing trial results); a sweep
/// folder (sweep.json: one side per config, in sweep order). Throws std::runtime_error naming
/// the path and what is wrong.
std::vector<side> load_sides(const std::string& path);

/// How a plain serve's folder (meta.json and requests.jsonl, no result.json) becomes results: the
/// proxy's records summarised by net/loadgen/proxy_result.hpp (one result, or one per measurement
/// window: then one side each, as a sweep folder has one per config), which the CLI sets here once
/// (analysis does not depend on the load generator). Unset: such a folder is refused.
void set_serve_folder_reader(std::function<std::vector<nlohmann::json>(const std::string& dir)> reader);

struct compare_options {
  double noise = 0.01;       ///< relative: changes within ±noise count as no change
  double confidence = 0.95;  ///< of the ratio's interval
  int resamples = 10000;
  std::uint64_t seed = 1;
  std::vector<std::string> metrics;  ///< empty: the baseline's headline, then the usual set
  slo_map slo;
};

/// The metrics compared when none are named: the headline first.
std::vector<std::string> default_compare_metrics(const std::string& headline);

struct metric_verdict {
  std::string metric;
  estimate base, cand;
  bool has_ci = false;
  double ratio = 0, ratio_low = 0, ratio_high = 0;  ///< candidate / baseline
  /// faster, slower, no change, inconclusive ("faster" = better in the metric's own direction).
  std::string verdict;
  std::string needed;  ///< inconclusive: what would resolve ±noise, estimated from the observed spread
  std::string error;   ///< the metric could not be read on one side
  /// How the interval was made: "paired t", "Welch t" (over lifecycles) or "requests only" (one
  /// lifecycle on a side: run-to-run noise unseen, so never faster or slower).
  std::string method;
  double df = 0;             ///< degrees of freedom of a t interval
  double mean_log = 0, se_log = 0;  ///< the log ratio's estimate and standard error (t methods)
  bool gating = true;        ///< only the headline (the first metric) decides the exit status
  std::string holm;          ///< secondary metrics: why Holm's correction withheld a verdict
};

struct comparison {
  std::string baseline, candidate;
  bool comparable = true;
  std::vector<std::string> reasons;  ///< why not comparable
  std::vector<metric_verdict> metrics;
  std::vector<std::string> warnings;  ///< from both sides' results and their trials
  std::vector<std::pair<std::string, std::string>> engine_lines;  ///< engine counters, per side, where present
  /// Curves (result.load): each load point both sides measured in every lifecycle, its verdict
  /// on `point_metric` (never gating; each point's own interval, no multiplicity correction).
  std::string point_metric;
  std::vector<std::pair<std::string, metric_verdict>> points;
  double noise = 0.01;
  double confidence = 0.95;  ///< the intervals' two-sided level
  bool regressed() const;  ///< the headline (the gating metric) is "slower"
};

/// Why `a` and `b` cannot be compared (empty: they can): invalid results, different workload
/// bytes, a different set of answered queries, different model or load shape.
std::vector<std::string> comparability(const side& a, const side& b);

comparison compare_sides(const side& baseline, const side& candidate, const compare_options& o);

/// The verdict for a ratio interval of a metric (pure rule, docs/metrics.md).
std::string verdict_of(double low, double high, double noise, bool higher_is_better);

nlohmann::json to_json(const comparison& c);
std::string render(const comparison& c);

/// compare's exit status: 3 when any pair is not comparable, else 1 when any metric regressed
/// beyond noise, else 0.
int compare_status(const std::vector<comparison>& all);

}  // namespace bp::bench
