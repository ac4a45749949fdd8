// Verdicts, comparability, the headline metrics, warnings and the ledger, on synthetic results
// whose truth is known.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <functional>
#include <fstream>
#include <random>

#include "analysis/compare.hpp"
#include "analysis/ledger.hpp"
#include "analysis/warnings.hpp"

using namespace bp::bench;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

/// A valid result of n requests whose output tok/s per request are `speed` * (1 + noise * z).
json make_result(int n, double speed, double noise, std::uint64_t seed, const std::string& workload = "w1") {
  std::mt19937_64 g(seed);
  std::normal_distribution<double> z(0, 1);
  json reqs = json::array();
  double t = 0;
  for (int i = 0; i < n; ++i) {
    double tps = speed * std::max(0.05, 1 + noise * z(g));
    double e2e = 32 / tps * 1000;
    json itl = json::array();
    for (int k = 0; k < 31; ++k) itl.push_back(e2e / 32);
    reqs.push_back({{"index", i}, {"query_line", 2 + i % 50}, {"ok", true}, {"start_ms", t}, {"e2e_ms", e2e},
                    {"ttft_ms", e2e / 32}, {"output_tokens", 32}, {"itl_ms", itl}});
    t += e2e;
  }
  return {{"kind", "bench-proxy bench result"},
          {"valid", true},
          {"model", "m"},
          {"workload", {{"sha256", workload}}},
          {"options", {{"concurrency", 1}, {"rate", 0}, {"max_tokens", nullptr}, {"requests", n}, {"repeats", 1}, {"stream", true}}},
          {"summary", {{"wall_s", t / 1000}, {"completed", n}, {"total_output_tps", 32.0 * n / (t / 1000)},
                       {"headline", {{"metric", "output_tps"}}}}},
          {"requests", reqs}};
}

side one(const json& r, const std::string& label = "x") { return side{label, {r}, {label}, {}}; }

compare_options opts() {
  compare_options o;
  o.resamples = 4000;
  o.metrics = {"output_tps"};
  return o;
}


TEST(Verdict, TheRuleOnTheIntervalOfTheRatio) {
  EXPECT_EQ(verdict_of(1.02, 1.05, 0.01, true), "faster");
  EXPECT_EQ(verdict_of(0.90, 0.95, 0.01, true), "slower");
  EXPECT_EQ(verdict_of(0.995, 1.004, 0.01, true), "no change");
  EXPECT_EQ(verdict_of(0.98, 1.02, 0.01, true), "inconclusive");
  // Lower is better (latency): a ratio above 1 + noise is slower.
  EXPECT_EQ(verdict_of(1.02, 1.05, 0.01, false), "slower");
  EXPECT_EQ(verdict_of(0.90, 0.95, 0.01, false), "faster");
}

/// K lifecycles of one config, interleaved with the other side's (group "sweep"): lifecycle i
/// runs at speed * exp(lifecycle_cv * z_i).
side many(double speed, int k, double lifecycle_cv, std::uint64_t seed, int requests = 100) {
  std::mt19937_64 g(seed * 7919);
  std::normal_distribution<double> z(0, 1);
  side s{"k", {}, {}, "sweep"};
  for (int i = 0; i < k; ++i) {
    s.trials.push_back(make_result(requests, speed * std::exp(lifecycle_cv * z(g)), 0.02, seed * 100 + static_cast<std::uint64_t>(i)));
    s.paths.push_back("t" + std::to_string(i));
  }
  return s;
}

}  // namespace

TEST(Compare, OneLifecyclePerSideNeverDecides) {
  // Request noise alone says nothing about run-to-run noise: a tight request-level interval
  // 10% apart is still no verdict (an A/A run once said "+32.3% faster" this way).
  auto c = compare_sides(one(make_result(200, 100, 0.05, 1)), one(make_result(200, 90, 0.05, 2)), opts());
  EXPECT_EQ(c.metrics[0].verdict, "inconclusive");
  EXPECT_EQ(c.metrics[0].method, "requests only");
  EXPECT_TRUE(c.metrics[0].has_ci);
  EXPECT_LT(c.metrics[0].ratio_high, 0.99);  // the interval is still shown
  EXPECT_NE(c.metrics[0].needed.find("--trials 2"), std::string::npos) << c.metrics[0].needed;
  EXPECT_FALSE(c.regressed());
  EXPECT_EQ(compare_status({c}), 0);
}

