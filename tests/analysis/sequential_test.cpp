// The sequential verdict's promises, checked by seeded simulation with known truth (the same
// scenarios perf/sequential_sim prints with more decisions; docs/benchmarks.md).
#include "analysis/sequential.hpp"

#include <cmath>

#include <gtest/gtest.h>

namespace bp::analysis {
namespace {

constexpr int kDecisions = 2000;

TEST(Sequential, CalibrationSpendsExactlyAlphaOverAllLooks) {
  const auto& d = make_design(10, 0.95);
  ASSERT_EQ(d.nominal.size(), 11u);
  EXPECT_EQ(d.nominal[2], 0.0);  // no look before three rounds
  double sum = 0;
  for (int k = 3; k <= 10; ++k) {
    EXPECT_GT(d.nominal[static_cast<std::size_t>(k)], 0.0);
    if (k > 3) {
      EXPECT_GT(d.nominal[static_cast<std::size_t>(k)], d.nominal[static_cast<std::size_t>(k - 1)]);
    }
    sum += d.nominal[static_cast<std::size_t>(k)];
  }
  // Looks are correlated: the calibrated levels add up to more than alpha (Bonferroni would be
  // exactly alpha) but each stays below it.
  EXPECT_GT(sum, 0.05);
  EXPECT_LT(d.nominal[10], 0.05);
  // Deterministic: the same design twice.
  EXPECT_EQ(&make_design(10, 0.95), &d);
}

TEST(Sequential, TwoRoundsAtMostMeansOneLookAtTheSecond) {
  const auto& d = make_design(2, 0.95);
  EXPECT_EQ(d.first_look, 2);
  EXPECT_NEAR(d.nominal[2], 0.05, 0.003);  // one look: all of alpha there
}

TEST(Sequential, RefusesDesignsOutOfRange) {
  EXPECT_THROW(make_design(1, 0.95), std::invalid_argument);
  EXPECT_THROW(make_design(10, 0.2), std::invalid_argument);
  EXPECT_THROW(make_design(10, std::nan("")), std::invalid_argument);
}

TEST(Sequential, NoVerdictBeforeThreeRounds) {
  const auto& d = make_design(10, 0.95);
  EXPECT_EQ(look(d, {0.5}, 0.01, true).verdict, "");
  EXPECT_EQ(look(d, {0.5, 0.5001}, 0.01, true).verdict, "");
  EXPECT_EQ(look(d, {0.5, 0.5001, 0.4999}, 0.01, true).verdict, "faster");
  EXPECT_EQ(look(d, {0.5, 0.5001, 0.4999}, 0.01, false).verdict, "slower");  // latency: higher is worse
  EXPECT_EQ(look(d, {0.0001, -0.0001, 0.0}, 0.01, true).verdict, "no change");
}

TEST(Sequential, AATrialsSayFasterOrSlowerAtMostFivePercent) {
  const auto& d = make_design(10, 0.95);
  for (double cv : {0.005, 0.01, 0.03}) {
    scenario s;
    s.lifecycle_cv = cv;
    auto r = simulate(d, s, kDecisions, 11);
    EXPECT_LE(r.share(r.faster + r.slower), 0.055) << "lifecycle cv " << cv;
  }
}

TEST(Sequential, HalfTheNoiseIsNotCalledAChange) {
  const auto& d = make_design(10, 0.95);
  for (double ratio : {1.005, 0.995}) {
    scenario s;
    s.true_ratio = ratio;
    auto r = simulate(d, s, kDecisions, 12);
    EXPECT_LE(r.share(r.faster + r.slower), 0.055) << "true ratio " << ratio;
  }
}

TEST(Sequential, ThreePercentAtOnePercentNoiseIsFoundWithinTenRounds) {
  const auto& d = make_design(10, 0.95);
  scenario s;
  s.true_ratio = 1.03;
  auto r = simulate(d, s, kDecisions, 13);
  EXPECT_GE(r.share(r.faster), 0.90);
  EXPECT_LE(r.share(r.slower), 0.0);
}

TEST(Sequential, AnUnchangedConfigAtHalfAPercentIsNoChangeWithinTenRounds) {
  const auto& d = make_design(10, 0.95);
  scenario s;
  s.lifecycle_cv = 0.005;
  auto r = simulate(d, s, kDecisions, 14);
  EXPECT_GE(r.share(r.no_change), 0.80);
}

TEST(Sequential, ALargeRegressionStopsEarly) {
  const auto& d = make_design(10, 0.95);
  scenario s;
  s.true_ratio = 0.90;
  s.lifecycle_cv = 0.02;
  auto r = simulate(d, s, kDecisions, 15);
  EXPECT_GE(r.share(r.slower), 0.99);
  EXPECT_LT(r.mean_rounds, 5.0);
}

TEST(Sequential, LatencyMetricsMirrorThroughput) {
  const auto& d = make_design(10, 0.95);
  scenario s;
  s.true_ratio = 1.10;  // 10% more latency
  s.higher_is_better = false;
  auto r = simulate(d, s, kDecisions, 16);
  EXPECT_GE(r.share(r.slower), 0.99);
}

TEST(Sequential, FixedDesignReferenceIsComputed) {
  scenario s;
  s.true_ratio = 1.03;
  int n = fixed_rounds_for("faster", 0.90, 0.05, s, 1000, 17);
  EXPECT_GE(n, 3);
  EXPECT_LE(n, 15);
}

}  // namespace
}  // namespace bp::analysis

