// bench-proxy compare | results
#include <stdlib.h>
#include <cstring>
#include <signal.h>

#include <algorithm>
#include <iostream>

#include <filesystem>
#include <map>

#include "actors/campaign/report.hpp"
#include "base/json_read.hpp"
#include "base/numbers.hpp"
#include "cmd/cli.hpp"
#include "analysis/compare.hpp"
#include "analysis/ledger.hpp"
#include "snapshot/diff.hpp"

namespace bp::cli {

namespace {

const char* kCompareAbout = R"(Is the difference real? The first input is the baseline; each other config is compared with it.
Inputs: result.json files, run folders (a result.json, or trials.json from run --trials), sweep
folders (every config with its trials; alone, its first config is the baseline).

Per metric: candidate/baseline with its confidence interval (bootstrap: trials resampled, then
requests within them), and a verdict: faster or slower (the interval lies entirely beyond
±noise, "faster" meaning better in the metric's own direction), no change (entirely within
±noise), or inconclusive (with the trials or requests needed to resolve ±noise). First, whether
the two are comparable at all: workload bytes, the set of answered queries, model and load shape,
validity. Beneath: what the snapshots differ in (meta diff, summarised). docs/metrics.md, "Verdicts".

Exit status: 0 no metric slower beyond noise; 1 one was; 3 the inputs are not comparable;
2 usage errors (and inputs that cannot be read).)";

const char* kResultsAbout = R"(The results TSV as the log of a tuning campaign: each row, its verdict against the best valid
row before it (keep: better beyond noise, the new best; discard: worse beyond noise; within noise;
inconclusive; invalid; failed; not comparable: another headline metric, workload or load shape),
and the running best. Ledgers written by older bench-proxy versions load too.)";

void unblock_signals() {
  // Nothing to tear down: Ctrl-C ends it at once.
  sigset_t stop = stop_signals();
  pthread_sigmask(SIG_UNBLOCK, &stop, nullptr);
}

}  // namespace

runner define_compare(CLI::App& app, const std::vector<std::string>&) {
  struct flags {
    std::vector<std::string> inputs, metrics;
    std::string noise = "1%", slo;
    bool json = false;
    bench::compare_options o;
  };
  auto f = std::make_shared<flags>();
  app.footer(kCompareAbout);
  app.add_option("INPUT", f->inputs, "BASELINE CANDIDATE...: result.json files, run folders or sweep folders")->required();
  app.add_option("--noise", f->noise, "changes within ±this are no change (default 1%)")->type_name("X%")->check(relative_threshold());
  app.add_option("--confidence", f->o.confidence, "level of the intervals (default 0.95)")
      ->type_name("C")
      ->check(finite_in(0.5, 0.999));
  app.add_option("--metric", f->metrics,
                 "compare this metric (repeatable; default: the headline, output_tps, total_output_tps, ttft_p50, "
                 "itl_p50, e2e_p99); one of " + bench::metric_names())
      ->type_name("M")
      ->check(CLI::Validator(
          [](std::string& v) -> std::string {
            return bench::find_metric(v) ? "" : "unknown metric '" + v + "' (one of " + bench::metric_names() + ")";
          },
          ""));
  app.add_option("--slo", f->slo, "goodput thresholds, e.g. ttft_ms=500,e2e_ms=4000")->type_name("LIST");
  app.add_option("--bootstrap", f->o.resamples, "bootstrap resamples (default 10000)")
      ->type_name("N")
      ->check(whole_in(100, 10000000));
  app.add_option("--seed", f->o.seed, "seed of the bootstrap (default 1)")->type_name("N")->check(whole_in(0, 1ll << 62));
  app.add_flag("--json", f->json, "the comparisons as JSON");
  return [f]() -> int {
    unblock_signals();
    auto o = f->o;
    o.noise = relative_value(f->noise);
    o.metrics = f->metrics;
    if (!f->slo.empty()) {
      try {
        o.slo = bench::parse_slo(f->slo);
      } catch (const std::invalid_argument& e) {
        throw usage_error(std::string("--slo: ") + e.what());
      }
    }
    std::vector<bench::side> sides;
    for (const auto& in : f->inputs) {
      try {
        for (auto& s : bench::load_sides(in)) sides.push_back(std::move(s));
      } catch (const std::exception& e) {
        throw usage_error(e.what());
      }
    }
    if (sides.size() < 2)
      throw usage_error("compare needs a baseline and at least one candidate (got " + std::to_string(sides.size()) +
                        " config from " + f->inputs[0] + ")");
    std::vector<bench::comparison> all;
    nlohmann::json out = {{"comparisons", nlohmann::json::array()}};
    for (std::size_t i = 1; i < sides.size(); ++i) {
      auto c = bench::compare_sides(sides[0], sides[i], o);
      auto j = bench::to_json(c);
      std::string differs;
      static const nlohmann::json none = nlohmann::json::object();
      const auto& a = sides[0].trials.empty() ? none : sides[0].trials[0];
      const auto& b = sides[i].trials.empty() ? none : sides[i].trials[0];
      if (a.contains("snapshot") && b.contains("snapshot") && a["snapshot"].is_object() && b["snapshot"].is_object()) {
        auto d = snap::diff_snapshots(a["snapshot"], b["snapshot"]);
        j["snapshot_diff"] = d;
        for (auto it = d["sections"].begin(); it != d["sections"].end(); ++it)
          differs += (differs.empty() ? "" : ", ") + it.key() + " (" + std::to_string(it.value().size()) + ")";
        if (differs.empty()) differs = "nothing (instance facts aside)";
      } else {
        differs = "(a side has no snapshot)";
      }
      if (!f->json) {
        if (i > 1) std::cout << "\n";
        std::cout << bench::render(c) << "snapshots differ in: " << differs << "\n";
      }
      out["comparisons"].push_back(j);
      all.push_back(std::move(c));
    }
    int status = bench::compare_status(all);
    out["exit_status"] = status;
    if (f->json) std::cout << out.dump(2) << "\n";
    return status;
  };
}

