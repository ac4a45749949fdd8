#include "analysis/curves.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using namespace bp::bench;
using json = nlohmann::json;

namespace {

/// A point's result document: n requests whose TTFT is drawn around `ttft` (lognormal, CV ~ cv).
json point_doc(double ttft, int n, std::uint64_t seed, double cv = 0.05) {
  std::mt19937_64 g(seed);
  std::normal_distribution<double> z(0, 1);
  json reqs = json::array();
  for (int i = 0; i < n; ++i) {
    double t = ttft * std::exp(cv * z(g));
    reqs.push_back({{"ok", true}, {"ttft_ms", t}, {"e2e_ms", t + 100}, {"output_tokens", 10}, {"itl_ms", json::array({10, 10})}});
  }
  return {{"summary", {{"completed", n}, {"wall_s", 1.0}}}, {"requests", reqs}};
}

std::vector<slo_objective> objectives(const std::string& text) {
  slo_map t;
  std::vector<slo_objective> o;
  parse_slo_text(text, t, o);
  return o;
}

}  // namespace

TEST(Curves, ParsesObjectivesAndThresholds) {
  slo_map t;
  std::vector<slo_objective> o;
  parse_slo_text("ttft_p99_ms<=200, itl_p50_ms<=30,e2e_ms=4000", t, o);
  ASSERT_EQ(o.size(), 2u);
  EXPECT_EQ(o[0].metric, "ttft_ms");
  EXPECT_EQ(o[0].p, 99);
  EXPECT_EQ(o[0].limit, 200);
  EXPECT_EQ(o[0].text, "ttft_p99_ms<=200");
  EXPECT_EQ(o[1].metric, "itl_ms");
  // Objectives are goodput thresholds too, unless one is given.
  EXPECT_EQ(t.at("ttft_ms"), 200);
  EXPECT_EQ(t.at("e2e_ms"), 4000);
  for (const char* bad : {"ttft_p99<=200", "ttft_p101_ms<=2", "foo_p50_ms<=3", "ttft_p99_ms<=-1", "ttft_p99_ms<=x",
                          "ttft_ms=abc", ""}) {
    slo_map t2;
    std::vector<slo_objective> o2;
    EXPECT_THROW(parse_slo_text(bad, t2, o2), std::invalid_argument) << bad;
  }
}

TEST(Curves, ObjectiveVerdictsFollowTheInterval) {
  auto o = objectives("ttft_p50_ms<=100");
  EXPECT_EQ(objective_at(point_doc(50, 200, 1), o[0], 2000, 0.95, 1)["met"], "yes");
  EXPECT_EQ(objective_at(point_doc(200, 200, 2), o[0], 2000, 0.95, 1)["met"], "no");
  auto near = objective_at(point_doc(100, 30, 3, 0.3), o[0], 2000, 0.95, 1);
  EXPECT_TRUE(near["met"] == "likely" || near["met"] == "unlikely") << near.dump();
  json empty = {{"summary", {{"completed", 0}}}, {"requests", json::array()}};
  EXPECT_EQ(objective_at(empty, o[0], 100, 0.95, 1)["met"], "no");
}

TEST(Curves, CapacityIsTheHighestLoadMeetingEveryObjective) {
  auto o = objectives("ttft_p99_ms<=100");
  // Known truth: TTFT 20 ms up to load 4, then 300 ms (a queue): capacity 4, surely.
  json pts = json::array();
  for (double load : {1.0, 2.0, 4.0, 8.0, 16.0}) {
    json d = point_doc(load <= 4 ? 20 : 300, 100, static_cast<std::uint64_t>(load));
    pts.push_back({{"load", load}, {"axis", "concurrency"}, {"objectives", json::array({objective_at(d, o[0], 1000, 0.95, 1)})}});
  }
  json c = capacity(pts, o);
  EXPECT_EQ(c["value"], 4.0);
  EXPECT_EQ(c["ci"], json::array({4.0, 4.0}));
  EXPECT_FALSE(c["below_lowest"].get<bool>());
  // The bisection measures between 4 and 8 next.
  auto next = refine_load(pts, o, true);
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(*next, 6);
  // None meets: "below the lowest load measured", no number.
  json bad = json::array();
  for (double load : {1.0, 2.0})
    bad.push_back({{"load", load}, {"axis", "concurrency"},
                   {"objectives", json::array({objective_at(point_doc(500, 50, 9), o[0], 500, 0.95, 1)})}});
  json none = capacity(bad, o);
  EXPECT_TRUE(none["value"].is_null());
  EXPECT_TRUE(none["below_lowest"].get<bool>());
  EXPECT_NE(none["text"].get<std::string>().find("below the lowest load measured"), std::string::npos);
  // All meet: at least the highest load.
  json all = json::array();
  for (double load : {1.0, 2.0})
    all.push_back({{"load", load}, {"axis", "req/s"},
                   {"objectives", json::array({objective_at(point_doc(5, 50, 9), o[0], 500, 0.95, 1)})}});
  json at_least = capacity(all, o);
  EXPECT_EQ(at_least["value"], 2.0);
  EXPECT_TRUE(at_least["at_least"].get<bool>());
  EXPECT_TRUE(at_least["ci"][1].is_null());
}

