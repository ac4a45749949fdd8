// Variance components with known truth: passes within a lifecycle and lifecycles apart.
#include "analysis/variance.hpp"

#include <cmath>
#include <random>

#include <gtest/gtest.h>

using json = nlohmann::json;

namespace {

/// A result of `passes` passes of `per_pass` requests; pass p's requests run at speed[p] tok/s.
json result_of(const std::vector<double>& speed, int per_pass) {
  json reqs = json::array();
  int i = 0;
  for (double sp : speed)
    for (int k = 0; k < per_pass; ++k, ++i) {
      double e2e = 32 / sp * 1000;
      reqs.push_back({{"index", i}, {"query_line", 2 + k}, {"ok", true}, {"start_ms", i * e2e}, {"e2e_ms", e2e},
                      {"ttft_ms", e2e / 32}, {"output_tokens", 32}, {"itl_ms", json::array({e2e / 32})}});
    }
  return {{"kind", "bench-proxy bench result"},
          {"valid", true},
          {"options", {{"requests", i}, {"repeats", static_cast<int>(speed.size())}}},
          {"summary", {{"wall_s", 1.0}}},
          {"requests", reqs}};
}

}  // namespace

TEST(Variance, PassesOfOneLifecycleGiveTheWithinSpreadOnly) {
  auto r = result_of({100, 102, 98, 100}, 10);
  auto p = bp::analysis::pass_values(r, "output_tps", {});
  ASSERT_EQ(p.size(), 4u);
  EXPECT_NEAR(p[1], 102, 1e-9);
  auto v = bp::analysis::components({r}, "output_tps", {});
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->lifecycles, 1u);
  EXPECT_NEAR(v->within_cv, std::sqrt(8.0 / 3) / 100, 1e-9);  // passes 100, 102, 98, 100
  EXPECT_EQ(v->between_cv, 0);
  EXPECT_NE(v->covers.find("within a warm engine only"), std::string::npos);
}

TEST(Variance, LifecyclesApartShowAsBetweenSpread) {
  // Lifecycle offsets N(0, 3%), passes N(0, 0.5%) around them: 40 lifecycles of 4 passes.
  std::mt19937_64 g(5);
  std::normal_distribution<double> life(0, 0.03), pass(0, 0.005);
  std::vector<json> results;
  for (int l = 0; l < 40; ++l) {
    double base = 100 * (1 + life(g));
    std::vector<double> sp;
    for (int p = 0; p < 4; ++p) sp.push_back(base * (1 + pass(g)));
    results.push_back(result_of(sp, 5));
  }
  auto v = bp::analysis::components(results, "output_tps", {});
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->passes, 4u);
  EXPECT_NEAR(v->within_cv, 0.005, 0.0015);
  EXPECT_NEAR(v->between_cv, 0.03, 0.01);
}

TEST(Variance, OnePassIsNoSplit) {
  EXPECT_FALSE(bp::analysis::components({result_of({100}, 10)}, "output_tps", {}).has_value());
  json odd = result_of({100, 101}, 5);
  odd["options"]["requests"] = 9;  // not a whole number of passes
  EXPECT_TRUE(bp::analysis::pass_values(odd, "output_tps", {}).empty());
}

// A --duration load point has no request count (null): no passes, never an exception.
TEST(Variance, ADurationRunWithoutARequestCountIsNoSplit) {
  json d = result_of({100, 101}, 5);
  d["options"]["requests"] = nullptr;
  EXPECT_TRUE(bp::analysis::pass_values(d, "output_tps", {}).empty());
  EXPECT_FALSE(bp::analysis::components({d}, "output_tps", {}).has_value());
  d["options"]["repeats"] = "2";
  d["options"]["requests"] = 10;
  EXPECT_TRUE(bp::analysis::pass_values(d, "output_tps", {}).empty());
}
