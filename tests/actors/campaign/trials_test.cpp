// The order trials run in: rounds of every config, optionally shuffled per round (seeded).
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "actors/campaign/trials.hpp"
#include "analysis/curves.hpp"

#include <optional>

using bp::measure::trial_order;

TEST(TrialOrder, InterleavedRunsRoundsOfEveryConfigInAlternatingDirections) {
  auto o = trial_order(3, 2, false, 1);
  std::vector<std::pair<std::size_t, int>> want = {{0, 0}, {1, 0}, {2, 0}, {2, 1}, {1, 1}, {0, 1}};
  EXPECT_EQ(o, want);
}

TEST(TrialOrder, AnEvenNumberOfInterleavedRoundsCancelsATrendWithinRounds) {
  // Each config's mean place within its rounds is the same for all: a machine that slows down
  // steadily through every round biases no pair (with A B C in every round the last config would
  // always come two places after the first).
  for (std::size_t configs : {2u, 3u, 5u}) {
    auto o = trial_order(configs, 4, false, 1);
    std::vector<double> place(configs, 0);
    for (std::size_t i = 0; i < o.size(); ++i) place[o[i].first] += static_cast<double>(i % configs);
    for (std::size_t c = 1; c < configs; ++c) EXPECT_DOUBLE_EQ(place[c], place[0]) << configs << " configs";
  }
}

TEST(TrialOrder, ShuffledPermutesEachRoundReproduciblyBySeed) {
  auto a = trial_order(5, 4, true, 7), b = trial_order(5, 4, true, 7), c = trial_order(5, 4, true, 8);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  ASSERT_EQ(a.size(), 20u);
  bool any_moved = false;
  for (int round = 0; round < 4; ++round) {
    std::set<std::size_t> configs;
    for (int i = 0; i < 5; ++i) {
      const auto& [cfg, trial] = a[static_cast<std::size_t>(round * 5 + i)];
      EXPECT_EQ(trial, round);  // a round holds every config once before the next round starts
      configs.insert(cfg);
      any_moved = any_moved || cfg != static_cast<std::size_t>(i);
    }
    EXPECT_EQ(configs.size(), 5u);
  }
  EXPECT_TRUE(any_moved);
}

namespace {

using json = nlohmann::json;

/// A valid curve result whose capacity is `cap` (null: below the lowest load).
json curve_result(std::optional<double> cap, int seed) {
  json reqs = json::array();
  for (int i = 0; i < 20; ++i)
    reqs.push_back({{"index", i}, {"query_line", 2 + i}, {"ok", true}, {"e2e_ms", 40.0 + seed + i % 3}, {"ttft_ms", 10.0},
                    {"output_tokens", 8}, {"itl_ms", json::array({5, 5})}});
  json capacity = cap ? json{{"value", *cap}, {"ci", {*cap, *cap + 1}}, {"below_lowest", false}, {"at_least", false},
                             {"axis", "concurrency"}, {"text", "x"}}
                      : json{{"value", nullptr}, {"ci", {nullptr, nullptr}}, {"below_lowest", true}, {"axis", "concurrency"},
                             {"text", "below the lowest load measured (1 concurrency)"}};
  // As bench writes it: below the lowest load, the value 0 with the reason (net/loadgen/bench.cpp).
  json headline = cap ? json{{"metric", "capacity"}, {"value", *cap}, {"ci", capacity["ci"]}}
                      : json{{"metric", "capacity"}, {"value", 0.0}, {"ci", nullptr}, {"error", "capacity below the lowest load"}};
  return {{"valid", true},
          {"model", "m"},
          {"snapshot", json::object()},
          {"workload", {{"sha256", "w"}}},
          {"options", {{"concurrency", 1}, {"rate", 0}, {"requests", 20}, {"load", "concurrency=1,2,4"}}},
          {"load", {{"profile", "concurrency=1,2,4"}, {"requests_per_point", 20}, {"points", json::array()}, {"capacity", capacity}}},
          {"summary", {{"requests", 20}, {"errors", 0}, {"completed", 20}, {"wall_s", 1.0}, {"headline", headline}}},
          {"requests", reqs}};
}

bp::measure::sweep_entry entry(const std::string& config, const std::vector<std::optional<double>>& caps,
                               const bp::bench::options& bo) {
  bp::measure::sweep_entry e;
  e.config = config;
  int seed = 0;
  for (auto c : caps) {
    bp::measure::outcome o;
    o.valid = o.started = o.published = o.teardown_verified = true;
    o.result = curve_result(c, seed++);
    o.run_dir = "/tmp/none/" + config + std::to_string(seed);
    o.result_path = o.run_dir + "/result.json";
    e.trials.push_back(o);
  }
  e.aggregate = bp::measure::aggregate_trials(config, e.trials, bo, "/tmp/none");
  return e;
}

}  // namespace

TEST(SweepTable, TheCapacityColumnWithObjectivesAndCurves) {
  bp::bench::options bo;
  bo.headline = "capacity";
  bp::bench::slo_map thresholds;
  bp::bench::parse_slo_text("ttft_p99_ms<=30", thresholds, bo.objectives);
  bo.stats.bootstrap_resamples = 2000;
  bp::bench::compare_options co;
  co.resamples = 2000;
  // One trial each: the curve's own capacity and interval, in the column and as the headline.
  auto one = bp::measure::report_sweep({entry("a.yaml", {2.0}, bo), entry("b.yaml", {4.0}, bo), entry("c.yaml", {std::nullopt}, bo)},
                                       bo, co, "/tmp/none", false, 1);
  EXPECT_NE(one.table.find("capacity [CI]"), std::string::npos) << one.table;
  EXPECT_NE(one.table.find("4 [4, 5]"), std::string::npos) << one.table;
  EXPECT_NE(one.table.find("2 [2, 3]"), std::string::npos) << one.table;
  EXPECT_NE(one.table.find("below lowest"), std::string::npos) << one.table;
  EXPECT_NE(one.table.find("capacity: the highest concurrency whose point (and every lower one) meets ttft_p99_ms<=30"),
            std::string::npos)
      << one.table;
  EXPECT_TRUE(one.doc["capacity_column"].get<bool>());
  EXPECT_EQ(one.doc["rows"][0]["config"], "b.yaml");  // sorted by the capacity
  EXPECT_EQ(one.doc["rows"][0]["headline_ci"], json({4.0, 5.0}));  // the curve's interval, kept by the aggregate
  // Several trials: the t interval over their capacities; a trial below the lowest load is named.
  auto three = bp::measure::report_sweep({entry("a.yaml", {2.0, 2.0, 4.0}, bo), entry("c.yaml", {4.0, std::nullopt, 4.0}, bo)},
                                         bo, co, "/tmp/none", false, 3);
  EXPECT_NE(three.table.find("2.67 ["), std::string::npos) << three.table;
  EXPECT_NE(three.table.find("(3 trials)"), std::string::npos) << three.table;
  EXPECT_NE(three.table.find("below lowest (trial 2)"), std::string::npos) << three.table;
  // Without objectives (or without curves): no column.
  bp::bench::options plain = bo;
  plain.objectives.clear();
  plain.headline = "output_tps";
  auto none = bp::measure::report_sweep({entry("a.yaml", {2.0}, plain)}, plain, co, "/tmp/none", false, 1);
  EXPECT_EQ(none.table.find("capacity [CI]"), std::string::npos) << none.table;
  EXPECT_FALSE(none.doc["capacity_column"].get<bool>());
}
