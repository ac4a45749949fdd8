// The run supervisor on CAF's test coordinator, its children replaced by stand-ins (the typed
// listeners make that a few lines): the test speaks for the engine, warmup and meta actors and
// checks what the supervisor does with what it hears.
#include "tests/actors/coordinator.hpp"
#include "tests/actors/fake_connection.hpp"

#include "net/proxy/run_status.hpp"

using namespace bp;
using bp::testing::every_counter;
using bp::testing::fake_connection;

namespace {

/// What the stand-ins saw, and the supervisor's handles the test speaks through.
struct stage {
  engine_listener engine_to;  ///< the supervisor, as the engine actor sees it
  warmup_listener warmup_to;
  meta_listener meta_to;
  engine_actor engine;
  meta_actor meta;
  int engines = 0, warmups = 0, metas = 0;
  std::vector<double> terminate_grace;
  int meta_engine_pid = 0;
  std::vector<connection_actor> connections;  ///< the real connection actors, as spawned
};

engine_actor::behavior_type fake_engine(engine_actor::pointer self, std::shared_ptr<stage> st) {
  return {
      [](atom::poll) {},
      [](atom::reaped, int) {},
      [self, st](atom::terminate, double grace) {
        st->terminate_grace.push_back(grace);
        // The real engine actor answers once the tree is gone; the stand-in at once.
        self->send(st->engine_to, atom::stopped::value, std::string("engine (pid 4242) exited 0"));
        self->quit();
      },
      [](atom::kill) {},
  };
}

warmup_actor::behavior_type fake_warmup(warmup_actor::pointer) {
  return {[](atom::start) {}, [](atom::warmup, int) {}};
}

meta_actor::behavior_type fake_meta(meta_actor::pointer) {
  return {[](atom::stop, std::string) {}};
}

class RunSupervisor : public bp::testing::Coordinator {
 protected:
  RunSupervisor() {
    ctx->config = config("cmd: /bin/true\nwarmup: 2\nstop_grace_s: 7\ndrain_timeout_s: 1\n");
    ctx->status = &status;
    ctx->telemetry_interval_ms = 0;  // no sampling thread in these tests
    ctx->spawn.engine = [st = st](caf::local_actor* p, engine_listener l, std::shared_ptr<run_context>) {
      st->engine_to = l;
      st->engines++;
      st->engine = p->spawn<caf::monitored>(fake_engine, st);
      return st->engine;
    };
    ctx->spawn.warmup = [st = st](caf::local_actor* p, warmup_listener l, std::shared_ptr<run_context>, int) {
      st->warmup_to = l;
      st->warmups++;
      return p->spawn<caf::monitored>(fake_warmup);
    };
    ctx->spawn.meta = [st = st](caf::local_actor* p, meta_listener l, std::shared_ptr<run_context>,
                                engine_started e, nlohmann::json) {
      st->meta_to = l;
      st->metas++;
      st->meta_engine_pid = e.pid;
      st->meta = p->spawn<caf::monitored>(fake_meta);
      return st->meta;
    };
    ctx->spawn.connection = [st = st](caf::local_actor* p, std::shared_ptr<net::connection_handle> h,
                                      connection_listener l) {
      auto a = p->spawn<caf::monitored>(connection_behavior, std::move(h), std::move(l));
      st->connections.push_back(a);
      return a;
    };
    sup = spawn_run_supervisor(sys, ctx, promise);
    sched.run();
  }
  ~RunSupervisor() override {
    // The stand-ins outlive what they stand for (a real engine actor quits when its child is gone).
    if (st->engine) caf::anon_send_exit(st->engine, caf::exit_reason::user_shutdown);
    if (st->meta) caf::anon_send_exit(st->meta, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
    sched.run();
  }

  bool ended() { return result.wait_for(std::chrono::seconds(0)) == std::future_status::ready; }

  /// A connection's birth, as the proxy's accepting I/O thread announces it.
  std::shared_ptr<fake_connection> open_connection(std::uint64_t id, std::string peer = "127.0.0.1:1000") {
    auto c = std::make_shared<fake_connection>(id, std::move(peer));
    caf::anon_send(sup, atom::opened::value, std::static_pointer_cast<net::connection_handle>(c));
    sched.run();
    return c;
  }
  /// Fires the next timer (the actor clock jumps to it) and runs what it caused.
  void next_timer() {
    ASSERT_TRUE(sched.trigger_timeout());
    sched.run();
  }

  void engine_up() {
    engine_started e;
    e.pid = 4242;
    e.port = 5555;
    caf::anon_send(st->engine_to, atom::started::value, e);
    caf::anon_send(st->engine_to, atom::ready::value, 5555);
    sched.run();
  }

  std::shared_ptr<stage> st = std::make_shared<stage>();
  net::run_status status;
  std::shared_ptr<run_context> ctx = std::make_shared<run_context>();
  std::shared_ptr<std::promise<run_result>> promise = std::make_shared<std::promise<run_result>>();
  std::future<run_result> result = promise->get_future();
  run_supervisor_actor sup;
};

}  // namespace

TEST_F(RunSupervisor, ARunGoesThroughWarmupAndSnapshotToReadyAndStopsInOrder) {
  EXPECT_EQ(st->engines, 1);
  EXPECT_EQ(status.state(), net::run_state::starting);
  engine_up();
  EXPECT_EQ(status.state(), net::run_state::warming);
  EXPECT_EQ(status.engine_pid(), 4242);
  EXPECT_EQ(st->warmups, 1);
  EXPECT_EQ(st->metas, 0);  // no snapshot before warmup is over
  caf::anon_send(st->warmup_to, atom::warmup::value, std::vector<double>{12.5, 3.0}, std::string("m"));
  sched.run();
  EXPECT_EQ(status.state(), net::run_state::snapshotting);
  ASSERT_EQ(st->metas, 1);
  EXPECT_EQ(st->meta_engine_pid, 4242);  // the meta actor learns the engine as immutable data
  caf::anon_send(st->meta_to, atom::published::value, std::string("sha-of-meta"), std::string("/runs/x/meta.json"));
  sched.run();
  EXPECT_EQ(status.state(), net::run_state::ready);
  EXPECT_FALSE(ended());
  caf::anon_send(sup, atom::stop::value, std::string("test"));
  ASSERT_TRUE(drive_until([&] { return ended(); }));
  ASSERT_EQ(st->terminate_grace.size(), 1u);
  EXPECT_EQ(st->terminate_grace[0], 7.0);  // stop_grace_s from the config
  auto r = result.get();
  EXPECT_FALSE(r.error) << reason_of(r.error);
  EXPECT_EQ(r.snapshot_id, "sha-of-meta");
  EXPECT_EQ(r.meta_path, "/runs/x/meta.json");
  EXPECT_EQ(status.state(), net::run_state::stopping);
}

TEST_F(RunSupervisor, AnEngineThatDiesAfterReadyEndsTheRunWithEngineDiedAndIsNotRestarted) {
  engine_up();
  caf::anon_send(st->engine_to, atom::exited::value, std::string("engine (pid 4242) killed by SIGSEGV"),
                 std::string("\n  last words"), true);
  ASSERT_TRUE(drive_until([&] { return ended(); }));
  auto r = result.get();
  EXPECT_EQ(code_of(r.error), errc::engine_died);
  EXPECT_NE(reason_of(r.error).find("SIGSEGV after it was ready"), std::string::npos) << reason_of(r.error);
  EXPECT_NE(reason_of(r.error).find("last words"), std::string::npos);
  EXPECT_EQ(st->engines, 1);
  EXPECT_TRUE(st->terminate_grace.empty());  // it is gone: nothing to stop
  EXPECT_EQ(status.state(), net::run_state::failed);
}

TEST_F(RunSupervisor, AnEngineThatExitsDuringStartupIsAStartFailure) {
  caf::anon_send(st->engine_to, atom::exited::value, std::string("engine (pid 4242) exited 3"), std::string(), false);
  ASSERT_TRUE(drive_until([&] { return ended(); }));
  EXPECT_EQ(code_of(result.get().error), errc::engine_start_failed);
}

TEST_F(RunSupervisor, AWarmupFailureStopsTheEngineAndEndsWithWarmupFailed) {
  engine_up();
  caf::anon_send(st->warmup_to, atom::failed::value, std::string("warmup"),
                 make_error(errc::warmup_failed, "warmup: POST /v1/chat/completions answered 500"));
  ASSERT_TRUE(drive_until([&] { return ended(); }));
  auto r = result.get();
  EXPECT_EQ(code_of(r.error), errc::warmup_failed);
  EXPECT_EQ(reason_of(r.error), "warmup: POST /v1/chat/completions answered 500");
  EXPECT_EQ(st->terminate_grace.size(), 1u);
  EXPECT_EQ(st->metas, 0);
}

TEST_F(RunSupervisor, TheFirstFailureWinsOverLaterOnes) {
  engine_up();
  caf::anon_send(st->warmup_to, atom::failed::value, std::string("warmup"), make_error(errc::warmup_failed, "first"));
  caf::anon_send(st->engine_to, atom::failed::value, std::string("engine"),
                 make_error(errc::engine_start_failed, "second"));
  ASSERT_TRUE(drive_until([&] { return ended(); }));
  EXPECT_EQ(reason_of(result.get().error), "first");
}

TEST_F(RunSupervisor, AFailedEngineActorEndsTheRunAndIsNeverRestarted) {
  engine_up();
  caf::anon_send_exit(st->engine, caf::exit_reason::kill);
  ASSERT_TRUE(drive_until([&] { return ended(); }));
  auto r = result.get();
  EXPECT_EQ(code_of(r.error), errc::failure);
  EXPECT_NE(reason_of(r.error).find("engine actor failed"), std::string::npos) << reason_of(r.error);
  EXPECT_EQ(st->engines, 1);
}

TEST_F(RunSupervisor, AFailedMetaActorIsRestartedOnceAndASecondFailureEndsTheRun) {
  engine_up();
  caf::anon_send(st->warmup_to, atom::warmup::value, std::vector<double>{1.0, 1.0}, std::string("m"));
  sched.run();
  ASSERT_EQ(st->metas, 1);
  caf::anon_send_exit(st->meta, caf::exit_reason::kill);
  sched.run();
  EXPECT_EQ(st->metas, 2);  // restarted, with the same engine facts
  EXPECT_FALSE(ended());
  caf::anon_send_exit(st->meta, caf::exit_reason::kill);
  ASSERT_TRUE(drive_until([&] { return ended(); }));
  EXPECT_EQ(st->metas, 2);
  auto r = result.get();
  EXPECT_EQ(code_of(r.error), errc::failure);
  EXPECT_NE(reason_of(r.error).find("meta actor failed twice"), std::string::npos);
  EXPECT_EQ(st->terminate_grace.size(), 1u);
}

// Connections: each has its actor; the supervisor's shutdown asks every one of them, and only
// after all have reported does it stop the engine. Nothing closes a connection behind its actor.

TEST_F(RunSupervisor, AnOrderlyStopDrainsEveryConnectionThroughItsActorBeforeStoppingTheEngine) {
  engine_up();
  auto idle = open_connection(1), busy = open_connection(2);
  ASSERT_EQ(st->connections.size(), 2u);
  caf::anon_send(sup, atom::stop::value, std::string("test"));
  sched.run();
  EXPECT_EQ(idle->commands, std::vector<std::string>{"drain: bench-proxy is stopping"});
  EXPECT_EQ(busy->commands, std::vector<std::string>{"drain: bench-proxy is stopping"});
  // The idle one closes at once; the busy one finishes its response, then closes.
  idle->end(every_counter(0), "bench-proxy is stopping");
  sched.run();
  EXPECT_TRUE(st->terminate_grace.empty());  // a connection is still draining: the engine serves it
  busy->end(every_counter(100), "bench-proxy is stopping");
  ASSERT_TRUE(drive_until([&] { return ended(); }));
  EXPECT_EQ(st->terminate_grace.size(), 1u);
  EXPECT_EQ(idle->count("abort") + busy->count("abort") + idle->count("close") + busy->count("close"), 0);
  auto r = result.get();
  EXPECT_FALSE(r.error) << reason_of(r.error);
  EXPECT_EQ(r.connections, 2u);
  auto want = every_counter(0);
  want += every_counter(100);
  EXPECT_TRUE(r.connection_totals == want) << net::describe(r.connection_totals);
  EXPECT_EQ(r.connection_totals.upstream_timeouts, 8u + 108u);  // every counter, this one too
}

TEST_F(RunSupervisor, ADrainTimeoutMakesTheConnectionActorAbortItsConnection) {
  engine_up();  // drain_timeout_s: 1
  auto stuck = open_connection(1);
  caf::anon_send(sup, atom::stop::value, std::string("test"));
  sched.run();
  ASSERT_EQ(stuck->count("drain"), 1);
  // The deadline: the supervisor says so, the connection's actor aborts the stream still going.
  while (stuck->count("abort") == 0 && sched.has_pending_timeout()) next_timer();
  ASSERT_EQ(stuck->count("abort"), 1);
  EXPECT_EQ(stuck->commands.back(), "abort: drain_timeout_s passed with a request in flight (bench-proxy is stopping)");
  EXPECT_TRUE(st->terminate_grace.empty());
  stuck->end(every_counter(5), "drain_timeout_s passed with a request in flight");
  ASSERT_TRUE(drive_until([&] { return ended(); }));
  auto r = result.get();
  EXPECT_FALSE(r.error) << reason_of(r.error);
  EXPECT_TRUE(r.connection_totals == every_counter(5));
  EXPECT_EQ(st->terminate_grace.size(), 1u);
}

TEST_F(RunSupervisor, AFailedRunClosesEveryConnectionAtOnceWithoutADrain) {
  engine_up();
  auto a = open_connection(1), b = open_connection(2);
  caf::anon_send(st->engine_to, atom::exited::value, std::string("engine (pid 4242) killed by SIGSEGV"),
                 std::string(), true);
  sched.run();
  EXPECT_EQ(a->commands, std::vector<std::string>{"close: bench-proxy is stopping: the run failed"});
  EXPECT_EQ(b->commands, std::vector<std::string>{"close: bench-proxy is stopping: the run failed"});
  EXPECT_FALSE(ended());  // their counters first
  a->end(every_counter(0), "bench-proxy is stopping: the run failed");
  b->end(every_counter(1), "bench-proxy is stopping: the run failed");
  ASSERT_TRUE(drive_until([&] { return ended(); }));
  auto r = result.get();
  EXPECT_EQ(code_of(r.error), errc::engine_died);
  EXPECT_EQ(r.connections, 2u);
  auto want = every_counter(0);
  want += every_counter(1);
  EXPECT_TRUE(r.connection_totals == want) << net::describe(r.connection_totals);
  EXPECT_TRUE(st->terminate_grace.empty());  // the engine is gone already
}

TEST_F(RunSupervisor, AClientAbortEndsTheConnectionActorAndItsCountersReachTheTotals) {
  engine_up();
  auto c = open_connection(1);
  net::conn_stats aborted;
  aborted.requests = 1;
  aborted.proxied = 1;
  aborted.client_aborts = 1;
  c->end(aborted, "client disconnected mid-response");
  sched.run();
  caf::anon_send(sup, atom::stop::value, std::string("test"));
  ASSERT_TRUE(drive_until([&] { return ended(); }));
  EXPECT_TRUE(c->commands.empty());  // it was gone before the stop: nothing to drain
  auto r = result.get();
  EXPECT_EQ(r.connections, 1u);
  EXPECT_TRUE(r.connection_totals == aborted) << net::describe(r.connection_totals);
}

TEST_F(RunSupervisor, AKilledConnectionActorAbortsOnlyItsConnectionAndItsCountersStillCount) {
  engine_up();
  auto doomed = open_connection(1), other = open_connection(2);
  caf::anon_send_exit(st->connections[0], caf::exit_reason::kill);
  sched.run();
  EXPECT_EQ(doomed->commands, std::vector<std::string>{"abort: connection actor failed: exit_reason(kill)"});
  EXPECT_TRUE(other->commands.empty());
  EXPECT_FALSE(ended());  // a connection's fault is not the run's
  // The I/O thread cut it: its counters go to the supervisor, as the actor is gone.
  doomed->end(every_counter(0), "connection actor failed");
  other->end(every_counter(10), "client closed the connection");
  sched.run();
  caf::anon_send(sup, atom::stop::value, std::string("test"));
  ASSERT_TRUE(drive_until([&] { return ended(); }));
  auto r = result.get();
  EXPECT_FALSE(r.error) << reason_of(r.error);
  auto want = every_counter(0);
  want += every_counter(10);
  EXPECT_TRUE(r.connection_totals == want) << net::describe(r.connection_totals);
}

TEST_F(RunSupervisor, AConnectionActorThatThrowsAbortsItsConnectionAndTheCountersOfOneAlreadyEndedCount) {
  ctx->faults = "connection=throw-peer:127.0.0.1:2222";
  engine_up();
  auto other = open_connection(1, "127.0.0.1:1111");
  // The connection ends at once, before its actor (which throws on its first message) hears of it.
  auto doomed = std::make_shared<fake_connection>(2, "127.0.0.1:2222");
  doomed->end(every_counter(20), "client closed the connection");
  caf::anon_send(sup, atom::opened::value, std::static_pointer_cast<net::connection_handle>(doomed));
  sched.run();
  EXPECT_EQ(doomed->count("abort"), 2);  // by the actor as it fails, by the supervisor as it learns of it
  EXPECT_EQ(doomed->commands[0], "abort: connection actor failed: injected fault: connection actor 2 throws");
  EXPECT_TRUE(other->commands.empty());
  other->end(every_counter(0), "client closed the connection");
  sched.run();
  caf::anon_send(sup, atom::stop::value, std::string("test"));
  ASSERT_TRUE(drive_until([&] { return ended(); }));
  auto r = result.get();
  EXPECT_EQ(r.connections, 2u);
  auto want = every_counter(0);
  want += every_counter(20);
  EXPECT_TRUE(r.connection_totals == want) << net::describe(r.connection_totals);
}

TEST_F(RunSupervisor, AConnectionOpenedAsTheListenerClosedIsDrainedLikeTheOthers) {
  engine_up();
  auto busy = open_connection(1);
  caf::anon_send(sup, atom::stop::value, std::string("test"));
  sched.run();
  // No proxy in this test: the supervisor's drain already began; a late birth is told at once.
  auto late = open_connection(9);
  EXPECT_EQ(late->commands, std::vector<std::string>{"drain: bench-proxy is stopping"});
  late->end(every_counter(0), "bench-proxy is stopping");
  busy->end(every_counter(1), "bench-proxy is stopping");
  ASSERT_TRUE(drive_until([&] { return ended(); }));
  EXPECT_EQ(busy->count("abort") + late->count("abort"), 0);
  EXPECT_EQ(result.get().connections, 2u);
}

TEST_F(RunSupervisor, ConnectionActorsThatNeverReportDoNotHoldTheRunForever) {
  engine_up();
  auto silent = open_connection(1);
  caf::anon_send(sup, atom::stop::value, std::string("test"));
  // The connection never says it ended (a stuck I/O thread): the deadline, the actor's abort, the
  // grace after it; then the run goes on, and the connection's actor is told to close it.
  ASSERT_TRUE(drive_until([&] { return ended(); }));
  EXPECT_EQ(silent->count("drain"), 1);
  EXPECT_EQ(silent->count("abort"), 1);
  EXPECT_EQ(silent->count("close"), 1);
  EXPECT_EQ(st->terminate_grace.size(), 1u);
  auto r = result.get();
  EXPECT_FALSE(r.error) << reason_of(r.error);
  EXPECT_EQ(r.connections, 1u);
  EXPECT_TRUE(r.connection_totals == net::conn_stats{});
}