TEST(Curves, UncertainPointsWidenTheCapacityInterval) {
  auto o = objectives("ttft_p50_ms<=100");
  json pts = json::array();
  auto add = [&](double load, const char* met) {
    pts.push_back({{"load", load}, {"axis", "req/s"}, {"objectives", json::array({{{"met", met}}})}});
  };
  add(1, "yes");
  add(2, "likely");
  add(3, "unlikely");
  add(4, "no");
  json c = capacity(pts, o);
  EXPECT_EQ(c["value"], 2.0);
  EXPECT_EQ(c["ci"], json::array({1.0, 3.0}));
}

TEST(Curves, SaturationIsDetectedOnlyWhenTheQueueGrows) {
  // Seeded simulation with known truth: an M/D/1 queue fed above (rho 1.3) and below (rho 0.5)
  // its service rate. Above: waiting time grows without bound -> over-saturated; below: stable.
  for (double rho : {0.5, 1.3}) {
    for (std::uint64_t seed = 1; seed <= 20; ++seed) {
      std::mt19937_64 g(seed);
      std::exponential_distribution<double> gap(rho / 10.0);  // service 10 ms
      std::vector<double> send, end, ttft;
      double t = 0, free_at = 0;
      for (int i = 0; i < 300; ++i) {
        double start = std::max(t, free_at);
        free_at = start + 10;
        send.push_back(t);
        ttft.push_back(start - t + 2);
        end.push_back(free_at);
        t += gap(g);
      }
      json s = saturation(send, end, ttft);
      EXPECT_EQ(s["over_saturated"].get<bool>(), rho > 1) << "rho " << rho << " seed " << seed << " " << s.dump();
    }
  }
  json few = saturation({0, 1}, {1, 2}, {1, 1});
  EXPECT_TRUE(few["over_saturated"].is_null());
}

TEST(Curves, KneeOfASaturatingCurveAndNoneOfALine) {
  json k = knee({1, 2, 4, 8, 16}, {100, 200, 390, 400, 405});
  ASSERT_TRUE(k.is_object());
  EXPECT_EQ(k["load"], 4);
  EXPECT_TRUE(knee({1, 2, 3, 4}, {10, 20, 30, 40}).is_null());
  EXPECT_TRUE(knee({1, 2}, {10, 20}).is_null());
}

TEST(Capacity, ItsShortTextForTables) {
  EXPECT_EQ(capacity_short({{"value", 4.0}, {"ci", {4.0, 5.0}}, {"below_lowest", false}, {"at_least", false}}), "4 [4, 5]");
  EXPECT_EQ(capacity_short({{"value", 8.0}, {"ci", {8.0, nullptr}}, {"below_lowest", false}, {"at_least", true}}),
            ">= 8 [8, >= 8]");
  EXPECT_EQ(capacity_short({{"value", 2.5}, {"ci", {nullptr, 5.0}}, {"below_lowest", false}}), "2.5 [below lowest, 5]");
  EXPECT_EQ(capacity_short({{"value", nullptr}, {"ci", {nullptr, nullptr}}, {"below_lowest", true}}), "below lowest");
  EXPECT_EQ(capacity_short({{"value", nullptr}, {"error", "no load points"}}), "-");
  EXPECT_EQ(capacity_short(json()), "-");
}
