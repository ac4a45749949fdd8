#pragma once
/// `bench-proxy bisect GOOD BAD`: which of the changes between two configs makes the difference
/// (docs/cli.md, "bisect"). The differences are units (configs/variants.hpp); delta debugging
/// (ddmin, Zeller & Hildebrandt 2002) looks for the smallest set of units that still reproduces
/// BAD's verdict against GOOD, each test a sequential `try` of GOOD-plus-those-units against GOOD.
/// A minimal set of more than one unit is an interaction: no single unit of it does it alone.
/// The search is here, apart from how a try runs, so tests drive it with decisions of their own.
#include <functional>
#include <memory>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "actors/campaign/try_run.hpp"

namespace bp::measure {

struct bisect_options {
  std::string good, bad;  ///< config paths
  std::string dir;        ///< the bisect folder (configs/, step-NN_*/, bisect.json)
  std::string repo_root;  ///< relative cwd/venv of generated configs resolve against it
  try_options decision;   ///< noise, confidence, rounds, budget, workload of every step's try
  /// Steps already decided (a resumed bisect): the sorted unit keys joined by '+' -> try.json.
  std::map<std::string, nlohmann::json> done;
  /// What must be equal for `--resume` to reuse this bisect's steps (bisect_key): in bisect.json.
  nlohmann::json resume_key;
  /// Set by bisect_plan, which runs the search again after every step: the steps decided in this
  /// process (any verdict, not marked reused) and the folder made for each step.
  std::map<std::string, nlohmann::json>* fresh = nullptr;
  std::map<std::string, std::string>* step_dirs = nullptr;
};

/// What a resumed bisect must share with the one it continues: GOOD's and BAD's bytes (sha256),
/// the workload's, and every option that changes what a step's decision measures or how it is
/// decided (load shape, headline, noise as resolved, confidence, rounds). Throws
/// std::runtime_error naming a config that cannot be read.
nlohmann::json bisect_key(const try_options& decision, const std::string& good, const std::string& bad);

/// Why a bisect with `key` may not resume the one whose bisect.json holds `recorded` ("" when it
/// may): the first thing that differs, "X there, Y now".
std::string resume_mismatch(const nlohmann::json& recorded, const nlohmann::json& key);

/// Runs one try (candidate against opts.baseline in opts.dir) and returns its result; in the CLI
/// run_try with measure() as the lifecycle.
using try_fn = std::function<try_result(const try_options&)>;

/// Checks a generated config (load and launch checks); returns the errors, empty when it is fine.
using check_fn = std::function<std::vector<std::string>(const std::string& path)>;

struct bisect_result {
  nlohmann::json doc;  ///< bisect.json
  std::string answer;  ///< found, interaction, no difference, inconclusive, not comparable, failed, interrupted
  std::string last_line;
  int exit_status = 0;  ///< 0 found (one unit or an interaction), 1 no difference, 2 a generated config is invalid,
                        ///< 3 not comparable, 4 inconclusive, 5 a lifecycle failed, 130 interrupted
  std::string text;
};

/// The search as a campaign plan (actors/campaign/campaign.hpp). ddmin's search is deterministic
/// given its decisions, so the plan runs it (run_bisect) after every decided step, with the
/// decisions so far, until it reaches a step not yet decided: that step's try_plan then gives the
/// lifecycles. Running the search again costs no engine time (each earlier step is a lookup) and
/// keeps the search one plain function instead of a state machine.
class bisect_plan : public campaign_plan {
 public:
  bisect_plan(bisect_options opts, lifecycle_fn lifecycle, check_fn check, const interrupt_state& st,
              std::function<double()> now_s);
  std::shared_ptr<lifecycle_job> next() override;
  void done(lifecycle_job& job) override;
  void stop(const std::string& why) override;
  /// The answer, once next() has returned null.
  bisect_result finish() { return result_; }

 private:
  bisect_options opts_;
  lifecycle_fn lifecycle_;
  check_fn check_;
  const interrupt_state& st_;
  std::function<double()> now_s_;
  std::map<std::string, nlohmann::json> fresh_;
  std::map<std::string, std::string> step_dirs_;
  std::map<std::string, try_result> results_;  ///< by the step's folder: tries finished, not yet taken in
  std::shared_ptr<try_plan> current_;
  try_options current_opts_;
  std::string stopped_;
  bisect_result result_;
  bool over_ = false;
};

/// The whole search on this thread. bisect.json is rewritten after every step, so an interrupted
/// bisect can be resumed from its folder (steps already decided are not run again).
bisect_result run_bisect(const bisect_options& opts, const try_fn& run_one, const check_fn& check,
                         const interrupt_state& st);

}  // namespace bp::measure
