#pragma once
/// Inference from few units (docs/statistics.md, "Few units"): Student's t distribution, the
/// interval of a mean of round-paired log ratios with its K-1 degrees of freedom, one-sided
/// p-values against a noise band, and Holm's step-down correction over several metrics. Pure
/// functions; `compare`, the sweep table and `try` use them, never a bootstrap over trials.
#include <cstddef>
#include <vector>

namespace bp::analysis {

/// Regularized incomplete beta function I_x(a, b) (continued fraction; relative error ~1e-14).
double incomplete_beta(double a, double b, double x);

/// P(T <= t) for Student's t with `df` > 0 degrees of freedom.
double t_cdf(double t, double df);

/// The p-quantile (0 < p < 1) of Student's t with `df` degrees of freedom.
double t_quantile(double p, double df);

/// Mean, sample standard deviation and standard error of K values (sd, se = 0 when K < 2).
struct mean_summary {
  std::size_t n = 0;
  double mean = 0, sd = 0, se = 0;
};
mean_summary summarize(const std::vector<double>& values);

/// A two-sided interval of the mean of log ratios, back on the ratio scale.
struct ratio_interval {
  bool valid = false;  ///< false when fewer than 2 units or no spread can be estimated
  double ratio = 1, low = 1, high = 1;
  double df = 0;
  double level = 0.95;  ///< two-sided coverage
};

/// exp(mean ± t_{K-1}((1+level)/2) · se) over the log ratios `d` (one per round).
ratio_interval paired_ratio_interval(const std::vector<double>& d, double level);

/// Welch's interval for log(mean ratio) between two independent groups of log values (used
/// when the two sides' trials cannot be paired by round: different counts).
ratio_interval welch_ratio_interval(const std::vector<double>& log_base, const std::vector<double>& log_cand,
                                    double level);

/// The one-sided p-value for "the true ratio lies beyond the noise band on the side of the
/// estimate" (H0: |log ratio| <= log(1+noise) on that side), from the t statistic with `df`.
/// 1 when the estimate is inside the band.
double beyond_noise_p(double mean_log_ratio, double se, double df, double noise);

/// Holm's step-down procedure: which hypotheses are rejected at family-wise level alpha.
std::vector<bool> holm_reject(const std::vector<double>& p, double alpha);

}  // namespace bp::analysis
