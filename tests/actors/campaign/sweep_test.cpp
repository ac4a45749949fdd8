// The sweep without an engine: its folder layout, the --vary variants, the resume key and the
// lifecycles a resumed sweep reuses, and the loop driven by lifecycles of the test's own (trial
// order, a failed lifecycle as a failed row, Ctrl-C before the next lifecycle).
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "actors/campaign/sweep.hpp"
#include "base/files.hpp"
#include "tests/actors/campaign/fake_result.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace bp::measure;

namespace {

using bp::measure::testing::result_of;

const char* kBase = R"(description: base
engine: mock
cmd: /bin/true
args: [--tokens, "8", --itl-ms, "2"]
env:
  PATH: /usr/bin:/bin
warmup: 1
)";

struct SweepTest : ::testing::Test {
  fs::path dir = fs::temp_directory_path() / ("bp_sweep_test_" + std::to_string(::getpid()) + "_" +
                                              ::testing::UnitTest::GetInstance()->current_test_info()->name());
  interrupt_state st;
  std::vector<std::string> calls;  ///< "config stem:trial folder" of each lifecycle, in order
  std::string fail_stem;           ///< the lifecycles of this config fail to start
  std::size_t interrupt_at = 0;    ///< Ctrl-C arrives during this lifecycle (from 1; 0: never)
  std::ostringstream out;

  void SetUp() override {
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  void TearDown() override { fs::remove_all(dir); }

  std::string config(const std::string& name, const std::string& text = kBase) {
    std::string p = (dir / name).string();
    std::ofstream(p) << text;
    return p;
  }
  sweep_options opts(std::vector<std::string> configs, const std::string& sweep_dir) {
    sweep_options o;
    o.configs = std::move(configs);
    o.sweep_dir = (dir / sweep_dir).string();
    o.lifecycle.results_tsv.clear();
    o.lifecycle.bench.stats.bootstrap_resamples = 200;
    return o;
  }
  /// A lifecycle that writes a valid result, fails for `fail_stem`, or is cut short by Ctrl-C.
  sweep_result run(const sweep_options& o) {
    auto lifecycle = [this](const sweep_lifecycle& l) {
      std::string stem = fs::path(l.run.config_path).stem().string();
      calls.push_back(stem + ":" + fs::path(l.run.run_dir).filename().string());
      EXPECT_TRUE(fs::is_directory(l.run.run_dir)) << l.run.run_dir;
      EXPECT_EQ(l.step, calls.size());
      outcome r;
      r.run_dir = l.run.run_dir;
      r.teardown_verified = true;
      if (calls.size() == interrupt_at) {
        st.signals = 1;
        r.started = true;
        r.error = bp::make_error(bp::errc::interrupted, "interrupted");
        r.reason = "interrupted";
        r.result = result_of(100);
        r.result["valid"] = false;
        r.result_path = (fs::path(l.run.run_dir) / "result.json").string();
        std::ofstream(r.result_path) << r.result.dump();
        return r;
      }
      if (stem == fail_stem) {
        r.started = true;
        r.error = bp::make_error(bp::errc::engine_start_failed, "the engine never became ready");
        r.reason = "the engine never became ready";
        return r;
      }
      r.started = r.published = r.valid = true;
      r.result = result_of(stem == "b" ? 90 : 100);
      r.result_path = (fs::path(l.run.run_dir) / "result.json").string();
      std::ofstream(r.result_path) << r.result.dump();
      return r;
    };
    return run_sweep(o, lifecycle, st, out);
  }
};

}  // namespace

TEST_F(SweepTest, ClaimingRefusesAFolderThatHoldsASweepJson) {
  fs::create_directories(dir / "done");
  std::ofstream(dir / "done" / "sweep.json") << "{}";
  try {
    claim_sweep_dir((dir / "done").string());
    FAIL() << "claimed a folder holding a sweep.json";
  } catch (const sweep_refused& e) {
    EXPECT_NE(std::string(e.what()).find("already holds a sweep.json"), std::string::npos) << e.what();
  }
}

