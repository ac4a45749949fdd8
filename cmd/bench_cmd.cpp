// bench-proxy bench | run | sweep
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <future>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>
#include <thread>

#include <spdlog/spdlog.h>

#include "base/process/engine_child.hpp"
#include "actors/engine_run.hpp"
#include "actors/campaign/measure.hpp"
#include "actors/campaign/report.hpp"
#include "actors/campaign/campaign.hpp"
#include "actors/campaign/sweep.hpp"
#include "actors/campaign/trials.hpp"
#include "base/files.hpp"
#include "base/numbers.hpp"
#include "base/text.hpp"
#include "cmd/bench_flags.hpp"
#include "cmd/cli.hpp"
#include "cmd/exit_status.hpp"
#include "configs/engine_config.hpp"
#include "net/loadgen/bench.hpp"
#include "net/client/http_client.hpp"
#include "snapshot/diff.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace bp::cli {

const char* kBenchFooter = R"(The last line on stdout is the headline number (median output tokens/s per request) for a valid
result; otherwise a line that is not a number: "invalid: REASONS" or "failed: REASON".
Workload format: docs/metrics.md, "Workload"; statistics: docs/metrics.md, "Uncertainty".)";

const char* kBenchAbout = R"(Benchmarks an OpenAI-compatible server (normally a bench-proxy). Fetches /meta before and after:
the result records the snapshot and is marked invalid if the snapshot id changed.
Exit status: 0 valid result, 1 invalid result or failure, 2 usage error.)";

const char* kRunAbout = R"(Starts the engine under bench-proxy exactly as serve does (on a free loopback port unless --listen
is given), waits for /meta, benchmarks through the proxy, records, tears everything down and
prints the headline number last.)";

const char* kSweepAbout = R"(Runs every config in turn from one process: engine, proxy, warmup, snapshot and bench come up,
the row is recorded, everything is torn down and verified gone before the next config starts.
A config that fails to start, crashes or times out becomes a failed row and the sweep goes on.
At the end: a table sorted by the headline metric, each row's delta to the first config and what
its snapshot differs in from the first. Ctrl-C tears everything down cleanly.)";

/// The options bench, run and sweep share.
CLI::Validator metric_name() {
  return CLI::Validator(
      [](std::string& v) -> std::string {
        return bench::find_metric(v) ? std::string() : "unknown metric '" + v + "' (one of " + bench::metric_names() + ")";
      },
      "");
}

void add_disturbance_options(CLI::App& app, bench_flags& f, const char* group, const std::string& redo,
                             const std::string& then) {
  app.add_option("--redo-disturbed", f.redo_disturbed,
                 redo + " when its measured window was disturbed (others' CPU bursts, steal, iowait, GPU "
                        "throttling), at most N times each (default 2; " + then + ")")
      ->type_name("N")
      ->check(whole_in(0, 20))
      ->group(group);
  app.add_option("--disturbance-cores", f.disturbance_cores,
                 "other processes' CPU in one telemetry sample that counts as a disturbance (default 0.75 cores)")
      ->type_name("X")
      ->check(finite_in(0.05, 4096))
      ->group(group);
}

void add_trial_options(CLI::App& app, bench_flags& f, bool sweep) {
  app.add_flag("--rehash", f.rehash,
               "the snapshot reads every venv file and loaded library instead of trusting the verified hash cache "
               "(as the config's hash_cache: off; docs/meta-schema.md, \"The hash cache\")")
      ->group("Output");
  app.add_option("--telemetry-interval-ms", f.telemetry_interval_ms,
                 "sample the host, the processes and the GPUs every N ms from warmup to the end (default 200; 0: off); "
                 "telemetry.csv and result.conditions (docs/telemetry.md)")
      ->type_name("N")
      ->check(whole_in(0, 60000))
      ->group("Output");
  const char* g = "Trials";
  app.add_option("--trials", f.trials,
                 sweep ? "full engine lifecycles per config (default 1), interleaved: A B C, C B A, ..."
                       : "full engine lifecycles of the config (default 1): fresh engine, warmup, snapshot, bench, "
                         "teardown each time")
      ->type_name("K")
      ->check(whole_in(1, 1000))
      ->group(g);
  if (sweep) {
    app.add_option("--order", f.order, "interleaved (default) or shuffled: each round in a random order (--seed)")
        ->type_name("ORDER")
        ->check(CLI::Validator(
            [](std::string& v) -> std::string {
              return v == "interleaved" || v == "shuffled" ? "" : "expected interleaved or shuffled, got '" + v + "'";
            },
            ""))
        ->group(g);
    add_disturbance_options(app, f, g, "with --trials 2 or more: run a trial again",
                            "0: only say it; still disturbed: the config's row is invalid");
    app.add_option("--noise", f.noise, "changes within ±this count as no change in the table (default 1%)")
        ->type_name("X%")
        ->check(relative_threshold())
        ->group(g);
    app.add_option("--resume", f.resume,
                   "continue the interrupted sweep in DIR: the same command (configs by sha256, workload, load, "
                   "trials, seed) reuses its finished lifecycles and runs the rest into a new sweep folder")
        ->type_name("DIR")
        ->group(g);
  }
}

