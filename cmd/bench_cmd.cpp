// bench-proxy bench | run | sweep
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <future>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <thread>

#include <spdlog/spdlog.h>

#include "actors/process/engine_child.hpp"
#include "actors/engine_run.hpp"
#include "actors/measure/measure.hpp"
#include "base/files.hpp"
#include "cmd/cli_common.hpp"
#include "cmd/commands.hpp"
#include "net/loadgen/bench.hpp"
#include "net/client/http_client.hpp"
#include "snapshot/diff.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace bp::cli {

namespace {

const char* kBenchOptions = R"(Workload and load:
  --queries FILE         CSV or JSONL workload (docs/metrics.md, "Workload"); required
  --model NAME           model to ask for (default: the first of GET /v1/models)
  --concurrency N        requests in flight at once (default 1: batch size 1, sequential)
  --rate R               Poisson arrivals at R requests/s (default: as fast as concurrency allows)
  -n, --requests N       measured requests (default: every query once per repeat)
  --repeats N            passes over the workload (default 1)
  --warmup N             requests sent first and excluded from statistics (default 1)
  --max-tokens N         override max_tokens of every request
  --no-stream            plain responses (TTFT then equals end-to-end latency)
  --timeout S            per-request timeout (default 600)
  --seed N               seed of the Poisson arrivals (default 1)
  --keep-text            store each response's text in result.json
  --max-error-rate F     failed/total requests tolerated in a valid result (default 0: any error
                         makes the result invalid)
Statistics (docs/metrics.md, "Uncertainty"):
  --percentiles LIST     percentiles of every metric (default 50,90,99; each 0.1..99.9);
                         throughput metrics also get p10 and p1 (their bad tail is low)
  --bootstrap N          bootstrap resamples for the confidence interval of each median
                         (default 2000; 0: none); seeded by --seed
  --confidence C         level of those intervals (default 0.95)
Output:
  --out DIR              folder for result.json (bench: bench-results/<UTC time>; run: the run folder)
  --results FILE         results TSV to append one row to (default results.tsv)
  --no-progress          no progress bar
  --log-level LEVEL      trace, debug, info, warn, error, off
The last line on stdout is the headline number (median output tokens/s per request) for a valid
result; otherwise a line that is not a number: "invalid: REASONS" or "failed: REASON".
)";

const char* kBenchUsage = R"(usage: bench-proxy bench --url http://HOST:PORT --queries FILE [options]

Benchmarks an OpenAI-compatible server (normally a bench-proxy). Fetches /meta before and after:
the result records the snapshot and is marked invalid if the snapshot id changed.
Exit status: 0 valid result, 1 invalid result or failure, 2 usage error.

  --url URL              the proxy (required)
  --allow-no-snapshot    accept a server without /meta (the result is marked invalid)
)";

const char* kRunUsage = R"(usage: bench-proxy run --config CONFIG --queries FILE [options]

Starts the engine under bench-proxy exactly as serve does (on a free loopback port unless --listen
is given), waits for /meta, benchmarks through the proxy, records, tears everything down and
prints the headline number last.

  --config CONFIG        engine config (required)
  --listen ADDR          proxy address (default 127.0.0.1:0: any free port)
  --run-dir DIR          run folder (engine.log, meta.json, result.json)
  --threads N            proxy I/O threads
)";

const char* kSweepUsage = R"(usage: bench-proxy sweep CONFIG... --queries FILE [options]

Runs every config in turn from one process: engine, proxy, warmup, snapshot and bench come up,
the row is recorded, everything is torn down and verified gone before the next config starts.
A config that fails to start, crashes or times out becomes a failed row and the sweep goes on.
At the end: a table sorted by the headline metric, each row's delta to the first config and what
its snapshot differs in from the first. Ctrl-C tears everything down cleanly.

  --sweep-dir DIR        folder for the runs and sweep.json (default sweeps/<UTC time>)
)";

std::vector<std::string> bench_value_opts() {
  return {"--queries", "--model", "--concurrency", "--rate", "-n", "--requests", "--repeats", "--warmup",
          "--max-tokens", "--timeout", "--seed", "--out", "--results", "--max-error-rate", "--percentiles", "--bootstrap",
          "--confidence", "--log-level"};
}
std::vector<std::string> bench_flag_opts() { return {"--no-stream", "--keep-text", "--no-progress", "--help", "-h"}; }

