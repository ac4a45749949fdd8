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

/// The scale s of the nominal levels a_k = s · w_k so that P(some look's t statistic exceeds its
/// critical value) = alpha under the null, from `paths` seeded null paths.
void calibrate(sequential_design& d) {
  const int K = d.max_rounds;
  std::vector<double> w(static_cast<std::size_t>(K + 1), 0.0);
  for (int k = d.first_look; k <= K; ++k) w[static_cast<std::size_t>(k)] = std::pow(static_cast<double>(k) / K, d.rho);
  // The t statistics of every null path at every look (pivotal: mean 0, sd 1 loses nothing).
  const std::size_t looks = static_cast<std::size_t>(K - d.first_look + 1);
  std::vector<double> t(static_cast<std::size_t>(d.calibration_paths) * looks);
  bench::rng g(d.seed);
  for (int p = 0; p < d.calibration_paths; ++p) {
    double sum = 0, sumsq = 0;
    for (int k = 1; k <= K; ++k) {
      double x = normal(g);
      sum += x;
      sumsq += x * x;
      if (k < d.first_look) continue;
      double m = sum / k, var = (sumsq - k * m * m) / (k - 1);
      t[static_cast<std::size_t>(p) * looks + static_cast<std::size_t>(k - d.first_look)] =
          var > 0 ? m / std::sqrt(var / k) : 0;
    }
  }
  auto crossing_rate = [&](double s, std::vector<double>& crit) {
    for (int k = d.first_look; k <= K; ++k)
      crit[static_cast<std::size_t>(k - d.first_look)] = t_quantile(1 - s * w[static_cast<std::size_t>(k)], k - 1);
    std::size_t crossed = 0;
    for (int p = 0; p < d.calibration_paths; ++p) {
      const double* row = &t[static_cast<std::size_t>(p) * looks];
      for (std::size_t j = 0; j < looks; ++j)
        if (row[j] > crit[j]) {
          ++crossed;
          break;
        }
    }
    return static_cast<double>(crossed) / d.calibration_paths;
  };
  // s between alpha / sum(w) (Bonferroni: rate <= alpha) and alpha / min(w) (rate >= alpha).
  double wsum = 0;
  for (double x : w) wsum += x;
  double lo = d.alpha / wsum, hi = d.alpha / w[static_cast<std::size_t>(K)];
  std::vector<double> crit(looks);
  for (int i = 0; i < 50; ++i) {
    double mid = 0.5 * (lo + hi);
    (crossing_rate(mid, crit) > d.alpha ? hi : lo) = mid;
  }
  d.nominal.assign(static_cast<std::size_t>(K + 1), 0.0);
  d.critical.assign(static_cast<std::size_t>(K + 1), 0.0);
  for (int k = d.first_look; k <= K; ++k) {
    d.nominal[static_cast<std::size_t>(k)] = lo * w[static_cast<std::size_t>(k)];
    d.critical[static_cast<std::size_t>(k)] = t_quantile(1 - d.nominal[static_cast<std::size_t>(k)], k - 1);
  }
}

std::string verdict_for(double low, double high, double noise, bool higher_is_better) {
  double up = 1 + noise, down = 1 - noise;
  if (low > up) return higher_is_better ? "faster" : "slower";
  if (high < down) return higher_is_better ? "slower" : "faster";
  if (low >= down && high <= up) return "no change";
  return "";
}

}  // namespace

const sequential_design& make_design(int max_rounds, double confidence, double rho, int first_look) {
  if (max_rounds < 2 || max_rounds > 100)
    throw std::invalid_argument("max rounds must be 2..100, got " + std::to_string(max_rounds));
  if (!(confidence >= 0.5 && confidence <= 0.999))
    throw std::invalid_argument("confidence must be 0.5..0.999, got " + base::fixed(confidence, 4));
  if (!(rho > 0 && rho <= 10)) throw std::invalid_argument("rho must be in (0, 10]");
  static std::mutex mu;
  first_look = std::min(first_look, max_rounds);  // --max-rounds 2: the one look there is
  if (first_look < 2) throw std::invalid_argument("the first look must be at round 2 or later");
  static std::map<std::tuple<int, double, double, int>, sequential_design> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto key = std::make_tuple(max_rounds, confidence, rho, first_look);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  sequential_design d;
  d.max_rounds = max_rounds;
  d.alpha = 1 - confidence;
  d.rho = rho;
  d.first_look = first_look;
  calibrate(d);
  return cache.emplace(key, std::move(d)).first->second;
}

