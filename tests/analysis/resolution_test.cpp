// The machine's resolution from an A/A in the ledger: the spread recovered from each row's t
// interval, only from an A/A of the same config in one group.
#include "analysis/resolution.hpp"

#include <cmath>

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
