#include "analysis/small_sample.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace bp::analysis {

namespace {

/// Lentz's continued fraction for the incomplete beta (converges fast for x < (a+1)/(a+b+2)).
double beta_fraction(double a, double b, double x) {
  const double tiny = 1e-300, eps = 1e-15;
  double qab = a + b, qap = a + 1, qam = a - 1;
  double c = 1, d = 1 - qab * x / qap;
  if (std::fabs(d) < tiny) d = tiny;
  d = 1 / d;
  double h = d;
  for (int m = 1; m <= 300; ++m) {
    double m2 = 2.0 * m;
    double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
    d = 1 + aa * d;
    if (std::fabs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (std::fabs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
    d = 1 + aa * d;
    if (std::fabs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (std::fabs(c) < tiny) c = tiny;
    d = 1 / d;
    double del = d * c;
    h *= del;
    if (std::fabs(del - 1) < eps) break;
  }
  return h;
}

}  // namespace

double incomplete_beta(double a, double b, double x) {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  double front = std::exp(std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x));
  if (x < (a + 1) / (a + b + 2)) return front * beta_fraction(a, b, x) / a;
  return 1 - front * beta_fraction(b, a, 1 - x) / b;
}

double t_cdf(double t, double df) {
  if (std::isnan(t)) return t;
  if (std::isinf(t)) return t > 0 ? 1 : 0;
  double x = df / (df + t * t);
  double tail = 0.5 * incomplete_beta(df / 2, 0.5, x);  // P(T > |t|)
  return t > 0 ? 1 - tail : tail;
}

double t_quantile(double p, double df) {
  if (p <= 0) return -std::numeric_limits<double>::infinity();
  if (p >= 1) return std::numeric_limits<double>::infinity();
  if (p < 0.5) return -t_quantile(1 - p, df);
  // Bracket, then bisect: monotone, and 200 halvings reach the double's resolution.
  double lo = 0, hi = 1;
  while (t_cdf(hi, df) < p && hi < 1e12) hi *= 2;
  for (int i = 0; i < 200 && hi - lo > 1e-13 * std::max(1.0, hi); ++i) {
    double mid = 0.5 * (lo + hi);
    (t_cdf(mid, df) < p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

mean_summary summarize(const std::vector<double>& values) {
  mean_summary s;
  s.n = values.size();
  if (s.n == 0) return s;
  s.mean = std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(s.n);
  if (s.n < 2) return s;
  double ss = 0;
  for (double v : values) ss += (v - s.mean) * (v - s.mean);
  s.sd = std::sqrt(ss / static_cast<double>(s.n - 1));
  s.se = s.sd / std::sqrt(static_cast<double>(s.n));
  return s;
}

ratio_interval paired_ratio_interval(const std::vector<double>& d, double level) {
  ratio_interval r;
  r.level = level;
  mean_summary s = summarize(d);
  r.ratio = std::exp(s.mean);
  r.low = r.high = r.ratio;
  if (s.n < 2) return r;
  r.df = static_cast<double>(s.n - 1);
  double c = t_quantile(0.5 + level / 2, r.df);
  r.low = std::exp(s.mean - c * s.se);
  r.high = std::exp(s.mean + c * s.se);
  r.valid = true;
  return r;
}

ratio_interval welch_ratio_interval(const std::vector<double>& log_base, const std::vector<double>& log_cand,
                                    double level) {
  ratio_interval r;
  r.level = level;
  mean_summary a = summarize(log_base), b = summarize(log_cand);
  if (a.n == 0 || b.n == 0) return r;
  r.ratio = std::exp(b.mean - a.mean);
  r.low = r.high = r.ratio;
  if (a.n < 2 || b.n < 2) return r;
  double va = a.se * a.se, vb = b.se * b.se;
  double se = std::sqrt(va + vb);
  if (se <= 0) {
    r.valid = true;
    r.df = static_cast<double>(a.n + b.n - 2);
    return r;
  }
  r.df = (va + vb) * (va + vb) / (va * va / static_cast<double>(a.n - 1) + vb * vb / static_cast<double>(b.n - 1));
  double c = t_quantile(0.5 + level / 2, r.df);
  r.low = std::exp(b.mean - a.mean - c * se);
  r.high = std::exp(b.mean - a.mean + c * se);
  r.valid = true;
  return r;
}

double beyond_noise_p(double mean_log_ratio, double se, double df, double noise) {
  double up = std::log1p(noise), down = std::log1p(-noise);
  if (mean_log_ratio <= up && mean_log_ratio >= down) return 1;
  if (se <= 0 || df <= 0) return 0;
  double t = mean_log_ratio > up ? (mean_log_ratio - up) / se : (down - mean_log_ratio) / se;
  return 1 - t_cdf(t, df);
}

std::vector<bool> holm_reject(const std::vector<double>& p, double alpha) {
  std::vector<std::size_t> order(p.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return p[a] < p[b]; });
  std::vector<bool> out(p.size(), false);
  const std::size_t m = p.size();
  for (std::size_t i = 0; i < m; ++i) {
    if (p[order[i]] > alpha / static_cast<double>(m - i)) break;  // step-down: the first failure stops it
    out[order[i]] = true;
  }
  return out;
}

}  // namespace bp::analysis
