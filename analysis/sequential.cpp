#include "analysis/sequential.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <tuple>

#include "analysis/small_sample.hpp"
#include "analysis/stats.hpp"
#include "base/text.hpp"

namespace bp::analysis {

namespace {

/// A standard normal draw (Box-Muller over the project's seeded generator).
double normal(bench::rng& g) {
  double u = g.uniform(), v = g.uniform();
  if (u < 1e-300) u = 1e-300;
  return std::sqrt(-2 * std::log(u)) * std::cos(6.283185307179586 * v);
}

/// A draw of chi-square(df) / df: the variance of a pooled estimate relative to the truth.
double chi2_over_df(int df, bench::rng& g) {
  if (df <= 0) return 1;
  double sum = 0;
  for (int i = 0; i < df; ++i) {
    double z = normal(g);
    sum += z * z;
  }
  return sum / df;
}

/// P(F(d1, d2) <= x).
double f_cdf(double x, double d1, double d2) {
  if (x <= 0) return 0;
  return incomplete_beta(d1 / 2, d2 / 2, d1 * x / (d1 * x + d2));
}

/// The (1 - p) quantile of F(d1, d2), by bisection on its cdf.
double f_upper_quantile(double p, double d1, double d2) {
  double lo = 0, hi = 1;
  while (1 - f_cdf(hi, d1, d2) > p && hi < 1e12) hi *= 2;
  for (int i = 0; i < 200; ++i) {
    double mid = 0.5 * (lo + hi);
    (1 - f_cdf(mid, d1, d2) > p ? lo : hi) = mid;
  }
  return hi;
}

/// The scale s of the nominal levels a_k = s · w_k so that P(some look's t statistic exceeds its
/// critical value) = alpha under the null, from `paths` seeded null paths. With a prior (the
/// campaign's spread) each path also draws the pooled variance, and a look after the guard has
/// dropped it is judged by `own` (the design without a prior), as look() does.
void calibrate(sequential_design& d, const sequential_design* own) {
  const int K = d.max_rounds;
  const int nu = d.prior_df;
  std::vector<double> w(static_cast<std::size_t>(K + 1), 0.0);
  for (int k = d.first_look; k <= K; ++k) w[static_cast<std::size_t>(k)] = std::pow(static_cast<double>(k) / K, d.rho);
  if (nu > 0) {
    d.guard_f.assign(static_cast<std::size_t>(K + 1), 0.0);
    for (int k = 2; k <= K; ++k) d.guard_f[static_cast<std::size_t>(k)] = f_upper_quantile(d.guard_p, k - 1, nu);
  }
  // The t statistics of every null path at every look (pivotal: mean 0, sd 1 loses nothing);
  // with a prior: the pooled one while the guard holds, else the path's own (marked by `own_t`).
  const std::size_t looks = static_cast<std::size_t>(K - d.first_look + 1);
  std::vector<double> t(static_cast<std::size_t>(d.calibration_paths) * looks);
  std::vector<char> dropped(nu > 0 ? t.size() : 0, 0);
  bench::rng g(d.seed);
  for (int p = 0; p < d.calibration_paths; ++p) {
    double v0 = nu > 0 ? chi2_over_df(nu, g) : 0;
    bool ok = true;
    double sum = 0, sumsq = 0;
    for (int k = 1; k <= K; ++k) {
      double x = normal(g);
      sum += x;
      sumsq += x * x;
      double m = sum / k, var = k > 1 ? (sumsq - k * m * m) / (k - 1) : 0;
      if (nu > 0 && k >= 2 && ok && var / v0 > d.guard_f[static_cast<std::size_t>(k)]) ok = false;
      if (k < d.first_look) continue;
      std::size_t at = static_cast<std::size_t>(p) * looks + static_cast<std::size_t>(k - d.first_look);
      if (nu > 0 && ok) {
        double pooled = (nu * v0 + (k - 1) * var) / (nu + k - 1);
        t[at] = m / std::sqrt(pooled / k);
      } else {
        t[at] = var > 0 ? m / std::sqrt(var / k) : 0;
        if (nu > 0) dropped[at] = 1;
      }
    }
  }
  auto crossing_rate = [&](double s, std::vector<double>& crit) {
    for (int k = d.first_look; k <= K; ++k)
      crit[static_cast<std::size_t>(k - d.first_look)] =
          t_quantile(1 - s * w[static_cast<std::size_t>(k)], nu + k - 1);
    std::size_t crossed = 0;
    for (int p = 0; p < d.calibration_paths; ++p) {
      std::size_t row = static_cast<std::size_t>(p) * looks;
      for (std::size_t j = 0; j < looks; ++j) {
        double c = crit[j];
        if (nu > 0 && dropped[row + j]) {
          c = own->critical[static_cast<std::size_t>(d.first_look) + j];
          if (c <= 0) continue;  // no look of the design without a prior at this round
        }
        if (t[row + j] > c) {
          ++crossed;
          break;
        }
      }
    }
    return static_cast<double>(crossed) / d.calibration_paths;
  };
  // s between alpha / sum(w) (Bonferroni: rate <= alpha) and alpha / min(w) (rate >= alpha).
  double wsum = 0;
  for (double x : w) wsum += x;
  double lo = d.alpha / wsum / 4, hi = d.alpha / w[static_cast<std::size_t>(K)];
  std::vector<double> crit(looks);
  for (int i = 0; i < 50; ++i) {
    double mid = 0.5 * (lo + hi);
    (crossing_rate(mid, crit) > d.alpha ? hi : lo) = mid;
  }
  d.nominal.assign(static_cast<std::size_t>(K + 1), 0.0);
  d.critical.assign(static_cast<std::size_t>(K + 1), 0.0);
  for (int k = d.first_look; k <= K; ++k) {
    d.nominal[static_cast<std::size_t>(k)] = lo * w[static_cast<std::size_t>(k)];
    d.critical[static_cast<std::size_t>(k)] = t_quantile(1 - d.nominal[static_cast<std::size_t>(k)], nu + k - 1);
  }
  if (own) d.own_critical = own->critical;
}

std::string verdict_for(double low, double high, double noise, bool higher_is_better) {
  double up = 1 + noise, down = 1 - noise;
  if (low > up) return higher_is_better ? "faster" : "slower";
  if (high < down) return higher_is_better ? "slower" : "faster";
  if (low >= down && high <= up) return "no change";
  return "";
}

}  // namespace

const sequential_design& make_design(int max_rounds, double confidence, double rho, int first_look, int prior_df) {
  if (max_rounds < 2 || max_rounds > 100)
    throw std::invalid_argument("max rounds must be 2..100, got " + std::to_string(max_rounds));
  if (!(confidence >= 0.5 && confidence <= 0.999))
    throw std::invalid_argument("confidence must be 0.5..0.999, got " + base::fixed(confidence, 4));
  if (!(rho > 0 && rho <= 10)) throw std::invalid_argument("rho must be in (0, 10]");
  if (prior_df < 0) throw std::invalid_argument("the campaign spread's degrees of freedom must be >= 0");
  prior_df = std::min(prior_df, max_prior_df);
  first_look = prior_df > 0 ? 2 : std::min(first_look, max_rounds);  // --max-rounds 2: the one look there is
  if (first_look < 2) throw std::invalid_argument("the first look must be at round 2 or later");
  // The design without a prior, which one with a prior falls back to (made first, outside the lock).
  const sequential_design* own = prior_df > 0 ? &make_design(max_rounds, confidence, rho, 3, 0) : nullptr;
  static std::mutex mu;
  static std::map<std::tuple<int, double, double, int, int>, sequential_design> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto key = std::make_tuple(max_rounds, confidence, rho, first_look, prior_df);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  sequential_design d;
  d.max_rounds = max_rounds;
  d.alpha = 1 - confidence;
  d.rho = rho;
  d.first_look = first_look;
  d.prior_df = prior_df;
  calibrate(d, own);
  return cache.emplace(key, std::move(d)).first->second;
}

look_result look(const sequential_design& d, const std::vector<double>& log_ratios, double noise,
                 bool higher_is_better, const campaign_spread& prior) {
  look_result r;
  int k = static_cast<int>(log_ratios.size());
  r.rounds = k;
  mean_summary s = summarize(log_ratios);
  r.ratio = std::exp(s.mean);
  r.low = r.high = r.ratio;
  // The campaign's spread holds while this decision's own variance is not beyond it (the guard,
  // tested at every round so far: once it fails, the prior stays dropped).
  const bool with_prior = d.prior_df > 0 && prior.usable();
  double c = 0, se = s.se, df = k - 1;
  if (with_prior && k >= 2) {
    double sum = 0, sumsq = 0;
    for (int j = 1; j <= k; ++j) {
      double x = log_ratios[static_cast<std::size_t>(j - 1)];
      sum += x;
      sumsq += x * x;
      if (j < 2) continue;
      double m = sum / j, var = std::max(0.0, (sumsq - j * m * m) / (j - 1));
      double ratio = var / prior.var;
      if (j == k) r.guard_p = 1 - f_cdf(ratio, j - 1, d.prior_df);
      if (!r.dropped_at && ratio > d.guard_f[static_cast<std::size_t>(j)]) r.dropped_at = j;
    }
  }
  if (with_prior && !r.dropped_at && k >= d.first_look && k <= d.max_rounds) {
    double pooled = (d.prior_df * prior.var + (k - 1) * s.sd * s.sd) / (d.prior_df + k - 1);
    se = std::sqrt(pooled / k);
    df = d.prior_df + k - 1;
    c = d.critical[static_cast<std::size_t>(k)];
    r.prior_used = true;
    r.level = 1 - 2 * d.nominal[static_cast<std::size_t>(k)];
  } else if (with_prior) {
    if (k >= 1 && k <= d.max_rounds) c = d.own_critical[static_cast<std::size_t>(k)];
    if (c > 0) {
      // The level of the design without a prior at this look (its t quantile, df k-1).
      r.level = 1 - 2 * (1 - t_cdf(c, k - 1));
    }
  } else if (k >= d.first_look && k <= d.max_rounds) {
    c = d.critical[static_cast<std::size_t>(k)];
    r.level = 1 - 2 * d.nominal[static_cast<std::size_t>(k)];
  }
  if (c <= 0) return r;
  r.df = df;
  r.low = std::exp(s.mean - c * se);
  r.high = std::exp(s.mean + c * se);
  r.verdict = verdict_for(r.low, r.high, noise, higher_is_better);
  if (r.verdict.empty() && k >= d.futility_from && k < d.max_rounds) {
    // The spread's optimistic value: its lower one-sided 90% confidence bound (chi-square with
    // the look's df, Wilson-Hilferty), and the last look's critical value and rounds.
    double z = 1.2815515655446004, h = 2.0 / (9 * df);
    double chi = df * std::pow(1 - h + z * std::sqrt(h), 3);  // upper 90% quantile of chi-square(df)
    double sd_opt = se * std::sqrt(static_cast<double>(k)) * std::sqrt(df / chi);
    const auto& crit = r.prior_used ? d.critical : (with_prior ? d.own_critical : d.critical);
    double half_end = crit[static_cast<std::size_t>(d.max_rounds)] * sd_opt / std::sqrt(d.max_rounds);
    double up = std::log1p(noise), down = std::log1p(-noise);
    bool faster_reachable = s.mean + se - half_end > up;
    bool slower_reachable = s.mean - se + half_end < down;
    bool same_reachable = std::max(0.0, std::fabs(s.mean) - se) + half_end < up;
    r.futile = !faster_reachable && !slower_reachable && !same_reachable;
  }
  return r;
}

nlohmann::json to_json(const sequential_design& d) {
  nlohmann::json levels = nlohmann::json::object();
  for (int k = d.first_look; k <= d.max_rounds; ++k)
    levels[std::to_string(k)] = {{"nominal_one_sided", d.nominal[static_cast<std::size_t>(k)]},
                                 {"t_critical", d.critical[static_cast<std::size_t>(k)]}};
  return {{"procedure", "group-sequential t intervals on round-paired log ratios"},
          {"spending", "power family a_k = s * (k/K)^rho, s calibrated by seeded null simulation"},
          {"alpha_per_claim", d.alpha},
          {"max_rounds", d.max_rounds},
          {"first_look", d.first_look},
          {"rho", d.rho},
          {"calibration_paths", d.calibration_paths},
          {"calibration_seed", d.seed},
          {"futility", d.futility ? "non-binding: from round " + std::to_string(d.futility_from) +
                                        ", stop as inconclusive when no verdict is within reach by the last round"
                                  : "none"},
          {"looks", levels},
          {"campaign_spread",
           d.prior_df > 0
               ? nlohmann::json{{"prior_df", d.prior_df},
                                {"guard", "one-sided F test of this decision's variance against the pooled one at " +
                                              base::fixed(d.guard_p, 3) +
                                              " at every round; once it fails the prior is dropped and the looks "
                                              "are those of the design without it"}}
               : nlohmann::json("none")}};
}

std::string describe(const sequential_design& d) {
  std::ostringstream os;
  os << "group-sequential t intervals on round-paired log ratios: looks at rounds " << d.first_look << ".."
     << d.max_rounds << ", each claim (faster, slower, no change) wrong with probability <= "
     << base::fixed(d.alpha * 100, 1) << "% over all looks (power-family spending, rho " << base::fixed(d.rho, 1)
     << "; first look's t critical " << base::fixed(d.critical[static_cast<std::size_t>(d.first_look)], 2)
     << ", last look's " << base::fixed(d.critical[static_cast<std::size_t>(d.max_rounds)], 2) << ")"
     << (d.futility ? "; stops early as inconclusive when no verdict is within reach" : "");
  if (d.prior_df > 0)
    os << "; the campaign's spread pooled in (" << d.prior_df << " df, first look at round 2, dropped when this "
       << "decision's spread exceeds it at p < " << base::fixed(d.guard_p, 2) << ")";
  return os.str();
}

namespace {

/// One round's log ratio of the simulated scenario: two lifecycles, order alternating.
struct lifecycle_model {
  const scenario& s;
  double life_sd, req_sd, state = 0;
  explicit lifecycle_model(const scenario& sc) : s(sc) {
    // The median of n requests of log-spread request_cv has standard error ~1.2533 · cv / sqrt(n).
    req_sd = 1.2533 * s.request_cv / std::sqrt(static_cast<double>(std::max(1, s.requests)));
    life_sd = std::sqrt(std::max(0.0, s.lifecycle_cv * s.lifecycle_cv - req_sd * req_sd));
  }
  double one(bool candidate, bench::rng& g) {
    state += s.drift * normal(g);
    return (candidate ? std::log(s.true_ratio) : 0.0) + life_sd * normal(g) + req_sd * normal(g) + state;
  }
  double round(int k, bench::rng& g) {
    double base, cand;
    if (k % 2) {
      base = one(false, g);
      cand = one(true, g);
    } else {
      cand = one(true, g);
      base = one(false, g);
    }
    return cand - base;
  }
  /// The true variance of one round's log ratio (two lifecycles and the drift between them).
  double round_var() const { return 2 * s.lifecycle_cv * s.lifecycle_cv + s.drift * s.drift; }
  /// The campaign's spread as earlier decisions would have measured it.
  campaign_spread prior(bench::rng& g) const {
    campaign_spread p;
    if (s.prior_df <= 0) return p;
    p.df = s.prior_df;
    p.var = round_var() * s.prior_sd_ratio * s.prior_sd_ratio * chi2_over_df(s.prior_df, g);
    return p;
  }
};

void count(sim_summary& out, const std::string& v) {
  if (v == "faster") ++out.faster;
  else if (v == "slower") ++out.slower;
  else if (v == "no change") ++out.no_change;
  else ++out.inconclusive;
}

}  // namespace

sim_summary simulate(const sequential_design& d, const scenario& s, int decisions, std::uint64_t seed) {
  sim_summary out;
  bench::rng g(seed);
  double rounds = 0;
  for (int i = 0; i < decisions; ++i) {
    lifecycle_model m(s);
    campaign_spread prior = m.prior(g);
    std::vector<double> r;
    std::string v;
    for (int k = 1; k <= d.max_rounds; ++k) {
      r.push_back(m.round(k, g));
      auto l = look(d, r, s.noise, s.higher_is_better, prior);
      v = l.verdict;
      if (!v.empty() || (l.futile && d.futility)) break;
    }
    rounds += static_cast<double>(r.size());
    count(out, v);
    ++out.decisions;
  }
  out.mean_rounds = decisions ? rounds / decisions : 0;
  return out;
}

sim_summary simulate_fixed(int n, double alpha, const scenario& s, int decisions, std::uint64_t seed) {
  sim_summary out;
  bench::rng g(seed);
  const int nu = std::min(s.prior_df, max_prior_df);
  double c = t_quantile(1 - alpha, nu + n - 1);
  for (int i = 0; i < decisions; ++i) {
    lifecycle_model m(s);
    campaign_spread prior = m.prior(g);
    std::vector<double> r;
    for (int k = 1; k <= n; ++k) r.push_back(m.round(k, g));
    mean_summary ms = summarize(r);
    double se = ms.se;
    if (nu > 0) se = std::sqrt((nu * prior.var + (n - 1) * ms.sd * ms.sd) / (nu + n - 1) / n);
    count(out, verdict_for(std::exp(ms.mean - c * se), std::exp(ms.mean + c * se), s.noise, s.higher_is_better));
    ++out.decisions;
  }
  out.mean_rounds = n;
  return out;
}

int fixed_rounds_for(const std::string& verdict, double target, double alpha, const scenario& s, int decisions,
                     std::uint64_t seed, int max_n) {
  for (int n = s.prior_df > 0 ? 1 : 2; n <= max_n; ++n) {
    sim_summary f = simulate_fixed(n, alpha, s, decisions, seed);
    int hits = verdict == "faster" ? f.faster : verdict == "slower" ? f.slower : verdict == "no change" ? f.no_change : 0;
    if (f.share(hits) >= target) return n;
  }
  return 0;
}

}  // namespace bp::analysis
