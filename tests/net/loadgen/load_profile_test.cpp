#include "net/loadgen/load_profile.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <stdexcept>

using namespace bp::bench;

TEST(LoadProfile, ParsesEveryProfile) {
  auto c = parse_load("concurrency=1,2,4,8");
  ASSERT_EQ(c.points.size(), 4u);
  EXPECT_EQ(c.points[2].how, load_point::kind::concurrency);
  EXPECT_EQ(c.points[3].value, 8);
  EXPECT_TRUE(c.is_curve());
  EXPECT_EQ(c.points[1].label(), "concurrency=2");
  auto r = parse_load("rate=0.5,2");
  EXPECT_TRUE(r.points[0].open_loop());
  EXPECT_EQ(r.points[0].axis(), "req/s");
  EXPECT_EQ(parse_load("sync").points.size(), 1u);
  EXPECT_FALSE(parse_load("sync").is_curve());
  EXPECT_EQ(parse_load("sweep").sweep_rates, 4);
  EXPECT_EQ(parse_load("sweep:7").sweep_rates, 7);
  EXPECT_TRUE(parse_load("sweep:2").is_curve());
  EXPECT_EQ(parse_load("throughput").points[0].how, load_point::kind::throughput);
}

TEST(LoadProfile, RefusesMalformedProfilesNamingTheOption) {
  for (const char* bad : {"", "concurrency=", "concurrency=0", "concurrency=2,1", "concurrency=1.5", "rate=-1",
                          "rate=abc", "rate=1,1", "sweep:0", "sweep:x", "sweepy", "burst=3", "rate=inf"}) {
    try {
      parse_load(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("--load"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(ramp_point("sideways", 1, 2), std::invalid_argument);
  EXPECT_THROW(ramp_point("linear", 0, 2), std::invalid_argument);
  EXPECT_THROW(ramp_point("exponential", 2, 2), std::invalid_argument);
}

TEST(LoadProfile, SchedulesAreSeededAndHaveTheAskedRate) {
  auto a = arrival_schedule(50, 1, 20000, 0, 7), b = arrival_schedule(50, 1, 20000, 0, 7);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, arrival_schedule(50, 1, 20000, 0, 8));
  EXPECT_EQ(a.front(), 0);
  for (std::size_t i = 1; i < a.size(); ++i) ASSERT_GE(a[i], a[i - 1]);
  // 20000 arrivals at 50/s span about 400 s: the mean gap is 20 ms within a few standard errors.
  double mean_gap = a.back() / static_cast<double>(a.size() - 1);
  EXPECT_NEAR(mean_gap, 20.0, 20.0 * 4 / std::sqrt(20000.0));
}

TEST(LoadProfile, BurstinessIsTheGammaShapeOfTheGaps) {
  // The gaps' coefficient of variation is 1/sqrt(K): K=0.25 gives CV 2, K=4 gives CV 0.5.
  for (double k : {0.25, 1.0, 4.0}) {
    auto s = arrival_schedule(100, k, 40001, 0, 3);
    std::vector<double> g;
    for (std::size_t i = 1; i < s.size(); ++i) g.push_back(s[i] - s[i - 1]);
    double m = std::accumulate(g.begin(), g.end(), 0.0) / g.size(), v = 0;
    for (double x : g) v += (x - m) * (x - m);
    double cv = std::sqrt(v / (g.size() - 1)) / m;
    EXPECT_NEAR(m, 10.0, 0.5) << k;
    EXPECT_NEAR(cv, 1 / std::sqrt(k), 0.1 / std::sqrt(k)) << k;
  }
}

TEST(LoadProfile, DurationBoundsTheSchedule) {
  auto s = arrival_schedule(100, 1, 1000000, 2.0, 1);
  ASSERT_FALSE(s.empty());
  EXPECT_LT(s.back(), 2000.0);
  EXPECT_NEAR(static_cast<double>(s.size()), 200.0, 4 * std::sqrt(200.0));
  // Throughput: everything due at once.
  auto t = arrival_schedule(0, 1, 5, 0, 1);
  EXPECT_EQ(t, std::vector<double>(5, 0.0));
}

TEST(LoadProfile, RampsRiseFromStartToEnd) {
  for (const char* shape : {"linear", "exponential"}) {
    auto s = ramp_schedule(shape, 10, 100, 1, 1000000, 20, 5);
    ASSERT_FALSE(s.empty());
    EXPECT_LT(s.back(), 20000.0);
    // Arrivals in the last 2 s outnumber those in the first 2 s by about the rates' ratio.
    long first = 0, last = 0;
    for (double t : s) {
      if (t < 2000) ++first;
      if (t >= 18000) ++last;
    }
    EXPECT_GT(last, 4 * first) << shape;
    // The expected total is the integral of the rate: linear (10+100)/2*20 = 1100.
    if (std::string(shape) == "linear") {
      EXPECT_NEAR(static_cast<double>(s.size()), 1100.0, 4 * std::sqrt(1100.0));
    }
  }
}

TEST(LoadProfile, SweepRatesLieStrictlyBetween) {
  auto r = sweep_rates(2, 12, 4);
  ASSERT_EQ(r.size(), 4u);
  EXPECT_DOUBLE_EQ(r[0], 4);
  EXPECT_DOUBLE_EQ(r[3], 10);
  EXPECT_TRUE(sweep_rates(5, 5, 3).empty());
}
