// bench-proxy try CANDIDATE.yaml --against BASELINE.yaml|best: one iteration of a campaign,
// decided sequentially (actors/campaign/try_run.hpp; the procedure in analysis/sequential.hpp);
// bench-proxy bisect GOOD BAD: which change did it, one try per step (actors/campaign/bisect.hpp).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>
#include <filesystem>
#include <functional>
#include <iostream>

#include <spdlog/spdlog.h>

#include "actors/engine_run.hpp"
#include "actors/campaign/measure.hpp"
#include "actors/campaign/bisect.hpp"
#include "actors/campaign/report.hpp"
#include "actors/campaign/campaign.hpp"
#include "actors/campaign/try_run.hpp"
#include "base/process/engine_child.hpp"
#include "analysis/ledger.hpp"
#include "analysis/resolution.hpp"
#include "base/files.hpp"
#include "base/json_read.hpp"
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

const char* kBisectAbout = R"(Which change did it? The differences between GOOD and BAD become units (an env variable, an argv
flag with its value, cmd, venv, cwd, model, other keys); first BAD is tried against GOOD, then
delta debugging looks for the smallest set of units that reproduces that verdict, each step a
`try` of GOOD plus those units against GOOD. One unit: it is the answer; several: an interaction
(only together). Every generated config is written to the bisect folder's configs/ and validated
before it runs. bisect.json is rewritten after every step: Ctrl-C leaves a folder that
`bisect --resume DIR` (with the same workload options) continues without re-running decided steps.
Exit status: 0 found (a unit or an interaction), 1 GOOD and BAD do not differ, 2 usage or an
invalid generated config, 3 not comparable, 4 inconclusive, 5 a lifecycle failed, 130 interrupted.)";

struct try_flags {
  bench_flags b;
  std::string candidate, against, try_dir, budget;
  std::string good, bad, bisect_dir, resume;
  int max_rounds = 10;
  double confidence = 0.95;
  bool campaign_spread = false;
};

/// --against best: the ledger's running best of the same headline metric and workload bytes.
struct ledger_best {
  std::string config;
  std::size_t line = 0;
  double value = 0;
  std::string load_shape;
};
ledger_best best_from_ledger(const std::string& tsv, const std::string& metric, double noise,
                             const std::string& workload_sha) {
  if (tsv.empty()) throw usage_error("--against best needs a ledger (--results is empty)");
  std::error_code ec;
  if (!fs::exists(tsv, ec)) throw usage_error("--against best: the ledger " + tsv + " does not exist yet");
  std::vector<std::string> warnings;
  auto rows = bench::load_ledger(tsv, &warnings);
  for (const auto& w : warnings) spdlog::warn("{}", w);
  // The running best of this headline: rows judged by another one are another campaign.
  rows.erase(std::remove_if(rows.begin(), rows.end(),
                            [&](const bench::ledger_row& r) { return !r.metric.empty() && r.metric != metric; }),
             rows.end());
  auto c = bench::campaign(rows, noise);
  for (auto it = c.rbegin(); it != c.rend(); ++it) {
    if (!it->best_line) continue;
    for (const auto& e : c)
      if (e.row.line == *it->best_line) {
        std::string where = tsv + ":" + std::to_string(e.row.line);
        if (!e.row.metric.empty() && e.row.metric != metric)
          throw usage_error("--against best: the ledger's best (" + where + ") is judged by " + e.row.metric +
                            ", not " + metric);
        if (!e.row.workload.empty() && !workload_sha.empty() && e.row.workload != workload_sha)
          throw usage_error("--against best: the ledger's best (" + where + ") was measured on another workload (sha256 " +
                            e.row.workload.substr(0, 12) + "..., this one " + workload_sha.substr(0, 12) + "...)");
        if (e.row.config.empty())
          throw usage_error("--against best: the ledger's best row (" + where + ") names no config");
        std::string config = e.row.config;
        if (!fs::exists(config, ec) && fs::path(config).is_relative()) {
          // A relative path is the one the run was given in its own folder: often the ledger's.
          fs::path beside = fs::path(tsv).parent_path() / config;
          if (fs::exists(beside, ec)) config = beside.lexically_normal().string();
        }
        if (!fs::exists(config, ec))
          throw usage_error("--against best: the ledger's best (" + where + ") is " + e.row.config +
                            ", which does not exist " +
                            (fs::path(e.row.config).is_relative()
                                 ? "from this folder nor beside the ledger (a relative path is the run's own: run "
                                   "from the folder the runs ran in, or give --against that config)"
                                 : "any more"));
        return {config, e.row.line, e.row.value.value_or(0), e.row.load_shape};
      }
  }
  std::size_t valid = 0, tries = 0;
  for (const auto& r : rows)
    if (r.status == "valid") {
      ++valid;
      if (!r.decision.empty()) ++tries;
    }
  if (valid > 0 && valid == tries)
    throw usage_error("--against best: the ledger " + tsv + " has no running best judged by " + metric + " yet: its " +
                      std::to_string(valid) + " valid row" + (valid == 1 ? " is a try" : "s are tries") +
                      " that kept nothing (a try becomes the best when it says faster); give --against CONFIG");
  throw usage_error("--against best: the ledger " + tsv + " has no valid row judged by " + metric + " to be the best");
}

