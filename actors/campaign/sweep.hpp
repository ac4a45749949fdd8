#pragma once
/// `bench-proxy sweep`: every config in turn, K full lifecycles each in trial order, into one sweep
/// folder (docs/cli.md, "Trials and sweeps"): the folder layout, the `--vary` variants, `--resume`,
/// the loop and the record at the end (sweep.json, the table, the ledger). It is here, apart from
/// the CLI and from how a lifecycle is run, so tests drive a whole sweep with lifecycles of their
/// own; cmd/bench_cmd.cpp hands it measure(), and the fleet's sweep (cmd/fleet_cmd.cpp) uses the
/// folder layout and the record.
#include <cstddef>
#include <chrono>
#include <functional>
#include <memory>
#include <iosfwd>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "actors/campaign/campaign.hpp"
#include "actors/campaign/measure.hpp"
#include "actors/campaign/trials.hpp"

namespace bp::measure {

/// What the user must change before a sweep can start: a folder in use or holding a result, a
/// variant that is not a valid config, a `--resume` of another sweep. The CLI's usage error (exit 2).
struct sweep_refused : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

/// Claims the sweep's folder for this process until it exits: `requested` (created if missing;
/// refused when it holds a sweep.json, or when another live sweep holds it, naming that one's PID)
/// or, when empty, a fresh sweeps/<UTC time> under the working directory. The claim is an flock on
/// DIR/sweep.lock, which holds the PID (the kernel drops it when the process ends, however it ends).
/// Throws sweep_refused, or std::runtime_error when the folder cannot be made or locked.
std::string claim_sweep_dir(const std::string& requested);

/// One fresh folder per config, <sweep>/<n>_<config stem> (n from 1), in sweep order.
std::vector<std::string> config_dirs(const std::vector<std::string>& configs, const std::string& sweep_dir);

/// A trial's run folder (`trial` from 0): the config's own with one trial, else a fresh
/// trial-<trial+1> inside it.
std::string trial_dir(int trials, const std::string& config_dir, int trial);

/// One generated config of `sweep BASE --vary ...`: its file name, its YAML, its knob values.
struct variant_file {
  std::string name, yaml;
  std::vector<std::pair<std::string, std::string>> knobs;
};

/// The variants of `base` (a grid of every combination of the `--vary` specs, the base config
/// first; with `one_at_a_time` each value of each knob alone), made and checked in memory: each is
/// loaded and checked launchable as it will be written. Throws sweep_refused naming the spec, or
/// the knob values and the config error.
std::vector<variant_file> make_variants(const std::string& base, const std::vector<std::string>& specs,
                                        bool one_at_a_time);

/// Writes the variants into <sweep_dir>/configs/ (never over a file); their paths, in order.
std::vector<std::string> write_variants(const std::vector<variant_file>& variants, const std::string& sweep_dir);

struct sweep_options {
  std::vector<std::string> configs;  ///< measured in this order; with `vary`: exactly one, the base
  std::string sweep_dir;             ///< the folder asked for; empty: a fresh sweeps/<UTC time>
  /// Every lifecycle's options (config_path and run_dir are set per lifecycle). Its results_tsv is
  /// the ledger: with one trial each lifecycle writes its row (measure() does), with more the
  /// sweep writes one row per config at the end.
  options lifecycle;
  std::vector<std::string> vary;  ///< --vary KEY=V1,V2 specs (configs/variants.hpp)
  bool one_at_a_time = false;
  int trials = 1;
  std::string order = "interleaved";  ///< or "shuffled" (seeded by lifecycle.bench.seed)
  /// A trial whose measured window was disturbed (analysis/disturbance.hpp) runs again at most
  /// this many times (trials >= 2 only); still disturbed after that: invalid. 0: only said.
  int redo_disturbed = 2;
  double disturbance_cores = 0.75;
  std::string resume;  ///< an interrupted sweep's folder whose finished lifecycles are reused
  double noise = 0.01; ///< the table's "no change" band
  std::string slo;     ///< --slo as given (part of the resume key)
  /// Called with the configs to check (the base alone with `vary`) after the variants are made and
  /// before anything is claimed or started; throws to refuse the sweep. The CLI's preflight.
  std::function<void(const std::vector<std::string>& configs)> preflight;
};

/// One lifecycle as the sweep asks for it.
struct sweep_lifecycle {
  /// Its options: the sweep's `lifecycle` with config_path and run_dir (made, empty) set, and no
  /// ledger (results_tsv empty) when the sweep writes one row per config (trials >= 2).
  options run;
  std::size_t step = 0, steps = 0;  ///< its place in the sweep's plan, from 1
  std::string label;    ///< for its progress line: "[step/steps] config i/N STEM, trial t/K"
  std::size_t lifecycles_after = 0;  ///< still to come after it
  double mean_lifecycle_s = 0;       ///< the wall time of the lifecycles before it, on average; 0: none yet
};
/// Runs one lifecycle; measure() in the CLI. A redo of a disturbed trial is another call with the
/// same step and a fresh run_dir.
using sweep_lifecycle_fn = std::function<outcome(const sweep_lifecycle&)>;

struct sweep_result {
  nlohmann::json doc;  ///< sweep.json's content
  std::string sweep_dir;
  std::vector<sweep_entry> entries;
  bool interrupted = false;
  bool any_bad = false;  ///< a row failed or is invalid (the CLI's exit 1)
};

/// What must be equal for `--resume` to reuse a sweep's lifecycles: every config's bytes (sha256,
/// in order), the workload's, and each option that changes what a lifecycle measures. Throws
/// sweep_refused for a config that cannot be read.
nlohmann::json resume_key(const sweep_options& o, const std::vector<std::string>& configs);

/// What a lifecycle measures, as a resume key's part (sweep's and bisect's): the workload's
/// sha256 (or a generated one's spec) and every load and headline option.
nlohmann::json measurement_key(const bench::options& b);

/// `--resume DIR`: the finished lifecycles of the interrupted sweep in DIR, per config in trial
/// order (those it lists in sweep.json; a lifecycle Ctrl-C cut short is not listed). Throws
/// sweep_refused when DIR holds no sweep.json, its sweep finished, or it is not the same sweep
/// (naming what differs from `key`).
std::vector<std::vector<outcome>> reusable_lifecycles(const std::string& dir, const nlohmann::json& key);

/// The sweep as a campaign plan (actors/campaign/campaign.hpp): the constructor makes the variants,
/// runs the preflight, checks a resume and claims the folder (throwing sweep_refused before
/// anything starts); next()/done() step the lifecycles in trial order with the redos of disturbed
/// trials (a failed one is a failed row and the sweep goes on; a stop or Ctrl-C ends it before the
/// next one); finish() is record_sweep. The CLI's campaign actor steps it; run_sweep on this thread.
class sweep_plan : public campaign_plan {
 public:
  sweep_plan(sweep_options o, sweep_lifecycle_fn lifecycle, const interrupt_state& st, std::ostream& out);
  std::shared_ptr<lifecycle_job> next() override;
  void done(lifecycle_job& job) override;
  void stop(const std::string& why) override;
  sweep_result finish();

