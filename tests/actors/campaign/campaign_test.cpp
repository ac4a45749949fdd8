// The campaign actor (actors/campaign/campaign.hpp) with plans of the test's own: it steps the plan
// one lifecycle at a time on its worker, stays responsive while a lifecycle runs (a stop arrives
// and is acted on before the lifecycle ends), and ends with what a lifecycle threw. Conditions are
// polled with a deadline; nothing sleeps for synchronisation.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "actors/campaign/campaign.hpp"

using namespace bp;
using namespace bp::measure;

namespace {

double clock_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

/// `n` lifecycles unless stopped; records on which thread each step ran.
struct counting_plan : campaign_plan {
  int n;
  std::function<outcome(int)> body;
  int asked = 0, finished = 0;
  std::string stopped;
  std::thread::id plan_thread, job_thread;
  std::mutex mu;
  counting_plan(int count, std::function<outcome(int)> b) : n(count), body(std::move(b)) {}
  std::shared_ptr<lifecycle_job> next() override {
    std::lock_guard<std::mutex> lock(mu);
    plan_thread = std::this_thread::get_id();
    if (!stopped.empty() || asked >= n) return nullptr;
    auto job = std::make_shared<lifecycle_job>();
    int i = asked++;
    job->what = "lifecycle " + std::to_string(i);
    job->run = [this, i] {
      {
        std::lock_guard<std::mutex> lock(mu);
        job_thread = std::this_thread::get_id();
      }
      return body(i);
    };
    return job;
  }
  void done(lifecycle_job& job) override {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(job.out.run_dir, "run-" + std::to_string(finished));  // in order, one at a time
    EXPECT_GE(job.seconds, 0.0);
    ++finished;
  }
  void stop(const std::string& why) override {
    std::lock_guard<std::mutex> lock(mu);
    stopped = why;
  }
};

outcome ran(int i) {
  outcome o;
  o.valid = true;
  o.run_dir = "run-" + std::to_string(i);
  return o;
}

struct CampaignTest : ::testing::Test {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  void SetUp() override { sys = std::make_unique<caf::actor_system>(cfg); }
};

TEST_F(CampaignTest, EveryLifecycleRunsInOrderOnTheWorkerAndThePlanIsSteppedBetween) {
  auto plan = std::make_shared<counting_plan>(4, ran);
  run_campaign(*sys, plan, clock_s);
  EXPECT_EQ(plan->asked, 4);
  EXPECT_EQ(plan->finished, 4);
  // The lifecycles ran on the worker's thread, not where the plan was stepped.
  EXPECT_NE(plan->job_thread, plan->plan_thread);
  EXPECT_NE(plan->job_thread, std::this_thread::get_id());
}

TEST_F(CampaignTest, AStopArrivesWhileALifecycleRunsAndNothingNewStartsAfterIt) {
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::atomic<bool> running{false};
  auto plan = std::make_shared<counting_plan>(5, [&](int i) {
    if (i == 1) {
      running = true;
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return release; });  // the lifecycle goes on until the test lets it end
    }
    return ran(i);
  });
  campaign_actor actor;
  std::mutex amu;
  std::thread campaign([&] {
    run_campaign(*sys, plan, clock_s, [&](campaign_actor a) {
      std::lock_guard<std::mutex> lock(amu);
      actor = a;
    });
  });
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!running && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  ASSERT_TRUE(running.load());
  {
    std::lock_guard<std::mutex> lock(amu);
    caf::anon_send(actor, atom::stop::value, std::string("Ctrl-C"));
  }
  // The actor is not blocked by the running lifecycle: the plan hears the stop before it ends.
  bool heard = false;
  while (!heard && std::chrono::steady_clock::now() < deadline) {
    {
      std::lock_guard<std::mutex> lock(plan->mu);
      heard = plan->stopped == "Ctrl-C";
    }
    if (!heard) std::this_thread::yield();
  }
  EXPECT_TRUE(heard);
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
  }
  cv.notify_all();
  campaign.join();
  EXPECT_EQ(plan->finished, 2);  // the running one finished; nothing new started
  EXPECT_EQ(plan->asked, 2);
}

TEST_F(CampaignTest, WhatALifecycleThrowsEndsTheCampaignAndReachesTheCaller) {
  auto plan = std::make_shared<counting_plan>(5, [](int i) -> outcome {
    if (i == 2) throw std::runtime_error("the ledger is not writable");
    return ran(i);
  });
  try {
    run_campaign(*sys, plan, clock_s);
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "the ledger is not writable");
  }
  EXPECT_EQ(plan->finished, 2);
  EXPECT_EQ(plan->asked, 3);
}

TEST_F(CampaignTest, TheSameStepsOnTheCallersThread) {
  auto plan = std::make_shared<counting_plan>(3, ran);
  drive(*plan, clock_s);
  EXPECT_EQ(plan->finished, 3);
  EXPECT_EQ(plan->job_thread, std::this_thread::get_id());
}

}  // namespace
