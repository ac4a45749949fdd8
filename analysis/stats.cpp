#include "analysis/stats.hpp"

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

namespace {
std::uint64_t splitmix64(std::uint64_t& x) {
  std::uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
inline std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/// Beta(a, b) through two gamma variates.
double beta_draw(double a, double b, rng& g) {
  double x = std::gamma_distribution<double>(a)(g);
  double y = std::gamma_distribution<double>(b)(g);
  return x + y > 0 ? x / (x + y) : 0.5;
}
}  // namespace

rng::rng(std::uint64_t seed) {
  for (auto& v : s_) v = splitmix64(seed);
}

rng::result_type rng::operator()() {
  std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
  std::uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double rng::uniform() { return static_cast<double>((*this)() >> 11) * 0x1.0p-53; }

double resampled_percentile(const std::vector<double>& v, double p, rng& g) {
  std::size_t n = v.size();
  if (n == 0) return 0;
  if (n == 1) return v[0];
  double rank = p / 100.0 * static_cast<double>(n - 1);
  auto lo = static_cast<std::size_t>(std::floor(rank));
  double frac = rank - static_cast<double>(lo);
  auto at = [&](double u) { return v[std::min(n - 1, static_cast<std::size_t>(u * static_cast<double>(n)))]; };
  // U_(lo+1), the (lo+1)-th smallest of n uniforms, is Beta(lo+1, n-lo).
  double u1 = beta_draw(static_cast<double>(lo + 1), static_cast<double>(n - lo), g);
  double a = at(u1);
  if (frac <= 0 || lo + 1 >= n) return a;
  // The next one is the smallest of the other n-lo-1 uniforms above u1.
  double w = 1.0 - g.uniform();  // (0, 1]
  double u2 = u1 + (1.0 - u1) * (1.0 - std::pow(w, 1.0 / static_cast<double>(n - lo - 1)));
  double b = at(u2);
  return a + (b - a) * frac;
}

std::pair<double, double> percentile_interval(std::vector<double>& draws, double confidence) {
  if (draws.empty()) return {0, 0};
  std::sort(draws.begin(), draws.end());
  double alpha = (1.0 - confidence) / 2.0;
  return {percentile_sorted(draws, alpha * 100.0), percentile_sorted(draws, (1.0 - alpha) * 100.0)};
}

std::pair<double, double> bootstrap_percentile_ci(const std::vector<double>& sorted, double p, int resamples,
                                                  double confidence, std::uint64_t seed) {
  if (sorted.empty() || resamples <= 0) return {0, 0};
  rng g(seed);
  std::vector<double> draws(static_cast<std::size_t>(resamples));
  for (auto& d : draws) d = resampled_percentile(sorted, p, g);
  return percentile_interval(draws, confidence);
}

std::pair<double, double> bootstrap_median_ci(const std::vector<double>& values, int resamples, double confidence,
                                              std::uint64_t seed) {
  std::vector<double> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  return bootstrap_percentile_ci(sorted, 50, resamples, confidence, seed);
}

double mad_sorted(const std::vector<double>& v) {
  if (v.empty()) return 0;
  double med = percentile_sorted(v, 50);
  std::vector<double> dev;
  dev.reserve(v.size());
  for (double x : v) dev.push_back(std::fabs(x - med));
  std::sort(dev.begin(), dev.end());
  return percentile_sorted(dev, 50);
}

double mann_whitney_p(const std::vector<double>& a, const std::vector<double>& b) {
  std::size_t n1 = a.size(), n2 = b.size();
  if (n1 == 0 || n2 == 0) return 1;
  std::vector<std::pair<double, int>> all;
  for (double x : a) all.emplace_back(x, 0);
  for (double x : b) all.emplace_back(x, 1);
  std::sort(all.begin(), all.end());
  double r1 = 0, ties = 0;
  std::size_t n = all.size();
  for (std::size_t i = 0; i < n;) {
    std::size_t j = i;
    while (j < n && all[j].first == all[i].first) ++j;
    double rank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2.0;  // mean rank of the tie group
    for (std::size_t k = i; k < j; ++k)
      if (all[k].second == 0) r1 += rank;
    double t = static_cast<double>(j - i);
    ties += t * t * t - t;
    i = j;
  }
  double dn1 = static_cast<double>(n1), dn2 = static_cast<double>(n2), dn = static_cast<double>(n);
  double u = r1 - dn1 * (dn1 + 1) / 2.0;
  double mu = dn1 * dn2 / 2.0;
  double var = dn1 * dn2 / 12.0 * ((dn + 1) - ties / (dn * (dn - 1)));
  if (var <= 0) return 1;
  double z = (std::fabs(u - mu) - 0.5) / std::sqrt(var);  // continuity correction
  if (z < 0) z = 0;
  return std::erfc(z / std::sqrt(2.0));
}

metric_stats compute_stats(std::vector<double> v, const stats_options& o) {
  metric_stats s;
  s.n = v.size();
  if (v.empty()) return s;
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
    auto [lo, hi] = bootstrap_percentile_ci(v, 50, o.bootstrap_resamples, o.confidence, o.seed);
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
