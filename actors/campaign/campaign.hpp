#pragma once
/// A campaign: the lifecycles of one `try`, `sweep` or `bisect`, one at a time, each chosen by
/// what the ones before it measured (docs/architecture.md, "Campaigns"). Two parts:
///
/// - a **plan** (try_plan, sweep_plan, bisect_plan): the campaign's state and its decisions,
///   stepped one lifecycle at a time: next() says which lifecycle to run (a job), done() takes
///   its outcome. Pure of threads and actors, so tests step it with lifecycles of their own;
/// - the **campaign actor** (event-based) owns a plan and steps it: it hands each job to its
///   lifecycle worker (a detached actor: a lifecycle blocks its thread for minutes, driving an
///   engine tree and the load generator) with a request and steps the plan on the reply, so it
///   stays responsive while a lifecycle runs (Ctrl-C is a message, `stop`). A worker that dies
///   ends the campaign with the reason; an exception a lifecycle throws ends it and reaches the
///   caller of run_campaign.
#include <exception>
#include <functional>
#include <memory>
#include <string>

#include "actors/actors.hpp"
#include "actors/campaign/measure.hpp"

namespace bp::measure {

/// One lifecycle a plan asks for, and what came of it.
struct lifecycle_job {
  std::function<outcome()> run;  ///< runs the lifecycle (on the worker's thread)
  std::string what;              ///< for logs: "round 3 candidate (b.yaml)"
  outcome out;                   ///< filled in by the worker
  double seconds = 0;            ///< the lifecycle's wall time (the campaign's clock)
  std::exception_ptr error;      ///< what `run` threw, if it did
};

/// A campaign's state and decisions, stepped one lifecycle at a time.
class campaign_plan {
 public:
  virtual ~campaign_plan() = default;
  /// The next lifecycle to run; null when the campaign is over (decided, out of rounds or
  /// trials, failed, or stopped).
  virtual std::shared_ptr<lifecycle_job> next() = 0;
  /// The outcome of the job next() returned last.
  virtual void done(lifecycle_job& job) = 0;
  /// Stop before the next lifecycle (Ctrl-C, a fleet's stop): `why` is recorded.
  virtual void stop(const std::string& why) = 0;
};

/// The campaigns' clock: seconds of the steady clock.
double steady_now_s();

/// Steps `plan` on this thread until it is over: each job runs here, timed by `now_s`. Tests and
/// the fleet's agent (which runs one job at a time anyway) use it; an exception from a job
/// propagates.
void drive(campaign_plan& plan, const std::function<double()>& now_s);

/// Steps `plan` with a campaign actor and its lifecycle worker in `sys` and waits for the
/// campaign to end; `on_spawn` gets the actor (to send it `stop`). Rethrows what a lifecycle
/// threw; throws std::runtime_error when the worker died some other way.
void run_campaign(caf::actor_system& sys, std::shared_ptr<campaign_plan> plan, const std::function<double()>& now_s,
                  const std::function<void(campaign_actor)>& on_spawn = {});

/// run_campaign while this thread takes Ctrl-C (run_interruptible): the first signal becomes the
/// campaign actor's `stop` (the running lifecycle tears itself down through `st`); a second kills
/// the running engine at once. Rethrows what the campaign threw.
void run_campaign_interruptible(caf::actor_system& sys, std::shared_ptr<campaign_plan> plan,
                                const std::function<double()>& now_s, interrupt_state& st);

/// The actors themselves (run_campaign spawns them; tests spawn them on their own).
campaign_worker_actor::behavior_type campaign_worker(campaign_worker_actor::pointer self,
                                                     std::function<double()> now_s);
struct campaign_state {
  std::shared_ptr<campaign_plan> plan;
  campaign_worker_actor worker;
  /// What ended the campaign abnormally (rethrown by run_campaign): shared with the actor's exit
  /// hook, which runs after the state is gone.
  std::shared_ptr<std::exception_ptr> error = std::make_shared<std::exception_ptr>();
  static inline const char* name = "campaign";
};
/// `on_end` is called once, from the actor, when the campaign is over (with what ended it abnormally).
campaign_actor::behavior_type campaign(campaign_actor::stateful_pointer<campaign_state> self,
                                       std::shared_ptr<campaign_plan> plan, std::function<double()> now_s,
                                       std::function<void(std::exception_ptr)> on_end);

}  // namespace bp::measure