void add_bench_options(CLI::App& app, bench_flags& f) {
  auto& o = f.o;
  const char* load = "Workload and load";
  app.add_option("--queries", o.queries_path, "CSV or JSONL workload (or one of the generated workloads below)")
      ->type_name("FILE")
      ->group(load);
  const char* gen = "Generated and imported workloads (docs/workloads.md)";
  app.add_option("--synthetic", o.generated.synthetic,
                 "synthetic prompts: input=512,output=128[,spread=0.2][,dist=uniform|normal|lognormal] (seeded by "
                 "--seed; token counts checked with the engine's /tokenize where its kind has one); -n requests "
                 "(default 100)")
      ->type_name("SPEC")
      ->group(gen);
  app.add_option("--sharegpt", o.generated.sharegpt,
                 "ShareGPT JSON (conversations of from/value turns): each conversation's first human turn, max_tokens "
                 "from the answer's length; with --sessions: whole conversations")
      ->type_name("FILE")
      ->group(gen);
  app.add_option("--prefix-groups", o.generated.prefix_groups,
                 "shared-prefix workload: G groups, each with a prefix of --prefix-len tokens, every request its "
                 "group's prefix and a unique suffix (--synthetic gives the suffix; default input=512,output=128)")
      ->type_name("G")
      ->check(whole_in(1, 100000))
      ->group(gen);
  app.add_option("--prefix-len", o.generated.prefix_len, "tokens of each shared prefix (with --prefix-groups)")
      ->type_name("P")
      ->check(whole_in(1, 10000000))
      ->group(gen);
  app.add_option("--sessions", o.generated.sessions,
                 "multi-turn sessions: turns=3,think_ms=1000[,think_dist=exponential|uniform|fixed] plus --synthetic's "
                 "keys for each turn; each turn carries the history with the engine's actual answers; -n sessions")
      ->type_name("SPEC")
      ->group(gen);
  app.add_option("--trace", o.generated.trace,
                 "trace replay: JSONL with timestamp (ms), input_length, output_length [, hash_ids]: its own "
                 "open-loop schedule (no --load)")
      ->type_name("FILE")
      ->group(gen);
  app.add_option("--time-scale", o.generated.time_scale, "trace replay: multiply the trace's gaps by X (default 1)")
      ->type_name("X")
      ->check(finite_in(0.000001, 1e6))
      ->group(gen);
  app.add_option("--model", o.model, "model to ask for (default: the first of GET /v1/models)")
      ->type_name("NAME")
      ->group(load);
  app.add_option("--concurrency", o.concurrency, "requests in flight at once (default 1: batch size 1, sequential)")
      ->type_name("N")
      ->check(whole_in(1, 4096))
      ->group(load);
  app.add_option("--rate", o.rate, "Poisson arrivals at R requests/s (default: as fast as concurrency allows)")
      ->type_name("R")
      ->check(finite_in(0, 1e6))
      ->group(load);
  const char* curve = "Load profiles (curves)";
  app.add_option("--load", f.load,
                 "load points, each a full measurement: sync (default), concurrency=1,2,4,8 (closed loop), "
                 "rate=1,2,4 (open loop, requests/s), throughput (every request due at once), sweep[:N] (sync, "
                 "throughput, then N rates evenly between; default 4); see docs/cli.md, \"Load profiles\"")
      ->type_name("PROFILE")
      ->group(curve);
  app.add_option("--burstiness", o.load.burstiness,
                 "open loop: gamma shape of the gaps between arrivals (1: Poisson, default; < 1 burstier, > 1 more "
                 "regular)")
      ->type_name("K")
      ->check(finite_in(0.01, 1000))
      ->group(curve);
  app.add_option("--ramp-up", f.ramp_up,
                 "one open-loop point whose rate goes from --ramp-start to --ramp-end over --duration: linear or "
                 "exponential")
      ->type_name("SHAPE")
      ->group(curve);
  app.add_option("--ramp-start", f.ramp_start, "the ramp's first rate (requests/s)")->type_name("R")->check(finite_in(0.000001, 1e6))->group(curve);
  app.add_option("--ramp-end", f.ramp_end, "the ramp's last rate (requests/s)")->type_name("R")->check(finite_in(0.000001, 1e6))->group(curve);
  app.add_option("--duration", o.load.duration_s,
                 "per load point: send for S seconds (closed loop: start no request after S; open loop: plan "
                 "arrivals up to S) instead of a number of requests")
      ->type_name("S")
      ->check(finite_in(0.001, base::max_duration_s))
      ->group(curve);
  app.add_option("--warmup-window", o.load.warmup_window_s,
                 "per load point: requests sent in the first S seconds are left out of its statistics (listed, "
                 "marked \"window\")")
      ->type_name("S")
      ->check(finite_in(0, base::max_duration_s))
      ->group(curve);
  app.add_option("--cooldown-window", o.load.cooldown_window_s,
                 "per load point: requests still running in the last S seconds are left out of its statistics")
      ->type_name("S")
      ->check(finite_in(0, base::max_duration_s))
      ->group(curve);
  app.add_option("--max-inflight", o.load.max_inflight,
                 "open loop: the most requests in flight at once, one client thread each (default 512); a request "
                 "due when all are busy is sent late, and its lateness recorded")
      ->type_name("N")
      ->check(whole_in(1, 4096))
      ->group(curve);
  app.add_option("--capacity-refine", o.capacity_refine,
                 "with --slo objectives: extra points that bisect the load between the capacity's point and the "
                 "next, failing one (default 2; 0: none)")
      ->type_name("N")
      ->check(whole_in(0, 20))
      ->group(curve);
  app.add_option("-n,--requests", o.num_requests, "measured requests (default: every query once per repeat)")
      ->type_name("N")
      ->check(whole_in(1, 100000000))
      ->group(load);
  app.add_option("--repeats", o.repeats,
                 "passes over the workload on each warm lifecycle (default 1); with -n N the N requests are split "
                 "into that many equal passes")
      ->type_name("N")
      ->check(whole_in(1, 100000))
      ->group(load);
  app.add_option("--warmup", o.warmup, "requests sent first and excluded from statistics (default 1)")
      ->type_name("N")
      ->check(whole_in(0, 100000))
      ->group(load);
  app.add_option("--max-tokens", f.max_tokens, "override max_tokens of every request")
      ->type_name("N")
      ->check(whole_in(1, 10000000))
      ->group(load);
  app.add_flag("--no-stream", f.no_stream, "plain responses (TTFT then equals end-to-end latency)")->group(load);
  app.add_option("--timeout", o.timeout_s, "per-request timeout in seconds (default 600)")
      ->type_name("S")
      ->check(finite_in(0.001, base::max_duration_s))
      ->group(load);
  app.add_option("--seed", o.seed, "seed of the Poisson arrivals and the bootstrap (default 1)")
      ->type_name("N")
      ->check(whole_in(0, 1ll << 62))
      ->group(load);
  app.add_flag("--keep-text", o.keep_text, "store each response's text in result.json")->group(load);
  app.add_option("--read-delay-ms", o.read_delay_ms,
                 "be a slow client: wait this long before each read of a response (client_overhead_ms in "
                 "result.json then shows what that does to the client's numbers against the proxy's)")
      ->type_name("MS")
      ->check(finite_in(0, 10000))
      ->group(load);
  app.add_option("--max-error-rate", o.max_error_rate,
                 "failed/total requests tolerated in a valid result (default 0: any error makes it invalid)")
      ->type_name("F")
      ->check(finite_in(0, 1))
      ->group(load);
  app.add_option("--headline", f.headline,
                 "the metric of the last line, the ledger and the sweep table (default output_tps; also "
                 "total_output_tps, ttft_p50, ttft_p99, itl_p50, itl_p99, tpot_p50, e2e_p50, e2e_p99, goodput, capacity)")
      ->type_name("METRIC")
      ->check(metric_name())
      ->group("Output");
  app.add_option("--slo", f.slo,
                 "latency objectives, e.g. ttft_p99_ms<=200,itl_p50_ms<=30 (per load point, and the capacity of "
                 "a curve), and/or goodput thresholds per request, e.g. ttft_ms=500,e2e_ms=4000")
      ->type_name("LIST")
      ->group("Output");
  app.add_flag("--reset-prefix-cache", f.o.reset_prefix_cache,
               "empty the engine's prefix cache after warmup, before the measured requests (vLLM: needs "
               "VLLM_SERVER_DEV_MODE=1; SGLang: /flush_cache; llama.cpp: every slot erased); recorded in result.json")
      ->group("Workload and load");
  app.add_option("--label", f.label, "a note for the ledger row (what this iteration tries)")
      ->type_name("TEXT")
      ->group("Output");
  const char* stats = "Statistics";
  app.add_option("--percentiles", f.percentiles,
                 "percentiles of every metric (default 50,90,99; each 0.1..99.9); throughput metrics also get "
                 "p10 and p1 (their bad tail is low)")
      ->type_name("LIST")
      ->group(stats);
  app.add_option("--bootstrap", o.stats.bootstrap_resamples,
                 "bootstrap resamples for the confidence interval of each median (default 2000; 0: none); "
                 "seeded by --seed")
      ->type_name("N")
      ->check(whole_in(0, 1000000))
      ->group(stats);
  app.add_option("--confidence", o.stats.confidence, "level of those intervals (default 0.95)")
      ->type_name("C")
      ->check(finite_in(0.5, 0.999))
      ->group(stats);
  const char* output = "Output";
  app.add_option("--results", f.results, "results TSV to append one row to (default results.tsv)")
      ->type_name("FILE")
      ->group(output);
  app.add_flag("--no-progress", f.no_progress, "no progress bar")->group(output);
  add_log_level(app, f.log_level)->group(output);
  app.footer(app.get_footer() + "\n\n" + kBenchFooter);
}

