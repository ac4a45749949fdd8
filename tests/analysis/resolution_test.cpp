// The machine's resolution from an A/A in the ledger: the spread recovered from each row's t
// interval, only from an A/A of the same config in one group.
#include "analysis/resolution.hpp"

#include <cmath>
#include <cstdio>
#include <filesystem>

#include <stdlib.h>

#include <gtest/gtest.h>

#include "analysis/small_sample.hpp"

using namespace bp;

namespace {

bench::ledger_row row(std::size_t line, const std::string& config, const std::string& group, double value, double cv,
                      int trials) {
  bench::ledger_row r;
  r.line = line;
  r.config = config;
  r.group = group;
  r.status = "valid";
  r.metric = "output_tps";
  r.trials = trials;
  r.value = value;
  double half = analysis::t_quantile(0.975, trials - 1) * cv * value / std::sqrt(static_cast<double>(trials));
  r.ci_low = value - half;
  r.ci_high = value + half;
  return r;
}

}  // namespace

TEST(Resolution, AnAASweepInTheLedgerGivesTheMachinesSpread) {
  std::vector<bench::ledger_row> rows = {row(2, "/c/a.yaml", "sw1", 100, 0.010, 3),
                                         row(3, "/c/a.yaml", "sw1", 101, 0.018, 3),
                                         row(4, "/c/b.yaml", "sw2", 100, 0.05, 3)};
  auto s = analysis::measured_spread(rows, "/c/a.yaml", "output_tps");
  ASSERT_TRUE(s.has_value());
  EXPECT_NEAR(s->cv, 0.018, 1e-9);  // the larger of the two
  EXPECT_EQ(s->line_a, 2u);
  EXPECT_EQ(s->line_b, 3u);
  EXPECT_EQ(s->describe("r.tsv"), "1.80% (A/A at r.tsv:2-3, 3 trials each)");
}

TEST(Resolution, NothingWithoutAnAAOfThatConfig) {
  // b.yaml once per group: not an A/A; a.yaml with one trial: no spread; another metric: not it.
  std::vector<bench::ledger_row> rows = {row(2, "/c/b.yaml", "sw1", 100, 0.01, 3), row(3, "/c/a.yaml", "sw1", 100, 0.01, 3),
                                         row(4, "/c/b.yaml", "sw2", 100, 0.01, 3)};
  EXPECT_FALSE(analysis::measured_spread(rows, "/c/b.yaml", "output_tps").has_value());
  rows.push_back(row(5, "/c/a.yaml", "", 100, 0.01, 3));  // no group: not interleaved
  EXPECT_FALSE(analysis::measured_spread(rows, "/c/a.yaml", "output_tps").has_value());
  EXPECT_FALSE(analysis::measured_spread(rows, "/c/b.yaml", "ttft_p50").has_value());
}

TEST(Resolution, TheLatestAAWins) {
  std::vector<bench::ledger_row> rows = {row(2, "/c/a.yaml", "old", 100, 0.03, 3), row(3, "/c/a.yaml", "old", 100, 0.03, 3),
                                         row(4, "/c/a.yaml", "new", 100, 0.004, 5), row(5, "/c/a.yaml", "new", 100, 0.004, 5)};
  auto s = analysis::measured_spread(rows, "/c/a.yaml", "output_tps");
  ASSERT_TRUE(s.has_value());
  EXPECT_NEAR(s->cv, 0.004, 1e-9);
  EXPECT_EQ(s->line_a, 4u);
}

namespace {

// --campaign-spread: each earlier try's round log ratios around their own mean, pooled by load
// shape, newest first, up to the design's cap; unreadable or undecided tries are left out.
bench::ledger_row try_row(std::size_t line, const std::string& path, const std::string& decision,
                          const std::string& shape, const std::vector<double>& ratios) {
  bench::ledger_row r;
  r.line = line;
  r.decision = decision;
  r.metric = "output_tps";
  r.load_shape = shape;
  r.result = path;
  if (!ratios.empty()) {
    nlohmann::json doc = {{"rounds", nlohmann::json::array()}};
    for (double x : ratios) doc["rounds"].push_back({{"ratio", x}});
    FILE* f = std::fopen(path.c_str(), "w");
    std::fputs(doc.dump().c_str(), f);
    std::fclose(f);
  }
  return r;
}

TEST(CampaignSpread, PoolsEarlierDecisionsOfTheSameLoadShapeAroundTheirOwnMeans) {
  char tmpl[] = "/tmp/bp_campaign_XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  std::vector<bench::ledger_row> rows = {
      // a shift of +10% between the configs does not enter: only the spread around it
      try_row(2, dir + "/a.json", "faster", "c=1", {1.10, 1.12, 1.08}),
      try_row(3, dir + "/b.json", "no change", "c=4", {1.0, 1.5}),          // another load shape
      try_row(4, dir + "/c.json", "not comparable", "c=1", {1.0, 1.3}),     // no decision
      try_row(5, dir + "/missing.json", "slower", "c=1", {}),               // unreadable: a warning
      try_row(6, dir + "/d.json", "inconclusive", "c=1", {0.99, 1.01}),
  };
  std::vector<std::string> warnings;
  auto pieces = analysis::campaign_pieces(rows, "output_tps", "", &warnings);
  ASSERT_EQ(pieces.size(), 3u);
  EXPECT_EQ(pieces[0].line, 6u);  // newest first
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("ledger line 5"), std::string::npos);
  std::string source;
  auto s = analysis::pool_pieces(pieces, "c=1", &source);
  EXPECT_EQ(s.df, 3);  // 2 from line 2, 1 from line 6
  EXPECT_EQ(source, "6,2");
  auto var = [](std::vector<double> v) {
    double m = 0, ss = 0;
    for (auto& x : v) m += (x = std::log(x)) / static_cast<double>(v.size());
    for (double x : v) ss += (x - m) * (x - m);
    return ss;
  };
  EXPECT_NEAR(s.var, (var({1.10, 1.12, 1.08}) + var({0.99, 1.01})) / 3, 1e-12);
  EXPECT_FALSE(analysis::pool_pieces(pieces, "c=16", nullptr).usable());
  // Another headline metric: nothing.
  EXPECT_TRUE(analysis::campaign_pieces(rows, "ttft_p50", "", nullptr).empty());
  std::filesystem::remove_all(dir);
}

