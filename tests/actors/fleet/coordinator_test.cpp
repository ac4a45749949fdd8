// The fleet's coordinator actor on CAF's test coordinator, with typed stand-in agents and
// dialers (no network, no guard): dispatch and results, a lost agent (its down message), a hello
// that never comes (a request timeout), an agent unreachable until it is given up (retry timers),
// Ctrl-C reaching every agent, and many agents served by the one actor on the one test thread.
#include "actors/fleet/coordinator.hpp"

#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "tests/actors/coordinator.hpp"

using namespace bp;
using namespace bp::fleet;

namespace {

const std::string token = "the-fleet-token-0123456789";

/// What a stand-in agent was told, and how it answers.
struct agent_script {
  bool answer_hello = true;  ///< false: the hello is never answered (a response promise kept)
  bool answer_runs = true;   ///< false: a run is accepted and never ends (until stop or down)
  std::vector<std::string> labels;
  // Seen:
  int hellos = 0;
  std::vector<job> jobs;
  std::vector<std::string> stops;
  std::vector<std::thread::id> threads;  ///< the thread of every message it handled
  std::vector<caf::typed_response_promise<hello>> unanswered;
  fleet_listener listener;
  std::string running;
};

fleet_agent_actor::behavior_type stand_in_agent(fleet_agent_actor::pointer self, std::string name,
                                                std::shared_ptr<agent_script> sc) {
  return {
      [=](atom::fhello, const std::string& t) -> caf::result<hello> {
        sc->threads.push_back(std::this_thread::get_id());
        ++sc->hellos;
        if (!sc->answer_hello) {
          auto rp = self->make_response_promise<hello>();
          sc->unanswered.push_back(rp);
          return rp;
        }
        if (t != token) return caf::make_error(caf::sec::request_receiver_down, "wrong token");
        hello h;
        h.agent = name;
        h.host = name + ".test";
        h.version = "test";
        h.labels = sc->labels;
        return h;
      },
      [=](atom::frun, const job& j, const fleet_listener& l) {
        sc->threads.push_back(std::this_thread::get_id());
        sc->jobs.push_back(j);
        sc->listener = l;
        sc->running = j.row;
        if (!sc->answer_runs) return;
        self->send(l, atom::fprogress::value, j.row, std::string("1/1 requests, 0 errors"));
        result r;
        r.ok = true;
        r.agent = name;
        r.host = name + ".test";
        r.files = {"result.json", "{}"};
        self->send(l, atom::fresult::value, j.row, r);
        sc->running.clear();
      },
      [=](atom::fstop, const std::string& t) {
        sc->threads.push_back(std::this_thread::get_id());
        sc->stops.push_back(t);
        if (sc->running.empty() || !sc->listener) return;
        result r;  // the interrupted run's answer
        r.error = "interrupted";
        r.agent = name;
        self->send(sc->listener, atom::fresult::value, sc->running, r);
        sc->running.clear();
      },
  };
}

/// A dialer that answers what `answer` says for its agent, once, and quits.
fleet_dialer_actor::behavior_type stand_in_dialer(fleet_dialer_actor::pointer self,
                                                  std::function<dial_outcome()> answer) {
  return {
      [=](atom::fdial) -> dial_outcome {
        auto r = answer();
        self->quit();
        return r;
      },
  };
}

class FleetCoordinator : public bp::testing::Coordinator {
 protected:
  ~FleetCoordinator() override {
    // The stand-ins end here (one keeps a response promise to itself), so the system can stop.
    for (auto& sc : scripts) sc->unanswered.clear();
    for (auto& h : handles)
      if (h) caf::anon_send_exit(h, caf::exit_reason::user_shutdown);
    sched.run();
  }

  /// An agent stand-in named `name` with site=`name`, reachable unless `reachable` says otherwise.
  void add_agent(const std::string& name, std::shared_ptr<agent_script> sc = std::make_shared<agent_script>()) {
    agent_entry e;
    e.name = name;
    e.host = "10.0.0." + std::to_string(entries.size() + 1);
    e.port = 7700;
    e.labels = {{"site", name}};
    entries.push_back(e);
    scripts.push_back(sc);
    handles.push_back(sys.spawn(stand_in_agent, name, sc));
    reachable.push_back(true);
    dials.push_back(0);
  }

