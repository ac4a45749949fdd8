// The run supervisor on CAF's test coordinator, its children replaced by stand-ins (the typed
// listeners make that a few lines): the test speaks for the engine, warmup and meta actors and
// checks what the supervisor does with what it hears.
#include "tests/actors/coordinator.hpp"

#include "net/proxy/run_status.hpp"

using namespace bp;

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