TEST(Compare, AnAATestOfInterleavedTrialsIsNoChange) {
  auto c = compare_sides(many(100, 6, 0.001, 1, 400), many(100, 6, 0.001, 2, 400), opts());
  ASSERT_TRUE(c.comparable);
  EXPECT_EQ(c.metrics[0].method, "paired t");
  EXPECT_EQ(c.metrics[0].df, 5);
  EXPECT_EQ(c.metrics[0].verdict, "no change") << c.metrics[0].ratio_low << " " << c.metrics[0].ratio_high;
  EXPECT_FALSE(c.regressed());
}

TEST(Compare, TenPercentSlowerIsSlowerAndRegresses) {
  auto c = compare_sides(many(100, 3, 0.01, 1), many(90, 3, 0.01, 2), opts());
  EXPECT_EQ(c.metrics[0].verdict, "slower");
  EXPECT_LT(c.metrics[0].ratio_high, 0.99);
  EXPECT_TRUE(c.regressed());
  EXPECT_EQ(compare_status({c}), 1);
  // And the other way round.
  auto d = compare_sides(many(90, 3, 0.01, 2), many(100, 3, 0.01, 1), opts());
  EXPECT_EQ(d.metrics[0].verdict, "faster");
  EXPECT_EQ(compare_status({d}), 0);
}

TEST(Compare, TrialsOfSeparateRunsAreNotPairedButStillCount) {
  side a = many(100, 3, 0.01, 1), b = many(90, 4, 0.01, 2);
  a.group = "run-a";
  b.group = "run-b";
  auto c = compare_sides(a, b, opts());
  EXPECT_EQ(c.metrics[0].method, "Welch t");
  EXPECT_EQ(c.metrics[0].verdict, "slower");
}

TEST(Compare, AAComparisonsOfThreeTrialsAreRarelyCalled) {
  // The t interval over three lifecycles is honest where a bootstrap over three units is not:
  // over 300 A/A comparisons at 3% lifecycle spread, faster or slower at most ~5%.
  int called = 0;
  const int n = 300;
  for (int i = 0; i < n; ++i) {
    auto c = compare_sides(many(100, 3, 0.03, 1000 + static_cast<std::uint64_t>(i), 30),
                           many(100, 3, 0.03, 5000 + static_cast<std::uint64_t>(i), 30), opts());
    if (c.metrics[0].verdict == "faster" || c.metrics[0].verdict == "slower") ++called;
  }
  EXPECT_LE(called, n * 6 / 100) << called << " of " << n;
}

TEST(Compare, InconclusiveSaysHowManyTrialsWouldResolveIt) {
  auto c = compare_sides(many(100, 2, 0.03, 1), many(102, 2, 0.03, 2), opts());
  ASSERT_EQ(c.metrics[0].verdict, "inconclusive");
  EXPECT_NE(c.metrics[0].needed.find("trials per config"), std::string::npos) << c.metrics[0].needed;
}

TEST(Compare, LatencyMetricsAreBetterWhenLower) {
  compare_options o = opts();
  o.metrics = {"e2e_p50"};
  // 10% faster tokens: 10% lower latency, which is "faster".
  auto c = compare_sides(many(100, 3, 0.005, 1), many(110, 3, 0.005, 2), o);
  EXPECT_EQ(c.metrics[0].verdict, "faster");
  EXPECT_LT(c.metrics[0].ratio, 1.0);
}