/// The decision's options from the flags try and bisect share.
measure::try_options decision_options(try_flags& f, measure::options& mo, const std::vector<std::string>& full_argv) {
  measure::try_options o;
  o.noise = f.b.noise == "auto" ? 0.01 : relative_value(f.b.noise);
  o.confidence = f.confidence;
  o.max_rounds = f.max_rounds;
  o.label = f.b.label;
  o.seed = static_cast<std::uint64_t>(f.b.o.seed);
  o.shuffled = f.b.order == "shuffled";
  o.redo_disturbed = f.b.redo_disturbed;
  o.disturbance_cores = f.b.disturbance_cores;
  if (f.b.telemetry_interval_ms == 0 && f.b.redo_disturbed > 0)
    spdlog::warn("--telemetry-interval-ms 0: no telemetry, so disturbed lifecycles cannot be seen (or run again)");
  if (!f.budget.empty()) {
    try {
      o.budget_s = measure::parse_duration_s(f.budget);
    } catch (const std::invalid_argument& e) {
      throw usage_error(std::string("--budget: ") + e.what());
    }
  }
  mo = measure_options(f.b, "", full_argv);
  mo.results_tsv.clear();  // one ledger row per try, written by the command
  o.bench = mo.bench;
  return o;
}

/// measure() as a try's lifecycle, with the run folder claimed.
measure::lifecycle_fn lifecycle_of(caf::actor_system& sys, const measure::options& mo, measure::interrupt_state& st) {
  return [&sys, mo, &st](const std::string& config, const std::string& run_dir) {
    auto m = mo;
    m.config_path = config;
    m.run_dir = claim_run_dir(run_dir, config);
    return measure::measure(sys, m, st);
  };
}

/// --noise auto and the machine's resolution, from an A/A of `config` in the ledger.
void apply_machine_spread(try_flags& f, measure::try_options& o, const std::string& config) {
  const std::string& tsv = f.b.results;
  std::error_code ec;
  std::optional<analysis::machine_spread> spread;
  if (!tsv.empty() && fs::exists(tsv, ec)) {
    try {
      std::vector<std::string> warnings;
      spread = analysis::measured_spread(bench::load_ledger(tsv, &warnings), config, o.bench.headline);
    } catch (const std::exception& e) {
      spdlog::warn("--noise: cannot read the ledger {}: {}", tsv, e.what());
    }
  }
  if (!spread) {
    if (f.b.noise == "auto")
      spdlog::info("[try] --noise auto: no A/A of {} in {}: noise ±1% (an A/A sweep with --trials 3 measures it)",
                   config, tsv.empty() ? "(no ledger)" : tsv);
    return;
  }
  o.resolution = spread->cv;
  o.resolution_source = spread->describe(tsv);
  if (f.b.noise == "auto") {
    o.noise = std::max(0.001, std::ceil(spread->cv * 1000) / 1000);
    spdlog::info("[try] --noise auto: ±{:.1f}%, this machine's between-lifecycle spread {}", o.noise * 100,
                 o.resolution_source);
  } else if (o.noise < spread->cv) {
    spdlog::warn("[try] --noise {} is finer than this machine's between-lifecycle spread {}: a verdict below it is "
                 "refused",
                 f.b.noise, o.resolution_source);
  }
}