bench::options bench_options(const args& a) {
  bench::options o;
  if (!a.get("--queries")) throw usage_error("--queries FILE is required");
  o.queries_path = *a.get("--queries");
  o.model = a.get("--model").value_or("");
  o.concurrency = static_cast<int>(a.integer("--concurrency", 1, 1, 4096));
  o.rate = a.number("--rate", 0, 0, 1e6);
  long n = a.integer("-n", 0, 1, 100000000);
  n = a.integer("--requests", n, 1, 100000000);
  o.num_requests = n;
  o.repeats = static_cast<int>(a.integer("--repeats", 1, 1, 100000));
  o.warmup = static_cast<int>(a.integer("--warmup", 1, 0, 100000));
  if (a.get("--max-tokens")) o.max_tokens = static_cast<int>(a.integer("--max-tokens", 0, 1, 10000000));
  o.stream = !a.flag("--no-stream");
  o.timeout_s = a.number("--timeout", 600, 0.001, 86400);
  o.seed = static_cast<std::uint64_t>(a.integer("--seed", 1, 0, 1l << 62));
  o.keep_text = a.flag("--keep-text");
  o.max_error_rate = a.number("--max-error-rate", 0, 0, 1);
  if (auto p = a.get("--percentiles")) {
    try {
      o.stats.percentiles = bench::parse_percentiles(*p);
    } catch (const std::invalid_argument& e) {
      throw usage_error(std::string("--percentiles: ") + e.what());
    }
  }
  o.stats.bootstrap_resamples = static_cast<int>(a.integer("--bootstrap", 2000, 0, 1000000));
  o.stats.confidence = a.number("--confidence", 0.95, 0.5, 0.999);
  o.stats.seed = o.seed;
  if (!a.flag("--no-progress") && ::isatty(2)) {
    o.progress = [](long done, long total, long errors) {
      int width = 30;
      int filled = static_cast<int>(width * done / std::max(1l, total));
      std::cerr << "\r[" << std::string(static_cast<std::size_t>(filled), '#')
                << std::string(static_cast<std::size_t>(width - filled), '.') << "] " << done << "/" << total
                << " errors " << errors << (done == total ? "\n" : "") << std::flush;
    };
  }
  return o;
}

measure::options measure_options(const args& a, const std::string& config, const std::vector<std::string>& full_argv) {
  measure::options mo;
  mo.config_path = config;
  mo.listen = a.get("--listen").value_or("127.0.0.1:0");
  mo.threads = static_cast<int>(a.integer("--threads", 1, 1, 256));
  mo.results_tsv = a.get("--results").value_or("results.tsv");
  mo.argv = full_argv;
  mo.bench = bench_options(a);
  return mo;
}

/// Run and sweep check everything they can before anything starts (exit 2 with every error, a
/// ledger row, and a last stdout line that is not a number).
void preflight_or_throw(const std::vector<std::string>& configs, const std::string& workload,
                        const std::string& tsv) {
  auto errors = measure::preflight(configs, workload);
  if (errors.empty()) return;
  std::string all;
  for (const auto& e : errors) all += (all.empty() ? "" : "\n") + e;
  if (!tsv.empty()) {
    try {
      bench::append_tsv(tsv, measure::failed_result(configs.size() == 1 ? configs[0] : "", all, ""), "");
    } catch (const std::exception& e) {
      spdlog::error("{}", e.what());
    }
  }
  std::cout << "failed: " << errors[0] << "\n";
  throw usage_error(all);
}

}  // namespace

int cmd_bench(const std::vector<std::string>& argv) {
  auto vo = bench_value_opts();
  vo.push_back("--url");
  auto fo = bench_flag_opts();
  fo.push_back("--allow-no-snapshot");
  args a(argv, vo, fo);
  if (a.flag("--help") || a.flag("-h")) {
    std::cout << kBenchUsage << kBenchOptions;
    return 0;
  }
  if (!a.positionals().empty()) throw usage_error("unexpected argument '" + a.positionals()[0] + "'");
  if (!a.get("--url")) throw usage_error("--url http://HOST:PORT is required");
  setup_logging(a.get("--log-level").value_or("info"));
  auto o = bench_options(a);
  o.url = *a.get("--url");
  o.require_snapshot = !a.flag("--allow-no-snapshot");
  std::string tsv = a.get("--results").value_or("results.tsv");
  // The result's folder is claimed before the first request: an existing result is never replaced.
  std::string out_dir;
  try {
    if (auto d = a.get("--out")) {
      if (fs::exists(fs::path(*d) / "result.json"))
        throw usage_error("--out " + *d + " already holds a result.json (results are never overwritten)");
    }
    bench::load_workload(o.queries_path);
  } catch (const usage_error&) {
    throw;
  } catch (const std::exception& e) {
    std::cerr << "bench-proxy bench: " << e.what() << "\n";
    std::cout << "invalid: " << e.what() << "\n";
    return exit_code::usage;
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
    return st.interrupted() ? exit_code::interrupted : exit_code::failure;
  }
  if (st.interrupted()) bench::add_invalid_reason(r, "interrupted");
  if (auto d = a.get("--out")) {
    out_dir = *d;
  } else {
    out_dir = base::make_unique_dir("bench-results/" + utc_stamp());
  }
  std::string path = measure::write_result(r, out_dir);
  bench::append_tsv(tsv, r, path);
  std::cout << measure::summary_text(r);
  std::cout << "result: " << path << "\n";
  std::cout << bench::headline_line(r) << "\n";
  if (st.interrupted()) return exit_code::interrupted;
  return r.value("valid", false) ? 0 : exit_code::failure;
}