TEST(Compare, OnlyTheHeadlineGatesTheExitStatus) {
  compare_options o = opts();
  o.metrics = {"output_tps", "e2e_p50"};
  // Tokens 10% faster: the headline is faster, and the latency secondary is faster too; make
  // the headline slower instead and put the secondary first: only metrics[0] gates.
  auto c = compare_sides(many(100, 3, 0.005, 1), many(110, 3, 0.005, 2), o);
  EXPECT_EQ(c.metrics[0].verdict, "faster");
  EXPECT_TRUE(c.metrics[0].gating);
  EXPECT_FALSE(c.metrics[1].gating);
  o.metrics = {"e2e_p50", "output_tps"};
  auto d = compare_sides(many(110, 3, 0.005, 1), many(100, 3, 0.005, 2), o);
  EXPECT_EQ(d.metrics[0].verdict, "slower");  // 10% more latency
  EXPECT_EQ(compare_status({d}), 1);
  o.metrics = {"output_tps", "e2e_p50"};
  auto e = compare_sides(many(110, 3, 0.005, 1), many(100, 3, 0.005, 2), o);
  EXPECT_EQ(e.metrics[0].verdict, "slower");
  EXPECT_EQ(compare_status({e}), 1);
}

TEST(Comparability, DifferentWorkloadsAreNotComparable) {
  auto c = compare_sides(one(make_result(50, 100, 0.02, 1, "w1")), one(make_result(50, 100, 0.02, 2, "w2")), opts());
  EXPECT_FALSE(c.comparable);
  ASSERT_FALSE(c.reasons.empty());
  EXPECT_NE(c.reasons[0].find("workload (sha256) differs"), std::string::npos) << c.reasons[0];
  EXPECT_EQ(compare_status({c}), 3);
}

TEST(Comparability, ARunThatLostQueriesIsNotComparableWithOneThatDidNot) {
  json lost = make_result(50, 100, 0.02, 2);
  for (int i = 0; i < 5; ++i) {
    lost["requests"][i * 7]["ok"] = false;
    lost["requests"][i * 7].erase("e2e_ms");
  }
  auto c = compare_sides(one(make_result(50, 100, 0.02, 1)), one(lost), opts());
  EXPECT_FALSE(c.comparable);
  bool found = false;
  for (const auto& r : c.reasons)
    if (r.find("the set of answered queries differs: 50 (baseline) vs 45") != std::string::npos) found = true;
  EXPECT_TRUE(found) << (c.reasons.empty() ? "" : c.reasons[0]);
}

TEST(Comparability, InvalidResultsAndOtherLoadShapesAreNamed) {
  json bad = make_result(50, 100, 0.02, 2);
  bad["valid"] = false;
  bad["invalid_reason"] = "the snapshot changed";
  json other = make_result(50, 100, 0.02, 3);
  other["options"]["concurrency"] = 8;
  auto c = compare_sides(one(make_result(50, 100, 0.02, 1)), side{"c", {bad, other}, {"a", "b"}, {}}, opts());
  EXPECT_FALSE(c.comparable);
  std::string all;
  for (const auto& r : c.reasons) all += r + "\n";
  EXPECT_NE(all.find("candidate trial 1 is invalid: the snapshot changed"), std::string::npos) << all;
  EXPECT_NE(all.find("load shape (concurrency) differs: 1 (baseline) vs 8"), std::string::npos) << all;
}

TEST(Trials, TheIntervalOverTrialsSeesRunToRunNoiseThatOneTrialCannot) {
  // Each trial has its own offset (run-to-run noise of 3%); one trial's interval is far narrower.
  std::vector<trial_samples> trials;
  std::mt19937_64 g(7);
  std::normal_distribution<double> off(0, 0.03);
  std::string why;
  for (int t = 0; t < 6; ++t) trials.push_back(*samples_of(make_result(200, 100 * (1 + off(g)), 0.01, 10 + t), "output_tps", {}, why));
  auto one_trial = estimator({trials[0]}).run(4000, 0.95, 1);
  auto all = estimator(trials).run(4000, 0.95, 1);
  EXPECT_EQ(all.trials, 6u);
  EXPECT_GT(all.between_trial_cv, 0.005);
  EXPECT_GT(all.ci_high - all.ci_low, 3 * (one_trial.ci_high - one_trial.ci_low));
  EXPECT_NE(one_trial.method.find("request-to-request noise only"), std::string::npos);
  EXPECT_NE(all.method.find("t interval over 6 lifecycles (5 df)"), std::string::npos) << all.method;
}