/// The workload file's sha256, as the ledger records it; "" for a generated workload or one that
/// cannot be read (the preflight names its problem).
std::string workload_sha(const bench::options& b) {
  std::string sha;
  try {
    if (!b.generated.any()) bench::load_workload(b.queries_path, &sha);
  } catch (const std::exception&) {
  }
  return sha;
}

/// --campaign-spread: the ledger's earlier decisions on this workload and headline (their load
/// shape is matched after the first round, when the try knows its own).
void apply_campaign_spread(try_flags& f, measure::try_options& o) {
  if (!f.campaign_spread) return;
  const std::string& tsv = f.b.results;
  std::error_code ec;
  if (tsv.empty() || !fs::exists(tsv, ec)) {
    spdlog::info("[try] --campaign-spread: no ledger yet ({}): each decision on its own", tsv.empty() ? "--results is empty" : tsv);
    return;
  }
  std::vector<std::string> warnings;
  auto rows = bench::load_ledger(tsv, &warnings);
  o.campaign = analysis::campaign_pieces(rows, o.bench.headline, workload_sha(o.bench), &warnings);
  o.campaign_ledger = tsv;
  for (const auto& w : warnings) spdlog::warn("{}", w);
  spdlog::info("[try] --campaign-spread: {} earlier decision(s) in {} on this workload and headline", o.campaign.size(), tsv);
}

/// Runs `work` (a campaign under the CLI's signal loop); an exception it throws is said on both
/// streams (the last stdout line "failed: ...") and makes this false.
bool run_or_say(const char* command, const std::function<void()>& work) {
  try {
    work();
    return true;
  } catch (const std::exception& e) {
    std::cerr << "bench-proxy " << command << ": " << e.what() << "\n";
    std::cout << "failed: " << e.what() << "\n";
    return false;
  }
}

std::string engine_kind(const std::string& path) {
  auto r = load_config(path, process_env());
  return r.config ? r.config->engine : std::string("?");
}

/// Configs of different engine kinds are not comparable: said on stdout (the last line), false.
bool same_engine_kind(const std::string& a, const char* a_role, const std::string& b, const char* b_role) {
  std::string ka = engine_kind(a), kb = engine_kind(b);
  if (ka == kb) return true;
  std::cout << "not comparable: engine kind differs: " << ka << " (" << a_role << " " << a << ") vs " << kb << " ("
            << b_role << " " << b << ")\n";
  return false;
}

/// The decision's folder: `wanted` (`option` names it in errors) must be missing or empty, so
/// nothing is ever overwritten; else a fresh <prefix>/<UTC>_<stem of config>. Absolute.
std::string claim_folder(const char* option, const std::string& wanted, const char* prefix, const std::string& config) {
  std::string dir;
  if (!wanted.empty()) {
    std::error_code ec;
    if (fs::exists(wanted, ec) && !fs::is_empty(wanted, ec))
      throw usage_error(std::string(option) + " " + wanted + " is not empty (results are never overwritten" +
                        (std::string(option) == "--bisect-dir" ? "; to continue a bisect: --resume)" : ")"));
    fs::create_directories(wanted, ec);
    if (ec) throw usage_error(std::string(option) + " " + wanted + ": " + ec.message());
    dir = wanted;
  } else {
    dir = base::make_unique_dir(std::string(prefix) + "/" + utc_stamp() + "_" + fs::path(config).stem().string());
  }
  return fs::absolute(dir).lexically_normal().string();
}