 private:
  sweep_options o_;
  sweep_lifecycle_fn lifecycle_;
  const interrupt_state& st_;
  std::ostream& out_;
  std::vector<std::string> configs_, dirs_;
  std::string sweep_dir_, stopped_;
  nlohmann::json key_, resumed_ = nlohmann::json::array();
  std::vector<sweep_entry> entries_;
  options each_;
  std::vector<std::pair<std::size_t, int>> order_;
  std::size_t at_ = 0, step_ = 0;  ///< the place in order_, and the lifecycles started so far
  int redo_ = 0;                   ///< redos of the current step's disturbed trial
  sweep_lifecycle current_;
  std::chrono::steady_clock::time_point start_;
};

/// The whole sweep: variants, preflight, resume, the folder, then every lifecycle in trial order
/// (a failed one is a failed row and the sweep goes on; Ctrl-C stops before the next one), then
/// record_sweep. `out` gets what the CLI prints on stdout.
sweep_result run_sweep(const sweep_options& o, const sweep_lifecycle_fn& lifecycle, const interrupt_state& st,
                       std::ostream& out);

/// The end of every sweep, local or across a fleet: each config's aggregate (trials.json and its
/// ledger row with trials >= 2; a lifecycle Ctrl-C cut short left out), sweep.json (with `extra`'s
/// keys), the table, report.html. `out` gets the table, the paths and the best line last.
sweep_result record_sweep(const sweep_options& o, std::vector<sweep_entry> entries, const std::vector<std::string>& dirs,
                          const std::string& sweep_dir, bool interrupted,
                          const nlohmann::json& extra, std::ostream& out);

}  // namespace bp::measure
