// The bisect search with decisions of the test's own (no engine): the culprit unit is named, an
// interaction is reported as one, GOOD = BAD in the headline stops after the first decision,
// every generated config is written and checked, and a resumed bisect reuses decided steps.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <set>

#include "actors/campaign/bisect.hpp"
#include "actors/campaign/campaign.hpp"
#include "tests/actors/campaign/fake_result.hpp"
#include "base/files.hpp"
#include "configs/variants.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace bp::measure;

namespace {

const char* kGood = R"(description: good
engine: mock
cmd: /bin/true
args: [--tokens, "8", --itl-ms, "2", --startup-delay-ms, "300"]
env:
  PATH: /usr/bin:/bin
warmup: 3
)";

const char* kBad = R"(description: bad
engine: mock
cmd: /bin/true
args: [--tokens, "8", --itl-ms, "2", --startup-delay-ms, "100"]
env:
  PATH: /usr/bin:/bin
  MOCK_EXTRA_ITL_MS: "1"
  HARMLESS: "1"
warmup: 2
)";

struct BisectTest : ::testing::Test {
  fs::path dir = fs::temp_directory_path() / ("bp_bisect_test_" + std::to_string(::getpid()) + "_" +
                                              ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::string good, bad;
  std::vector<std::set<std::string>> tried;  ///< the units of each try, in order
  interrupt_state st;
  void SetUp() override {
    fs::remove_all(dir);
    fs::create_directories(dir / "b");
    good = (dir / "good.yaml").string();
    bad = (dir / "bad.yaml").string();
    std::ofstream(good) << kGood;
    std::ofstream(bad) << kBad;
  }
  void TearDown() override { fs::remove_all(dir); }
  bisect_options opts() {
    bisect_options o;
    o.good = good;
    o.bad = bad;
    o.dir = (dir / "b").string();
    o.repo_root = dir.string();
    return o;
  }
  /// A try whose verdict is `rule(units applied)`.
  try_fn fake(std::function<std::string(const std::set<std::string>&)> rule) {
    return [this, rule](const try_options& o) {
      std::set<std::string> applied;
      for (const auto& u : bp::variants::diff_units(kGood, "good", bp::base::read_file_limited(o.candidate, 1 << 20), "c"))
        applied.insert(u.key);
      tried.push_back(applied);
      std::string v = rule(applied);
      try_result r;
      r.verdict = v;
      r.doc = {{"kind", "bench-proxy try"},
               {"decision", {{"verdict", v}, {"ratio", v == "slower" ? 0.9 : 1.0}, {"low", 0.88}, {"high", 0.92},
                             {"rounds", 3}, {"engine_seconds", 30.0}}}};
      return r;
    };
  }
  check_fn ok_check() {
    return [](const std::string& path) {
      EXPECT_TRUE(fs::exists(path)) << path;
      return std::vector<std::string>{};
    };
  }
};

}  // namespace

TEST_F(BisectTest, TheOneUnitThatAddsTheDelayIsNamed) {
  auto r = run_bisect(opts(), fake([](const std::set<std::string>& u) {
                        return u.count("env.MOCK_EXTRA_ITL_MS") ? "slower" : "no change";
                      }),
                      ok_check(), st);
  EXPECT_EQ(r.answer, "found");
  EXPECT_EQ(r.exit_status, 0);
  EXPECT_EQ(r.doc["answer"]["units"], json::array({"env.MOCK_EXTRA_ITL_MS"}));
  EXPECT_EQ(r.last_line.rfind("found: env.MOCK_EXTRA_ITL_MS: (absent) -> 1: slower", 0), 0u) << r.last_line;
  EXPECT_EQ(tried[0].size(), 4u);  // first BAD itself: every unit
  EXPECT_LE(tried.size(), 8u);     // ddmin on 4 units, far below 2^4
  // Every generated config is in configs/ and loads back to exactly its units.
  for (const auto& e : fs::directory_iterator(dir / "b" / "configs")) EXPECT_EQ(e.path().extension(), ".yaml");
  EXPECT_TRUE(fs::exists(dir / "b" / "bisect.json"));
}

