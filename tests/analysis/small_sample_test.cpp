#include "analysis/small_sample.hpp"

#include <cmath>

#include <gtest/gtest.h>

namespace bp::analysis {
namespace {

TEST(SmallSample, TQuantilesMatchTheTables) {
  // Student's t 97.5% quantiles (docs/statistics.md, "Few units").
  EXPECT_NEAR(t_quantile(0.975, 1), 12.7062, 1e-4);
  EXPECT_NEAR(t_quantile(0.975, 2), 4.3027, 1e-4);
  EXPECT_NEAR(t_quantile(0.975, 4), 2.7764, 1e-4);
  EXPECT_NEAR(t_quantile(0.975, 9), 2.2622, 1e-4);
  EXPECT_NEAR(t_quantile(0.95, 5), 2.0150, 1e-4);
  EXPECT_NEAR(t_quantile(0.999, 3), 10.2145, 1e-3);
  EXPECT_NEAR(t_quantile(0.975, 1e6), 1.95997, 1e-4);
  EXPECT_NEAR(t_quantile(0.025, 4), -2.7764, 1e-4);
  EXPECT_NEAR(t_quantile(0.5, 3), 0.0, 1e-9);
}

TEST(SmallSample, TCdfIsTheInverseOfTheQuantile) {
  for (double df : {1.0, 2.0, 3.5, 7.0, 30.0})
    for (double p : {0.001, 0.01, 0.2, 0.5, 0.8, 0.99, 0.9995}) EXPECT_NEAR(t_cdf(t_quantile(p, df), df), p, 1e-9);
}

TEST(SmallSample, PairedIntervalUsesKMinusOneDegreesOfFreedom) {
  // log ratios 0.01, 0.03, 0.02: mean 0.02, sd 0.01, se 0.01/sqrt(3); t_2 = 4.3027.
  auto r = paired_ratio_interval({0.01, 0.03, 0.02}, 0.95);
  ASSERT_TRUE(r.valid);
  EXPECT_DOUBLE_EQ(r.df, 2);
  double half = 4.302653 * 0.01 / std::sqrt(3.0);
  EXPECT_NEAR(std::log(r.low), 0.02 - half, 1e-6);
  EXPECT_NEAR(std::log(r.high), 0.02 + half, 1e-6);
  EXPECT_NEAR(r.ratio, std::exp(0.02), 1e-12);
  EXPECT_FALSE(paired_ratio_interval({0.05}, 0.95).valid);  // one round: no spread, no interval
}

TEST(SmallSample, WelchIntervalWhenTrialsCannotBePaired) {
  auto r = welch_ratio_interval({0.0, 0.02, 0.01}, {0.1, 0.12}, 0.95);
  ASSERT_TRUE(r.valid);
  EXPECT_NEAR(r.ratio, std::exp(0.11 - 0.01), 1e-12);
  EXPECT_GT(r.df, 1.0);
  EXPECT_LT(r.low, r.ratio);
  EXPECT_GT(r.high, r.ratio);
}

TEST(SmallSample, BeyondNoisePIsOneInsideTheBandAndSmallFarOutside) {
  EXPECT_EQ(beyond_noise_p(0.005, 0.001, 5, 0.01), 1.0);
  EXPECT_LT(beyond_noise_p(0.10, 0.005, 5, 0.01), 1e-3);
  EXPECT_LT(beyond_noise_p(-0.10, 0.005, 5, 0.01), 1e-3);
  // Just beyond the band with a wide interval: not evidence.
  EXPECT_GT(beyond_noise_p(0.012, 0.01, 2, 0.01), 0.4);
}

TEST(SmallSample, HolmStepsDownAndStopsAtTheFirstFailure) {
  // m = 4 at 0.05: thresholds 0.0125, 0.0167, 0.025, 0.05 in order of p.
  auto r = holm_reject({0.01, 0.04, 0.012, 0.03}, 0.05);
  EXPECT_EQ(r, (std::vector<bool>{true, false, true, false}));  // 0.03 > 0.025 stops before 0.04
  EXPECT_EQ(holm_reject({0.001, 0.002}, 0.05), (std::vector<bool>{true, true}));
  EXPECT_EQ(holm_reject({0.2, 0.001}, 0.05), (std::vector<bool>{false, true}));
}

}  // namespace
}  // namespace bp::analysis