/// --against DIR: any run folder (a plain serve's, a run's, a --client run's) stands for the config
/// that made it, as its meta.json records it (config.source); a config path is itself.
std::string baseline_of_folder(const std::string& against) {
  std::error_code ec;
  if (!fs::is_directory(against, ec)) return against;
  fs::path meta = fs::path(against) / "meta.json";
  json doc;
  try {
    doc = base::read_json_file(meta.string(), base::json_file_depth, 256u << 20);
  } catch (const std::exception& e) {
    throw usage_error("--against " + against + ": a folder is read as the run folder of its baseline, but " + e.what());
  }
  std::string src = doc.contains("config") && doc["config"].is_object() && doc["config"].contains("source") &&
                            doc["config"]["source"].is_string()
                        ? doc["config"]["source"].get<std::string>()
                        : "";
  if (src.empty() || !fs::exists(src, ec))
    throw usage_error("--against " + against + ": " + meta.string() + " names no config file that exists here (" +
                      (src.empty() ? "none" : src) + ")");
  spdlog::info("[try] the baseline is the config of run folder {}: {}", against, src);
  return src;
}

int try_main(try_flags& f, const std::vector<std::string>& full_argv) {
  setup_logging(f.b.log_level);
  measure::options mo;
  measure::try_options o = decision_options(f, mo, full_argv);
  o.candidate = f.candidate;
  if (f.against == "best") {
    auto best = best_from_ledger(f.b.results, o.bench.headline, o.noise, workload_sha(o.bench));
    o.baseline = best.config;
    o.baseline_from = "best";
    o.best_line = best.line;
    o.best_value = best.value;
    o.best_load_shape = best.load_shape;
    spdlog::info("[try] the ledger's best: {} ({}:{})", o.baseline, f.b.results, best.line);
  } else {
    o.baseline = baseline_of_folder(f.against);
  }
  apply_machine_spread(f, o, o.baseline);
  apply_campaign_spread(f, o);
  // Both configs and the workload are checked before anything starts; configs of different
  // engine kinds are not comparable (exit 3, nothing run).
  preflight_or_throw({o.baseline, o.candidate}, o.bench.queries_path, "");
  if (!f.b.results.empty())
    if (auto p = bench::ledger_problem(f.b.results); !p.empty()) throw usage_error("--results: " + p);
  if (!same_engine_kind(o.baseline, "baseline", o.candidate, "candidate")) return 3;
  o.dir = claim_folder("--try-dir", f.try_dir, "tries", o.candidate);
  become_subreaper();
  caf::actor_system_config cfg;
  configure_actor_system(cfg);
  caf::actor_system sys{cfg};
  measure::interrupt_state st;
  auto lifecycle = lifecycle_of(sys, mo, st);
  auto clock = measure::steady_now_s;
  // The decision is a campaign actor stepping the try's plan (actors/campaign/campaign.hpp); a
  // Ctrl-C is its `stop` (and the running lifecycle's own teardown, through `st`).
  auto plan = std::make_shared<measure::try_plan>(o, lifecycle, st, clock);
  if (!run_or_say("try", [&] { measure::run_campaign_interruptible(sys, plan, clock, st); })) return 5;
  measure::try_result r = plan->finish();
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

/// The options both decision commands declare.
void add_decision_options(CLI::App& app, try_flags& f) {
  app.add_option("--threads", f.b.threads, "proxy I/O threads (default 1)")->type_name("N")->check(whole_in(1, 256));
  const char* g = "Decision";
  f.b.noise = "auto";
  app.add_option("--noise", f.b.noise,
                 "changes within ±this are no change; auto (the default): the between-lifecycle spread an A/A sweep "
                 "of the config measured, from the ledger (--results), else 1%")
      ->type_name("X%|auto")
      ->check(CLI::Validator(
          [](std::string& v) -> std::string {
            if (v == "auto") return "";
            return relative_threshold()(v);
          },
          ""))
      ->group(g);
  app.add_option("--max-rounds", f.max_rounds, "rounds (one lifecycle of each side) at most per decision (default 10)")
      ->type_name("N")
      ->check(whole_in(2, 100))
      ->group(g);
  app.add_option("--budget", f.budget,
                 "engine time at most per decision, e.g. 30m, 2h (a round that would not fit is not started)")
      ->type_name("DURATION")
      ->group(g);
  app.add_flag("--campaign-spread", f.campaign_spread,
               "pool the spread of the ledger's earlier decisions (same workload, headline and load shape) into this "
               "one's: decides sooner when the campaign's pairs spread alike; a pair that spreads more drops it "
               "(docs/statistics.md, \"The campaign's spread\")")
      ->group(g);
  add_disturbance_options(app, f.b, g, "run a lifecycle again", "0: only mark it; still disturbed: inconclusive");
  app.add_option("--order", f.b.order, "alternating (default: A B, B A, ...) or shuffled (each round by --seed)")
      ->type_name("ORDER")
      ->check(CLI::Validator(
          [](std::string& v) -> std::string {
            if (v == "alternating") v = "interleaved";
            return v == "interleaved" || v == "shuffled" ? "" : "expected alternating or shuffled, got '" + v + "'";
          },
          ""))
      ->group(g);
  app.add_option("--telemetry-interval-ms", f.b.telemetry_interval_ms, "sample conditions every N ms (default 200; 0 off)")
      ->type_name("N")
      ->check(whole_in(0, 60000))
      ->group("Output");
  app.add_flag("--rehash", f.b.rehash,
               "every lifecycle's snapshot reads every venv file and loaded library (no hash cache)")
      ->group("Output");
  add_bench_options(app, f.b);
  add_client_options(app, f.b);
}

int bisect_main(try_flags& f, const std::vector<std::string>& full_argv) {
  setup_logging(f.b.log_level);
  measure::options mo;
  measure::bisect_options bo;
  bo.decision = decision_options(f, mo, full_argv);
  std::error_code ec;
  if (!f.resume.empty()) {
    // Continue: GOOD, BAD and the decided steps from bisect.json; the workload must be the same.
    fs::path j = fs::path(f.resume) / "bisect.json";
    json doc;
    try {
      doc = base::read_json_file(j.string(), base::json_file_depth, 64u << 20);
    } catch (const std::exception& e) {
      throw usage_error("--resume " + f.resume + ": cannot read " + j.string() + ": " + e.what());
    }
    if (doc.value("kind", "") != "bench-proxy bisect") throw usage_error(j.string() + ": not a bisect record");
    if (doc.contains("answer") && doc["answer"].value("verdict", "") != "interrupted")
      throw usage_error("--resume " + f.resume + ": this bisect ended (" + doc["answer"].value("verdict", "") +
                        "); start a new one");
    bo.good = doc.value("good", "");
    bo.bad = doc.value("bad", "");
    for (const auto& s : doc.value("steps", json::array())) {
      const json& d = s.value("decision", json::object());
      std::string v = d.value("verdict", "");
      if (v == "faster" || v == "slower" || v == "no change" || v == "inconclusive") {
        std::vector<std::string> u = s.value("units", std::vector<std::string>{});
        std::sort(u.begin(), u.end());
        std::string k;
        for (const auto& x : u) k += (k.empty() ? "" : "+") + x;
        bo.done[k] = d;
      }
    }
    bo.dir = fs::absolute(f.resume).lexically_normal().string();
  } else {
    if (f.good.empty() || f.bad.empty()) throw usage_error("bisect needs GOOD and BAD configs (or --resume DIR)");
    bo.good = f.good;
    bo.bad = f.bad;
  }
  preflight_or_throw({bo.good, bo.bad}, bo.decision.bench.queries_path, "");
  apply_machine_spread(f, bo.decision, bo.good);
  apply_campaign_spread(f, bo.decision);
  try {
    bo.resume_key = measure::bisect_key(bo.decision, bo.good, bo.bad);
  } catch (const std::exception& e) {
    throw usage_error(e.what());
  }
  if (!f.resume.empty()) {
    // The steps it reuses were decided on this workload with these options, of these configs:
    // otherwise the search would mix decisions about different things.
    json recorded;
    try {
      recorded = base::read_json_file((fs::path(f.resume) / "bisect.json").string(), base::json_file_depth, 64u << 20)
                     .value("resume_key", json());
    } catch (const std::exception& e) {
      throw usage_error("--resume " + f.resume + ": " + e.what());
    }
    if (auto why = measure::resume_mismatch(recorded, bo.resume_key); !why.empty())
      throw usage_error("--resume " + f.resume + ": " + why);
    std::cout << "resuming " << bo.dir << ": " << bo.done.size() << " decided step" << (bo.done.size() == 1 ? "" : "s")
              << " reused\n";
  }
  if (!same_engine_kind(bo.good, "GOOD", bo.bad, "BAD")) return 3;
  if (f.resume.empty()) bo.dir = claim_folder("--bisect-dir", f.bisect_dir, "bisects", bo.bad);
  {
    auto r = load_config(bo.good, process_env());
    bo.repo_root = r.config ? r.config->repo_root : fs::current_path().string();
  }
  become_subreaper();
  caf::actor_system_config cfg;
  configure_actor_system(cfg);
  caf::actor_system sys{cfg};
  measure::interrupt_state st;
  auto lifecycle = lifecycle_of(sys, mo, st);
  // A generated config gets every check a config given on the command line gets.
  auto check = [queries = bo.decision.bench.queries_path](const std::string& path) {
    return measure::preflight({path}, queries);
  };
  // The search is a campaign actor stepping the bisect's plan: each step's try, one lifecycle at
  // a time (actors/campaign/campaign.hpp).
  auto plan = std::make_shared<measure::bisect_plan>(bo, lifecycle, check, st, measure::steady_now_s);
  if (!run_or_say("bisect", [&] { measure::run_campaign_interruptible(sys, plan, measure::steady_now_s, st); }))
    return 5;
  measure::bisect_result r = plan->finish();
  std::cout << r.text << "bisect: " << (fs::path(bo.dir) / "bisect.json").string() << "\n";
  std::vector<std::string> tries;
  for (const auto& s : r.doc.value("steps", json::array())) {
    const auto& d = s.value("decision", json::object());
    if (d.contains("try")) tries.push_back(fs::path(d["try"].get<std::string>()).parent_path().string());
  }
  if (!tries.empty()) write_report_beside(tries, bo.dir);
  std::cout << r.last_line << "\n";
  return st.interrupted() ? exit_status(errc::interrupted) : r.exit_status;
}

}  // namespace