/// The parsed flags completed: percentiles, seeds, progress bar.
bench::options bench_options(const bench_flags& f) {
  bench::options o = f.o;
  if (f.max_tokens > 0) o.max_tokens = f.max_tokens;
  o.stream = !f.no_stream;
  if (!f.percentiles.empty()) {
    try {
      o.stats.percentiles = bench::parse_percentiles(f.percentiles);
    } catch (const std::invalid_argument& e) {
      throw usage_error(std::string("--percentiles: ") + e.what());
    }
  }
  o.stats.seed = o.seed;
  o.headline = f.headline;
  if (!f.slo.empty()) {
    try {
      bench::parse_slo_text(f.slo, o.slo, o.objectives);
    } catch (const std::invalid_argument& e) {
      throw usage_error(std::string("--slo: ") + e.what());
    }
  }
  {
    // Exactly one workload: a file, or one generated kind (--prefix-groups and --sessions take
    // --synthetic's keys; --sessions may read --sharegpt's conversations).
    const auto& g = o.generated;
    int kinds = (!o.queries_path.empty()) + (!g.trace.empty()) + (g.prefix_groups > 0 || g.prefix_len > 0) +
                (!g.sessions.empty()) + (!g.sharegpt.empty() && g.sessions.empty()) +
                (!g.synthetic.empty() && g.prefix_groups <= 0 && g.sessions.empty());
    if (kinds == 0 && !f.client)  // a --client sends what it sends (cmd/client_flags.cpp)
      throw usage_error("a workload is needed: --queries FILE, --synthetic SPEC, --sharegpt FILE, --prefix-groups G, "
                        "--sessions SPEC or --trace FILE");
    if (kinds > 1)
      throw usage_error("one workload at a time: --queries, --synthetic, --sharegpt, --prefix-groups, --sessions and "
                        "--trace exclude each other (--prefix-groups and --sessions take --synthetic's keys)");
    if (!g.trace.empty() && (!f.load.empty() || f.o.rate > 0 || f.o.concurrency > 1 || !f.ramp_up.empty()))
      throw usage_error("--trace brings its own arrival schedule: no --load, --rate, --concurrency or --ramp-up");
    if (g.time_scale != 1 && g.trace.empty()) throw usage_error("--time-scale needs --trace FILE");
    try {
      bench::check_workload(o);
    } catch (const std::exception& e) {
      throw usage_error(e.what());
    }
  }
  if (!f.load.empty()) {
    if (f.o.rate > 0 || f.o.concurrency > 1)
      throw usage_error("--load replaces --concurrency and --rate: give the load points in --load only");
    try {
      o.load = bench::parse_load(f.load);
    } catch (const std::invalid_argument& e) {
      throw usage_error(e.what());
    }
    o.load.burstiness = f.o.load.burstiness;
    o.load.duration_s = f.o.load.duration_s;
    o.load.warmup_window_s = f.o.load.warmup_window_s;
    o.load.cooldown_window_s = f.o.load.cooldown_window_s;
    o.load.max_inflight = f.o.load.max_inflight;
  }
  // --rate R --concurrency N (before load profiles): N is the most requests in flight.
  if (f.load.empty() && f.o.rate > 0 && f.o.concurrency > 1) o.load.max_inflight = f.o.concurrency;
  if (!f.ramp_up.empty()) {
    if (!f.load.empty()) throw usage_error("--ramp-up is a load profile of its own: give it without --load");
    if (f.ramp_start <= 0 || f.ramp_end <= 0) throw usage_error("--ramp-up needs --ramp-start R0 and --ramp-end R1");
    if (o.load.duration_s <= 0) throw usage_error("--ramp-up needs --duration S (the ramp's length)");
    try {
      o.load.points = {bench::ramp_point(f.ramp_up, f.ramp_start, f.ramp_end)};
      o.load.text = "ramp " + f.ramp_up;
    } catch (const std::invalid_argument& e) {
      throw usage_error(e.what());
    }
  } else if (f.ramp_start > 0 || f.ramp_end > 0) {
    throw usage_error("--ramp-start and --ramp-end need --ramp-up linear|exponential");
  }
  if (o.load.warmup_window_s + o.load.cooldown_window_s > 0 && o.load.duration_s > 0 &&
      o.load.warmup_window_s + o.load.cooldown_window_s >= o.load.duration_s)
    throw usage_error("--warmup-window plus --cooldown-window leave nothing of --duration to measure");
  if (o.headline == "capacity") {
    if (o.objectives.empty()) throw usage_error("--headline capacity needs --slo objectives (e.g. ttft_p99_ms<=200)");
    if (!o.load.is_curve()) throw usage_error("--headline capacity needs a curve: --load concurrency=... , rate=... or sweep");
  }

  if (o.headline == "goodput" && o.slo.empty()) throw usage_error("--headline goodput needs --slo thresholds");
  // With -n the measured requests are split into the passes: they must split evenly, or there
  // would be no within/between split to report.
  if (o.repeats > 1 && o.num_requests > 0 && o.num_requests % o.repeats != 0)
    throw usage_error("--repeats " + std::to_string(o.repeats) + " with -n " + std::to_string(o.num_requests) +
                      ": the measured requests are split into " + std::to_string(o.repeats) +
                      " equal passes, so -n must be a multiple of --repeats");
  if (!f.no_progress && ::isatty(2)) {
    o.progress = [](long done, long total, long errors) {
      int width = 30;
      if (total <= 0) {  // a --duration point: the count is not known in advance
        std::cerr << "\r" << done << " requests, errors " << errors << std::flush;
        return;
      }
      int filled = static_cast<int>(width * std::min(done, total) / std::max(1l, total));
      std::cerr << "\r[" << std::string(static_cast<std::size_t>(filled), '#')
                << std::string(static_cast<std::size_t>(width - filled), '.') << "] " << done << "/" << total
                << " errors " << errors << (done == total ? "\n" : "") << std::flush;
    };
  }
  return o;
}