TEST(Trials, ThreeTrialsGetAnIntervalThatCoversTheTruthAsPromised) {
  // A bootstrap over three trials covers the median at most 75% of the time (all three on one
  // side: 25%); the t interval with 2 df keeps its 95%. 400 configs of 3 trials, offsets N(0, 3%).
  int covered = 0;
  std::mt19937_64 g(99);
  std::normal_distribution<double> off(0, 0.03);
  for (int sim = 0; sim < 400; ++sim) {
    std::vector<trial_samples> trials;
    std::string why;
    for (int t = 0; t < 3; ++t)
      trials.push_back(*samples_of(make_result(60, 100 * (1 + off(g)), 0.01, g()), "output_tps", {}, why));
    auto e = estimator(trials).run(1000, 0.95, static_cast<std::uint64_t>(sim));
    if (e.ci_low <= 100 && 100 <= e.ci_high) ++covered;
  }
  EXPECT_GE(covered, 360) << covered << " of 400";  // 95% less sampling error (sd ~1.1%)
}

TEST(Trials, TheIntervalOverTrialsCoversTheTruthNinetyToNinetyNinePercentOfTheTime) {
  // 200 simulated configs, 10 trials each of 100 requests: trial offsets N(0, 2%), request noise
  // N(0, 5%); the truth is the population's mean of trial medians, 100.
  int covered = 0;
  std::mt19937_64 g(12345);
  std::normal_distribution<double> off(0, 0.02);
  for (int sim = 0; sim < 200; ++sim) {
    std::vector<trial_samples> trials;
    std::string why;
    for (int t = 0; t < 10; ++t)
      trials.push_back(*samples_of(make_result(100, 100 * (1 + off(g)), 0.05, g()), "output_tps", {}, why));
    auto e = estimator(trials).run(1000, 0.95, static_cast<std::uint64_t>(sim));
    if (e.ci_low <= 100 && 100 <= e.ci_high) ++covered;
  }
  std::cout << "coverage of the 95% t interval over 10 trials: " << covered / 200.0 << " (" << covered
            << " of 200)\n";
  EXPECT_GE(covered, 180);
  EXPECT_LE(covered, 198);
}

TEST(Metrics, EveryNamedMetricIsReadFromTheRequests) {
  json r = make_result(100, 100, 0.0, 1);
  std::string why;
  for (const auto& m : all_metrics()) {
    if (m.name == "goodput" || m.name == "capacity") continue;
    auto s = samples_of(r, m.name, {}, why);
    ASSERT_TRUE(s) << m.name << ": " << why;
    EXPECT_GT(s->value(), 0) << m.name;
  }
  EXPECT_NEAR(samples_of(r, "output_tps", {}, why)->value(), 100, 1e-6);
  EXPECT_FALSE(samples_of(r, "goodput", {}, why));
  EXPECT_NE(why.find("--slo"), std::string::npos);
  // Capacity is one number per lifecycle, from a curve with objectives only.
  EXPECT_FALSE(samples_of(r, "capacity", {}, why));
  EXPECT_NE(why.find("--load"), std::string::npos);
  r["load"] = {{"capacity", {{"value", 8.0}, {"ci", {8.0, 8.0}}}}};
  auto cap = samples_of(r, "capacity", {}, why);
  ASSERT_TRUE(cap);
  EXPECT_EQ(cap->value(), 8.0);
  r["load"]["capacity"] = {{"value", nullptr}, {"text", "below the lowest load measured (1 concurrency)"}};
  EXPECT_FALSE(samples_of(r, "capacity", {}, why));
  EXPECT_NE(why.find("below the lowest"), std::string::npos);
  // Every request takes 320 ms end to end: an SLO of 300 ms lets none through, 400 ms all.
  EXPECT_EQ(samples_of(r, "goodput", parse_slo("e2e_ms=300"), why)->value(), 0);
  EXPECT_NEAR(samples_of(r, "goodput", parse_slo("e2e_ms=400"), why)->value(), 100 / r["summary"]["wall_s"].get<double>(), 1e-9);
  EXPECT_THROW(parse_slo("ttft=5"), std::invalid_argument);
  EXPECT_THROW(parse_slo("ttft_ms=nan"), std::invalid_argument);
}

