// The warmup actor on CAF's test coordinator (inline, not detached): its requests run on the test
// thread against a mock engine the test starts itself.
#include "tests/actors/coordinator.hpp"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include "base/process/engine_child.hpp"
#include "net/client/http_client.hpp"

using namespace bp;

namespace {

struct heard {
  std::vector<std::pair<std::vector<double>, std::string>> done;
  std::vector<std::pair<std::string, caf::error>> failed;
  int downs = 0;
  warmup_actor warmup;  ///< the actor under test
};

using stand_in = caf::typed_actor<caf::reacts_to<atom::warmup, std::vector<double>, std::string>,
                                  caf::reacts_to<atom::failed, std::string, caf::error>,
                                  caf::reacts_to<atom::start, std::shared_ptr<run_context>, int>>;

stand_in::behavior_type supervisor(stand_in::pointer self, std::shared_ptr<heard> h) {
  self->set_down_handler([h](caf::down_msg&) { h->downs++; });
  return {
      [h](atom::warmup, std::vector<double> ms, std::string model) { h->done.emplace_back(ms, model); },
      [h](atom::failed, std::string who, caf::error e) { h->failed.emplace_back(who, e); },
      [self, h](atom::start, std::shared_ptr<run_context> ctx, int port) {
        warmup_listener me = self;
        h->warmup = spawn_warmup_actor(self, me, ctx, port, /*detached=*/false);
      },
  };
}

class WarmupActor : public bp::testing::Coordinator {
 protected:
  ~WarmupActor() override {
    caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
    sched.run();
    if (mock_pid > 0) {
      ::kill(mock_pid, SIGTERM);
      ::waitpid(mock_pid, nullptr, 0);
    }
  }
  /// A mock engine on a free loopback port, answering /health before the test goes on.
  int start_mock() {
    std::string err;
    int port = free_loopback_port(err);
    EXPECT_GT(port, 0) << err;
    std::string exe = std::string(BP_BIN_DIR) + "/mock-engine", p = std::to_string(port);
    const char* argv[] = {exe.c_str(), "--port", p.c_str(), "--model", "warm-model", nullptr};
    EXPECT_EQ(posix_spawn(&mock_pid, exe.c_str(), nullptr, nullptr, const_cast<char**>(argv), environ), 0);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      auto r = net::http_fetch("GET", "http://127.0.0.1:" + p + "/health", "", std::chrono::seconds(2), err);
      if (r && r->status == 200) break;
      std::this_thread::yield();
    }
    return port;
  }
  void run_warmup(const std::string& yaml, int port) {
    ctx->config = config(yaml);
    sup = sys.spawn(supervisor, h);
    caf::anon_send(sup, atom::start::value, ctx, port);
    sched.run();
  }
  std::shared_ptr<heard> h = std::make_shared<heard>();
  std::shared_ptr<run_context> ctx = std::make_shared<run_context>();
  stand_in sup;
  pid_t mock_pid = -1;
};

}  // namespace

TEST_F(WarmupActor, SendsTheConfiguredRequestsAndReportsEachOnesTimeAndTheModel) {
  int port = start_mock();
  run_warmup("cmd: /bin/true\nwarmup: 3\n", port);
  ASSERT_EQ(h->done.size(), 1u);
  ASSERT_TRUE(h->failed.empty());
  EXPECT_EQ(h->done[0].first.size(), 3u);
  for (double ms : h->done[0].first) EXPECT_GT(ms, 0);
  EXPECT_EQ(h->done[0].second, "warm-model");  // asked for the first of /v1/models
  std::string err;
  auto stats = net::http_fetch("GET", "http://127.0.0.1:" + std::to_string(port) + "/mock/stats", "",
                               std::chrono::seconds(5), err);
  ASSERT_TRUE(stats);
  EXPECT_EQ(nlohmann::json::parse(stats->body).value("completed", -1), 3);
  EXPECT_EQ(h->downs, 1);  // and then it quit
}

TEST_F(WarmupActor, AnEngineThatDoesNotAnswerIsAWarmupFailure) {
  std::string err;
  int port = free_loopback_port(err);  // nothing listens there
  run_warmup("cmd: /bin/true\nwarmup: 2\n", port);
  ASSERT_EQ(h->failed.size(), 1u);
  EXPECT_EQ(h->failed[0].first, "warmup");
  EXPECT_EQ(code_of(h->failed[0].second), errc::warmup_failed);
  EXPECT_NE(reason_of(h->failed[0].second).find("warmup: "), std::string::npos);
  EXPECT_TRUE(h->done.empty());
}

TEST_F(WarmupActor, AnExitDuringARequestIsHeardBeforeTheNextOne) {
  // One message per request (issue 25 item 2): an exit that arrives while request 1 is in flight
  // is read before request 2 is sent. A warmup done in one handler sent all five first.
  std::string err;
  int port = free_loopback_port(err);
  std::string exe = std::string(BP_BIN_DIR) + "/mock-engine", p = std::to_string(port);
  const char* argv[] = {exe.c_str(), "--port", p.c_str(), "--model", "warm-model", "--ttft-ms", "300", nullptr};
  ASSERT_EQ(posix_spawn(&mock_pid, exe.c_str(), nullptr, nullptr, const_cast<char**>(argv), environ), 0);
  auto stat = [&](const char* key) {
    auto r = net::http_fetch("GET", "http://127.0.0.1:" + p + "/mock/stats", "", std::chrono::seconds(5), err);
    return r ? nlohmann::json::parse(r->body).value(key, -1L) : -1L;
  };
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (stat("started") < 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  ctx->config = config("cmd: /bin/true\nwarmup: 5\n");
  sup = sys.spawn(supervisor, h);
  caf::anon_send(sup, atom::start::value, ctx, port);
  // Another thread sends the exit once request 1 is in flight; this one runs the actors meanwhile.
  std::thread exiter([&] {
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (stat("started") < 1 && std::chrono::steady_clock::now() < until) std::this_thread::yield();
    while (!h->warmup && std::chrono::steady_clock::now() < until) std::this_thread::yield();
    caf::anon_send_exit(h->warmup, caf::exit_reason::user_shutdown);
  });
  drive_until([&] { return h->downs > 0; });
  exiter.join();
  EXPECT_EQ(stat("started"), 1);
  EXPECT_TRUE(h->done.empty());
  EXPECT_EQ(h->downs, 1);
}
