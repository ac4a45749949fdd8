// The connection actor on CAF's deterministic test coordinator: no threads, no sleeps; every
// message is delivered when the test runs the scheduler, a timer fires when the test triggers it.
// The test speaks for the connection's I/O thread (fake_connection::end) and for the supervisor
// (a stand-in that records the counters it is told and the actor's down message).
#include "tests/actors/coordinator.hpp"
#include "tests/actors/fake_connection.hpp"

using namespace bp;
using bp::testing::every_counter;
using bp::testing::fake_connection;

namespace {

struct observed {
  std::vector<net::conn_stats> stats;
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
      [o](atom::stats, net::conn_stats st) { o->stats.push_back(st); },
      [self](atom::opened, connection_actor a) { self->monitor(a); },
  };
}

class ConnectionActor : public bp::testing::Coordinator {
 protected:
  ConnectionActor() {
    sup = sys.spawn(recorder, o);
    sched.run();
  }
  ~ConnectionActor() override {
    caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
    sched.run();
  }
  /// The connection's birth: its actor, spawned with its handle, monitored by the stand-in.
  connection_actor born() {
    connection_listener listener = sup;
    actor = sys.spawn(connection_behavior, std::static_pointer_cast<net::connection_handle>(conn), listener);
    caf::anon_send(sup, atom::opened::value, actor);
    sched.run();
    return actor;
  }
  bool ended() const { return o->downs == 1; }

  std::shared_ptr<observed> o = std::make_shared<observed>();
  std::shared_ptr<fake_connection> conn = std::make_shared<fake_connection>();
  recorder_actor sup;
  connection_actor actor;  ///< held as its supervisor holds it (an actor nobody holds is gone)
};

}  // namespace

TEST_F(ConnectionActor, AtItsBirthItRegistersForItsConnectionsEnd) {
  EXPECT_FALSE(conn->listening());
  born();
  EXPECT_TRUE(conn->listening());
  EXPECT_TRUE(conn->commands.empty());  // it does nothing to the connection on its own
  EXPECT_FALSE(ended());
}

TEST_F(ConnectionActor, AClientAbortSeenByTheIoThreadEndsTheActorWithEveryCounter) {
  born();
  auto st = every_counter(100);
  conn->end(st, "client disconnected mid-response");  // the I/O thread, once
  sched.run();
  ASSERT_EQ(o->stats.size(), 1u);
  EXPECT_TRUE(o->stats[0] == st) << net::describe(o->stats[0]);
  EXPECT_EQ(o->stats[0].upstream_timeouts, 108u);
  EXPECT_EQ(o->stats[0].client_aborts, 105u);
  EXPECT_TRUE(ended());
  EXPECT_EQ(o->last_reason, caf::exit_reason::normal);
  EXPECT_TRUE(conn->commands.empty());
}

TEST_F(ConnectionActor, AConnectionThatEndedBeforeItsActorRegisteredIsReportedAllTheSame) {
  conn->end(every_counter(0), "client closed the connection");
  born();
  ASSERT_EQ(o->stats.size(), 1u);
  EXPECT_TRUE(o->stats[0] == every_counter(0));
  EXPECT_TRUE(ended());
}

TEST_F(ConnectionActor, CloseClosesTheConnectionAndTheActorEndsWhenTheIoThreadSaysItIsClosed) {
  auto a = born();
  caf::anon_send(a, atom::close::value, std::string("bench-proxy is stopping: the run failed"));
  sched.run();
  ASSERT_EQ(conn->commands, std::vector<std::string>{"close: bench-proxy is stopping: the run failed"});
  EXPECT_FALSE(ended());  // the connection is not closed until its I/O thread says so
  conn->end(every_counter(7), "bench-proxy is stopping: the run failed");
  sched.run();
  EXPECT_TRUE(ended());
  ASSERT_EQ(o->stats.size(), 1u);
  EXPECT_TRUE(o->stats[0] == every_counter(7));
}

