#pragma once
/// Several full engine lifecycles per config (trials), the order they run in, what a config's
/// trials add up to, and the sweep table (docs/cli.md, "Trials and sweeps"; the statistics in
/// docs/metrics.md). measure() runs one lifecycle; this composes them.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "actors/campaign/measure.hpp"
#include "analysis/compare.hpp"

namespace bp::measure {

/// The order of K trials of N configs: rounds of every config (A B C A B C ...), so drift of the
/// machine hits every config alike; `shuffled` permutes each round (seeded, Google Benchmark's
/// random interleaving). Pairs of (config index, trial index).
std::vector<std::pair<std::size_t, int>> trial_order(std::size_t configs, int trials, bool shuffled,
                                                     std::uint64_t seed);

/// The git state of the repository holding the config: `repo_root` when given, else the
/// config's own resolved $REPO_ROOT (its `repo_root:` key, the environment's, or found from the
/// file; a generated config pins its base's), else $REPO_ROOT or the file's folder:
/// {"root", "commit", "dirty"}; null when it is not in a git work tree.
nlohmann::json repo_state(const std::string& config_path, const std::string& repo_root = "");

/// One config's trials as one record ("kind": "bench-proxy trials"): the headline over all
/// trials (two-level bootstrap), each trial's path and headline, validity (every trial valid),
/// warnings, and the first trial's snapshot and load shape. Written as trials.json; also what
/// the ledger row of the config is made from.
nlohmann::json aggregate_trials(const std::string& config_path, const std::vector<outcome>& trials,
                                const bench::options& bo, const std::string& dir);

/// The lines `run --trials K` prints: each trial's headline, the combined one with its interval
/// and the between-trial spread, validity, warnings.
std::string trials_text(const nlohmann::json& aggregate);

/// The sweep's configs, each with its trials, in sweep order.
struct sweep_entry {
  std::string config;
  std::vector<outcome> trials;
  nlohmann::json aggregate;  ///< aggregate_trials
  nlohmann::json disturbed = nlohmann::json::array();  ///< trials run again: {trial, run_dir, reasons}
  nlohmann::json variant = nlohmann::json::object();   ///< sweep --vary: this config's knob values
  int interrupted_trials = 0;  ///< lifecycles Ctrl-C cut short (left out of the record)
};

/// sweep.json's content and the table printed at the end: rows sorted by the headline (valid
/// first), each with its interval, its verdict against the first config (comparability checked),
/// its errors, what its snapshot differs in; the noise floor (the first config's between-trial
/// spread) when trials >= 2.
struct sweep_report {
  nlohmann::json doc;
  std::string table;
  std::string best_line;  ///< the last stdout line
  bool any_bad = false;
};
sweep_report report_sweep(const std::vector<sweep_entry>& entries, const bench::options& bo,
                          const bench::compare_options& co, const std::string& sweep_dir, bool interrupted,
                          int requested_trials = 0);

}  // namespace bp::measure