/// "12 s", "3 min", "1.5 h": a rough duration for an ETA.
std::string rough_duration(double s) {
  char buf[32];
  if (s < 90) std::snprintf(buf, sizeof(buf), "%.0f s", s);
  else if (s < 5400) std::snprintf(buf, sizeof(buf), "%.0f min", s / 60);
  else std::snprintf(buf, sizeof(buf), "%.1f h", s / 3600);
  return buf;
}

/// One progress line per lifecycle of a sweep (docs/cli.md, "Progress"): `label: D/N requests,
/// E errors, ETA T[, sweep ~S left]`. On a terminal the line is rewritten in place and ends with
/// the lifecycle; otherwise a plain line at every quarter of the requests. The ETA is this
/// lifecycle's rate so far; the sweep's adds the mean wall time of the lifecycles before it for
/// each one still to come.
std::function<void(long, long, long)> lifecycle_progress(std::string label, std::size_t lifecycles_after,
                                                         double mean_lifecycle_s) {
  struct state {
    std::optional<std::chrono::steady_clock::time_point> first;
    long first_done = 0, last_done = 0, last_tenth = 0;
  };
  auto st = std::make_shared<state>();
  bool tty = ::isatty(2) != 0;
  return [=](long done, long total, long errors) {
    auto now = std::chrono::steady_clock::now();
    if (done < st->last_done) *st = state{};  // the lifecycle is run again (a disturbed trial's redo)
    st->last_done = done;
    if (!st->first) {
      st->first = now;
      st->first_done = done;
    }
    long tenth = total > 0 ? 4 * done / total : 4;  // quarters, for a plain line
    if (!tty && tenth == st->last_tenth && done != total) return;
    st->last_tenth = tenth;
    double left_s = -1;
    if (done > st->first_done)
      left_s = std::chrono::duration<double>(now - *st->first).count() / static_cast<double>(done - st->first_done) *
               static_cast<double>(total - done);
    std::string line = label + ": " + std::to_string(done) + "/" + std::to_string(total) + " requests, " +
                       std::to_string(errors) + (errors == 1 ? " error" : " errors");
    if (done == total) line += ", done";
    else line += ", ETA " + (left_s >= 0 ? rough_duration(left_s) : std::string("?"));
    if (lifecycles_after > 0 && mean_lifecycle_s > 0)
      line += ", sweep ~" + rough_duration(std::max(0.0, left_s) + static_cast<double>(lifecycles_after) * mean_lifecycle_s) +
              " left";
    if (tty) std::cerr << "\r\033[K" << line << (done == total ? "\n" : "") << std::flush;
    else std::cerr << line << "\n" << std::flush;
  };
}