runner define_report(CLI::App& app, const std::vector<std::string>&) {
  struct flags {
    std::vector<std::string> paths;
    std::string out = "report.html";
  };
  auto f = std::make_shared<flags>();
  app.footer(R"(One self-contained HTML page (Chart.js inlined, nothing fetched from anywhere): each config's headline
with its interval and verdict against the first, errors, validity, warnings, snapshot ids and links;
load curves (latency against load with intervals, SLO lines and the capacity; tok/s per user against
total tok/s); CDFs of TTFT, ITL, end-to-end latency and per-request tok/s; per-request timelines per trial; the
campaign of a results TSV; what each config's snapshot differs in from the baseline. PATH: run
folders, result.json files, sweep folders, results TSVs. docs/report.md.)");
  app.add_option("PATH", f->paths, "what to show; the first config is the baseline")->required();
  app.add_option("-o,--out", f->out, "the page to write (default report.html; never over an existing file)")->type_name("FILE");
  return [f]() -> int {
    unblock_signals();
    std::error_code ec;
    if (std::filesystem::exists(f->out, ec))
      throw usage_error(f->out + " already exists (reports are never overwritten: choose another -o)");
    std::string path;
    try {
      path = measure::write_report(f->paths, f->out);
    } catch (const std::exception& e) {
      throw usage_error(e.what());
    }
    std::cout << "report: " << path << "\n";
    return 0;
  };
}