  void add_row(const std::string& name, std::map<std::string, std::string> placement = {}) {
    row r;
    r.index = rows.size();
    r.placement = std::move(placement);
    r.j.config_path = name + ".yaml";
    r.j.row = name;
    rows.push_back(r);
  }

  void start(bool retry_elsewhere = false) {
    coordinator_options o;
    o.agents = entries;
    o.token = token;
    o.retry_elsewhere = retry_elsewhere;
    o.dialer = [this](caf::local_actor* parent, std::size_t k) -> fleet_dialer_actor {
      ++dials[k];
      return parent->spawn(stand_in_dialer, std::function<dial_outcome()>([this, k] {
                             dial_outcome r;
                             if (reachable[k] && handles[k])
                               r.agent = handles[k];
                             else
                               r.error = "unreachable at " + entries[k].host + ":7700 (Connection refused)";
                             return r;
                           }));
    };
    done = std::make_shared<std::promise<dispatch_result>>();
    fut = done->get_future();
    outcomes.assign(rows.size(), {});
    ended.assign(rows.size(), 0);
    coordinator = spawn_coordinator(
        sys, o, rows,
        [this](const row& r, const row_outcome& out) {
          outcome_threads.push_back(std::this_thread::get_id());
          outcomes[r.index] = out;
          ++ended[r.index];
        },
        done, false);
  }

  bool finished() { return fut.valid() && fut.wait_for(std::chrono::seconds(0)) == std::future_status::ready; }

  /// Runs messages only (no timer), until nothing is left.
  void run() { sched.run(); }

  std::vector<agent_entry> entries;
  std::vector<std::shared_ptr<agent_script>> scripts;
  std::vector<fleet_agent_actor> handles;
  std::vector<bool> reachable;
  std::vector<int> dials;
  std::vector<row> rows;
  std::shared_ptr<std::promise<dispatch_result>> done;
  std::future<dispatch_result> fut;
  std::vector<row_outcome> outcomes;
  std::vector<int> ended;
  std::vector<std::thread::id> outcome_threads;
  fleet_coordinator_actor coordinator;
};

}  // namespace

TEST_F(FleetCoordinator, ARowIsDispatchedToTheAgentItsPlacementNamesAndItsResultRecorded) {
  auto sc = std::make_shared<agent_script>();
  sc->labels = {"gpu=h100", "site=elsewhere"};  // the file's site=a wins over the agent's own
  add_agent("a", sc);
  add_agent("b");
  add_row("1_x", {{"site", "b"}});
  add_row("2_y", {{"gpu", "h100"}});  // a label only agent a's hello says
  start();
  ASSERT_TRUE(drive_until([&] { return finished(); }));
  auto hellos = fut.get();
  EXPECT_EQ(hellos.size(), 2u);
  EXPECT_EQ(hellos["a"].host, "a.test");
  ASSERT_EQ(scripts[1]->jobs.size(), 1u);
  EXPECT_EQ(scripts[1]->jobs[0].row, "1_x");
  EXPECT_EQ(scripts[1]->jobs[0].token, token);  // the token travels with every job
  ASSERT_EQ(sc->jobs.size(), 1u);
  EXPECT_EQ(sc->jobs[0].row, "2_y");
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(ended[i], 1) << "each row ends exactly once";
    EXPECT_TRUE(outcomes[i].ran);
    EXPECT_TRUE(outcomes[i].error.empty()) << outcomes[i].error;
    EXPECT_FALSE(outcomes[i].interrupted);
  }
  EXPECT_EQ(outcomes[0].agent, "b");
  EXPECT_EQ(outcomes[0].agent_hello.host, "b.test");
  EXPECT_EQ(outcomes[0].attempts, std::vector<std::string>{"b: ran"});
  EXPECT_EQ(outcomes[1].agent, "a");
  EXPECT_EQ(outcomes[1].r.files, (std::vector<std::string>{"result.json", "{}"}));
}

