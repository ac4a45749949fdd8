// The try loop with lifecycles of the test's own (no engine): the order of the rounds, when it
// stops, what it writes and the exit status of each ending.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include "actors/campaign/try_run.hpp"
#include "tests/actors/campaign/fake_result.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace bp::measure;

namespace {

using bp::measure::testing::result_of;

struct fake_engine {
  std::map<std::string, double> speed;  ///< config -> true speed
  double lifecycle_cv = 0;
  std::mt19937_64 g{7};
  std::vector<std::string> calls;
  double clock = 0;
  std::map<std::string, std::string> workload;
  int disturbed_left = 0;  ///< the next this many lifecycles see a neighbour's burst
  outcome operator()(const std::string& config, const std::string& run_dir) {
    calls.push_back(config);
    clock += 10;  // ten "seconds" of engine time per lifecycle
    std::normal_distribution<double> z(0, 1);
    outcome o;
    o.started = o.published = o.valid = true;
    o.run_dir = run_dir;
    fs::create_directories(run_dir);
    o.result = result_of(speed.at(config) * std::exp(lifecycle_cv * z(g)),
                         workload.count(config) ? workload[config] : "w1");
    double burst = disturbed_left-- > 0 ? 1.4 : 0.1;
    o.result["conditions"] = {{"sources", {{"others", {{"cpu_cores", {{"mean", 0.3}, {"max", burst}, {"n", 10}}}}}}}};
    o.result_path = (fs::path(run_dir) / "result.json").string();
    std::ofstream(o.result_path) << o.result.dump();
    o.teardown_verified = true;
    return o;
  }
};

struct TryTest : ::testing::Test {
  fs::path dir = fs::temp_directory_path() / ("bp_try_test_" + std::to_string(::getpid()) + "_" +
                                              ::testing::UnitTest::GetInstance()->current_test_info()->name());
  fake_engine eng;
  interrupt_state st;
  try_options opts() {
    try_options o;
    o.baseline = "a.yaml";
    o.candidate = "b.yaml";
    o.dir = dir.string();
    o.bench.stats.bootstrap_resamples = 200;
    return o;
  }
  try_result run(const try_options& o) {
    return run_try(o, [this](const std::string& c, const std::string& d) { return eng(c, d); }, st,
                   [this] { return eng.clock; });
  }
  void SetUp() override {
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  void TearDown() override { fs::remove_all(dir); }
};

}  // namespace

TEST_F(TryTest, ATenPercentSlowerCandidateIsSlowerAtTheFirstLookInAlternatingOrder) {
  eng.speed = {{"a.yaml", 100}, {"b.yaml", 90}};
  eng.lifecycle_cv = 0.002;
  auto r = run(opts());
  EXPECT_EQ(r.verdict, "slower");
  EXPECT_EQ(r.exit_status, 1);
  int rounds = r.doc["decision"]["rounds"];
  EXPECT_EQ(rounds, 3);  // the first look is at round three; 10% at 0.2% spread is decided there
  ASSERT_EQ(eng.calls.size(), 2u * static_cast<std::size_t>(rounds));
  EXPECT_EQ(std::vector<std::string>(eng.calls.begin(), eng.calls.begin() + 4),
            (std::vector<std::string>{"a.yaml", "b.yaml", "b.yaml", "a.yaml"}));  // A B, B A
  EXPECT_EQ(r.last_line.rfind("slower -10.", 0), 0u) << r.last_line;
  EXPECT_NE(r.last_line.find("after " + std::to_string(rounds) + " rounds"), std::string::npos) << r.last_line;
  EXPECT_EQ(r.doc["kind"], "bench-proxy try");
  EXPECT_EQ(r.doc["decision"]["engine_seconds"], 20.0 * rounds);
  EXPECT_EQ(r.doc["rounds"].size(), static_cast<std::size_t>(rounds));
  EXPECT_EQ(r.doc["interleaved_with"], dir.string());
  // Each side's lifecycles as a trials record: compare and report read the folder.
  EXPECT_TRUE(fs::exists(dir / "baseline" / "trials.json"));
  EXPECT_TRUE(fs::exists(dir / "candidate" / "trials.json"));
  EXPECT_TRUE(fs::exists(dir / "candidate" / "round-2"));
}

TEST_F(TryTest, AFasterCandidateIsKept) {
  eng.speed = {{"a.yaml", 100}, {"b.yaml", 110}};
  eng.lifecycle_cv = 0.002;
  auto r = run(opts());
  EXPECT_EQ(r.verdict, "faster");
  EXPECT_EQ(r.exit_status, 0);
}

TEST_F(TryTest, AnUnchangedConfigIsNoChangeOrInconclusiveNeverFasterOrSlower) {
  eng.speed = {{"a.yaml", 100}, {"b.yaml", 100}};
  eng.lifecycle_cv = 0.01;
  auto o = opts();
  o.max_rounds = 6;
  auto r = run(o);
  EXPECT_TRUE(r.verdict == "no change" || r.verdict == "inconclusive") << r.verdict;
  if (r.verdict == "inconclusive") {
    EXPECT_EQ(r.exit_status, 4);
    EXPECT_LE(r.doc["decision"]["rounds"].get<int>(), 6);  // futility may stop it sooner
    EXPECT_TRUE(r.doc["decision"].contains("needed") || r.doc["decision"].contains("reason"));
  }
}

TEST_F(TryTest, TheBudgetStopsBeforeARoundThatWouldNotFit) {
  eng.speed = {{"a.yaml", 100}, {"b.yaml", 100}};
  eng.lifecycle_cv = 0.05;  // far too noisy to decide in three rounds
  auto o = opts();
  o.budget_s = 65;  // a round costs 20 "seconds": the fourth would end at 80
  auto r = run(o);
  EXPECT_EQ(r.verdict, "inconclusive");
  EXPECT_EQ(r.exit_status, 4);
  EXPECT_EQ(eng.calls.size(), 6u);
  EXPECT_NE(r.doc["decision"]["reason"].get<std::string>().find("budget"), std::string::npos);
}

TEST_F(TryTest, DifferentWorkloadsAreNotComparableAfterTheFirstRound) {
  eng.speed = {{"a.yaml", 100}, {"b.yaml", 100}};
  eng.workload = {{"b.yaml", "w2"}};
  auto r = run(opts());
  EXPECT_EQ(r.verdict, "not comparable");
  EXPECT_EQ(r.exit_status, 3);
  EXPECT_EQ(eng.calls.size(), 2u);
  EXPECT_NE(r.last_line.find("workload"), std::string::npos) << r.last_line;
}

TEST_F(TryTest, AFailedLifecycleEndsTheTryWithItsReason) {
  eng.speed = {{"a.yaml", 100}, {"b.yaml", 100}};
  auto o = opts();
  auto r = run_try(
      o,
      [this](const std::string& c, const std::string& d) {
        if (c == "b.yaml") {
          outcome bad;
          bad.reason = "engine exited with status 3 before it was ready";
          return bad;
        }
        return eng(c, d);
      },
      st, [this] { return eng.clock; });
  EXPECT_EQ(r.verdict, "failed");
  EXPECT_EQ(r.exit_status, 5);
  EXPECT_NE(r.last_line.find("candidate lifecycle of round 1: engine exited with status 3"), std::string::npos)
      << r.last_line;
  EXPECT_FALSE(r.doc["valid"].get<bool>());
}

TEST_F(TryTest, AnInterruptEndsTheTryAfterTheLifecycleThatWasRunning) {
  eng.speed = {{"a.yaml", 100}, {"b.yaml", 100}};
  auto r = run_try(
      opts(),
      [this](const std::string& c, const std::string& d) {
        auto o = eng(c, d);
        st.signals = 1;
        return o;
      },
      st, [this] { return eng.clock; });
  EXPECT_EQ(r.verdict, "interrupted");
  EXPECT_EQ(r.exit_status, 130);
  EXPECT_EQ(eng.calls.size(), 1u);
}

TEST_F(TryTest, ADisturbedLifecycleIsRunAgainAndSaidSo) {
  eng.speed = {{"a.yaml", 100}, {"b.yaml", 90}};
  eng.lifecycle_cv = 0.002;
  eng.disturbed_left = 1;  // the first lifecycle sees a neighbour's burst
  auto r = run(opts());
  EXPECT_EQ(r.verdict, "slower");
  EXPECT_EQ(r.doc["decision"]["redone_disturbed"], 1);
  ASSERT_EQ(r.doc["disturbed"].size(), 1u);
  EXPECT_EQ(r.doc["disturbed"][0]["round"], 1);
  EXPECT_EQ(r.doc["disturbed"][0]["side"], "baseline");
  EXPECT_NE(r.doc["disturbed"][0]["reasons"][0].get<std::string>().find("1.40 cores in a sample"), std::string::npos);
  EXPECT_EQ(eng.calls[0], "a.yaml");
  EXPECT_EQ(eng.calls[1], "a.yaml");  // the baseline of round 1 again
  EXPECT_TRUE(fs::exists(dir / "baseline" / "round-1-redo-1"));
  EXPECT_NE(r.text.find("1 more run again"), std::string::npos) << r.text;
}

TEST_F(TryTest, APersistentDisturbanceIsInconclusiveNotAVerdict) {
  eng.speed = {{"a.yaml", 100}, {"b.yaml", 90}};
  eng.disturbed_left = 100;
  auto o = opts();
  o.redo_disturbed = 2;
  auto r = run(o);
  EXPECT_EQ(r.verdict, "inconclusive");
  EXPECT_EQ(r.exit_status, 4);
  EXPECT_EQ(eng.calls.size(), 3u);  // the first lifecycle and its two redos
  EXPECT_NE(r.doc["decision"]["reason"].get<std::string>().find("the machine was busy"), std::string::npos);
  // With redo off, the lifecycle is only marked... and then the busy machine still decides nothing.
  eng.calls.clear();
  eng.disturbed_left = 100;
  auto o2 = opts();
  o2.dir = (dir / "again").string();
  o2.redo_disturbed = 0;
  auto r2 = run(o2);
  EXPECT_EQ(r2.verdict, "inconclusive");
  EXPECT_EQ(eng.calls.size(), 1u);
}

TEST_F(TryTest, AVerdictFinerThanTheMachinesSpreadIsRefused) {
  eng.speed = {{"a.yaml", 100}, {"b.yaml", 90}};
  eng.lifecycle_cv = 0.002;
  auto o = opts();
  o.resolution = 0.15;  // an A/A measured lifecycles 15% apart: 10% cannot be told from that
  o.resolution_source = "15.00% (A/A at r.tsv:2-3, 3 trials each)";
  auto r = run(o);
  EXPECT_EQ(r.verdict, "inconclusive");
  EXPECT_EQ(r.exit_status, 4);
  EXPECT_NE(r.doc["decision"]["reason"].get<std::string>().find("below this machine's resolution"), std::string::npos);
  EXPECT_EQ(r.doc["decision"]["resolution"], 0.15);
  // More rounds cannot resolve it: the advice says so instead of a round count.
  EXPECT_EQ(r.doc["decision"]["needed"].get<std::string>().rfind("nothing more of the same", 0), 0u);
}

TEST_F(TryTest, AgainstTheBestItsReMeasurementIsComparedWithTheLedger) {
  eng.speed = {{"a.yaml", 100}, {"b.yaml", 110}};
  eng.lifecycle_cv = 0.002;
  auto o = opts();
  o.baseline_from = "best";
  o.best_line = 7;
  o.best_value = 100.1;
  auto r = run(o);
  ASSERT_TRUE(r.doc.contains("best_drift"));
  EXPECT_FALSE(r.doc["best_drift"]["drifted"].get<bool>());
  EXPECT_NE(r.text.find("at ledger line 7, now 100."), std::string::npos) << r.text;
  auto o2 = opts();
  o2.dir = (dir / "again").string();
  o2.baseline_from = "best";
  o2.best_line = 7;
  o2.best_value = 80;  // measured 20% lower back then: the machine moved since
  auto r2 = run(o2);
  EXPECT_TRUE(r2.doc["best_drift"]["drifted"].get<bool>());
  EXPECT_NE(r2.text.find("drifted by +25."), std::string::npos) << r2.text;
  EXPECT_EQ(r2.verdict, "faster");  // the decision stands on the interleaved rounds alone
}

TEST_F(TryTest, AgainstTheBestAnotherLoadShapeIsNotComparable) {
  eng.speed = {{"a.yaml", 100}, {"b.yaml", 110}};
  auto o = opts();
  o.baseline_from = "best";
  o.best_line = 4;
  o.best_value = 100;
  o.best_load_shape = "concurrency=8 rate=0 max_tokens=null requests=20";
  auto r = run(o);
  EXPECT_EQ(r.verdict, "not comparable");
  EXPECT_EQ(r.exit_status, 3);
  EXPECT_NE(r.last_line.find("load shape differs from the ledger's best (line 4)"), std::string::npos) << r.last_line;
}

TEST(TryDuration, ParsesUnitsAndRefusesNonsense) {
  EXPECT_EQ(parse_duration_s("90s"), 90);
  EXPECT_EQ(parse_duration_s("30m"), 1800);
  EXPECT_EQ(parse_duration_s("1h30m"), 5400);
  EXPECT_EQ(parse_duration_s("120"), 120);
  EXPECT_THROW(parse_duration_s(""), std::invalid_argument);
  EXPECT_THROW(parse_duration_s("5x"), std::invalid_argument);
  EXPECT_THROW(parse_duration_s("0s"), std::invalid_argument);
  EXPECT_THROW(parse_duration_s("1h30"), std::invalid_argument);
  EXPECT_THROW(parse_duration_s("m"), std::invalid_argument);
  EXPECT_THROW(parse_duration_s("."), std::invalid_argument);      // not stod's own message
  EXPECT_THROW(parse_duration_s("1.2.3s"), std::invalid_argument);
  EXPECT_THROW(parse_duration_s("0.001s"), std::invalid_argument);  // below the 1 s the message promises
  EXPECT_EQ(parse_duration_s("1.5m"), 90);
}