TEST(Warnings, SlowStartDriftOutliersAndThinPercentilesAreNamed) {
  json r = make_result(100, 100, 0.01, 1);
  EXPECT_TRUE(result_warnings(r, {50}).empty()) << result_warnings(r, {50})[0];
  json slow = r;
  for (int i = 0; i < 10; ++i) slow["requests"][i]["e2e_ms"] = slow["requests"][i]["e2e_ms"].get<double>() * 3;
  auto w = result_warnings(slow, {50});
  ASSERT_FALSE(w.empty());
  EXPECT_NE(w[0].find("the first 10 requests took"), std::string::npos) << w[0];
  json drift = r;
  for (int i = 50; i < 100; ++i) drift["requests"][i]["e2e_ms"] = drift["requests"][i]["e2e_ms"].get<double>() * 1.1;
  bool said = false;
  for (const auto& x : result_warnings(drift, {50}))
    if (x.find("drift within the run") != std::string::npos) said = true;
  EXPECT_TRUE(said);
  json outlier = r;
  outlier["requests"][40]["e2e_ms"] = 1e6;
  said = false;
  for (const auto& x : result_warnings(outlier, {50}))
    if (x.find("1 of 100 requests are outliers in end-to-end latency") != std::string::npos) said = true;
  EXPECT_TRUE(said);
  auto thin = result_warnings(r, {50, 99});
  ASSERT_EQ(thin.size(), 1u);
  EXPECT_NE(thin[0].find("p99 rests on 100 requests"), std::string::npos) << thin[0];
}

TEST(Ledger, AScriptedCampaignGetsItsKeepAndDiscardColumn) {
  auto p = fs::temp_directory_path() / ("bp_ledger_" + std::to_string(::getpid()) + ".tsv");
  fs::remove(p);
  auto row = [&](double speed, std::uint64_t seed, const std::string& label) {
    json r = make_result(200, speed, 0.02, seed);
    std::string why;
    r["summary"]["headline"] = to_json(estimator({*samples_of(r, "output_tps", {}, why)}).run(2000, 0.95, seed),
                                       *find_metric("output_tps"));
    r["label"] = label;
    r["interleaved_with"] = "/sweeps/1";  // verdicts only between interleaved rows
    r["trials"] = 3;                      // ... of several lifecycles each
    r["finished_at"] = "2026-12-01T00:00:0" + std::to_string(seed) + "Z";
    append_tsv(p.string(), r, "/r/" + label + "/result.json");
  };
  row(100, 1, "baseline");
  row(110, 2, "bigger batch");   // keep: +10%
  json failed = {{"failed", true}, {"valid", false}, {"label", "broken flag"}, {"invalid_reason", "engine exited 1"}};
  append_tsv(p.string(), failed, "");
  row(100, 4, "smaller batch");  // discard: -9% against the new best
  row(110.2, 5, "tiny tweak");   // within noise of the best
  auto c = campaign(load_ledger(p.string()), 0.01);
  ASSERT_EQ(c.size(), 5u);
  std::vector<std::string> verdicts;
  for (const auto& e : c) verdicts.push_back(e.verdict);
  EXPECT_EQ(verdicts, (std::vector<std::string>{"keep", "keep", "failed", "discard", "within noise"}));
  EXPECT_EQ(*c[4].best_line, 3u);  // line 3 of the TSV: "bigger batch"
  EXPECT_EQ(c[1].row.label, "bigger batch");
  std::string text = render_campaign(c, 0.01);
  EXPECT_NE(text.find("bigger batch"), std::string::npos);
  fs::remove(p);
}