runner define_try(CLI::App& app, const std::vector<std::string>& argv) {
  auto f = std::make_shared<try_flags>();
  app.footer(kTryAbout);
  app.add_option("CANDIDATE", f->candidate, "the config to try")->required()->type_name("CONFIG");
  app.add_option("--against", f->against,
                 "the baseline config, a run folder (the config its meta.json names), or 'best': the ledger's running best (--results)")
      ->required()
      ->type_name("CONFIG|best");
  app.add_option("--try-dir", f->try_dir, "folder for the lifecycles and try.json (default tries/<UTC>_<candidate>)")
      ->type_name("DIR");
  add_decision_options(app, *f);
  // bench's --confidence (default 0.95) is the decision's confidence here.
  return [f, argv]() -> int {
    f->confidence = f->b.o.stats.confidence;
    return try_main(*f, argv);
  };
}

runner define_bisect(CLI::App& app, const std::vector<std::string>& argv) {
  auto f = std::make_shared<try_flags>();
  app.footer(kBisectAbout);
  app.add_option("GOOD", f->good, "the config that is good (the baseline of every step)")->type_name("CONFIG");
  app.add_option("BAD", f->bad, "the config that differs")->type_name("CONFIG");
  app.add_option("--bisect-dir", f->bisect_dir, "folder for the steps (default bisects/<UTC>_<bad>)")->type_name("DIR");
  app.add_option("--resume", f->resume, "continue an interrupted bisect from its folder")->type_name("DIR");
  add_decision_options(app, *f);
  return [f, argv]() -> int {
    f->confidence = f->b.o.stats.confidence;
    if (!f->resume.empty() && (!f->good.empty() || !f->bad.empty()))
      throw usage_error("--resume takes GOOD and BAD from the folder's bisect.json: give neither");
    return bisect_main(*f, argv);
  };
}

}  // namespace bp::cli
