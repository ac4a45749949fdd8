#pragma once
/// The metrics a headline or a comparison can be about (docs/metrics.md, "Headline and compare
/// metrics"), how each is read back out of a result.json, and its estimate with uncertainty over
/// one trial or several (the hierarchical bootstrap). Pure logic: tests and `compare` call it.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "analysis/stats.hpp"

namespace bp::bench {

/// SLO thresholds for goodput: a request is good when each named metric is at most its value.
/// Keys: ttft_ms, itl_ms (the request's worst gap), tpot_ms, e2e_ms.
using slo_map = std::map<std::string, double>;

/// Parses "ttft_ms=500,e2e_ms=4000"; throws std::invalid_argument naming the bad item.
slo_map parse_slo(const std::string& text);

struct metric_def {
  std::string name;         ///< "output_tps", "ttft_p99", ...
  std::string description;  ///< one line, for tables and help
  std::string unit;
  bool higher_is_better = true;
};

/// Every metric, headline default first.
const std::vector<metric_def>& all_metrics();
/// The definition, or nullptr for an unknown name.
const metric_def* find_metric(const std::string& name);
/// "output_tps, total_output_tps, ..." for error messages and help.
std::string metric_names();
inline const char* default_headline = "output_tps";

/// One trial's data for one metric: per-request samples (sorted) and how the statistic is made.
struct trial_samples {
  enum class kind { percentile, fraction, run_level } how = kind::percentile;
  std::vector<double> sorted;  ///< percentile: the values; fraction: 0/1 per request
  double p = 50;               ///< percentile
  double scale = 1;            ///< fraction: value = fraction * scale (goodput: completed / wall_s)
  double run_value = 0;        ///< run_level: the trial's one number
  /// The statistic of these samples.
  double value() const;
  /// One bootstrap draw of it (requests resampled; run-level values are fixed within a trial).
  double draw(rng& g) const;
};

/// The metric's samples from one result.json; std::nullopt with `why` when it has none (no
/// completed request; goodput without SLOs).
std::optional<trial_samples> samples_of(const nlohmann::json& result, const std::string& metric, const slo_map& slo,
                                        std::string& why);

/// A metric's estimate over K >= 1 trials.
struct estimate {
  double value = 0;     ///< one trial: its statistic; K trials: the mean of the trials' statistics
  bool has_ci = false;  ///< false: too little to resample (one request, or one trial of a run-level metric)
  double ci_low = 0, ci_high = 0;
  double confidence = 0.95;
  std::size_t trials = 1;
  std::vector<double> per_trial;  ///< each trial's statistic
  double between_trial_cv = 0;    ///< sample std / mean of per_trial (0 for one trial)
  std::string method;             ///< how the interval was made, in words
};

/// A metric's estimate over trials: with K >= 2 trials a t interval over the K per-trial
/// statistics (K-1 df: a bootstrap over two or three units cannot see the spread it has not
/// sampled); with one trial the one-level bootstrap over its requests (trial_samples::draw: it
/// sees request-to-request noise only, not run-to-run noise).
class estimator {
 public:
  explicit estimator(std::vector<trial_samples> trials) : trials_(std::move(trials)) {}
  double value() const;
  double draw(rng& g) const;
  bool resamplable() const;
  estimate run(int resamples, double confidence, std::uint64_t seed) const;
  std::size_t trials() const { return trials_.size(); }
  /// Units a CI is made of at the lowest level that varies: requests for one trial, else trials.
  std::size_t units() const;

 private:
  std::vector<trial_samples> trials_;
};

nlohmann::json to_json(const estimate& e, const metric_def& m);

}  // namespace bp::bench
