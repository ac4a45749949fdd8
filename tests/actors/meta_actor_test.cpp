// The meta actor and its collectors against a live engine child, with injected collector faults.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>

#include "actors/actors.hpp"
#include "base/process/engine_child.hpp"
#include "snapshot/proc.hpp"

using namespace bp;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

struct published_msg {
  std::string id, path;
  int count = 0;
};

class MetaActorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("bp_meta_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    launch_spec s;
    s.shim_exe = std::string(BP_BIN_DIR) + "/bench-proxy";
    s.exe = std::string(BP_BIN_DIR) + "/mock-engine";
    std::string err;
    port_ = free_loopback_port(err);
    s.argv = {"mock-engine", "--workers", "2", "--port", std::to_string(port_)};
    s.envp = {"PATH=/usr/bin:/bin", "HF_TOKEN=hf_test_secret_value_42", "PER_RUN=1"};
    s.cwd = dir_.string();
    s.redact = bp::base::redactor({"hf_test_secret_value_42"}, "test key");
    child_ = engine_child::launch(s, nullptr, err);
    ASSERT_TRUE(child_) << err;
    // The workers exist and have renamed themselves: poll with a deadline (asserted later).
    auto named = [this] {
      int n = 0;
      for (int pid : bp::snap::descendants("/proc", {child_->pid()})) {
        std::ifstream f("/proc/" + std::to_string(pid) + "/comm");
        std::string comm;
        std::getline(f, comm);
        n += comm.rfind("MOCK::Worker_", 0) == 0;
      }
      return n;
    };
    auto deadline = std::chrono::steady_clock::now() + 60s;
    while (named() < 2 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
    ctx_ = std::make_shared<run_context>();
    ctx_->config.description = "meta actor test";
    ctx_->config.engine = "mock";
    ctx_->config.cmd = s.exe;
    ctx_->config.env = {{"PATH", {"/usr/bin:/bin", false}}, {"HF_TOKEN", {"hf_test_secret_value_42", true}}, {"PER_RUN", {"1", false}}};
    ctx_->config.snapshot_timeout_s = 2;
    ctx_->run_dir = dir_.string();
    ctx_->status = &status_;
  }
  void TearDown() override {
    if (child_) {
      child_->signal_group(SIGKILL);
      child_->wait_gone(5s);
    }
    fs::remove_all(dir_);
  }

  /// Runs a meta actor under a parent that records every `published` it receives.
  published_msg run_meta(std::chrono::seconds wait = 20s) {
    caf::actor_system_config cfg;
    caf::actor_system sys{cfg};
    auto result = std::make_shared<std::promise<published_msg>>();
    auto count = std::make_shared<int>(0);
    engine_started e{child_->pid(), child_->shim_pid(), port_, ctx_->config.cmd, child_->output_handle()};
    auto ctx = ctx_;
    auto parent = sys.spawn([=](caf::event_based_actor* self) -> caf::behavior {
      spawn_meta_actor(self, caf::actor_cast<meta_listener>(self), ctx, e, nlohmann::json{{"requests", 0}});
      self->set_down_handler([=](caf::down_msg&) {
        // The meta actor is done: give a late second publish a moment to show up, then report.
        self->delayed_send(self, 300ms, atom::stop::value);
      });
      auto last = std::make_shared<published_msg>();
      return {
          [=](atom::published, std::string id, std::string path) {
            ++*count;
            last->id = id;
            last->path = path;
          },
          [=](atom::stop) {
            last->count = *count;
            result->set_value(*last);
            self->quit();
          },
      };
    });
    auto f = result->get_future();
    EXPECT_EQ(f.wait_for(wait), std::future_status::ready);
    return f.get();
  }

  nlohmann::json doc() { return nlohmann::json::parse(status_.meta()->bytes); }

  fs::path dir_;
  int port_ = 0;
  std::shared_ptr<engine_child> child_;
  std::shared_ptr<run_context> ctx_;
  net::run_status status_;
};

}  // namespace

TEST_F(MetaActorTest, PublishesOnceWithTheLiveProcessTree) {
  auto p = run_meta();
  EXPECT_EQ(p.count, 1);
  ASSERT_TRUE(status_.meta());
  EXPECT_EQ(status_.meta()->sha256, p.id);
  auto d = doc();
  const auto& procs = d["process_tree"]["processes"];
  ASSERT_EQ(procs.size(), 3u) << procs.dump();
  std::set<std::string> comms;
  for (const auto& pr : procs) comms.insert(pr["comm"].get<std::string>());
  EXPECT_TRUE(comms.count("MOCK::Worker_0"));
  EXPECT_TRUE(comms.count("MOCK::Worker_1"));
  // Per-PID env is exactly the configured env (secret redacted), nothing inherited.
  for (const auto& pr : procs) {
    EXPECT_EQ(pr["env"].size(), 3u) << pr.dump();
    EXPECT_FALSE(pr["env"].contains("HOME"));
    EXPECT_FALSE(pr["env"].contains("LANG"));
    EXPECT_EQ(pr["env"]["HF_TOKEN"]["redacted"], true);
  }
  EXPECT_EQ(status_.meta()->bytes.find("hf_test_secret_value_42"), std::string::npos);
  for (const auto& [name, st] : d["collectors"].items()) EXPECT_TRUE(st["ok"].get<bool>()) << name << " " << st.dump();
  EXPECT_TRUE(fs::exists(p.path));
}

TEST_F(MetaActorTest, ThrowingStallingAndCrashingCollectorsYieldErrorSections) {
  ctx_->faults = "collector:venv=throw,collector:host=stall,collector:lshw=crash";
  auto p = run_meta();
  EXPECT_EQ(p.count, 1);  // published despite the stalled collector (its deadline ended the wait)
  auto d = doc();
  EXPECT_EQ(d["venv"]["ok"], false);
  EXPECT_NE(d["venv"]["error"].get<std::string>().find("injected fault"), std::string::npos);
  EXPECT_EQ(d["host"]["ok"], false);
  EXPECT_NE(d["host"]["error"].get<std::string>().find("deadline"), std::string::npos) << d["host"].dump();
  EXPECT_EQ(d["lshw"]["ok"], false);
  EXPECT_EQ(d["collectors"]["lshw"]["attempts"], 3);  // crashed collectors are retried within the deadline
  EXPECT_EQ(d["collectors"]["command"]["ok"], true);
  EXPECT_EQ(d["command"]["pid"], child_->pid());
}
