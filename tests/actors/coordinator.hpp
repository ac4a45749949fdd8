#pragma once
// The fixture of the actor tests on CAF's test coordinator: one thread (the test's) runs every
// message; timers fire only when the test triggers them. Blocking work (a readiness probe, a
// warmup request) runs inline on that thread, so a test reads as the sequence of events it checks.
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <thread>

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include "actors/actors.hpp"
#include "configs/engine_config.hpp"

namespace bp::testing {

class Coordinator : public ::testing::Test {
 protected:
  Coordinator() : sys(make_cfg()), sched(dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler())) {}
  static caf::actor_system_config& make_cfg() {
    static caf::actor_system_config cfg;
    static bool once = [] {
      cfg.set("scheduler.policy", caf::atom("testing"));
      // One message per step of try_run_once: a test can act between two messages of one actor.
      cfg.set("scheduler.max-throughput", size_t{1});
      add_error_category(cfg);
      return true;
    }();
    (void)once;
    return cfg;
  }

  /// Runs messages, and fires due timers when nothing else is left, until `done` holds or a
  /// minute passed (the deadline only guards against a hang; nothing here waits for time).
  bool drive_until(const std::function<bool()>& done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      sched.run();
      if (done()) return true;
      if (sched.has_pending_timeout()) sched.trigger_timeout();
      else std::this_thread::yield();
    }
    return done();
  }

  /// A mock-engine config from these YAML keys, or the test fails naming the errors.
  static engine_config config(const std::string& yaml) {
    auto r = load_config_text("description: actor test\nengine: mock\n" + yaml, "test.yaml", process_env());
    std::string errors;
    for (const auto& e : r.errors) errors += e.str() + "\n";
    if (!r.config) ADD_FAILURE() << errors;
    return r.config ? *r.config : engine_config{};
  }

  caf::actor_system sys;
  caf::scheduler::test_coordinator& sched;
};

}  // namespace bp::testing

// The stand-in supervisors of these tests are handed the run context in a message.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::shared_ptr<bp::run_context>)
