// Statistics with known truth: the bootstrap interval of the median covers the true median as
// often as its level says, over seeded simulations.
#include "analysis/stats.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using namespace bp::bench;

TEST(Stats, LocationSpreadAndPercentilesOfKnownData) {
  stats_options o;
  o.bootstrap_resamples = 0;
  auto s = compute_stats({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, o);
  EXPECT_EQ(s.n, 10u);
  EXPECT_DOUBLE_EQ(s.mean, 5.5);
  EXPECT_DOUBLE_EQ(s.median, 5.5);
  EXPECT_NEAR(s.std, 3.0276503540974917, 1e-12);  // sample standard deviation
  EXPECT_NEAR(s.cv, 3.0276503540974917 / 5.5, 1e-12);
  ASSERT_EQ(s.percentiles.size(), 3u);
  EXPECT_DOUBLE_EQ(s.percentiles[1].second, 9.1);  // numpy: percentile(1..10, 90) = 9.1
  EXPECT_FALSE(s.has_ci);
}

TEST(Stats, ThroughputMetricsGetTheirLowTail) {
  stats_options o;
  o.low_tail = true;
  o.bootstrap_resamples = 0;
  auto j = to_json(compute_stats({10, 20, 30, 40}, o), o);
  EXPECT_TRUE(j.contains("p10"));
  EXPECT_TRUE(j.contains("p1"));
  EXPECT_TRUE(j.contains("p99"));
}

TEST(Stats, TheIntervalIsSeededAndContainsTheSampleMedian) {
  std::mt19937_64 rng(3);
  std::lognormal_distribution<double> d(3, 0.4);
  std::vector<double> v;
  for (int i = 0; i < 101; ++i) v.push_back(d(rng));
  stats_options o;
  o.seed = 42;
  auto a = compute_stats(v, o), b = compute_stats(v, o);
  ASSERT_TRUE(a.has_ci);
  EXPECT_EQ(a.ci_low, b.ci_low);
  EXPECT_EQ(a.ci_high, b.ci_high);
  EXPECT_LE(a.ci_low, a.median);
  EXPECT_GE(a.ci_high, a.median);
}

TEST(Stats, NinetyFivePercentIntervalsCoverTheTrueMedianNinetyToNinetyNinePercentOfTheTime) {
  // 200 seeded simulations of 50 requests from a skewed (lognormal) latency distribution whose
  // true median is exp(mu). The figure is recorded in docs/metrics.md.
  const double mu = 4.0, sigma = 0.5, truth = std::exp(mu);
  int covered = 0;
  const int sims = 200;
  for (int k = 0; k < sims; ++k) {
    std::mt19937_64 rng(1000 + k);
    std::lognormal_distribution<double> d(mu, sigma);
    std::vector<double> v;
    for (int i = 0; i < 50; ++i) v.push_back(d(rng));
    stats_options o;
    o.seed = 7 + k;
    auto s = compute_stats(v, o);
    covered += s.ci_low <= truth && truth <= s.ci_high;
  }
  double coverage = static_cast<double>(covered) / sims;
  RecordProperty("coverage", std::to_string(coverage));
  std::printf("coverage of the 95%% median interval: %.3f (%d of %d)\n", coverage, covered, sims);
  EXPECT_GE(coverage, 0.90);
  EXPECT_LE(coverage, 0.99);
}

TEST(Stats, PercentileListsAreValidated) {
  EXPECT_EQ(parse_percentiles("50,99.9,0.1"), (std::vector<double>{50, 99.9, 0.1}));
  EXPECT_THROW(parse_percentiles("50,100"), std::invalid_argument);
  EXPECT_THROW(parse_percentiles("nan"), std::invalid_argument);
  EXPECT_THROW(parse_percentiles(""), std::invalid_argument);
  EXPECT_EQ(percentile_key(99.9), "p99.9");
}

TEST(Stats, OrderStatisticDrawsHaveTheDistributionOfResamplingIndices) {
  // The same bootstrap, two ways: resampling indices (O(n) a draw) and drawing the resample's
  // order statistics directly (O(1)). Their quantiles agree within sampling error.
  for (std::size_t n : {9u, 100u, 101u}) {
    std::vector<double> v;
    std::mt19937_64 g(3);
    std::exponential_distribution<double> e(1.0);
    for (std::size_t i = 0; i < n; ++i) v.push_back(e(g));
    std::sort(v.begin(), v.end());
    const int B = 40000;
    std::vector<double> brute(B), fast(B), sample(n);
    std::uniform_int_distribution<std::size_t> pick(0, n - 1);
    bp::bench::rng r(5);
    for (int b = 0; b < B; ++b) {
      for (auto& x : sample) x = v[pick(g)];
      std::sort(sample.begin(), sample.end());
      brute[b] = bp::bench::percentile_sorted(sample, 50);
      fast[b] = bp::bench::resampled_percentile(v, 50, r);
    }
    std::sort(brute.begin(), brute.end());
    std::sort(fast.begin(), fast.end());
    for (double q : {5.0, 25.0, 50.0, 75.0, 95.0}) {
      double a = bp::bench::percentile_sorted(brute, q), b = bp::bench::percentile_sorted(fast, q);
      double spread = bp::bench::percentile_sorted(brute, 97.5) - bp::bench::percentile_sorted(brute, 2.5);
      EXPECT_NEAR(a, b, 0.05 * spread) << "n=" << n << " q=" << q;
    }
  }
}

TEST(Stats, MannWhitneySeparatesShiftedSamplesAndNotEqualOnes) {
  std::mt19937_64 g(9);
  std::normal_distribution<double> z(0, 1);
  std::vector<double> a, b, c;
  for (int i = 0; i < 60; ++i) {
    a.push_back(z(g));
    b.push_back(z(g));
    c.push_back(z(g) + 1.0);
  }
  EXPECT_GT(bp::bench::mann_whitney_p(a, b), 0.05);
  EXPECT_LT(bp::bench::mann_whitney_p(a, c), 0.001);
  EXPECT_DOUBLE_EQ(bp::bench::mann_whitney_p(std::vector<double>(10, 1.0), std::vector<double>(10, 1.0)), 1.0);
}
