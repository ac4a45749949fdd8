// bench-proxy try CANDIDATE.yaml --against BASELINE.yaml|best: one iteration of a campaign,
// decided sequentially (actors/measure/try_run.hpp; the procedure in analysis/sequential.hpp).
#include <chrono>
#include <filesystem>
#include <iostream>

#include <spdlog/spdlog.h>

#include "actors/engine_run.hpp"
#include "actors/measure/measure.hpp"
#include "actors/measure/report.hpp"
#include "actors/measure/try_run.hpp"
#include "actors/process/engine_child.hpp"
#include "analysis/ledger.hpp"
#include "base/files.hpp"
#include "cmd/bench_flags.hpp"
#include "cmd/cli.hpp"
#include "cmd/exit_status.hpp"
#include "configs/engine_config.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace bp::cli {

namespace {

const char* kTryAbout = R"(One iteration of a tuning campaign: rounds of one full lifecycle of the baseline and one of the
candidate, back to back (order alternating, or shuffled by --seed), until the sequential verdict
on the headline is settled: faster, slower (beyond ±noise), no change (within ±noise), or, at
--max-rounds or --budget, inconclusive with what would resolve it. Each claim is wrong with
probability at most 1 - confidence over all the looks (docs/statistics.md, "The sequential
verdict"). Writes its folder (every lifecycle's run folder, try.json, report.html) and one
ledger row. The last stdout line is machine-readable: "faster +3.4% [+2.1%, +4.6%] after 4 rounds".
Exit status: 0 keep (faster), 1 discard (slower, or no change), 2 usage or config error,
3 not comparable, 4 inconclusive, 5 a lifecycle failed, 130 interrupted.)";

struct try_flags {
  bench_flags b;
  std::string candidate, against, try_dir, budget;
  int max_rounds = 10;
  double confidence = 0.95;
};

/// --against best: the ledger's running best of the same headline metric and workload.
std::string best_from_ledger(const std::string& tsv, const std::string& metric, double noise) {
  if (tsv.empty()) throw usage_error("--against best needs a ledger (--results is empty)");
  std::error_code ec;
  if (!fs::exists(tsv, ec)) throw usage_error("--against best: the ledger " + tsv + " does not exist yet");
  auto rows = bench::load_ledger(tsv);
  auto c = bench::campaign(rows, noise);
  for (auto it = c.rbegin(); it != c.rend(); ++it) {
    if (!it->best_line) continue;
    for (const auto& e : c)
      if (e.row.line == *it->best_line) {
        if (!e.row.metric.empty() && e.row.metric != metric)
          throw usage_error("--against best: the ledger's best (" + tsv + ":" + std::to_string(e.row.line) +
                            ") is judged by " + e.row.metric + ", not " + metric);
        if (e.row.config.empty())
          throw usage_error("--against best: the ledger's best row (" + tsv + ":" + std::to_string(e.row.line) +
                            ") names no config");
        return e.row.config;
      }
  }
  throw usage_error("--against best: the ledger " + tsv + " has no valid row to be the best");
}

int try_main(try_flags& f, const std::vector<std::string>& full_argv) {
  setup_logging(f.b.log_level);
  measure::try_options o;
  o.candidate = f.candidate;
  o.noise = relative_value(f.b.noise);
  o.confidence = f.confidence;
  o.max_rounds = f.max_rounds;
  o.label = f.b.label;
  o.seed = static_cast<std::uint64_t>(f.b.o.seed);
  o.shuffled = f.b.order == "shuffled";
  if (!f.budget.empty()) {
    try {
      o.budget_s = measure::parse_duration_s(f.budget);
    } catch (const std::invalid_argument& e) {
      throw usage_error(std::string("--budget: ") + e.what());
    }
  }
  auto mo = measure_options(f.b, "", full_argv);
  o.bench = mo.bench;
  if (f.against == "best") {
    o.baseline = best_from_ledger(f.b.results, o.bench.headline, o.noise);
    o.baseline_from = "best";
    spdlog::info("[try] the ledger's best: {}", o.baseline);
  } else {
    o.baseline = f.against;
  }
  // Both configs and the workload are checked before anything starts; configs of different
  // engine kinds are not comparable (exit 3, nothing run).
  preflight_or_throw({o.baseline, o.candidate}, o.bench.queries_path, "");
  auto kind_of = [](const std::string& p) {
    auto r = load_config(p, process_env());
    return r.config ? r.config->engine : std::string("?");
  };
  std::string kb = kind_of(o.baseline), kc = kind_of(o.candidate);
  if (kb != kc) {
    std::cout << "not comparable: engine kind differs: " << kb << " (baseline " << o.baseline << ") vs " << kc
              << " (candidate " << o.candidate << ")\n";
    return 3;
  }
  if (!f.try_dir.empty()) {
    std::error_code ec;
    if (fs::exists(fs::path(f.try_dir) / "try.json", ec))
      throw usage_error("--try-dir " + f.try_dir + " already holds a try.json (results are never overwritten)");
    if (fs::exists(f.try_dir, ec) && !fs::is_empty(f.try_dir, ec))
      throw usage_error("--try-dir " + f.try_dir + " is not empty");
    fs::create_directories(f.try_dir, ec);
    if (ec) throw usage_error("--try-dir " + f.try_dir + ": " + ec.message());
    o.dir = f.try_dir;
  } else {
    o.dir = base::make_unique_dir("tries/" + utc_stamp() + "_" + fs::path(o.candidate).stem().string());
  }
  o.dir = fs::absolute(o.dir).lexically_normal().string();
  become_subreaper();
  caf::actor_system_config cfg;
  configure_actor_system(cfg);
  caf::actor_system sys{cfg};
  measure::interrupt_state st;
  mo.results_tsv.clear();  // one ledger row for the whole try, below
  auto lifecycle = [&](const std::string& config, const std::string& run_dir) {
    auto m = mo;
    m.config_path = config;
    m.run_dir = claim_run_dir(run_dir, config);
    return measure::measure(sys, m, st);
  };
  auto clock = [] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  };
  measure::try_result r;
  std::string failure;
  measure::run_interruptible(
      [&] {
        try {
          r = measure::run_try(o, lifecycle, st, clock);
        } catch (const std::exception& e) {
          failure = e.what();
        }
      },
      st, [] {}, [] {});
  if (!failure.empty()) {
    std::cerr << "bench-proxy try: " << failure << "\n";
    std::cout << "failed: " << failure << "\n";
    return 5;
  }
  std::string path = (fs::path(o.dir) / "try.json").string();
  base::write_file_atomic(path, r.doc.dump(2, ' ', false, json::error_handler_t::replace) + "\n", true);
  if (!f.b.results.empty()) {
    try {
      bench::append_tsv(f.b.results, r.doc, path);
    } catch (const std::exception& e) {
      spdlog::error("{}", e.what());
    }
  }
  std::cout << r.text << "try: " << path << "\n";
  if (r.doc["sides"].contains("candidate") && !r.doc["sides"]["candidate"]["lifecycles"].empty())
    write_report_beside({o.dir}, o.dir);
  std::cout << r.last_line << "\n";
  return st.interrupted() ? exit_status(errc::interrupted) : r.exit_status;
}

}  // namespace

