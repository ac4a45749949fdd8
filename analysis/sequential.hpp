#pragma once
/// The sequential verdict of `try` (docs/statistics.md, "The sequential verdict"): after every
/// round (one full lifecycle of each side, back to back) it decides from the round-paired log
/// ratios of the headline whether the answer is settled (faster, slower, no change) or another
/// round is needed, with error rates that hold across all the looks, not only at a fixed end.
///
/// The procedure: a group-sequential design over looks k = first_look .. max_rounds. At look k
/// the interval is mean ± c_k · se of the k paired log ratios, c_k the t quantile (df k-1) at the
/// one-sided nominal level a_k = s · (k/K)^rho (power-family alpha spending: strict early, looser
/// late). The scale s is calibrated so that, for normal paired differences, the probability that
/// ANY look's lower bound lies above the true mean is exactly alpha: the t statistic is pivotal,
/// so a seeded simulation of null paths fixes s once per design (deterministically). Each claim
/// is then wrong with probability at most alpha however the data fall:
///  - faster / slower: the interval lies beyond the noise band (+/-noise) on one side;
///  - no change: the interval lies inside the band (an equivalence test, TOST).
///
/// The campaign's spread (docs/statistics.md, "The campaign's spread"): the first looks have few
/// degrees of freedom, where t's quantiles are large. When earlier decisions of the same campaign
/// (same host, workload, load shape, headline) measured the spread of round log ratios, their
/// pooled variance (prior_df degrees of freedom) joins this decision's: the t quantiles use
/// prior_df + k - 1 degrees of freedom and the first look is at round 2. The assumption is that
/// the spread is the machine's, the same for this pair; it is checked at every round (a one-sided
/// F test of this decision's variance against the pooled one at `guard_p`): once it fails, the
/// prior is dropped for the rest of the decision, which then uses the design without it. The
/// calibration includes that guard, so the error rates hold when the assumption holds, and the
/// guard bounds the damage when it does not (docs/benchmarks.md measures both).
/// Pure logic: no processes, no files. `try` calls look() after every round.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace bp::analysis {

struct sequential_design {
  int max_rounds = 10;
  int first_look = 3;       ///< two rounds give 1 df (t's 99.5% quantile is 63.7): the first look is at three
  double alpha = 0.05;      ///< error of each claim (1 - confidence)
  double rho = 1.0;         ///< alpha-spending exponent
  int calibration_paths = 40000;
  bool futility = true;     ///< stop early as inconclusive when no verdict is within reach
  int futility_from = 4;    ///< the first look that may stop for futility
  std::uint64_t seed = 0x5eedc0de;
  int prior_df = 0;         ///< degrees of freedom of the campaign's pooled spread; 0: none
  double guard_p = 0.05;    ///< the prior is dropped once this decision's spread exceeds it at this level
  std::vector<double> nominal;   ///< [k]: one-sided nominal level at look k (0: no look)
  std::vector<double> critical;  ///< [k]: t quantile at 1 - nominal[k], df prior_df + k - 1
  std::vector<double> own_critical;  ///< [k]: with a prior, the design without it (used once the guard drops it)
  std::vector<double> guard_f;       ///< [k]: with a prior, the F(k-1, prior_df) quantile at 1 - guard_p
};

/// The pooled variance of round log ratios from earlier decisions, and its degrees of freedom.
struct campaign_spread {
  double var = 0;
  int df = 0;
  bool usable() const { return df > 0 && var > 0; }
};

/// The most prior degrees of freedom a design takes: beyond it t is within 2% of the normal, and
/// a larger pool is used as if it had this many (conservative).
constexpr int max_prior_df = 60;