measure::options measure_options(const bench_flags& f, const std::string& config, const std::vector<std::string>& full_argv) {
  measure::options mo;
  mo.config_path = config;
  mo.listen = f.listen;
  mo.threads = f.threads;
  mo.results_tsv = f.results;
  mo.argv = full_argv;
  mo.bench = bench_options(f);
  mo.label = f.label;
  mo.telemetry_interval_ms = f.telemetry_interval_ms;
  mo.rehash = f.rehash;
  mo.client = client_options_of(f);
  return mo;
}

/// Run and sweep check everything they can before anything starts (exit 2 with every error, a
/// ledger row, and a last stdout line that is not a number).
void preflight_or_throw(const std::vector<std::string>& configs, const std::string& workload,
                        const std::string& tsv) {
  auto errors = measure::preflight(configs, workload);
  // A ledger that could not take the row is found now, not after the engine ran.
  std::string ledger = tsv.empty() ? std::string() : bench::ledger_problem(tsv);
  if (!ledger.empty()) errors.push_back("--results: " + ledger);
  if (errors.empty()) return;
  std::string all;
  for (const auto& e : errors) all += (all.empty() ? "" : "\n") + e;
  if (!tsv.empty() && ledger.empty()) {
    try {
      bench::append_tsv(tsv, measure::failed_result(configs.size() == 1 ? configs[0] : "", all, ""), "");
    } catch (const std::exception& e) {
      spdlog::error("{}", e.what());
    }
  }
  std::cout << "failed: " << errors[0] << "\n";
  throw usage_error(all);
}