TEST_F(FleetCoordinator, AnAgentLostMidRowFailsThatRowAndTheRestComplete) {
  auto slow = std::make_shared<agent_script>();
  slow->answer_runs = false;
  add_agent("a", slow);
  add_agent("b");
  add_row("1_slow", {{"site", "a"}});
  add_row("2_quick");
  add_row("3_quick");
  start();
  run();
  ASSERT_EQ(slow->jobs.size(), 1u);
  // The agent's node is gone: CAF 0.17 removes its proxy, and the monitor's down message says so.
  reachable[0] = false;
  caf::anon_send_exit(handles[0], caf::exit_reason::remote_link_unreachable);
  ASSERT_TRUE(drive_until([&] { return finished(); }));
  EXPECT_FALSE(outcomes[0].ran);
  EXPECT_EQ(outcomes[0].error, "agent a lost mid-row (exit_reason(remote_link_unreachable))");
  EXPECT_EQ(outcomes[0].attempts, std::vector<std::string>{"a: lost mid-row (exit_reason(remote_link_unreachable))"});
  EXPECT_FALSE(outcomes[0].interrupted);
  EXPECT_TRUE(outcomes[1].ran);
  EXPECT_TRUE(outcomes[2].ran);
  EXPECT_EQ(outcomes[1].agent, "b");
  EXPECT_EQ(ended, (std::vector<int>{1, 1, 1}));
}

TEST_F(FleetCoordinator, WithRetryElsewhereALostRowRunsOnAnotherMatchingAgentNeverTheSameOne) {
  auto slow = std::make_shared<agent_script>();
  slow->answer_runs = false;
  add_agent("a", slow);
  add_agent("b");
  add_row("1_slow");
  start(true);
  run();
  ASSERT_EQ(slow->jobs.size(), 1u);  // a was greeted first and took it; b waits for a retry
  EXPECT_TRUE(scripts[1]->jobs.empty());
  caf::anon_send_exit(handles[0], caf::exit_reason::remote_link_unreachable);
  handles[0] = nullptr;
  ASSERT_TRUE(drive_until([&] { return finished(); }));
  EXPECT_TRUE(outcomes[0].ran);
  EXPECT_EQ(outcomes[0].agent, "b");
  EXPECT_EQ(outcomes[0].attempts,
            (std::vector<std::string>{"a: lost mid-row (exit_reason(remote_link_unreachable))", "b: ran"}));
  EXPECT_EQ(ended[0], 1);
}

TEST_F(FleetCoordinator, AnAgentRestartedAfterItWasLostIsDialledAgainOnATimerAndGetsWorkAgain) {
  auto slow = std::make_shared<agent_script>();
  slow->answer_runs = false;
  add_agent("a", slow);
  add_row("1_slow");
  add_row("2_quick");
  start();
  run();
  ASSERT_EQ(slow->jobs.size(), 1u);
  caf::anon_send_exit(handles[0], caf::exit_reason::remote_link_unreachable);
  reachable[0] = false;
  run();
  EXPECT_EQ(ended[0], 1);
  EXPECT_EQ(outcomes[0].error, "agent a lost mid-row (exit_reason(remote_link_unreachable))");
  int before = dials[0];
  ASSERT_TRUE(sched.has_pending_timeout());  // the next attempt waits for reconnect_s
  // Restarted: a new process answers at the same address.
  scripts[0] = std::make_shared<agent_script>();
  handles[0] = sys.spawn(stand_in_agent, std::string("a"), scripts[0]);
  reachable[0] = true;
  ASSERT_TRUE(drive_until([&] { return finished(); }));
  EXPECT_GT(dials[0], before);
  EXPECT_EQ(scripts[0]->hellos, 1);  // greeted as new
  EXPECT_TRUE(outcomes[1].ran);
  EXPECT_EQ(outcomes[1].agent, "a");
}

TEST_F(FleetCoordinator, AHelloThatNeverComesTimesOutOnItsTimerAndItsRowsFailWithTheReason) {
  auto mute = std::make_shared<agent_script>();
  mute->answer_hello = false;
  add_agent("a", mute);
  add_row("1_x");
  start();
  run();
  EXPECT_EQ(mute->hellos, 1);
  EXPECT_FALSE(finished());  // nothing happens until the hello's deadline (a timer) passes
  ASSERT_TRUE(sched.has_pending_timeout());
  sched.trigger_timeouts();
  run();
  ASSERT_TRUE(finished());
  EXPECT_FALSE(outcomes[0].ran);
  EXPECT_NE(outcomes[0].error.find("no agent could run it (a: refused the hello: "), std::string::npos)
      << outcomes[0].error;
  EXPECT_NE(outcomes[0].error.find("timeout"), std::string::npos) << outcomes[0].error;
  EXPECT_EQ(mute->hellos, 1);  // a refused hello is not tried again
}