runner define_try(CLI::App& app, const std::vector<std::string>& argv) {
  auto f = std::make_shared<try_flags>();
  app.footer(kTryAbout);
  app.add_option("CANDIDATE", f->candidate, "the config to try")->required()->type_name("CONFIG");
  app.add_option("--against", f->against, "the baseline config, or 'best': the ledger's running best (--results)")
      ->required()
      ->type_name("CONFIG|best");
  app.add_option("--try-dir", f->try_dir, "folder for the lifecycles and try.json (default tries/<UTC>_<candidate>)")
      ->type_name("DIR");
  app.add_option("--threads", f->b.threads, "proxy I/O threads (default 1)")->type_name("N")->check(whole_in(1, 256));
  const char* g = "Decision";
  app.add_option("--noise", f->b.noise, "changes within ±this are no change (default 1%)")
      ->type_name("X%")
      ->check(relative_threshold())
      ->group(g);
  app.add_option("--max-rounds", f->max_rounds, "rounds (one lifecycle of each side) at most (default 10)")
      ->type_name("N")
      ->check(whole_in(2, 100))
      ->group(g);
  app.add_option("--budget", f->budget, "engine time at most, e.g. 30m, 2h (a round that would not fit is not started)")
      ->type_name("DURATION")
      ->group(g);
  app.add_option("--order", f->b.order, "alternating (default: A B, B A, ...) or shuffled (each round by --seed)")
      ->type_name("ORDER")
      ->check(CLI::Validator(
          [](std::string& v) -> std::string {
            if (v == "alternating") v = "interleaved";
            return v == "interleaved" || v == "shuffled" ? "" : "expected alternating or shuffled, got '" + v + "'";
          },
          ""))
      ->group(g);
  app.add_option("--telemetry-interval-ms", f->b.telemetry_interval_ms, "sample conditions every N ms (default 200; 0 off)")
      ->type_name("N")
      ->check(whole_in(0, 60000))
      ->group("Output");
  add_bench_options(app, f->b);
  // bench's --confidence (default 0.95) is the decision's confidence here.
  return [f, argv]() -> int {
    f->confidence = f->b.o.stats.confidence;
    return try_main(*f, argv);
  };
}

}  // namespace bp::cli