TEST(Ledger, ARowOfOneLifecycleGetsNoKeepOrDiscard) {
  // A sweep of one trial per config: interleaved, but each row's interval covers its requests
  // only. Even a large difference is no verdict (compare says the same of these results).
  auto p = fs::temp_directory_path() / ("bp_ledger_one_" + std::to_string(::getpid()) + ".tsv");
  fs::remove(p);
  auto row = [&](double speed, std::uint64_t seed, const std::string& label, int trials) {
    json r = make_result(200, speed, 0.02, seed);
    std::string why;
    r["summary"]["headline"] = to_json(estimator({*samples_of(r, "output_tps", {}, why)}).run(2000, 0.95, seed),
                                       *find_metric("output_tps"));
    r["label"] = label;
    r["interleaved_with"] = "/sweeps/1";
    if (trials > 1) r["trials"] = trials;
    append_tsv(p.string(), r, "/r/" + label + "/result.json");
  };
  row(100, 1, "base", 1);
  row(150, 2, "one lifecycle", 1);
  row(150, 3, "three against one", 3);
  auto c = campaign(load_ledger(p.string()), 0.01);
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[0].verdict, "keep");  // the baseline
  EXPECT_EQ(c[1].verdict, kOneLifecycle);
  EXPECT_EQ(c[2].verdict, kOneLifecycle);
  EXPECT_EQ(*c[2].best_line, 2u);  // no verdict: the baseline stays the best
  fs::remove(p);
}

TEST(Ledger, OlderLedgersStillLoad) {
  auto p = fs::temp_directory_path() / ("bp_ledger_v2_" + std::to_string(::getpid()) + ".tsv");
  std::ofstream(p) << "time\tdescription\tengine\tsnapshot_id\tvenv_merkle\trequests\terrors\tmedian_output_tps\t"
                      "median_ttft_ms\tmedian_itl_ms\tp99_e2e_ms\ttotal_output_tps\tvalidity\tresult\tconfig\treasons\n"
                   << "t1\td\tmock\ts\tm\t5\t0\t100.000\t1\t1\t1\t1\tvalid\t/a\tc.yaml\t\n"
                   << "t2\td\tmock\ts\tm\t5\t0\t120.000\t1\t1\t1\t1\tvalid\t/b\tc.yaml\t\n"
                   << "t3\td\tmock\ts\tm\t5\t5\t\t\t\t\t\tinvalid\t/c\tc.yaml\t5 requests failed\n";
  auto rows = load_ledger(p.string());
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].metric, "output_tps");
  EXPECT_EQ(*rows[1].value, 120);
  auto c = campaign(rows, 0.01);
  EXPECT_EQ(c[1].verdict, "not interleaved: drift cannot be separated");  // no group column
  EXPECT_EQ(c[2].verdict, "invalid");
  // Appending to it keeps its columns.
  json r = make_result(10, 100, 0, 1);
  std::string added = append_tsv(p.string(), r, "/d");
  EXPECT_EQ(std::count(added.begin(), added.end(), '\t'), 15);
  std::ofstream(p, std::ios::app) << "t5\tonly\ttwo\n";
  std::vector<std::string> warnings;
  EXPECT_EQ(load_ledger(p.string(), &warnings).size(), 4u);  // a bad row is a warning, the rest is kept
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find(":6: 3 fields, the header has 16"), std::string::npos) << warnings[0];
  fs::remove(p);
}

TEST(ResultValidation, MalformedOrAbsurdFieldsAreNamed) {
  json good = make_result(10, 100, 0.02, 1);
  EXPECT_EQ(result_problem(good), "");
  auto with = [&](const std::function<void(json&)>& f) {
    json j = good;
    f(j);
    return result_problem(j);
  };
  EXPECT_EQ(with([](json& j) { j["snapshot"] = nullptr; }), "field snapshot: expected an object, found null");
  EXPECT_EQ(with([](json& j) { j["valid"] = "yes"; }), "field valid: expected true or false, found string \"yes\"");
  EXPECT_EQ(with([](json& j) { j["requests"] = "many"; }), "field requests: expected an array, found string");
  EXPECT_EQ(with([](json& j) { j["requests"][3]["e2e_ms"] = -2241.9; }),
            "field requests[3].e2e_ms: expected a finite number >= 0, found -2241.9");
  EXPECT_NE(with([](json& j) { j["requests"][0]["ttft_ms"] = 1e308; }).find("requests[0].ttft_ms"), std::string::npos);
  EXPECT_NE(with([](json& j) { j["requests"][1]["itl_ms"][0] = "fast"; }).find("requests[1].itl_ms[0]"),
            std::string::npos);
  EXPECT_EQ(with([](json& j) { j["summary"]["headline"] = 5; }),
            "field summary.headline: expected an object, found number");
}

