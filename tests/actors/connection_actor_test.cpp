// Actor-level tests on CAF's deterministic test coordinator: no threads, no sleeps; every message
// is delivered when the test runs the scheduler.
#include <gtest/gtest.h>

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include "actors/actors.hpp"

using namespace bp;

namespace {

struct fake_handle final : net::connection_handle {
  std::uint64_t id() const override { return 42; }
  std::string peer() const override { return "127.0.0.1:5555"; }
  void close(const std::string& reason) override { closes.push_back(reason); }
  std::vector<std::string> closes;
};

class Deterministic : public ::testing::Test {
 protected:
  Deterministic() : sys(make_cfg()), sched(dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler())) {}
  static caf::actor_system_config& make_cfg() {
    static caf::actor_system_config cfg;
    cfg.set("scheduler.policy", caf::atom("testing"));
    return cfg;
  }
  caf::actor_system sys;
  caf::scheduler::test_coordinator& sched;
};

struct observed {
  std::uint64_t stats_requests = 0;
  int downs = 0;
  caf::error last_reason;
};

/// A supervisor stand-in: implements the connection actor's narrow view of its supervisor
/// (connection_listener), and records the down messages of what it is told to monitor.
using recorder_actor = caf::typed_actor<caf::reacts_to<atom::stats, net::conn_stats>,
                                        caf::reacts_to<atom::opened, connection_actor>>;

recorder_actor::behavior_type recorder(recorder_actor::pointer self, std::shared_ptr<observed> o) {
  self->set_down_handler([o](caf::down_msg& dm) {
    o->downs++;
    o->last_reason = dm.reason;
  });
  return {
      [o](atom::stats, net::conn_stats st) { o->stats_requests += st.requests; },
      [self](atom::opened, connection_actor a) { self->monitor(a); },
  };
}

connection_actor spawn_connection(caf::actor_system& sys, std::shared_ptr<fake_handle> h, recorder_actor sup) {
  connection_listener listener = sup;
  return sys.spawn(connection_behavior, std::static_pointer_cast<net::connection_handle>(h), listener);
}

}  // namespace

TEST_F(Deterministic, ConnectionActorClosesItsConnectionWhenAskedTo) {
  auto h = std::make_shared<fake_handle>();
  auto o = std::make_shared<observed>();
  auto sup = sys.spawn(recorder, o);
  auto conn = spawn_connection(sys, h, sup);
  sched.run();
  caf::anon_send(conn, atom::close::value, std::string("bench-proxy shutting down"));
  sched.run();
  ASSERT_EQ(h->closes.size(), 1u);
  EXPECT_EQ(h->closes[0], "bench-proxy shutting down");
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  sched.run();
}

TEST_F(Deterministic, ConnectionActorReportsStatsOnceAndEnds) {
  auto h = std::make_shared<fake_handle>();
  auto o = std::make_shared<observed>();
  auto sup = sys.spawn(recorder, o);
  auto conn = spawn_connection(sys, h, sup);
  caf::anon_send(sup, atom::opened::value, conn);
  sched.run();
  net::conn_stats st;
  st.requests = 7;
  caf::anon_send(conn, atom::report::value, st, std::string("client closed the connection"));
  sched.run();
  EXPECT_EQ(o->stats_requests, 7u);
  EXPECT_EQ(o->downs, 1);  // it quit after reporting
  EXPECT_EQ(o->last_reason, caf::exit_reason::normal);
  EXPECT_TRUE(h->closes.empty());
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  sched.run();
}

TEST_F(Deterministic, AFailingConnectionActorIsSeenByItsMonitorAsAnError) {
  auto h = std::make_shared<fake_handle>();
  auto o = std::make_shared<observed>();
  auto sup = sys.spawn(recorder, o);
  auto conn = spawn_connection(sys, h, sup);
  caf::anon_send(sup, atom::opened::value, conn);
  sched.run();
  caf::anon_send(conn, atom::kill::value);  // the injected fault: the actor throws
  sched.run();
  EXPECT_EQ(o->downs, 1);
  EXPECT_TRUE(o->last_reason);
  EXPECT_NE(o->last_reason, caf::exit_reason::normal);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  sched.run();
}

TEST(FaultSpec, ParsesActorKindPairs) {
  EXPECT_EQ(fault_for("engine=throw-on-ready,collector:venv=stall", "collector:venv"), "stall");
  EXPECT_EQ(fault_for("engine=throw-on-ready,collector:venv=stall", "engine"), "throw-on-ready");
  EXPECT_EQ(fault_for("engine=throw-on-ready", "warmup"), "");
  EXPECT_EQ(fault_for("", "engine"), "");
  EXPECT_EQ(fault_for("connection=throw-peer:127.0.0.1:5555", "connection"), "throw-peer:127.0.0.1:5555");
}
