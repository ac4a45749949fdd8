#pragma once
/// `bench-proxy try`: one iteration of a tuning campaign (docs/cli.md, "try"). Rounds of one full
/// lifecycle of the baseline and one of the candidate, back to back in alternating order, until
/// the sequential verdict (analysis/sequential.hpp) is settled or the rounds or time run out.
/// The loop is here, apart from the CLI and from how a lifecycle is run, so tests drive it with
/// lifecycles of their own; cmd/try_cmd.cpp hands it measure().
#include <cstdint>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "analysis/resolution.hpp"

#include "actors/campaign/campaign.hpp"
#include "actors/campaign/measure.hpp"
#include "analysis/metrics.hpp"
#include "analysis/sequential.hpp"
#include "analysis/stats.hpp"

namespace bp::measure {

struct try_options {
  std::string candidate, baseline;  ///< config paths
  std::string dir;                  ///< the try's folder (claimed by the caller, empty of results)
  bench::options bench;             ///< workload, load shape, headline (bench.headline)
  double noise = 0.01;              ///< a change within ±noise is "no change"
  double confidence = 0.95;         ///< each claim is wrong with probability <= 1 - confidence
  int max_rounds = 10;
  double budget_s = 0;              ///< engine time for the whole try; 0: no limit
  bool shuffled = false;            ///< each round's order drawn by seed (else B A, A B, ...)
  std::uint64_t seed = 1;
  std::string label;
  std::string baseline_from;        ///< "best" when --against best chose the baseline (recorded)
  std::size_t best_line = 0;        ///< --against best: the ledger line of the best and its value then,
  double best_value = 0;            ///< compared with its re-measurement (drift is reported)
  std::string best_load_shape;      ///< the best's ledger load shape: the try's must be the same
  /// A lifecycle whose window was disturbed (analysis/disturbance.hpp) is run again, at most
  /// this many times per lifecycle; still disturbed after that: inconclusive, the machine was busy.
  int redo_disturbed = 2;
  /// The machine's between-lifecycle spread from an A/A in the ledger (analysis/resolution.hpp);
  /// 0: unknown. A faster or slower verdict whose change is smaller is refused as below it.
  double resolution = 0;
  std::string resolution_source;    ///< where it was measured, for the result
  double disturbance_cores = 0.75;  ///< others' CPU in one sample that counts as a burst
  /// --campaign-spread: the ledger's earlier decisions on this workload and headline; after the
  /// first round those of the same load shape are pooled into the design (analysis/sequential.hpp).
  /// Empty: each decision on its own.
  std::vector<analysis::spread_piece> campaign;
  std::string campaign_ledger;  ///< where they came from, for the result
};

/// Runs one lifecycle of `config` with its run folder at `run_dir`; measure() in the CLI.
using lifecycle_fn = std::function<outcome(const std::string& config, const std::string& run_dir)>;

struct try_result {
  nlohmann::json doc;  ///< try.json ("kind": "bench-proxy try"); also the ledger row's source
  std::string verdict;  ///< faster, slower, no change, inconclusive, not comparable, failed
  std::string last_line;
  int exit_status = 0;  ///< 0 keep, 1 discard, 3 not comparable, 4 inconclusive, 5 failed, 130 interrupted
  std::string text;     ///< the rounds as a table, then the verdict and what it covers
};

/// The decision as a campaign plan (actors/campaign/campaign.hpp): one lifecycle at a time, the
/// sequential look after each round. The campaign actor steps it in the CLI; run_try steps it on
/// the caller's thread. Every lifecycle's run folder goes under opts.dir/{baseline,candidate}/
/// round-N; finish() writes each side's trials.json and returns try.json's content (the caller
/// writes it, the ledger row and the report). `now_s` is a clock in seconds (a test's or the
/// real one); `st` is read, never written.
class try_plan : public campaign_plan {
 public:
  try_plan(try_options opts, lifecycle_fn lifecycle, const interrupt_state& st, std::function<double()> now_s);
  std::shared_ptr<lifecycle_job> next() override;
  void done(lifecycle_job& job) override;
  void stop(const std::string& why) override;
  /// The decision, once next() has returned null.
  try_result finish();

  /// One side's lifecycles so far.
  struct side_runs {
    std::string config;
    std::vector<outcome> outcomes;
    std::vector<double> seconds;
  };

 private:
  std::shared_ptr<lifecycle_job> end();
  void end_round();

  try_options opts_;
  lifecycle_fn lifecycle_;
  const interrupt_state& st_;
  std::function<double()> now_s_;
  const analysis::sequential_design* design_;
  const bench::metric_def* def_;
  side_runs base_, cand_;
  bench::rng order_rng_;
  analysis::campaign_spread prior_;
  nlohmann::json prior_doc_;  ///< what the campaign's spread was and how it was used
  std::vector<double> log_ratios_;
  nlohmann::json rounds_ = nlohmann::json::array(), round_;
  nlohmann::json redone_ = nlohmann::json::array();  ///< disturbed lifecycles, each with its reasons
  analysis::look_result last_;
  std::string verdict_, why_, stop_why_;
  std::vector<std::string> not_comparable_;
  double engine_s_ = 0, started_ = 0;
  std::ostringstream table_;
  int k_ = 1, leg_ = 0, attempt_ = 0;  ///< the round (from 1), its leg (0, 1), the redo of a disturbed lifecycle
  bool cand_first_ = false, over_ = false;
};

/// The whole decision on this thread (try_plan stepped by drive()).
try_result run_try(const try_options& opts, const lifecycle_fn& lifecycle, const interrupt_state& st,
                   const std::function<double()>& now_s);

/// Parses a duration "90s", "30m", "2h", "1h30m" or plain seconds; throws std::invalid_argument.
double parse_duration_s(const std::string& text);

}  // namespace bp::measure