TEST_F(SweepTest, ClaimingRefusesAFolderAnotherSweepHoldsNamingItsPid) {
  std::string d = (dir / "busy" / "sw").string();
  EXPECT_EQ(claim_sweep_dir(d), d);  // made, with its parents
  EXPECT_EQ(bp::base::read_file_limited(d + "/sweep.lock"), std::to_string(::getpid()) + "\n");
  // The lock is an flock on its own open file: a second claim, even from this process, is refused.
  try {
    claim_sweep_dir(d);
    FAIL() << "claimed a folder in use";
  } catch (const sweep_refused& e) {
    EXPECT_NE(std::string(e.what()).find("in use by another sweep (PID " + std::to_string(::getpid()) + ","),
              std::string::npos)
        << e.what();
  }
  // A lock file whose holder is gone (no flock on it) does not hold the folder.
  fs::create_directories(dir / "stale");
  std::ofstream(dir / "stale" / "sweep.lock") << "999999\n";
  EXPECT_EQ(claim_sweep_dir((dir / "stale").string()), (dir / "stale").string());
  EXPECT_EQ(bp::base::read_file_limited((dir / "stale" / "sweep.lock").string()), std::to_string(::getpid()) + "\n");
}

TEST_F(SweepTest, EachConfigGetsANumberedFolderAndEachTrialOneInside) {
  std::string sw = (dir / "sw").string();
  auto dirs = config_dirs({"x/a.yaml", "y/a.yaml", "b.yml"}, sw);
  EXPECT_EQ(dirs, (std::vector<std::string>{sw + "/1_a", sw + "/2_a", sw + "/3_b"}));
  for (const auto& d : dirs) EXPECT_TRUE(fs::is_directory(d)) << d;
  EXPECT_EQ(trial_dir(1, dirs[0], 0), dirs[0]);  // one trial: the config's own folder
  EXPECT_EQ(trial_dir(3, dirs[0], 1), dirs[0] + "/trial-2");
  EXPECT_TRUE(fs::is_directory(dirs[0] + "/trial-2"));
  EXPECT_EQ(trial_dir(3, dirs[0], 1), dirs[0] + "/trial-2-2");  // never an existing one
}

TEST_F(SweepTest, AGridOfVariantsIsNamedByItsKnobValuesAndEachIsAValidConfig) {
  std::string base = config("base.yaml");
  auto v = make_variants(base, {"args.--itl-ms=1,2", "env.KNOB=a,b"}, false);
  std::vector<std::string> names;
  for (const auto& f : v) names.push_back(f.name);
  EXPECT_EQ(names, (std::vector<std::string>{"args.-itl-ms=1_env.KNOB=a.yaml", "args.-itl-ms=1_env.KNOB=b.yaml",
                                             "args.-itl-ms=2_env.KNOB=a.yaml", "args.-itl-ms=2_env.KNOB=b.yaml"}));
  EXPECT_EQ(v[3].knobs, (std::vector<std::pair<std::string, std::string>>{{"args.--itl-ms", "2"}, {"env.KNOB", "b"}}));
  EXPECT_EQ(v[3].yaml.rfind("# generated by bench-proxy sweep --vary from " + base + "\n", 0), 0u) << v[3].yaml;
  EXPECT_NE(v[3].yaml.find("KNOB"), std::string::npos) << v[3].yaml;
  auto paths = write_variants(v, (dir / "sw").string());
  ASSERT_EQ(paths.size(), 4u);
  EXPECT_EQ(paths[0], (dir / "sw" / "configs" / names[0]).string());
  EXPECT_EQ(bp::base::read_file_limited(paths[3]), v[3].yaml);
  EXPECT_THROW(write_variants(v, (dir / "sw").string()), std::exception);  // never over a file

  auto one = make_variants(base, {"warmup=0,2", "env.KNOB=a"}, true);
  names.clear();
  for (const auto& f : one) names.push_back(f.name);
  EXPECT_EQ(names, (std::vector<std::string>{"warmup=0.yaml", "warmup=2.yaml", "env.KNOB=a.yaml"}));
}