TEST_F(BisectTest, TwoUnitsThatOnlyTogetherSlowItDownAreAnInteraction) {
  auto r = run_bisect(opts(), fake([](const std::set<std::string>& u) {
                        return u.count("env.MOCK_EXTRA_ITL_MS") && u.count("args.--startup-delay-ms") ? "slower"
                                                                                                        : "no change";
                      }),
                      ok_check(), st);
  EXPECT_EQ(r.answer, "interaction");
  EXPECT_EQ(r.exit_status, 0);
  std::set<std::string> got;
  for (const auto& u : r.doc["answer"]["units"]) got.insert(u.get<std::string>());
  EXPECT_EQ(got, (std::set<std::string>{"env.MOCK_EXTRA_ITL_MS", "args.--startup-delay-ms"}));
  EXPECT_EQ(r.last_line.rfind("interaction (only together): ", 0), 0u) << r.last_line;
}

TEST_F(BisectTest, GoodAndBadThatDoNotDifferStopAfterTheFirstDecision) {
  auto r = run_bisect(opts(), fake([](const std::set<std::string>&) { return "no change"; }), ok_check(), st);
  EXPECT_EQ(r.answer, "no difference");
  EXPECT_EQ(r.exit_status, 1);
  EXPECT_EQ(tried.size(), 1u);
  EXPECT_NE(r.last_line.find("do not differ in output_tps"), std::string::npos) << r.last_line;
}

TEST_F(BisectTest, AnInvalidGeneratedConfigStopsWithItsNameAndError) {
  auto r = run_bisect(opts(), fake([](const std::set<std::string>& u) { return u.size() == 4 ? "slower" : "no change"; }),
                      [](const std::string& path) { return std::vector<std::string>{path + ":3:1: cmd: not found"}; },
                      st);
  EXPECT_EQ(r.answer, "invalid config");
  EXPECT_EQ(r.exit_status, 2);
  EXPECT_NE(r.last_line.find("cmd: not found"), std::string::npos) << r.last_line;
}

TEST_F(BisectTest, AResumedBisectReusesItsDecidedSteps) {
  auto rule = [](const std::set<std::string>& u) { return u.count("env.MOCK_EXTRA_ITL_MS") ? "slower" : "no change"; };
  auto first = run_bisect(opts(), fake(rule), ok_check(), st);
  std::size_t runs = tried.size();
  tried.clear();
  auto o = opts();
  o.dir = (dir / "b2").string();
  fs::create_directories(o.dir);
  for (const auto& s : first.doc["steps"]) {
    std::vector<std::string> u = s["units"];
    std::sort(u.begin(), u.end());
    std::string k;
    for (const auto& x : u) k += (k.empty() ? "" : "+") + x;
    o.done[k] = s["decision"];
  }
  auto again = run_bisect(o, fake(rule), ok_check(), st);
  EXPECT_EQ(again.answer, "found");
  EXPECT_TRUE(tried.empty()) << tried.size() << " of " << runs << " steps run again";
  EXPECT_EQ(again.doc["steps"][0]["reused"], true);
}

namespace {

/// Lifecycles of a stand-in engine: 10% slower when the config applies MOCK_EXTRA_ITL_MS.
outcome stand_in(const std::string& config, const std::string& run_dir) {
  bool slow = false;
  for (const auto& u : bp::variants::diff_units(kGood, "good", bp::base::read_file_limited(config, 1 << 20), "c"))
    if (u.key == "env.MOCK_EXTRA_ITL_MS") slow = true;
  outcome o;
  o.started = o.published = o.valid = o.teardown_verified = true;
  o.run_dir = run_dir;
  fs::create_directories(run_dir);
  o.result = bp::measure::testing::result_of(slow ? 90 : 100);
  o.result_path = (fs::path(run_dir) / "result.json").string();
  std::ofstream(o.result_path) << o.result.dump();
  return o;
}

}  // namespace

