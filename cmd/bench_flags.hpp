#pragma once
/// The flags bench, run, sweep and the fleet share, and the helpers that turn them into options
/// (cmd/bench_cmd.cpp); the fleet's commands (cmd/fleet_cmd.cpp) use them too.
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "actors/campaign/measure.hpp"
#include "actors/campaign/report.hpp"
#include "actors/campaign/trials.hpp"
#include "net/loadgen/bench.hpp"

namespace bp::cli {

struct bench_flags {
  bench::options o;
  std::string percentiles;
  std::string out;
  std::string results = "results.tsv";
  std::string log_level = "info";
  int max_tokens = 0;
  bool no_stream = false, no_progress = false;
  // run and sweep
  std::string config, listen = "127.0.0.1:0", run_dir, sweep_dir;
  int threads = 1;
  std::vector<std::string> configs;
  // --load and its companions (net/loadgen/load_profile.hpp)
  std::string load, ramp_up;
  double ramp_start = 0, ramp_end = 0;
  std::string headline = bench::default_headline, slo, label, order = "interleaved", noise = "1%";
  int trials = 1;
  int telemetry_interval_ms = 200;
  bool rehash = false;  ///< run, sweep, try, bisect: no hash cache for the snapshot
  // sweep BASE --vary KEY=V1,V2 [--one-at-a-time]: generated variants (configs/variants.hpp)
  std::vector<std::string> vary;
  bool one_at_a_time = false;
  // sweep: disturbed trials (analysis/disturbance.hpp)
  int redo_disturbed = 2;
  double disturbance_cores = 0.75;
  // sweep --resume DIR: an interrupted sweep's finished lifecycles are reused
  std::string resume;
  // sweep --agents: a fleet (actors/fleet/)
  std::string agents, token_file, tls_cert, tls_key, tls_ca;
  bool retry_elsewhere = false;
  // --client -- COMMAND (run, sweep, try, bisect): cmd/client_flags.cpp
  bool client = false;
  double client_timeout_s = 3600;
};


void add_bench_options(CLI::App& app, bench_flags& f);
void add_trial_options(CLI::App& app, bench_flags& f, bool sweep);
/// --redo-disturbed and --disturbance-cores (sweep, try, bisect): `redo` starts the first's help,
/// `then` says what 0 and a persistent disturbance do there.
void add_disturbance_options(CLI::App& app, bench_flags& f, const char* group, const std::string& redo,
                             const std::string& then);
bench::options bench_options(const bench_flags& f);
/// --client and --client-timeout (run, sweep, try, bisect; with --client no workload is needed).
/// The command is what followed '--' on the command line.
void add_client_options(CLI::App& app, bench_flags& f);
/// The command line's words after the first '--' of run, sweep, try and bisect, taken out of
/// `args` before CLI11 parses them (so a sweep's CONFIG list never swallows them). True if any.
bool split_client_command(std::vector<std::string>& args);
std::vector<std::string>& client_tail();
/// The client's options; usage_error for a command without --client or --client without a
/// command, a program that is not found or not executable, a generated workload with --client.
measure::client_options client_options_of(const bench_flags& f);
measure::options measure_options(const bench_flags& f, const std::string& config, const std::vector<std::string>& full_argv);
/// Run, sweep and try check every config and the workload before anything starts (exit 2 with
/// every error, a ledger row when `tsv` is set, and a last stdout line that is not a number).
void preflight_or_throw(const std::vector<std::string>& configs, const std::string& workload, const std::string& tsv);
void write_report_beside(const std::vector<std::string>& paths, const std::string& dir,
                         const measure::results_in_memory& known = {});

/// The sweep's folder layout for the fleet's sweep: thin wrappers over actors/campaign/sweep.hpp
/// (a refusal there is a usage_error here).
/// The sweep's folder: --sweep-dir (refused when it holds a sweep.json) or a fresh sweeps/<UTC time>.
std::string claim_sweep_dir(const bench_flags& f);
/// One fresh folder per config, <sweep>/<n>_<config stem>, in sweep order.
std::vector<std::string> config_dirs(const std::vector<std::string>& configs, const std::string& sweep_dir);
/// A trial's run folder: the config's own with one trial, else a fresh trial-<N> inside it.
std::string trial_dir(const bench_flags& f, const std::string& config_dir, int trial);

/// The end of every sweep, local or across a fleet: aggregates, trials.json, the ledger, the
/// table, sweep.json and report.html (measure::record_sweep); returns the exit status.
int finish_sweep(const bench_flags& f, const measure::options& base_opts, std::vector<measure::sweep_entry>& entries,
                 const std::vector<std::string>& dirs, const std::string& sweep_dir, const measure::interrupt_state& st,
                 const nlohmann::json& extra = nlohmann::json::object());

/// sweep --agents FILE: its options (cmd/fleet_options.cpp, in both binaries) and the sweep
/// itself (cmd/fleet_cmd.cpp in bench-proxy-fleet; in bench-proxy, cmd/fleet_exec.cpp hands the
/// whole command line over to bench-proxy-fleet).
void add_fleet_options(CLI::App& app, bench_flags& f);
void add_tls_options(CLI::App& app, bench_flags& f);
int fleet_sweep_main(const bench_flags& f, const std::vector<std::string>& full_argv);

}  // namespace bp::cli