TEST_F(SweepTest, AVariantThatIsNoValidConfigIsRefusedNamingItsKnob) {
  std::string base = config("base.yaml");
  for (const auto& [spec, words] : std::vector<std::pair<std::string, std::string>>{
           {"nosuchkey=1,2", "unknown key 'nosuchkey'"},
           {"warmup=1,-5", "--vary warmup=-5: the variant of " + base + " is not a valid config"},
           {"env.KNOB=", "an empty value"}}) {
    try {
      make_variants(base, {spec}, false);
      ADD_FAILURE() << spec;
    } catch (const sweep_refused& e) {
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    }
  }
  // Two --vary of one key, and values whose file names would be the same: refused, none lost.
  for (const auto& [specs, words] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"warmup=1", "warmup=3"}, "--vary warmup is given twice"},
           {{"env.X=a/b,a_b"}, "would both be named env.X=a_b.yaml"}}) {
    try {
      make_variants(base, specs, false);
      ADD_FAILURE() << specs[0];
    } catch (const sweep_refused& e) {
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    }
  }
  // --vary with several configs: refused before anything is made.
  auto o = opts({base, base}, "never");
  o.vary = {"env.K=a,b"};
  EXPECT_THROW(run(o), sweep_refused);
  EXPECT_FALSE(fs::exists(dir / "never"));
}

TEST_F(SweepTest, TheResumeKeyHoldsTheConfigsBytesAndWhatALifecycleMeasures) {
  std::string a = config("a.yaml"), b = config("b.yaml", std::string(kBase) + "# b\n");
  auto o = opts({a, b}, "sw");
  o.trials = 3;
  o.slo = "ttft_p99_ms<=200";
  json k = resume_key(o, o.configs);
  ASSERT_EQ(k["configs"].size(), 2u);
  EXPECT_NE(k["configs"][0], k["configs"][1]);
  EXPECT_EQ(k["trials"], 3);
  EXPECT_EQ(k["order"], "interleaved");
  EXPECT_EQ(k["slo"], "ttft_p99_ms<=200");
  EXPECT_FALSE(k.contains("client"));
  EXPECT_EQ(resume_key(o, o.configs), k);  // the same sweep, the same key
  config("b.yaml", std::string(kBase) + "# changed\n");
  EXPECT_NE(resume_key(o, o.configs)["configs"][1], k["configs"][1]);
  EXPECT_THROW(resume_key(o, {(dir / "missing.yaml").string()}), sweep_refused);
}

TEST_F(SweepTest, EveryTrialRunsInInterleavedOrderAndTheFailedConfigIsAFailedRow) {
  auto o = opts({config("a.yaml"), config("b.yaml"), config("c.yaml")}, "sw");
  o.trials = 2;
  fail_stem = "c";
  auto r = run(o);
  // Rounds alternate their direction (A B C, C B A): a trend within rounds cancels.
  EXPECT_EQ(calls, (std::vector<std::string>{"a:trial-1", "b:trial-1", "c:trial-1", "c:trial-2", "b:trial-2",
                                             "a:trial-2"}));
  EXPECT_FALSE(r.interrupted);
  EXPECT_TRUE(r.any_bad);  // the CLI's exit 1
  EXPECT_EQ(r.sweep_dir, o.sweep_dir);
  auto doc = bp::base::read_file_limited(o.sweep_dir + "/sweep.json");
  EXPECT_EQ(json::parse(doc), r.doc);
  ASSERT_EQ(r.doc["rows"].size(), 3u);
  EXPECT_EQ(r.doc["rows"][0]["config"], o.configs[0]);  // the fastest first, the failed one last
  EXPECT_EQ(r.doc["rows"][1]["config"], o.configs[1]);
  EXPECT_EQ(r.doc["rows"][2]["config"], o.configs[2]);
  EXPECT_EQ(r.doc["rows"][2]["valid"], false);
  EXPECT_EQ(r.doc["rows"][2]["error_code"], "engine_start_failed");
  EXPECT_EQ(r.doc["rows"][2]["error"], "trial 1: the engine never became ready");
  EXPECT_EQ(r.doc["trials"], 2);
  EXPECT_TRUE(r.doc["resume_key"].is_object());
  for (const char* d : {"1_a", "2_b", "3_c"}) EXPECT_TRUE(fs::exists(fs::path(o.sweep_dir) / d / "trials.json")) << d;
  std::string text = out.str();
  EXPECT_NE(text.find("FAILED"), std::string::npos) << text;
  EXPECT_NE(text.find("sweep: " + fs::absolute(o.sweep_dir + "/sweep.json").string() + "\n"), std::string::npos) << text;
  EXPECT_EQ(text.substr(text.rfind('\n', text.size() - 2) + 1).rfind("report: ", 0), std::string::npos)
      << "the best line comes last: " << text;
}