TEST_F(FleetCoordinator, AnUnreachableAgentIsRetriedOnATimerAndGivenUpAfterTenSecondsAlone) {
  add_agent("a");
  add_agent("b");
  reachable[1] = false;
  add_row("1_on-a", {{"site", "a"}});
  add_row("2_on-b", {{"site", "b"}});
  start();
  ASSERT_TRUE(drive_until([&] { return finished(); }));
  EXPECT_TRUE(outcomes[0].ran);
  EXPECT_FALSE(outcomes[1].ran);
  EXPECT_EQ(outcomes[1].error, "no agent could run it (b: unreachable at 10.0.0.2:7700 (Connection refused))");
  // Every 2 s (a timer each) until more than 10 s passed with nobody else running a row: at 0,
  // 2, ..., 12 s.
  EXPECT_EQ(dials[1], 7);
  EXPECT_EQ(dials[0], 1);
}

TEST_F(FleetCoordinator, CtrlCReachesEveryAgentWithARowAndNothingNewStarts) {
  for (const char* n : {"a", "b", "c"}) {
    auto sc = std::make_shared<agent_script>();
    sc->answer_runs = false;
    add_agent(n, sc);
  }
  for (int i = 1; i <= 5; ++i) add_row(std::to_string(i) + "_row");
  start();
  run();
  for (int k = 0; k < 3; ++k) ASSERT_EQ(scripts[k]->jobs.size(), 1u);
  EXPECT_FALSE(finished());
  caf::anon_send(coordinator, atom::stop::value, std::string("interrupted"));
  ASSERT_TRUE(drive_until([&] { return finished(); }));
  for (int k = 0; k < 3; ++k) {
    EXPECT_EQ(scripts[k]->stops, std::vector<std::string>{token}) << "agent " << k;
    EXPECT_EQ(scripts[k]->jobs.size(), 1u);  // nothing new after the stop
  }
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(outcomes[i].interrupted);
    EXPECT_EQ(outcomes[i].error, "interrupted");  // the agent's own answer for the torn-down run
  }
  for (int i = 3; i < 5; ++i) {
    EXPECT_TRUE(outcomes[i].interrupted);
    EXPECT_EQ(outcomes[i].error, "interrupted before it ran");
  }
  EXPECT_EQ(ended, (std::vector<int>(5, 1)));
}

TEST_F(FleetCoordinator, OneActorServesManyAgentsOnOneThreadWithoutAThreadEach) {
  const int agents = 12, per_agent = 3;
  for (int k = 0; k < agents; ++k) add_agent("h" + std::to_string(k));
  for (int i = 0; i < agents * per_agent; ++i) add_row(std::to_string(i + 1) + "_r", {{"site", "h" + std::to_string(i % agents)}});
  auto before = std::this_thread::get_id();
  start();
  ASSERT_TRUE(drive_until([&] { return finished(); }));
  EXPECT_EQ(fut.get().size(), static_cast<std::size_t>(agents));
  for (int i = 0; i < agents * per_agent; ++i) {
    EXPECT_TRUE(outcomes[i].ran) << i;
    EXPECT_EQ(outcomes[i].agent, "h" + std::to_string(i % agents));
  }
  for (int k = 0; k < agents; ++k) {
    EXPECT_EQ(scripts[k]->jobs.size(), static_cast<std::size_t>(per_agent));
    EXPECT_EQ(dials[k], 1);
    for (auto t : scripts[k]->threads) EXPECT_EQ(t, before);
  }
  // Every row was stored on the thread that runs the actors: here the test's own (CAF's test
  // coordinator has no threads), in the CLI the coordinator's one thread.
  for (auto t : outcome_threads) EXPECT_EQ(t, before);
  EXPECT_EQ(outcome_threads.size(), static_cast<std::size_t>(agents * per_agent));
}