/// report.html into `dir`, its path printed; a report that cannot be made is logged, never fatal.
void write_report_beside(const std::vector<std::string>& paths, const std::string& dir,
                         const measure::results_in_memory& known) {
  try {
    // A resumed bisect's folder keeps the interrupted run's report.html (never overwritten): the
    // whole one goes beside it as report-2.html, report-3.html, ...
    fs::path out = fs::path(dir) / "report.html";
    std::error_code ec;
    for (int n = 2; fs::exists(out, ec) && n < 1000; ++n) out = fs::path(dir) / ("report-" + std::to_string(n) + ".html");
    // The path first: a failure must not leave "report: " in front of the next stdout line.
    std::string written = measure::write_report(paths, out.string(), known);
    std::cout << "report: " << written << "\n";
  } catch (const std::exception& e) {
    spdlog::warn("no report.html: {}", e.what());
  }
}


int bench_main(const bench_flags& f);
int run_main(const bench_flags& f, const std::vector<std::string>& full_argv);
int sweep_main(const bench_flags& f, const std::vector<std::string>& full_argv);

runner define_bench(CLI::App& app, const std::vector<std::string>&) {
  auto f = std::make_shared<bench_flags>();
  app.footer(kBenchAbout);
  app.add_option("--url", f->o.url, "the proxy, http://HOST:PORT")->type_name("URL")->required();
  app.add_flag("--allow-no-snapshot", [f](std::int64_t) { f->o.require_snapshot = false; },
               "accept a server without /meta (the result is marked invalid)");
  app.add_option("--out", f->out, "folder for result.json (default bench-results/<UTC time>)")
      ->type_name("DIR")
      ->group("Output");
  add_bench_options(app, *f);
  return [f]() -> int { return bench_main(*f); };
}

int bench_main(const bench_flags& f) {
  setup_logging(f.log_level);
  auto o = bench_options(f);
  const std::string& tsv = f.results;
  // The result's folder is claimed before the first request: an existing result is never replaced.
  std::string out_dir;
  try {
    if (!f.out.empty() && fs::exists(fs::path(f.out) / "result.json"))
      throw usage_error("--out " + f.out + " already holds a result.json (results are never overwritten)");
    if (!o.generated.any()) bench::load_workload(o.queries_path);
  } catch (const usage_error&) {
    throw;
  } catch (const std::exception& e) {
    std::cerr << "bench-proxy bench: " << e.what() << "\n";
    std::cout << "invalid: " << e.what() << "\n";
    return exit_status(errc::usage);
  }
  measure::interrupt_state st;
  o.cancel = &st.cancel;
  json r;
  std::string failure;
  measure::run_interruptible(
      [&] {
        try {
          r = bench::run(o);
        } catch (const std::exception& e) {
          failure = e.what();
        }
      },
      st, [] {}, [] {});
  if (r.is_null()) {
    std::cerr << "bench-proxy bench: " << failure << "\n";
    bench::append_tsv(tsv, measure::failed_result("", st.interrupted() ? "interrupted" : failure, ""), "");
    std::cout << "failed: " << (st.interrupted() ? "interrupted" : failure.substr(0, failure.find('\n'))) << "\n";
    return exit_status(st.interrupted() ? errc::interrupted : errc::failure);
  }
  if (st.interrupted()) bench::add_invalid_reason(r, "interrupted");
  if (!f.label.empty()) r["label"] = f.label;
  if (!f.out.empty()) {
    out_dir = f.out;
  } else {
    out_dir = base::make_unique_dir("bench-results/" + utc_stamp());
  }
  std::string path = measure::write_result(r, out_dir);
  measure::strip_raw_engine_metrics(r);
  bench::append_tsv(tsv, r, path);
  std::cout << measure::summary_text(r);
  std::cout << "result: " << path << "\n";
  std::cout << bench::headline_line(r) << "\n";
  if (st.interrupted()) return exit_status(errc::interrupted);
  return r.value("valid", false) ? 0 : exit_status(errc::failure);
}

