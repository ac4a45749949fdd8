// The order trials run in: rounds of every config, optionally shuffled per round (seeded).
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "actors/measure/trials.hpp"

using bp::measure::trial_order;

TEST(TrialOrder, InterleavedRunsRoundsOfEveryConfigInOrder) {
  auto o = trial_order(3, 2, false, 1);
  std::vector<std::pair<std::size_t, int>> want = {{0, 0}, {1, 0}, {2, 0}, {0, 1}, {1, 1}, {2, 1}};
  EXPECT_EQ(o, want);
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