look_result look(const sequential_design& d, const std::vector<double>& log_ratios, double noise,
                 bool higher_is_better) {
  look_result r;
  int k = static_cast<int>(log_ratios.size());
  r.rounds = k;
  mean_summary s = summarize(log_ratios);
  r.ratio = std::exp(s.mean);
  r.low = r.high = r.ratio;
  if (k < d.first_look || k > d.max_rounds) return r;
  double c = d.critical[static_cast<std::size_t>(k)];
  r.level = 1 - 2 * d.nominal[static_cast<std::size_t>(k)];
  r.low = std::exp(s.mean - c * s.se);
  r.high = std::exp(s.mean + c * s.se);
  r.verdict = verdict_for(r.low, r.high, noise, higher_is_better);
  if (r.verdict.empty() && k >= d.futility_from && k < d.max_rounds) {
    // The spread's optimistic value: its lower one-sided 90% confidence bound (chi-square with
    // k-1 df, Wilson-Hilferty), and the last look's critical value and rounds.
    double df = k - 1;
    double z = 1.2815515655446004, h = 2.0 / (9 * df);
    double chi = df * std::pow(1 - h + z * std::sqrt(h), 3);  // upper 90% quantile of chi-square(df)
    double sd_opt = s.sd * std::sqrt(df / chi);
    double half_end = d.critical[static_cast<std::size_t>(d.max_rounds)] * sd_opt / std::sqrt(d.max_rounds);
    double up = std::log1p(noise), down = std::log1p(-noise);
    bool faster_reachable = s.mean + s.se - half_end > up;
    bool slower_reachable = s.mean - s.se + half_end < down;
    bool same_reachable = std::max(0.0, std::fabs(s.mean) - s.se) + half_end < up;
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
          {"looks", levels}};
}

std::string describe(const sequential_design& d) {
  std::ostringstream os;
  os << "group-sequential t intervals on round-paired log ratios: looks at rounds " << d.first_look << ".."
     << d.max_rounds << ", each claim (faster, slower, no change) wrong with probability <= "
     << base::fixed(d.alpha * 100, 1) << "% over all looks (power-family spending, rho " << base::fixed(d.rho, 1)
     << "; first look's t critical " << base::fixed(d.critical[static_cast<std::size_t>(d.first_look)], 2)
     << ", last look's " << base::fixed(d.critical[static_cast<std::size_t>(d.max_rounds)], 2) << ")"
     << (d.futility ? "; stops early as inconclusive when no verdict is within reach" : "");
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
    std::vector<double> r;
    std::string v;
    for (int k = 1; k <= d.max_rounds; ++k) {
      r.push_back(m.round(k, g));
      auto l = look(d, r, s.noise, s.higher_is_better);
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
  double c = t_quantile(1 - alpha, n - 1);
  for (int i = 0; i < decisions; ++i) {
    lifecycle_model m(s);
    std::vector<double> r;
    for (int k = 1; k <= n; ++k) r.push_back(m.round(k, g));
    mean_summary ms = summarize(r);
    count(out, verdict_for(std::exp(ms.mean - c * ms.se), std::exp(ms.mean + c * ms.se), s.noise, s.higher_is_better));
    ++out.decisions;
  }
  out.mean_rounds = n;
  return out;
}

int fixed_rounds_for(const std::string& verdict, double target, double alpha, const scenario& s, int decisions,
                     std::uint64_t seed, int max_n) {
  for (int n = 2; n <= max_n; ++n) {
    sim_summary f = simulate_fixed(n, alpha, s, decisions, seed);
    int hits = verdict == "faster" ? f.faster : verdict == "slower" ? f.slower : verdict == "no change" ? f.no_change : 0;
    if (f.share(hits) >= target) return n;
  }
  return 0;
}

}  // namespace bp::analysis