// The same search as a campaign plan, stepped one lifecycle at a time (on this thread, then by
// the campaign actor): the culprit is named, every step's folder holds its own try and nothing
// else is made when the search runs again after each step.
TEST_F(BisectTest, ThePlanFindsTheCulpritOneLifecycleAtATime) {
  for (bool with_actor : {false, true}) {
    fs::remove_all(dir / "b");
    fs::create_directories(dir / "b");
    auto o = opts();
    o.decision.bench.stats.bootstrap_resamples = 200;
    o.decision.noise = 0.03;
    int lifecycles = 0;
    auto plan = std::make_shared<bisect_plan>(
        o, [&](const std::string& c, const std::string& d) { ++lifecycles; return stand_in(c, d); }, ok_check(), st,
        steady_now_s);
    if (with_actor) {
      caf::actor_system_config cfg;
      caf::actor_system sys{cfg};
      run_campaign(sys, plan, steady_now_s);
    } else {
      drive(*plan, steady_now_s);
    }
    auto r = plan->finish();
    EXPECT_EQ(r.answer, "found") << r.text;
    EXPECT_EQ(r.doc["answer"]["units"], json::array({"env.MOCK_EXTRA_ITL_MS"}));
    int steps = r.doc["answer"]["steps"].get<int>();
    int folders = 0;
    for (const auto& e : fs::directory_iterator(dir / "b"))
      if (e.path().filename().string().rfind("step-", 0) == 0) {
        ++folders;
        EXPECT_TRUE(fs::exists(e.path() / "try.json")) << e.path();
      }
    EXPECT_EQ(folders, steps);  // one per step: a replayed search makes none
    EXPECT_GE(lifecycles, 2 * 3 * steps);  // each step a try of at least three rounds
    for (const auto& s : r.doc["steps"]) EXPECT_FALSE(s.contains("reused")) << s.dump();
  }
}

// Ctrl-C in the middle of a step: the steps decided before it stay in bisect.json (the search
// replayed after the stop goes through them again, interrupted or not), the interrupted step is
// recorded as such, and no folder is made for a step that never began.
TEST_F(BisectTest, ACtrlCMidStepKeepsTheDecidedStepsInBisectJson) {
  auto o = opts();
  o.decision.bench.stats.bootstrap_resamples = 200;
  o.decision.noise = 0.03;
  int lifecycles = 0;
  // Three rounds (six lifecycles) decide a step here: the first lifecycle of the third step
  // takes the signal.
  auto plan = std::make_shared<bisect_plan>(
      o,
      [&](const std::string& c, const std::string& d) {
        if (++lifecycles == 13) st.signals.fetch_add(1);
        return stand_in(c, d);
      },
      ok_check(), st, steady_now_s);
  drive(*plan, steady_now_s);
  auto r = plan->finish();
  EXPECT_EQ(r.answer, "interrupted") << r.text;
  json disk = json::parse(bp::base::read_file_limited((dir / "b" / "bisect.json").string(), 1 << 24));
  ASSERT_EQ(disk["steps"].size(), 3u) << disk.dump(1);
  EXPECT_NE(disk["steps"][0]["decision"]["verdict"], "interrupted");
  EXPECT_NE(disk["steps"][1]["decision"]["verdict"], "interrupted");
  EXPECT_EQ(disk["steps"][2]["decision"]["verdict"], "interrupted");
  EXPECT_EQ(disk["answer"]["verdict"], "interrupted");
  int folders = 0;
  for (const auto& e : fs::directory_iterator(dir / "b"))
    if (e.path().filename().string().rfind("step-", 0) == 0) ++folders;
  EXPECT_EQ(folders, 3);
}