namespace bp::analysis {
namespace {

TEST(Sequential, FutilityStopsHopelessDecisionsEarlyWithoutAClaim) {
  const auto& d = make_design(10, 0.95);
  scenario s;
  s.lifecycle_cv = 0.03;  // a 1% band cannot be resolved in ten rounds at 3% spread
  auto r = simulate(d, s, kDecisions, 21);
  EXPECT_LT(r.mean_rounds, 7.0);
  EXPECT_LE(r.share(r.faster + r.slower), 0.055);
  // A clear effect is never stopped for futility.
  scenario e;
  e.true_ratio = 1.03;
  auto f = simulate(d, e, kDecisions, 22);
  EXPECT_GE(f.share(f.faster), 0.90);
  // One look on its own: a wild spread is futile, a tight one is not.
  EXPECT_TRUE(look(d, {0.05, -0.06, 0.04, -0.05}, 0.01, true).futile);
  EXPECT_FALSE(look(d, {0.031, 0.029, 0.030, 0.032}, 0.01, true).futile);
}

}  // namespace
}  // namespace bp::analysis

namespace bp::analysis {
namespace {

// The calibration itself: on fresh null paths (another seed than the design's), the share whose
// interval's lower bound crosses above the truth at some look is alpha (one claim's error).
double one_sided_crossing(const sequential_design& d, int paths, std::uint64_t seed, int prior_df) {
  scenario s;  // any spread: the t statistic is pivotal; noise 0 puts the band's edge at the truth
  s.noise = 0;
  s.drift = 0;
  s.prior_df = prior_df;
  auto r = simulate(d, s, paths, seed);
  return r.share(r.faster);
}

TEST(Sequential, FreshNullPathsCrossAtAlphaOnEachSide) {
  const auto& d = make_design(10, 0.95);
  double rate = one_sided_crossing(d, 20000, 9001, 0);
  EXPECT_GE(rate, 0.043);
  EXPECT_LE(rate, 0.055);
}

TEST(Sequential, TheCampaignsSpreadKeepsAlphaWhenItHolds) {
  const auto& d = make_design(10, 0.95, 1.0, 3, 20);
  EXPECT_EQ(d.first_look, 2);
  EXPECT_EQ(d.prior_df, 20);
  EXPECT_GT(d.critical[2], 0.0);
  EXPECT_LT(d.critical[3], make_design(10, 0.95).critical[3]);  // more df: a smaller t quantile
  double rate = one_sided_crossing(d, 20000, 9002, 20);
  EXPECT_GE(rate, 0.043);
  EXPECT_LE(rate, 0.055);
  // At the band's edge and in an A/A the claims stay within alpha; a clear effect is found sooner.
  scenario edge;
  edge.true_ratio = 1.01;
  edge.prior_df = 20;
  auto e = simulate(d, edge, 5 * kDecisions, 9003);  // at the edge the rate is alpha itself: more decisions
  EXPECT_LE(e.share(e.faster), 0.055);
  scenario plus3;
  plus3.true_ratio = 1.03;
  plus3.prior_df = 20;
  auto with = simulate(d, plus3, kDecisions, 9004);
  auto without = simulate(make_design(10, 0.95), plus3, kDecisions, 9004);
  EXPECT_GE(with.share(with.faster), 0.90);
  EXPECT_LT(with.mean_rounds, without.mean_rounds - 1.0);
}

TEST(Sequential, APairThatSpreadsMoreThanTheCampaignDropsItsSpread) {
  const auto& d = make_design(10, 0.95, 1.0, 3, 20);
  campaign_spread prior{0.0001, 20};  // sd 1% per round
  // Rounds spreading about 6%: the guard drops the prior, and the look is the design's without it.
  std::vector<double> x = {0.06, -0.05, 0.07, -0.06};
  auto l = look(d, x, 0.01, true, prior);
  EXPECT_FALSE(l.prior_used);
  EXPECT_GT(l.dropped_at, 0);
  EXPECT_LT(l.guard_p, 0.05);
  // Rounds like the campaign's: it is used, and at round 2 a clear change is already a verdict.
  auto ok = look(d, {0.05, 0.052}, 0.01, true, prior);
  EXPECT_TRUE(ok.prior_used);
  EXPECT_EQ(ok.verdict, "faster");
  EXPECT_EQ(ok.df, 21);
  // Without it nothing is said at round 2.
  EXPECT_EQ(look(make_design(10, 0.95), {0.05, 0.052}, 0.01, true).verdict, "");
}

}  // namespace
}  // namespace bp::analysis