int cmd_run(const std::vector<std::string>& argv, const std::vector<std::string>& full_argv) {
  auto vo = bench_value_opts();
  for (const char* o : {"--config", "--listen", "--run-dir", "--threads"}) vo.push_back(o);
  args a(argv, vo, bench_flag_opts());
  if (a.flag("--help") || a.flag("-h")) {
    std::cout << kRunUsage << kBenchOptions;
    return 0;
  }
  if (!a.positionals().empty()) throw usage_error("unexpected argument '" + a.positionals()[0] + "'");
  if (!a.get("--config")) throw usage_error("--config CONFIG is required");
  if (a.get("--out")) throw usage_error("--out is for bench; run writes result.json into its run folder (--run-dir)");
  setup_logging(a.get("--log-level").value_or("info"));
  auto mo = measure_options(a, *a.get("--config"), full_argv);
  preflight_or_throw({mo.config_path}, mo.bench.queries_path, mo.results_tsv);
  if (auto d = a.get("--run-dir")) {
    try {
      mo.run_dir = claim_run_dir(*d, mo.config_path);
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
  auto r = measure::measure(sys, mo, st);
  if (!r.result.is_null()) {
    std::cout << measure::summary_text(r.result);
    std::cout << "result: " << r.result_path << "\n";
  }
  if (!r.valid) std::cerr << "bench-proxy run: " << r.reason << "\n";
  std::cout << (r.result.is_null() ? "failed: " + r.reason.substr(0, r.reason.find('\n'))
                                   : bench::headline_line(r.result))
            << "\n";
  if (st.interrupted()) return exit_code::interrupted;
  return r.valid ? 0 : (r.exit_code ? r.exit_code : exit_code::failure);
}

int cmd_sweep(const std::vector<std::string>& argv, const std::vector<std::string>& full_argv) {
  auto vo = bench_value_opts();
  for (const char* o : {"--sweep-dir", "--threads"}) vo.push_back(o);
  args a(argv, vo, bench_flag_opts());
  if (a.flag("--help") || a.flag("-h")) {
    std::cout << kSweepUsage << kBenchOptions;
    return 0;
  }
  const auto& configs = a.positionals();
  if (configs.empty()) throw usage_error("sweep needs at least one CONFIG");
  if (a.get("--out"))
    throw usage_error("--out is for bench; a sweep writes each row into its own folder under --sweep-dir");
  setup_logging(a.get("--log-level").value_or("info"));
  auto base_opts = measure_options(a, "", full_argv);
  // Every config and the workload are checked before the first engine starts.
  preflight_or_throw(configs, base_opts.bench.queries_path, base_opts.results_tsv);
  std::string sweep_dir;
  if (auto d = a.get("--sweep-dir")) {
    std::error_code ec;
    if (fs::exists(fs::path(*d) / "sweep.json", ec))
      throw usage_error("--sweep-dir " + *d + " already holds a sweep.json (results are never overwritten)");
    fs::create_directories(*d, ec);
    if (ec) throw std::runtime_error(*d + ": " + ec.message());
    sweep_dir = *d;
  } else {
    sweep_dir = base::make_unique_dir("sweeps/" + utc_stamp());
  }
  become_subreaper();
  caf::actor_system_config cfg;
  configure_actor_system(cfg);
  caf::actor_system sys{cfg};
  measure::interrupt_state st;
  std::vector<std::pair<std::string, measure::outcome>> rows;
  for (std::size_t i = 0; i < configs.size() && !st.interrupted(); ++i) {
    auto mo = base_opts;
    mo.config_path = configs[i];
    mo.run_dir = base::make_unique_dir(
        (fs::path(sweep_dir) / (std::to_string(i + 1) + "_" + fs::path(configs[i]).stem().string())).string());
    spdlog::info("[sweep] {}/{}: {}", i + 1, configs.size(), configs[i]);
    auto r = measure::measure(sys, mo, st);
    if (r.valid)
      spdlog::info("[sweep] {}: {:.2f} tok/s (teardown verified: {})", configs[i], bench::headline(r.result),
                   r.teardown_verified);
    else
      spdlog::warn("[sweep] {}: {}", configs[i], r.reason);
    rows.emplace_back(configs[i], std::move(r));
  }
  // The table: valid rows by headline, each compared with the first config; then the others.
  const json* first_snap = nullptr;
  double first_headline = 0;
  if (!rows.empty() && rows[0].second.valid) {
    first_snap = &rows[0].second.result["snapshot"];
    first_headline = bench::headline(rows[0].second.result);
  }
  std::vector<std::size_t> order(rows.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) {
    if (rows[x].second.valid != rows[y].second.valid) return rows[x].second.valid;
    return bench::headline(rows[x].second.result) > bench::headline(rows[y].second.result);
  });
  json sweep = {{"sweep_dir", fs::absolute(sweep_dir).string()}, {"interrupted", st.interrupted()},
                {"rows", json::array()}};
  std::ostringstream table;
  table << std::left << std::setw(4) << "#" << std::setw(34) << "config" << std::right << std::setw(12) << "tok/s"
        << std::setw(10) << "delta" << std::setw(11) << "ttft ms" << std::setw(8) << "errors"
        << "  differs from first in\n";
  int rank = 0;
  for (std::size_t idx : order) {
    auto& [cfg_path, r] = rows[idx];
    json row = {{"config", cfg_path}, {"ok", r.valid}, {"valid", r.valid}, {"run_dir", r.run_dir},
                {"teardown_verified", r.teardown_verified}};
    std::string name = fs::path(cfg_path).filename().string();
    if (name.size() > 32) name = name.substr(0, 29) + "...";
    table << std::left << std::setw(4) << (r.valid ? std::to_string(++rank) : "-") << std::setw(34) << name;
    std::string errors = r.result.is_null() ? "-" : r.result["summary"].value("errors", json(0)).dump();
    if (r.valid) {
      double h = bench::headline(r.result);
      double delta = first_headline > 0 ? (h / first_headline - 1.0) * 100.0 : 0;
      std::string differs;
      if (first_snap && idx != 0) {
        auto d = snap::diff_snapshots(*first_snap, r.result["snapshot"]);
        for (auto it = d["sections"].begin(); it != d["sections"].end(); ++it)
          differs += (differs.empty() ? "" : ", ") + it.key() + " (" + std::to_string(it.value().size()) + ")";
        row["differs_from_first"] = d;
        if (differs.empty()) differs = "nothing";
      } else if (idx == 0) {
        differs = "(first)";
      }
      std::ostringstream d;
      d << std::showpos << std::fixed << std::setprecision(1) << delta << "%";
      table << std::right << std::fixed << std::setprecision(2) << std::setw(12) << h << std::setw(10)
            << (first_headline > 0 ? d.str() : "n/a") << std::setw(11)
            << r.result["summary"]["ttft_ms"].value("median", 0.0) << std::setw(8) << errors << "  " << differs
            << "\n";
      row["headline"] = h;
      row["delta_pct"] = delta;
    } else {
      std::string why = r.reason.substr(0, r.reason.find('\n'));
      table << std::right << std::setw(12) << "-" << std::setw(10) << "-" << std::setw(11) << "-" << std::setw(8)
            << errors << "  " << (r.result.is_null() ? "FAILED: " : "INVALID: ") << why << "\n";
      row["error"] = r.reason;
      row["exit_code"] = r.exit_code;
    }
    if (!r.result_path.empty()) row["result"] = r.result_path;
    if (!r.result.is_null()) row["snapshot_id"] = r.result["snapshot_id"];
    sweep["rows"].push_back(row);
  }
  std::string sweep_json = (fs::path(sweep_dir) / "sweep.json").string();
  measure::write_result(sweep, sweep_dir);  // never replaces: the folder is this sweep's own
  fs::rename(fs::path(sweep_dir) / "result.json", sweep_json);
  std::cout << table.str();
  std::cout << "sweep: " << fs::absolute(sweep_json).string() << "\n";
  const measure::outcome* best = nullptr;
  for (std::size_t idx : order)
    if (rows[idx].second.valid) {
      best = &rows[idx].second;
      break;
    }
  if (best)
    std::cout << bench::headline_line(best->result) << "\n";
  else
    std::cout << (st.interrupted() ? "invalid: interrupted" : "invalid: no config gave a valid result") << "\n";
  if (st.interrupted()) return exit_code::interrupted;
  bool any_bad = std::any_of(rows.begin(), rows.end(), [](const auto& r) { return !r.second.valid; });
  return any_bad ? exit_code::failure : 0;
}

}  // namespace bp::cli