TEST_F(ConnectionActor, ADrainThatCompletesInTimeEndsWithoutAnAbort) {
  auto a = born();
  caf::anon_send(a, atom::drain::value, caf::timespan{std::chrono::seconds(2)}, std::string("bench-proxy is stopping"));
  sched.run();
  ASSERT_EQ(conn->commands, std::vector<std::string>{"drain: bench-proxy is stopping"});
  EXPECT_TRUE(sched.has_pending_timeout());  // the deadline
  // The response in flight completes; the I/O thread closes the drained connection and says so.
  conn->end(every_counter(1), "bench-proxy is stopping");
  sched.run();
  EXPECT_TRUE(ended());
  ASSERT_EQ(o->stats.size(), 1u);
  // The deadline passes: the actor is gone, nothing is aborted.
  while (sched.has_pending_timeout()) sched.trigger_timeout();
  sched.run();
  EXPECT_EQ(conn->count("abort"), 0);
  EXPECT_EQ(conn->commands.size(), 1u);
}

TEST_F(ConnectionActor, ADrainThatTimesOutMakesTheActorAbortItsConnection) {
  auto a = born();
  caf::anon_send(a, atom::drain::value, caf::timespan{std::chrono::seconds(2)}, std::string("bench-proxy is stopping"));
  sched.run();
  EXPECT_EQ(conn->count("abort"), 0);
  ASSERT_TRUE(sched.trigger_timeout());  // drain_timeout_s passes with the stream still going
  sched.run();
  ASSERT_EQ(conn->commands.size(), 2u);
  EXPECT_EQ(conn->commands[0], "drain: bench-proxy is stopping");
  EXPECT_EQ(conn->commands[1],
            "abort: drain_timeout_s passed with a request in flight (bench-proxy is stopping)");
  EXPECT_FALSE(ended());
  // The I/O thread cut it; its counters are reported as for any end.
  conn->end(every_counter(3), "drain_timeout_s passed with a request in flight (bench-proxy is stopping)");
  sched.run();
  EXPECT_TRUE(ended());
  ASSERT_EQ(o->stats.size(), 1u);
  EXPECT_TRUE(o->stats[0] == every_counter(3));
}

TEST_F(ConnectionActor, AbortAbortsTheConnection) {
  auto a = born();
  caf::anon_send(a, atom::abort::value, std::string("why not"));
  sched.run();
  EXPECT_EQ(conn->commands, std::vector<std::string>{"abort: why not"});
}

TEST_F(ConnectionActor, AFaultAbortsItsConnectionAndIsSeenByItsMonitorAsAnError) {
  auto a = born();
  caf::anon_send(a, atom::kill::value);  // the injected fault: the actor throws
  sched.run();
  ASSERT_EQ(conn->commands.size(), 1u);
  EXPECT_EQ(conn->commands[0], "abort: connection actor failed: injected fault: connection actor 42 throws");
  EXPECT_TRUE(ended());
  EXPECT_TRUE(o->last_reason);
  EXPECT_NE(o->last_reason, caf::exit_reason::normal);
  EXPECT_TRUE(o->stats.empty());  // its supervisor takes the counters over (RunSupervisor tests)
}

TEST(ConnStats, EveryCounterIsSummedAndDescribed) {
  net::conn_stats t;
  t += every_counter(0);
  t += every_counter(10);
  EXPECT_EQ(t.requests, 12u);
  EXPECT_EQ(t.bad_requests, 24u);
  EXPECT_EQ(t.upstream_timeouts, 26u);
  EXPECT_EQ(net::describe(every_counter(0)),
            "1 requests, 2 proxied, 3 B in, 4 B out, 5 client aborts, 6 upstream errors, 8 upstream timeouts, "
            "7 bad requests");
}

TEST(FaultSpec, ParsesActorKindPairs) {
  EXPECT_EQ(fault_for("engine=throw-on-ready,collector:venv=stall", "collector:venv"), "stall");
  EXPECT_EQ(fault_for("engine=throw-on-ready,collector:venv=stall", "engine"), "throw-on-ready");
  EXPECT_EQ(fault_for("engine=throw-on-ready", "warmup"), "");
  EXPECT_EQ(fault_for("", "engine"), "");
  EXPECT_EQ(fault_for("connection=throw-peer:127.0.0.1:5555", "connection"), "throw-peer:127.0.0.1:5555");
}