TEST_F(SweepTest, CtrlCStopsTheSweepBeforeTheNextLifecycle) {
  auto o = opts({config("a.yaml"), config("b.yaml"), config("c.yaml")}, "sw");
  interrupt_at = 2;
  auto r = run(o);
  EXPECT_EQ(calls, (std::vector<std::string>{"a:1_a", "b:2_b"}));  // one trial: the config's own folder
  EXPECT_TRUE(r.interrupted);
  EXPECT_EQ(r.doc["interrupted"], true);
  ASSERT_EQ(r.doc["configs"].size(), 3u);
  EXPECT_EQ(r.doc["configs"][2].value("not_run", false), true);
  EXPECT_NE(out.str().find("not run (interrupted)"), std::string::npos) << out.str();
}

TEST_F(SweepTest, AResumedSweepReusesTheFinishedLifecyclesAndRunsOnlyTheRest) {
  std::string a = config("a.yaml"), b = config("b.yaml");
  auto o = opts({a, b}, "first");
  o.trials = 2;
  interrupt_at = 3;  // b's second trial (round 2 runs B A) is cut short
  auto first = run(o);
  ASSERT_TRUE(first.interrupted);
  EXPECT_TRUE(fs::exists(dir / "first" / "2_b" / "trial-2" / "result.json"));  // its folder stays

  json key = resume_key(o, o.configs);
  auto reused = reusable_lifecycles(o.sweep_dir, key);
  ASSERT_EQ(reused.size(), 2u);
  ASSERT_EQ(reused[0].size(), 1u);  // the finished trial, not the one Ctrl-C cut short
  ASSERT_EQ(reused[1].size(), 1u);
  EXPECT_EQ(reused[0][0].run_dir, fs::absolute(dir / "first" / "1_a" / "trial-1").string());
  EXPECT_TRUE(reused[0][0].valid);
  EXPECT_TRUE(reused[0][0].teardown_verified);

  // Another sweep's key is refused, naming what differs.
  auto other = o;
  other.trials = 3;
  try {
    reusable_lifecycles(o.sweep_dir, resume_key(other, other.configs));
    FAIL() << "reused another sweep's lifecycles";
  } catch (const sweep_refused& e) {
    EXPECT_NE(std::string(e.what()).find("not the same sweep: --trials differs (2 there, 3 now)"), std::string::npos)
        << e.what();
  }

  calls.clear();
  interrupt_at = 0;
  st.signals = 0;
  auto again = o;
  again.sweep_dir = (dir / "second").string();
  again.resume = o.sweep_dir;
  auto r = run(again);
  EXPECT_EQ(calls, (std::vector<std::string>{"b:trial-2", "a:trial-2"}));  // round 2 runs B A
  EXPECT_FALSE(r.interrupted);
  EXPECT_FALSE(r.any_bad);
  EXPECT_EQ(r.doc["reused"].size(), 2u);
  EXPECT_EQ(r.doc["resumed_from"], fs::absolute(o.sweep_dir).lexically_normal().string());
  EXPECT_NE(out.str().find("resuming " + o.sweep_dir + ": reused 2 finished lifecycles (results stay where they are)"),
            std::string::npos)
      << out.str();
  // A finished sweep is not resumed.
  try {
    reusable_lifecycles(again.sweep_dir, key);
    FAIL() << "resumed a finished sweep";
  } catch (const sweep_refused& e) {
    EXPECT_NE(std::string(e.what()).find("that sweep finished"), std::string::npos) << e.what();
  }
}
