#pragma once
/// Statistics of one metric's samples (docs/metrics.md, "Uncertainty"): location, spread, chosen
/// percentiles, and a seeded percentile-bootstrap confidence interval of the median. Pure logic.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace bp::bench {

struct stats_options {
  std::vector<double> percentiles = {50, 90, 99};  ///< any of 0.1 .. 99.9
  bool low_tail = false;        ///< throughput-type metric: its bad tail is low, add p10 and p1
  int bootstrap_resamples = 2000;  ///< 0: no interval
  double confidence = 0.95;
  std::uint64_t seed = 1;
};

struct metric_stats {
  std::size_t n = 0;
  double mean = 0, std = 0, cv = 0, median = 0, min = 0, max = 0;
  std::vector<std::pair<double, double>> percentiles;  ///< (p, value), requested then low tail
  bool has_ci = false;
  double ci_low = 0, ci_high = 0;
};

/// Percentile with linear interpolation between closest ranks (numpy's default) of sorted data.
double percentile_sorted(const std::vector<double>& sorted, double p);

/// The bootstrap's generator: xoshiro256** seeded through splitmix64 (fast, and the same stream
/// for the same seed on every platform). A UniformRandomBitGenerator.
class rng {
 public:
  using result_type = std::uint64_t;
  explicit rng(std::uint64_t seed);
  static constexpr result_type min() { return 0; }
  static constexpr result_type max() { return ~result_type{0}; }
  result_type operator()();
  double uniform();  ///< in [0, 1)
 private:
  std::uint64_t s_[4];
};

/// One bootstrap draw of the p-th percentile (numpy's linear interpolation) of a resample with
/// replacement of `sorted` (same size). Drawn exactly through the resample's order statistics:
/// the k-th smallest of n uniforms is Beta(k, n-k+1) and the next one follows from it, so a
/// draw costs O(1) instead of O(n) and has the same distribution as resampling indices
/// (docs/metrics.md, "Uncertainty").
double resampled_percentile(const std::vector<double>& sorted, double p, rng& g);

/// The (1-c)/2 and (1+c)/2 quantiles of `draws` (sorted in place).
std::pair<double, double> percentile_interval(std::vector<double>& draws, double confidence);

/// Percentile-bootstrap interval of the p-th percentile of `sorted`: `resamples` draws as above.
std::pair<double, double> bootstrap_percentile_ci(const std::vector<double>& sorted, double p, int resamples,
                                                  double confidence, std::uint64_t seed);

/// The same for the median, from unsorted values.
std::pair<double, double> bootstrap_median_ci(const std::vector<double>& values, int resamples, double confidence,
                                              std::uint64_t seed);

/// Median absolute deviation (unscaled) of sorted data around its median.
double mad_sorted(const std::vector<double>& sorted);

/// Two-sided Mann-Whitney U test of a vs b (normal approximation with tie correction; both
/// sizes >= 8 for it to mean much). Returns the p-value.
double mann_whitney_p(const std::vector<double>& a, const std::vector<double>& b);

metric_stats compute_stats(std::vector<double> values, const stats_options& o);

/// {"n", "mean", "std", "cv", "median", "median_ci": [lo, hi], "ci_level", "p50", "p90", ..., "min", "max"}
nlohmann::json to_json(const metric_stats& s, const stats_options& o);

/// "p99.9" for 99.9, "p50" for 50.
std::string percentile_key(double p);

/// Parses "50,90,99" (each 0.1..99.9); throws std::invalid_argument naming the bad item.
std::vector<double> parse_percentiles(const std::string& list);

}  // namespace bp::bench