runner define_run(CLI::App& app, const std::vector<std::string>& argv) {
  auto f = std::make_shared<bench_flags>();
  app.footer(kRunAbout);
  app.add_option("--config", f->config, "engine config")->type_name("CONFIG")->required();
  app.add_option("--listen", f->listen, "proxy address (default 127.0.0.1:0: any free port)")->type_name("ADDR");
  app.add_option("--run-dir", f->run_dir, "run folder (engine.log, meta.json, result.json)")->type_name("DIR");
  app.add_option("--threads", f->threads, "proxy I/O threads (default 1)")->type_name("N")->check(whole_in(1, 256));
  app.add_option("--out", f->out)->group("");  // refused below with a hint
  add_bench_options(app, *f);
  add_client_options(app, *f);
  add_trial_options(app, *f, false);
  return [f, argv]() -> int { return run_main(*f, argv); };
}

int run_main(const bench_flags& f, const std::vector<std::string>& full_argv) {
  if (!f.out.empty()) throw usage_error("--out is for bench; run writes result.json into its run folder (--run-dir)");
  setup_logging(f.log_level);
  auto mo = measure_options(f, f.config, full_argv);
  preflight_or_throw({mo.config_path}, mo.bench.queries_path, mo.results_tsv);
  if (!f.run_dir.empty()) {
    try {
      mo.run_dir = claim_run_dir(f.run_dir, mo.config_path);
    } catch (const std::exception& e) {
      std::cout << "failed: " << e.what() << "\n";
      throw usage_error(e.what());
    }
  }
  become_subreaper();
  caf::actor_system_config cfg;
  configure_actor_system(cfg);
  caf::actor_system sys{cfg};
  measure::interrupt_state st;
  if (f.trials == 1) {
    auto r = measure::measure(sys, mo, st);
    const std::string last = r.result.is_null() ? "failed: " + r.reason.substr(0, r.reason.find('\n'))
                                                : bench::headline_line(r.result);
    if (!r.result.is_null()) {
      std::cout << measure::summary_text(r.result);
      std::cout << "result: " << r.result_path << "\n";
      write_report_beside({r.run_dir}, r.run_dir, {{r.run_dir, &r.result}});  // moved in, not read back
    }
    if (!r.valid) std::cerr << "bench-proxy run: " << r.reason << "\n";
    std::cout << last << "\n";
    if (st.interrupted()) return exit_status(errc::interrupted);
    return r.valid ? 0 : exit_status(r.error ? r.error : make_error(errc::failure));
  }
  // K lifecycles: <run folder>/trial-N each, trials.json and one ledger row for them all.
  std::string dir = mo.run_dir.empty() ? claim_run_dir("", mo.config_path) : mo.run_dir;
  std::string tsv = mo.results_tsv;
  mo.results_tsv.clear();
  std::vector<measure::outcome> trials;
  for (int t = 1; t <= f.trials && !st.interrupted(); ++t) {
    mo.run_dir = claim_run_dir((fs::path(dir) / ("trial-" + std::to_string(t))).string(), mo.config_path);
    spdlog::info("[run] trial {}/{}: {}", t, f.trials, mo.config_path);
    trials.push_back(measure::measure(sys, mo, st));
    if (!trials.back().valid) spdlog::warn("[run] trial {}: {}", t, trials.back().reason);
  }
  auto agg = measure::aggregate_trials(mo.config_path, trials, mo.bench, dir);
  if (!f.label.empty()) agg["label"] = f.label;
  if (st.interrupted()) bench::add_invalid_reason(agg, "interrupted");
  std::string path = (fs::path(dir) / "trials.json").string();
  base::write_file_atomic(path, agg.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n", true);
  if (!tsv.empty()) bench::append_tsv(tsv, agg, fs::absolute(path).string());
  std::cout << measure::trials_text(agg) << "trials: " << fs::absolute(path).string() << "\n";
  if (!agg.value("results", nlohmann::json::array()).empty()) write_report_beside({dir}, dir);
  bool any = agg.value("results", nlohmann::json::array()).size() > 0;
  std::cout << (any ? bench::headline_line(agg) : "failed: no trial gave a result") << "\n";
  if (st.interrupted()) return exit_status(errc::interrupted);
  if (agg.value("valid", false)) return 0;
  for (const auto& t : trials)
    if (t.error && code_of(t.error) != errc::failure) return exit_status(t.error);
  return exit_status(errc::failure);
}

runner define_sweep(CLI::App& app, const std::vector<std::string>& argv) {
  auto f = std::make_shared<bench_flags>();
  app.footer(kSweepAbout);
  add_fleet_options(app, *f);
  app.add_option("CONFIG", f->configs, "engine configs, measured in this order")->required();
  app.add_option("--sweep-dir", f->sweep_dir, "folder for the runs and sweep.json (default sweeps/<UTC time>)")
      ->type_name("DIR");
  app.add_option("--threads", f->threads, "proxy I/O threads (default 1)")->type_name("N")->check(whole_in(1, 256));
  app.add_option("--out", f->out)->group("");  // refused below with a hint
  app.add_option("--vary", f->vary,
                 "generate variants of the one CONFIG: env.NAME=a,b, 'args.--flag=1,2,4' or KEY=v1,v2 (repeatable; "
                 "a grid of every combination, the base config first); each is written into the sweep folder and "
                 "validated before anything starts")
      ->type_name("KEY=V1,V2")
      ->group("Variants");
  app.add_flag("--one-at-a-time", f->one_at_a_time, "with --vary: each value of each knob alone, the others as in the base")
      ->group("Variants");
  add_bench_options(app, *f);
  add_client_options(app, *f);
  add_trial_options(app, *f, true);
  return [f, argv]() -> int { return sweep_main(*f, argv); };
}

namespace {

/// The library refuses a sweep with sweep_refused; the CLI's word for that is a usage error (exit 2).
template <typename F>
auto refused_as_usage(F&& work) -> decltype(work()) {
  try {
    return work();
  } catch (const measure::sweep_refused& e) {
    // Refused before anything started: the last line says so, as the preflight's does.
    std::string why = e.what();
    std::cout << "failed: " << why.substr(0, why.find('\n')) << "\n";
    throw usage_error(why);
  }
}

/// A sweep's options from the flags (the local sweep's and the fleet's); `base_opts` is every
/// lifecycle's (measure_options).
measure::sweep_options sweep_options_of(const bench_flags& f, const measure::options& base_opts) {
  measure::sweep_options o;
  o.configs = f.configs;
  o.sweep_dir = f.sweep_dir;
  o.lifecycle = base_opts;
  o.lifecycle.results_tsv = f.results;
  o.lifecycle.label = f.label;
  o.vary = f.vary;
  o.one_at_a_time = f.one_at_a_time;
  o.trials = f.trials;
  o.order = f.order;
  o.redo_disturbed = f.redo_disturbed;
  o.disturbance_cores = f.disturbance_cores;
  o.resume = f.resume;
  o.noise = relative_value(f.noise);
  o.slo = f.slo;
  return o;
}

int sweep_exit_status(const measure::sweep_result& r) {
  if (r.interrupted) return exit_status(errc::interrupted);
  return r.any_bad ? exit_status(errc::failure) : 0;
}

}  // namespace

std::string claim_sweep_dir(const bench_flags& f) {
  return refused_as_usage([&] { return measure::claim_sweep_dir(f.sweep_dir); });
}

std::vector<std::string> config_dirs(const std::vector<std::string>& configs, const std::string& sweep_dir) {
  return measure::config_dirs(configs, sweep_dir);
}

std::string trial_dir(const bench_flags& f, const std::string& config_dir, int trial) {
  return measure::trial_dir(f.trials, config_dir, trial);
}

int sweep_main(const bench_flags& f, const std::vector<std::string>& full_argv) {
  if (!f.out.empty())
    throw usage_error("--out is for bench; a sweep writes each row into its own folder under --sweep-dir");
  if (!f.agents.empty() && !f.vary.empty())
    throw usage_error("--vary and --agents: generate the variants locally first (sweep --vary writes them into its folder)");
  if (!f.agents.empty() && !f.resume.empty()) throw usage_error("--resume continues a local sweep (not --agents)");
  if (!f.agents.empty()) return fleet_sweep_main(f, full_argv);
  setup_logging(f.log_level);
  auto o = sweep_options_of(f, measure_options(f, "", full_argv));
  if (f.vary.empty() && f.one_at_a_time) throw usage_error("--one-at-a-time needs --vary");
  o.preflight = [&o](const std::vector<std::string>& configs) {
    preflight_or_throw(configs, o.lifecycle.bench.queries_path, o.lifecycle.results_tsv);
  };
  become_subreaper();
  caf::actor_system_config cfg;
  configure_actor_system(cfg);
  caf::actor_system sys{cfg};
  measure::interrupt_state st;
  auto lifecycle = [&](const measure::sweep_lifecycle& l) {
    auto mo = l.run;
    if (!f.no_progress) mo.bench.progress = lifecycle_progress(l.label, l.lifecycles_after, l.mean_lifecycle_s);
    return measure::measure(sys, mo, st);
  };
  // The sweep is a campaign actor stepping the sweep's plan (actors/campaign/campaign.hpp); what
  // the plan refuses (variants, preflight, resume, the folder) is refused before anything starts.
  auto plan = refused_as_usage([&] { return std::make_shared<measure::sweep_plan>(o, lifecycle, st, std::cout); });
  measure::run_campaign_interruptible(sys, plan, measure::steady_now_s, st);
  return sweep_exit_status(plan->finish());
}

int finish_sweep(const bench_flags& f, const measure::options& base_opts, std::vector<measure::sweep_entry>& entries,
                 const std::vector<std::string>& dirs, const std::string& sweep_dir, const measure::interrupt_state& st,
                 const json& extra) {
  auto r = measure::record_sweep(sweep_options_of(f, base_opts), std::move(entries), dirs, sweep_dir, st.interrupted(),
                                 extra, std::cout);
  entries = std::move(r.entries);
  return sweep_exit_status(r);
}

}  // namespace bp::cli
