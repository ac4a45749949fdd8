// The engine actor on CAF's test coordinator (spawned inline, not detached): the test thread runs
// its launch and each readiness probe, and fires its probe timer. A stand-in supervisor records
// what the actor reports.
#include "tests/actors/coordinator.hpp"

#include <signal.h>

#include <cerrno>
#include <filesystem>

#include "base/files.hpp"

using namespace bp;

namespace {

struct heard {
  std::vector<engine_started> started;
  std::vector<int> ready;
  std::vector<std::pair<std::string, caf::error>> failed;
  std::vector<std::string> exited, stopped;
  engine_actor engine;
};

/// Implements engine_listener, and spawns the engine actor itself (as the supervisor does) on
/// the first message, so the actor is its monitored child.
using stand_in = caf::typed_actor<caf::reacts_to<atom::started, engine_started>, caf::reacts_to<atom::ready, int>,
                                  caf::reacts_to<atom::exited, std::string, std::string, bool>,
                                  caf::reacts_to<atom::stopped, std::string>,
                                  caf::reacts_to<atom::failed, std::string, caf::error>,
                                  caf::reacts_to<atom::start, std::shared_ptr<run_context>>>;

stand_in::behavior_type supervisor(stand_in::pointer self, std::shared_ptr<heard> h) {
  self->set_down_handler([](caf::down_msg&) {});
  return {
      [h](atom::started, engine_started e) { h->started.push_back(e); },
      [h](atom::ready, int port) { h->ready.push_back(port); },
      [h](atom::exited, std::string desc, std::string, bool) { h->exited.push_back(desc); },
      [h](atom::stopped, std::string desc) { h->stopped.push_back(desc); },
      [h](atom::failed, std::string who, caf::error e) { h->failed.emplace_back(who, e); },
      [self, h](atom::start, std::shared_ptr<run_context> ctx) {
        engine_listener me = self;
        h->engine = spawn_engine_actor(self, me, ctx, /*detached=*/false);
      },
  };
}

class EngineActor : public bp::testing::Coordinator {
 protected:
  ~EngineActor() override {
    // Ending the actor ends its child: engine_child's destructor kills the group and reaps it.
    if (h->engine) caf::anon_send_exit(h->engine, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
    sched.run();
    std::filesystem::remove_all(dir);
  }
  void start(const std::string& yaml) {
    ctx->config = config(yaml);
    ctx->run_dir = dir;
    ctx->shim_exe = std::string(BP_BIN_DIR) + "/bench-proxy";
    sup = sys.spawn(supervisor, h);
    caf::anon_send(sup, atom::start::value, ctx);
    sched.run();
  }
  static std::string mock_yaml(const std::string& extra) {
    return "cmd: " + std::string(BP_BIN_DIR) + "/mock-engine\nargs: [--startup-delay-ms, '200']\n" +
           "env: {PATH: /usr/bin:/bin}\nready_timeout_s: 60\n" + extra;
  }
  std::shared_ptr<heard> h = std::make_shared<heard>();
  std::shared_ptr<run_context> ctx = std::make_shared<run_context>();
  std::string dir = base::make_unique_dir(std::filesystem::temp_directory_path().string() + "/bp-engine-actor-test");
  stand_in sup;
};

bool process_gone(int pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

}  // namespace

TEST_F(EngineActor, AMissingCommandIsAStartFailureNamingTheConfig) {
  start("cmd: /nonexistent/engine-binary\n");
  ASSERT_EQ(h->failed.size(), 1u);
  EXPECT_EQ(h->failed[0].first, "engine");
  EXPECT_EQ(code_of(h->failed[0].second), errc::engine_start_failed);
  EXPECT_NE(reason_of(h->failed[0].second).find("test.yaml"), std::string::npos) << reason_of(h->failed[0].second);
  EXPECT_TRUE(h->started.empty());
}

TEST_F(EngineActor, ReportsItsChildThenReadinessOnceTheHealthProbeAnswers) {
  start(mock_yaml(""));
  ASSERT_EQ(h->started.size(), 1u);  // at once: the child was launched in the actor's init
  const auto e = h->started[0];
  EXPECT_GT(e.pid, 0);
  EXPECT_GT(e.shim_pid, 0);
  EXPECT_GT(e.port, 0);
  EXPECT_NE(e.exe.find("mock-engine"), std::string::npos);
  EXPECT_FALSE(process_gone(e.pid));
  // Each probe that finds the mock still loading re-arms the timer; the test fires it.
  ASSERT_TRUE(drive_until([&] { return !h->ready.empty() || !h->failed.empty(); }));
  ASSERT_TRUE(h->failed.empty()) << reason_of(h->failed[0].second);
  EXPECT_EQ(h->ready[0], e.port);
  // The engine actor alone owns the child: when the actor ends, the child's whole tree goes.
  caf::anon_send_exit(h->engine, caf::exit_reason::user_shutdown);
  sched.run();
  h->engine = nullptr;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!process_gone(e.pid) && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  EXPECT_TRUE(process_gone(e.pid));
  EXPECT_TRUE(process_gone(e.shim_pid));
}

TEST_F(EngineActor, AHealthPathThatIs404IsAStartFailureThatNamesTheKey) {
  start(mock_yaml("health_path: /no-such-path\n"));
  ASSERT_TRUE(drive_until([&] { return !h->failed.empty(); }));
  EXPECT_EQ(code_of(h->failed[0].second), errc::engine_start_failed);
  EXPECT_NE(reason_of(h->failed[0].second).find("answered 404 (set health_path in "), std::string::npos)
      << reason_of(h->failed[0].second);
  EXPECT_TRUE(h->ready.empty());
}
