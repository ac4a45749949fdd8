// The fleet's agent actor on CAF's test coordinator, with a typed stand-in runner and listener:
// a checked job goes to the runner and its answer back to the coordinator, one at a time; stop
// with the token, a coordinator gone and a signal each set the flag the run is torn down by; a
// signal ends the agent once the running row answered; a stop or port message from outside this
// process is refused.
#include "actors/fleet/agent.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "base/sha256.hpp"
#include "tests/actors/coordinator.hpp"

namespace fs = std::filesystem;
using namespace bp;
using namespace bp::fleet;

namespace {

const std::string token = "the-fleet-token-0123456789";

struct seen {
  std::vector<std::pair<std::string, result>> results;
  std::vector<std::string> progress;
  std::vector<std::pair<job, std::string>> runs;  ///< what the runner was asked, with the config file
  std::vector<caf::typed_response_promise<result>> open;
  std::shared_ptr<const std::atomic<bool>> stop;
};

fleet_listener::behavior_type listener(fleet_listener::pointer, std::shared_ptr<seen> s) {
  return {
      [=](atom::fprogress, const std::string&, const std::string& line) { s->progress.push_back(line); },
      [=](atom::fresult, const std::string& row, const result& r) { s->results.emplace_back(row, r); },
  };
}

/// A runner that keeps every run open until the test answers it (`fresult`: the oldest open run
/// gets this result; a promise is delivered from its own actor).
using test_runner = fleet_runner_actor::extend<caf::reacts_to<atom::fresult, result>>;

test_runner::behavior_type runner(test_runner::pointer self, std::shared_ptr<seen> s) {
  return {
      [=](atom::frun, const job& j, const std::string& file, const fleet_listener&) -> caf::result<result> {
        s->runs.emplace_back(j, file);
        auto rp = self->make_response_promise<result>();
        s->open.push_back(rp);
        return rp;
      },
      [=](atom::fresult, const result& r) {
        for (auto& rp : s->open)
          if (rp.pending()) {
            rp.deliver(r);
            return;
          }
      },
  };
}

class FleetAgent : public bp::testing::Coordinator {
 protected:
  FleetAgent() {
    dir = fs::temp_directory_path() / ("bp_fleet_agent_" + std::to_string(::getpid()));
    fs::create_directories(dir / "root");
    std::ofstream(dir / "root" / "c.yaml") << content;
    agent_options o;
    o.name = "a";
    o.config_root = fs::canonical(dir / "root").string();
    o.run_root = (dir / "runs").string();
    o.token = token;
    s = std::make_shared<seen>();
    agent = spawn_agent(sys, o, {}, [this](caf::local_actor* parent, std::shared_ptr<const std::atomic<bool>> stop) {
      s->stop = stop;
      the_runner = parent->spawn(runner, s);
      return fleet_runner_actor{the_runner};
    });
    caf::actor_cast<caf::abstract_actor*>(agent)->attach_functor([this](const caf::error&) { ended = true; });
    coord = sys.spawn(listener, s);
  }
  ~FleetAgent() override {
    s->open.clear();
    if (the_runner) caf::anon_send_exit(the_runner, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(agent, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(coord, caf::exit_reason::user_shutdown);
    sched.run();
    fs::remove_all(dir);
  }

  job the_job(const std::string& row, const std::string& tok = token) {
    job j;
    j.token = tok;
    j.config_path = "c.yaml";
    j.config_sha256 = sha256_hex(content);
    j.workload_name = "w.csv";
    j.workload = "prompt\nhi\n";
    j.workload_sha256 = sha256_hex(j.workload);
    j.row = row;
    return j;
  }

  /// Sends `msg` from an actor of this process (as run_agent's signal thread does).
  template <class... Ts>
  void send_locally(Ts... xs) {
    auto a = agent;
    sys.spawn([a, xs...](caf::event_based_actor* self) { self->send(a, xs...); });
    sched.run();
  }

  const std::string content = "description: agent test\nengine: mock\n";
  fs::path dir;
  std::shared_ptr<seen> s;
  /// The runner answers the oldest open run with `r`.
  void answer(result r) {
    caf::anon_send(the_runner, atom::fresult::value, std::move(r));
    sched.run();
  }

  fleet_agent_local agent;
  test_runner the_runner;
  fleet_listener coord;
  bool ended = false;
};

}  // namespace

TEST_F(FleetAgent, AJobGoesToTheRunnerItsAnswerBackAndABusyAgentRefusesASecond) {
  caf::anon_send(agent, atom::frun::value, the_job("1_c"), coord);
  sched.run();
  ASSERT_EQ(s->runs.size(), 1u);
  EXPECT_EQ(s->runs[0].second, fs::canonical(dir / "root" / "c.yaml").string());
  caf::anon_send(agent, atom::frun::value, the_job("2_c"), coord);  // one config at a time
  sched.run();
  ASSERT_EQ(s->results.size(), 1u);
  EXPECT_EQ(s->results[0].first, "2_c");
  EXPECT_NE(s->results[0].second.error.find("refused by agent a: busy with row 1_c"), std::string::npos);
  result r;
  r.ok = true;
  r.agent = "a";
  answer(r);
  ASSERT_EQ(s->results.size(), 2u);
  EXPECT_EQ(s->results[1].first, "1_c");
  EXPECT_TRUE(s->results[1].second.ok);
  // Free again: the next job runs, a wrong token does not.
  caf::anon_send(agent, atom::frun::value, the_job("3_c", "not-the-token-0000000000"), coord);
  caf::anon_send(agent, atom::frun::value, the_job("4_c"), coord);
  sched.run();
  EXPECT_EQ(s->runs.size(), 2u);
  EXPECT_EQ(s->runs[1].first.row, "4_c");
  EXPECT_NE(s->results[2].second.error.find("wrong token"), std::string::npos);
  EXPECT_FALSE(ended);
}

TEST_F(FleetAgent, StopWithTheTokenOrTheCoordinatorGoneTearsTheRunDown) {
  caf::anon_send(agent, atom::frun::value, the_job("1_c"), coord);
  sched.run();
  ASSERT_TRUE(s->stop);
  EXPECT_FALSE(s->stop->load());
  caf::anon_send(agent, atom::fstop::value, std::string("not-the-token-0000000000"));
  sched.run();
  EXPECT_FALSE(s->stop->load());
  caf::anon_send(agent, atom::fstop::value, token);
  sched.run();
  EXPECT_TRUE(s->stop->load());
  answer(result{});
  // The next job starts with the flag down; its coordinator vanishing raises it.
  caf::anon_send(agent, atom::frun::value, the_job("2_c"), coord);
  sched.run();
  EXPECT_FALSE(s->stop->load());
  caf::anon_send_exit(coord, caf::exit_reason::remote_link_unreachable);
  sched.run();
  EXPECT_TRUE(s->stop->load());
}

TEST_F(FleetAgent, ASignalTearsTheRunningRowDownAndTheAgentEndsOnceItAnswered) {
  caf::anon_send(agent, atom::frun::value, the_job("1_c"), coord);
  sched.run();
  // From outside this process (no local sender): refused.
  caf::anon_send(agent, atom::stop::value, std::string("SIGINT"));
  sched.run();
  EXPECT_FALSE(s->stop->load());
  send_locally(atom::stop::value, std::string("SIGINT"));
  EXPECT_TRUE(s->stop->load());
  EXPECT_FALSE(ended);  // the row's answer first
  caf::anon_send(agent, atom::frun::value, the_job("2_c"), coord);
  sched.run();
  ASSERT_EQ(s->results.size(), 1u);
  EXPECT_NE(s->results[0].second.error.find("busy with row 1_c"), std::string::npos);
  result r;
  r.error = "interrupted";
  answer(r);
  ASSERT_EQ(s->results.size(), 2u);
  EXPECT_EQ(s->results[1].first, "1_c");
  EXPECT_EQ(s->results[1].second.error, "interrupted");
  EXPECT_TRUE(ended);
}

TEST_F(FleetAgent, ASignalWhileIdleEndsTheAgentAtOnce) {
  send_locally(atom::stop::value, std::string("SIGTERM"));
  EXPECT_TRUE(ended);
}