/// The design for at most `max_rounds` rounds (2..100) at `confidence` (0.5..0.999), calibrated.
/// With `prior_df` > 0 (capped at max_prior_df) the design takes the campaign's spread and its
/// first look is at round 2 (`first_look` is then ignored). Throws std::invalid_argument for values
/// out of range. Cached per parameters: cheap to call again.
const sequential_design& make_design(int max_rounds, double confidence, double rho = 1.0, int first_look = 3,
                                     int prior_df = 0);

struct look_result {
  int rounds = 0;
  double ratio = 1, low = 0, high = 0;  ///< candidate / baseline, the look's interval
  double level = 0;                      ///< two-sided coverage of this look's interval (1 - 2 a_k)
  /// faster, slower, no change; empty: undecided (another round, or inconclusive at the end)
  std::string verdict;
  /// Undecided, and no verdict is within reach by the last round even if the estimate moved one
  /// standard error its way and the spread shrank to what its lower 90% bound allows: stopping
  /// now as inconclusive saves rounds (a non-binding futility stop: it never makes a claim, so
  /// the error rates above still hold).
  bool futile = false;
  /// With a design that takes the campaign's spread: whether this look used it, and the guard's
  /// p-value at this round (this decision's variance against the pooled one; -1: not tested).
  bool prior_used = false;
  double guard_p = -1;
  int dropped_at = 0;  ///< the round at which the guard dropped the prior (0: not dropped)
  double df = 0;       ///< degrees of freedom of this look's t quantile
};

/// The decision after the rounds so far: `log_ratios` holds log(candidate / baseline) of the
/// headline per round. `higher_is_better` follows the headline metric.
/// `prior` is the campaign's spread the design was made for (ignored by a design without one).
look_result look(const sequential_design& d, const std::vector<double>& log_ratios, double noise,
                 bool higher_is_better, const campaign_spread& prior = {});

/// The procedure and its parameters, for result files and docs.
nlohmann::json to_json(const sequential_design& d);
std::string describe(const sequential_design& d);

/// A simulated campaign (docs/benchmarks.md, "Sequential verdicts by simulation"): each
/// lifecycle's headline is true_value · exp(lifecycle effect + drift + the sampling error of a
/// median over `requests` requests of CV `request_cv`); the lifecycle effect's spread is what is
/// left of `lifecycle_cv` after the request part; drift is a random walk of `drift` per
/// lifecycle; rounds alternate the order (A B, B A, ...).
struct scenario {
  std::string name;
  double true_ratio = 1;
  double lifecycle_cv = 0.01;
  double request_cv = 0.10;
  int requests = 1000;
  double drift = 0.002;
  double noise = 0.01;
  bool higher_is_better = true;
  /// The campaign's spread: 0 none; else each decision gets a pooled variance of this many degrees
  /// of freedom, drawn around the true round variance times prior_sd_ratio^2 (1: the assumption
  /// holds; below 1: the pool is too optimistic for this pair, which spreads more than the
  /// campaign's earlier decisions did).
  int prior_df = 0;
  double prior_sd_ratio = 1;
};

struct sim_summary {
  int decisions = 0;
  int faster = 0, slower = 0, no_change = 0, inconclusive = 0;
  double mean_rounds = 0;
  double share(int n) const { return decisions ? static_cast<double>(n) / decisions : 0; }
};

/// `decisions` seeded sequential decisions of the scenario.
sim_summary simulate(const sequential_design& d, const scenario& s, int decisions, std::uint64_t seed);

/// The same decisions made once at a fixed number of rounds n with the same per-claim error
/// rate (the t interval at 1 - 2 alpha, with the scenario's campaign spread pooled in when it has
/// one): how often each verdict comes out.
sim_summary simulate_fixed(int n, double alpha, const scenario& s, int decisions, std::uint64_t seed);

/// The smallest fixed n (2..max_n) whose rate of `verdict` reaches `target`; 0 when none does.
int fixed_rounds_for(const std::string& verdict, double target, double alpha, const scenario& s, int decisions,
                     std::uint64_t seed, int max_n = 40);

}  // namespace bp::analysis