runner define_results(CLI::App& app, const std::vector<std::string>&) {
  struct flags {
    std::string tsv = "results.tsv", noise = "1%", headline;
    bool json = false;
  };
  auto f = std::make_shared<flags>();
  app.footer(kResultsAbout);
  app.add_option("TSV", f->tsv, "the ledger (default results.tsv), or a run, serve, sweep or try folder");
  app.add_option("--headline", f->headline,
                 "the campaign of the rows judged by this headline metric only, e.g. capacity (the rows of a "
                 "curve with --slo objectives); the others are left out (default: every row)")
      ->type_name("METRIC")
      ->check(CLI::Validator(
          [](std::string& v) -> std::string {
            return bench::find_metric(v) ? std::string() : "unknown metric '" + v + "' (one of " + bench::metric_names() + ")";
          },
          ""));
  app.add_option("--noise", f->noise, "changes within ±this are within noise (default 1%)")->type_name("X%")->check(relative_threshold());
  app.add_flag("--json", f->json, "the campaign as JSON");
  return [f]() -> int {
    unblock_signals();
    std::vector<bench::ledger_row> rows;
    try {
      std::error_code ec;
      if (std::filesystem::is_directory(f->tsv, ec)) {
        // Any run folder (a plain serve's too), try or sweep folder: its results as the rows of a
        // ledger made for this reading only (the same row code as append_tsv; never written
        // beside them), in a private temporary folder removed afterwards.
        std::string tmpl = (std::filesystem::temp_directory_path() / "bench-proxy-results-XXXXXX").string();
        if (!::mkdtemp(tmpl.data())) throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
        std::string tsv = tmpl + "/results.tsv";
        try {
          std::filesystem::path try_json = std::filesystem::path(f->tsv) / "try.json";
          std::filesystem::path sweep_json = std::filesystem::path(f->tsv) / "sweep.json";
          if (std::filesystem::exists(try_json, ec)) {
            // A try: its one row, as the ledger has it (its own decision).
            bench::append_tsv(tsv, base::read_json_file(try_json.string(), base::json_file_depth, 256u << 20),
                              try_json.string());
          } else if (std::filesystem::exists(sweep_json, ec)) {
            // A sweep: its configs in order, as the ledger has them: one row per config from its
            // trials record (--trials K >= 2), else one per lifecycle; a config without a result
            // (every trial failed) as a failed row with the sweep's reason.
            const nlohmann::json sw = base::read_json_file(sweep_json.string(), base::json_file_depth, 256u << 20);
            const nlohmann::json configs = sw.value("configs", nlohmann::json::array());
            const std::filesystem::path dir(f->tsv);
            const std::string group = std::filesystem::absolute(dir).lexically_normal().string();
            auto record_of = [&](const nlohmann::json& c) {
              return c.contains("trials_record") && c["trials_record"].is_string()
                         ? dir / c["trials_record"].get<std::string>()
                         : std::filesystem::path();
            };
            auto has_results = [](const nlohmann::json& c) {
              return c.contains("results") && c["results"].is_array() && !c["results"].empty();
            };
            // The lifecycles of configs without a trials record, read as compare reads them (one
            // side per config that has results, in order; listed paths rebased onto this folder).
            bool lifecycles = false;
            for (const auto& c : configs)
              lifecycles = lifecycles || (c.is_object() && has_results(c) && !std::filesystem::exists(record_of(c), ec));
            const std::vector<bench::side> sides = lifecycles ? bench::load_sides(f->tsv) : std::vector<bench::side>{};
            std::size_t next = 0;  // the side of the next config that has results
            std::map<std::string, std::string> errors;  // config -> why its row failed
            for (const auto& row : sw.value("rows", nlohmann::json::array()))
              if (row.is_object() && !row.value("ok", true))
                errors[row.value("config", std::string())] = row.value("error", std::string());
            auto add = [&](nlohmann::json r, const std::string& path) {
              if (r.is_object() && !r.contains("interleaved_with")) r["interleaved_with"] = group;
              bench::append_tsv(tsv, r, path);
            };
            for (const auto& c : configs) {
              if (!c.is_object()) continue;
              const std::filesystem::path rec = record_of(c);
              const bool results = has_results(c);
              const bench::side* side = results && next < sides.size() ? &sides[next] : nullptr;
              if (results) ++next;
              if (!rec.empty() && std::filesystem::exists(rec, ec)) {
                add(base::read_json_file(rec.string(), base::json_file_depth, 256u << 20), rec.string());
              } else if (side) {
                for (std::size_t i = 0; i < side->trials.size(); ++i)
                  add(side->trials[i], i < side->paths.size() ? side->paths[i] : side->label);
              } else {
                const std::string config = c.value("config", std::string());
                add({{"failed", true}, {"valid", false}, {"config_path", config},
                     {"invalid_reason", errors.count(config) ? errors[config] : "no trial has a result"}},
                    "");
              }
            }
          } else {
            for (const auto& side : bench::load_sides(f->tsv))
              for (std::size_t i = 0; i < side.trials.size(); ++i) {
                // A sweep's lifecycles were measured interleaved: their rows say so (one group).
                nlohmann::json r = side.trials[i];
                if (!side.group.empty() && r.is_object() && !r.contains("interleaved_with")) r["interleaved_with"] = side.group;
                bench::append_tsv(tsv, r, i < side.paths.size() ? side.paths[i] : side.label);
              }
          }
          rows = bench::load_ledger(tsv);
        } catch (...) {
          std::filesystem::remove_all(tmpl, ec);
          throw;
        }
        std::filesystem::remove_all(tmpl, ec);
      } else {
        rows = bench::load_ledger(f->tsv);
      }
    } catch (const std::exception& e) {
      throw usage_error(e.what());
    }
    if (!f->headline.empty()) {
      std::size_t before = rows.size();
      rows.erase(std::remove_if(rows.begin(), rows.end(), [&](const bench::ledger_row& r) { return r.metric != f->headline; }),
                 rows.end());
      if (rows.empty())
        throw usage_error("--headline " + f->headline + ": no row of " + f->tsv + " (of " + std::to_string(before) +
                          ") is judged by " + f->headline +
                          (f->headline == "capacity"
                               ? " (a curve with objectives: run|sweep|try ... --load concurrency=... --slo "
                                 "METRIC_pNN_ms<=MS --headline capacity)"
                               : ""));
      if (rows.size() < before && !f->json)
        std::cout << before - rows.size() << " row(s) judged by another headline metric left out (--headline "
                  << f->headline << ")\n";
    }
    double noise = relative_value(f->noise);
    auto c = bench::campaign(rows, noise);
    if (f->json)
      std::cout << bench::to_json(c).dump(2) << "\n";
    else
      std::cout << bench::render_campaign(c, noise);
    return 0;
  };
}

}  // namespace bp::cli