namespace {

// Holm over the secondary metrics: a secondary verdict that holds at its own level but not after
// the correction over all of them is withheld (inconclusive, with the reason); with one secondary
// metric the correction is its own level and the same data keep the verdict.
TEST(Compare, HolmWithholdsASecondaryVerdictThatOnlyHoldsAtItsOwnLevel) {
  compare_options o = opts();
  const std::vector<std::string> four = {"output_tps", "e2e_p50", "ttft_p50", "itl_p50", "tpot_p50"};
  bool withheld = false;
  for (int step = 1; step <= 40 && !withheld; ++step) {
    double speed = 100 * (1 + 0.0025 * step);
    for (std::uint64_t seed : {3u, 5u, 7u}) {
      o.metrics = four;
      auto c = compare_sides(many(100, 3, 0.01, seed), many(speed, 3, 0.01, seed + 1), o);
      for (std::size_t i = 1; i < c.metrics.size(); ++i) {
        const auto& v = c.metrics[i];
        if (v.holm.empty()) continue;
        withheld = true;
        EXPECT_EQ(v.verdict, "inconclusive") << v.metric;
        EXPECT_NE(v.holm.find("not after Holm's correction over 4 secondary metrics"), std::string::npos) << v.holm;
        // The same pair with this metric as the only secondary one: its own level, kept.
        o.metrics = {"output_tps", v.metric};
        auto alone = compare_sides(many(100, 3, 0.01, seed), many(speed, 3, 0.01, seed + 1), o);
        EXPECT_TRUE(alone.metrics[1].holm.empty());
        EXPECT_TRUE(alone.metrics[1].verdict == "faster" || alone.metrics[1].verdict == "slower")
            << alone.metrics[1].verdict;
        break;
      }
      if (withheld) break;
    }
  }
  EXPECT_TRUE(withheld) << "no effect size in the grid fell between Holm's level and the metric's own";
}

}  // namespace

namespace {

// A sweep where config A lost its round 2 (no result) and B lost its round 3: both have two
// lifecycles, but pairing them by position would pair A's round 3 with B's round 2. Their rounds
// are named by their folders, so the comparison is not paired (Welch), and with the same rounds
// on both sides it is.
TEST(Compare, LifecyclesPairOnlyWhenTheyRanInTheSameRounds) {
  compare_options o = opts();
  side a = many(100, 2, 0.01, 3), b = many(103, 2, 0.01, 4);
  a.paths = {"/s/1_a/trial-1/result.json", "/s/1_a/trial-3/result.json"};
  b.paths = {"/s/2_b/trial-1/result.json", "/s/2_b/trial-2-redo-1/result.json"};
  auto c = compare_sides(a, b, o);
  EXPECT_EQ(c.metrics[0].method, "Welch t");
  b.paths = {"/s/2_b/trial-1/result.json", "/s/2_b/trial-3-redo-1/result.json"};
  c = compare_sides(a, b, o);
  EXPECT_EQ(c.metrics[0].method, "paired t");
  // A try's folders name rounds the same way.
  a.paths = {"/t/baseline/round-1/result.json", "/t/baseline/round-2/result.json"};
  b.paths = {"/t/candidate/round-1/result.json", "/t/candidate/round-2/result.json"};
  EXPECT_EQ(compare_sides(a, b, o).metrics[0].method, "paired t");
}

}  // namespace
