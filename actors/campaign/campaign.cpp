#include "actors/campaign/campaign.hpp"

#include <chrono>
#include <future>
#include <mutex>
#include <stdexcept>

#include <spdlog/spdlog.h>

namespace bp::measure {

double steady_now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void drive(campaign_plan& plan, const std::function<double()>& now_s) {
  while (auto job = plan.next()) {
    double t0 = now_s();
    job->out = job->run();
    job->seconds = now_s() - t0;
    plan.done(*job);
  }
}

campaign_worker_actor::behavior_type campaign_worker(campaign_worker_actor::pointer, std::function<double()> now_s) {
  return {
      [now_s](atom::start, std::shared_ptr<lifecycle_job> job) {
        double t0 = now_s();
        try {
          job->out = job->run();
        } catch (...) {
          job->error = std::current_exception();
        }
        job->seconds = now_s() - t0;
        return job;
      },
  };
}

namespace {

using campaign_self = campaign_actor::stateful_pointer<campaign_state>;

/// Ends the campaign with `error`, which run_campaign rethrows.
void end_with(campaign_self self, std::exception_ptr error) {
  *self->state.error = std::move(error);
  self->quit();
}

/// Asks the plan for the next lifecycle and hands it to the worker; the reply steps it again.
void step(campaign_self self) {
  std::shared_ptr<lifecycle_job> job;
  try {
    job = self->state.plan->next();
  } catch (...) {
    return end_with(self, std::current_exception());
  }
  if (!job) {
    self->quit();
    return;
  }
  spdlog::debug("[campaign] {}", job->what);
  self->request(self->state.worker, caf::infinite, atom::start::value, job)
      .then(
          [self](std::shared_ptr<lifecycle_job> done) {
            if (done->error) return end_with(self, done->error);
            try {
              self->state.plan->done(*done);
            } catch (...) {
              return end_with(self, std::current_exception());
            }
            self->send(self, atom::start::value);
          },
          [self](caf::error& e) {
            *self->state.error = std::make_exception_ptr(std::runtime_error(
                "the campaign's lifecycle worker ended: " + self->system().render(e)));
            self->quit(std::move(e));
          });
}

}  // namespace

campaign_actor::behavior_type campaign(campaign_actor::stateful_pointer<campaign_state> self,
                                       std::shared_ptr<campaign_plan> plan, std::function<double()> now_s,
                                       std::function<void(std::exception_ptr)> on_end) {
  self->state.plan = std::move(plan);
  self->state.worker = self->spawn<caf::detached + caf::linked>(campaign_worker, now_s);
  self->attach_functor([error = self->state.error, on_end]() {
    // The plan is over (or the actor failed): the worker has nothing left to run. (The state is
    // gone by now: only what this hook holds itself.)
    if (on_end) on_end(*error);
  });
  self->send(self, atom::start::value);
  return {
      [self](atom::start) { step(self); },
      [self](atom::stop, const std::string& why) {
        spdlog::info("[campaign] stop: {}", why);
        self->state.plan->stop(why);
      },
  };
}

void run_campaign(caf::actor_system& sys, std::shared_ptr<campaign_plan> plan, const std::function<double()>& now_s,
                  const std::function<void(campaign_actor)>& on_spawn) {
  std::promise<std::exception_ptr> ended;
  auto fut = ended.get_future();
  auto a = sys.spawn(campaign, std::move(plan), now_s, [&ended](std::exception_ptr e) { ended.set_value(e); });
  if (on_spawn) on_spawn(a);
  auto error = fut.get();
  if (error) std::rethrow_exception(error);
}

void run_campaign_interruptible(caf::actor_system& sys, std::shared_ptr<campaign_plan> plan,
                                const std::function<double()>& now_s, interrupt_state& st) {
  // The actor's handle, set on the campaign's thread, read on this one when a signal comes.
  std::mutex mu;
  campaign_actor actor;
  run_interruptible(
      [&] {
        run_campaign(sys, std::move(plan), now_s, [&](campaign_actor a) {
          std::lock_guard<std::mutex> lock(mu);
          actor = std::move(a);
        });
      },
      st,
      [&] {
        std::lock_guard<std::mutex> lock(mu);
        if (actor) caf::anon_send(actor, atom::stop::value, std::string("interrupted"));
      },
      [] {});
}

}  // namespace bp::measure
