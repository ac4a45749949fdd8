#include "net/loadgen/stats.hpp"

#include <algorithm>
#include <cmath>
#include <random>
#include <sstream>
#include <stdexcept>

#include "base/numbers.hpp"

namespace bp::bench {

double percentile_sorted(const std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  double rank = p / 100.0 * static_cast<double>(v.size() - 1);
  auto lo = static_cast<std::size_t>(std::floor(rank));
  auto hi = std::min(lo + 1, v.size() - 1);
  double frac = rank - static_cast<double>(lo);
  return v[lo] + (v[hi] - v[lo]) * frac;
}

std::pair<double, double> bootstrap_median_ci(const std::vector<double>& values, int resamples, double confidence,
                                              std::uint64_t seed) {
  std::size_t n = values.size();
  if (n == 0 || resamples <= 0) return {0, 0};
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::size_t> pick(0, n - 1);
  std::vector<double> sample(n), medians(static_cast<std::size_t>(resamples));
  for (auto& m : medians) {
    for (auto& x : sample) x = values[pick(rng)];
    // The median as percentile_sorted defines it, without sorting the whole resample.
    double rank = 0.5 * static_cast<double>(n - 1);
    auto lo = static_cast<std::size_t>(std::floor(rank));
    std::nth_element(sample.begin(), sample.begin() + static_cast<long>(lo), sample.end());
    double a = sample[lo];
    if (rank > static_cast<double>(lo)) {
      double b = *std::min_element(sample.begin() + static_cast<long>(lo) + 1, sample.end());
      m = a + (b - a) * (rank - static_cast<double>(lo));
    } else {
      m = a;
    }
  }
  std::sort(medians.begin(), medians.end());
  double alpha = (1.0 - confidence) / 2.0;
  return {percentile_sorted(medians, alpha * 100.0), percentile_sorted(medians, (1.0 - alpha) * 100.0)};
}

metric_stats compute_stats(std::vector<double> v, const stats_options& o) {
  metric_stats s;
  s.n = v.size();
  if (v.empty()) return s;
  std::vector<double> original = v;
  std::sort(v.begin(), v.end());
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / static_cast<double>(s.n);
  double ss = 0;
  for (double x : v) ss += (x - s.mean) * (x - s.mean);
  s.std = s.n > 1 ? std::sqrt(ss / static_cast<double>(s.n - 1)) : 0;  // sample standard deviation
  s.cv = s.mean != 0 ? s.std / std::fabs(s.mean) : 0;
  s.median = percentile_sorted(v, 50);
  s.min = v.front();
  s.max = v.back();
  std::vector<double> ps = o.percentiles;
  if (o.low_tail)
    for (double p : {10.0, 1.0})
      if (std::find(ps.begin(), ps.end(), p) == ps.end()) ps.push_back(p);
  for (double p : ps) s.percentiles.emplace_back(p, percentile_sorted(v, p));
  if (o.bootstrap_resamples > 0 && s.n >= 2) {
    auto [lo, hi] = bootstrap_median_ci(original, o.bootstrap_resamples, o.confidence, o.seed);
    s.has_ci = true;
    s.ci_low = lo;
    s.ci_high = hi;
  }
  return s;
}

std::string percentile_key(double p) {
  std::ostringstream os;
  os << "p" << p;
  return os.str();
}

nlohmann::json to_json(const metric_stats& s, const stats_options& o) {
  if (s.n == 0) return {{"n", 0}};
  nlohmann::json j = {{"n", s.n}, {"mean", s.mean}, {"std", s.std}, {"cv", s.cv}, {"median", s.median}};
  if (s.has_ci) {
    j["median_ci"] = {s.ci_low, s.ci_high};
    j["ci_level"] = o.confidence;
  } else {
    j["median_ci"] = nullptr;
  }
  for (const auto& [p, v] : s.percentiles) j[percentile_key(p)] = v;
  j["min"] = s.min;
  j["max"] = s.max;
  return j;
}

std::vector<double> parse_percentiles(const std::string& list) {
  std::vector<double> out;
  std::stringstream ss(list);
  std::string item;
  while (std::getline(ss, item, ',')) {
    auto v = base::parse_number(item, 0.1, 99.9);
    if (!v) throw std::invalid_argument("'" + item + "' is not a percentile from 0.1 to 99.9");
    out.push_back(*v);
  }
  if (out.empty()) throw std::invalid_argument("no percentiles given");
  return out;
}

}  // namespace bp::bench