TEST(CampaignSpread, ALongCampaignReadsOnlyTheTriesThePoolCanUse) {
  char tmpl[] = "/tmp/bp_campaign_XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  std::vector<bench::ledger_row> rows;
  std::size_t line = 2;
  // The oldest tries' files are gone: reading them would warn.
  for (int i = 0; i < 5; ++i, ++line) rows.push_back(try_row(line, dir + "/gone.json", "faster", "c=1", {}));
  for (int i = 0; i < 5; ++i, ++line) rows.push_back(try_row(line, dir + "/gone.json", "faster", "c=4", {}));
  // Newer: 25 tries of 4 rounds (3 df each) of c=1, then 2 of c=4.
  for (int i = 0; i < 25; ++i, ++line)
    rows.push_back(try_row(line, dir + "/c1-" + std::to_string(i) + ".json", "slower", "c=1", {1.0, 1.01, 0.99, 1.02}));
  for (int i = 0; i < 2; ++i, ++line)
    rows.push_back(try_row(line, dir + "/c4-" + std::to_string(i) + ".json", "faster", "c=4", {1.0, 1.01, 0.99, 1.02}));
  std::vector<std::string> warnings;
  auto pieces = analysis::campaign_pieces(rows, "output_tps", "", &warnings);
  ASSERT_EQ(pieces.size(), 22u);  // 20 of c=1 reach 60 df; c=4's two, then its gone files
  ASSERT_EQ(warnings.size(), 5u);  // only c=4's: c=1 was full before its gone files
  for (const auto& w : warnings) EXPECT_NE(w.find("gone.json"), std::string::npos) << w;
  EXPECT_EQ(analysis::pool_pieces(pieces, "c=1", nullptr).df, analysis::max_prior_df);
  EXPECT_EQ(analysis::pool_pieces(pieces, "c=4", nullptr).df, 6);
  std::filesystem::remove_all(dir);
}

}  // namespace

namespace {

// A sweep at --confidence 0.9 records its interval at 90%: the spread comes from its trials.json
// (between_trial_cv, or the interval at its ci_level), never from a 95% reading of a 90% interval.
TEST(Resolution, TheSpreadComesFromTheResultFileNotAnAssumedLevel) {
  char tmpl[] = "/tmp/bp_resolution_XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  auto write = [&](const std::string& name, const nlohmann::json& headline) {
    std::string path = dir + "/" + name;
    FILE* f = std::fopen(path.c_str(), "w");
    std::fputs(nlohmann::json{{"summary", {{"headline", headline}}}}.dump().c_str(), f);
    std::fclose(f);
    return path;
  };
  // Intervals built at 90% for a CV of 2%.
  auto r90 = [&](std::size_t line, const std::string& path) {
    auto r = row(line, "/cfg/a.yaml", "g1", 100, 0.02, 3);
    double half = analysis::t_quantile(0.95, 2) * 0.02 * 100 / std::sqrt(3.0);
    r.ci_low = 100 - half;
    r.ci_high = 100 + half;
    r.result = path;
    return r;
  };
  std::vector<bench::ledger_row> rows = {r90(2, write("a.json", {{"ci_level", 0.9}})),
                                         r90(3, write("b.json", {{"ci_level", 0.9}}))};
  auto s = analysis::measured_spread(rows, "/cfg/a.yaml", "output_tps");
  ASSERT_TRUE(s);
  EXPECT_NEAR(s->cv, 0.02, 1e-9);
  rows = {r90(2, write("c.json", {{"between_trial_cv", 0.017}})), r90(3, write("d.json", {{"between_trial_cv", 0.013}}))};
  s = analysis::measured_spread(rows, "/cfg/a.yaml", "output_tps");
  ASSERT_TRUE(s);
  EXPECT_NEAR(s->cv, 0.017, 1e-12);  // the larger of the two
  std::filesystem::remove_all(dir);
}

}  // namespace
