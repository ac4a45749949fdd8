#include "actors/campaign/trials.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <iomanip>
#include <numeric>
#include <random>
#include <sstream>

#include "base/json_read.hpp"
#include "base/text.hpp"
#include "configs/engine_config.hpp"
#include "analysis/curves.hpp"
#include "analysis/engine_metrics.hpp"
#include "analysis/variance.hpp"
#include "analysis/warnings.hpp"
#include "snapshot/collect.hpp"
#include "snapshot/diff.hpp"

namespace bp::measure {

using json = nlohmann::json;
namespace fs = std::filesystem;

std::vector<std::pair<std::size_t, int>> trial_order(std::size_t configs, int trials, bool shuffled,
                                                     std::uint64_t seed) {
  std::vector<std::pair<std::size_t, int>> out;
  std::mt19937_64 g(seed);
  for (int t = 0; t < trials; ++t) {
    std::vector<std::size_t> round(configs);
    std::iota(round.begin(), round.end(), 0);
    // Interleaved rounds alternate their direction (A B C, C B A, ...): a trend of the machine
    // within a round then biases a pair's difference one way in one round and the other way in
    // the next, so it cancels over pairs of rounds instead of adding up (as try alternates A B, B A).
    if (shuffled) std::shuffle(round.begin(), round.end(), g);
    else if (t % 2 == 1) std::reverse(round.begin(), round.end());
    for (std::size_t c : round) out.emplace_back(c, t);
  }
  return out;
}

json repo_state(const std::string& config_path, const std::string& repo_root) {
  std::string dir;
  if (!repo_root.empty()) {
    dir = repo_root;
  } else if (auto loaded = load_config(config_path, process_env()); loaded.config) {
    dir = loaded.config->repo_root;  // its repo_root: key, $REPO_ROOT, or found from the file, as the run's
  } else if (const char* r = std::getenv("REPO_ROOT"); r && *r) {
    dir = r;
  } else {
    std::error_code ec;
    dir = fs::absolute(fs::path(config_path), ec).parent_path().string();
  }
  try {
    auto git = [&](std::vector<std::string> args) -> std::string {
      args.insert(args.begin(), {"git", "-C", dir});
      std::string out = snap::run_program(args, std::chrono::seconds(10));
      return std::string(base::trim(out));
    };
    std::string root = git({"rev-parse", "--show-toplevel"});
    std::string commit = git({"rev-parse", "HEAD"});
    bool dirty = !git({"status", "--porcelain", "--untracked-files=no"}).empty();
    return {{"root", root}, {"commit", commit}, {"dirty", dirty}};
  } catch (const std::exception&) {
    return nullptr;  // not a git work tree (or no git): nothing to record
  }
}

/// `path` relative to `dir` when it lies inside it (listings stay true when their folder moves),
/// else absolute.
static std::string relative_to(const std::string& path, const std::string& dir) {
  fs::path a = fs::absolute(path).lexically_normal(), d = fs::absolute(dir).lexically_normal();
  fs::path rel = a.lexically_relative(d);
  if (rel.empty() || *rel.begin() == "..") return a.string();
  return rel.string();
}

json aggregate_trials(const std::string& config_path, const std::vector<outcome>& trials, const bench::options& bo,
                      const std::string& dir) {
  json a;
  a["schema_version"] = 1;
  a["kind"] = "bench-proxy trials";
  a["config_path"] = config_path;
  a["dir"] = fs::absolute(dir).lexically_normal().string();
  a["trials"] = trials.size();
  a["finished_at"] = base::utc_now_iso();
  a["results"] = json::array();
  a["per_trial"] = json::array();
  a["invalid_reasons"] = json::array();
  a["warnings"] = json::array();
  const json* first = nullptr;
  std::vector<bench::trial_samples> samples;
  double requests = 0, errors = 0;
  std::map<std::string, std::vector<double>> means;
  for (std::size_t i = 0; i < trials.size(); ++i) {
    const auto& t = trials[i];
    std::string tag = "trial " + std::to_string(i + 1);
    json pt = {{"trial", i + 1}, {"run_dir", t.run_dir}, {"valid", t.valid}, {"teardown_verified", t.teardown_verified}};
    if (!t.valid) {
      // One line per trial, with the engine's own error line where the reason quotes its output
      // ("... Last output: error: invalid argument: --flash-atn"), not cut at "Last output:".
      std::string why = t.reason.empty() ? "no result" : base::one_line_reason(t.reason);
      a["invalid_reasons"].push_back(tag + ": " + why);
      pt["reason"] = t.reason;
    }
    if (!t.result.is_null()) {
      if (!first) first = &t.result;
      a["results"].push_back(relative_to(t.result_path, dir));  // the folder can be moved or copied
      pt["result"] = t.result_path;
      // A result without a summary (malformed, or from elsewhere) must not be indexed blindly:
      // operator[] on a const json that lacks the key is undefined behaviour.
      static const json kNone = json::object();
      const json& s = t.result.contains("summary") && t.result["summary"].is_object() ? t.result["summary"] : kNone;
      const json h = s.value("headline", json::object());
      pt["headline"] = h.is_object() ? h.value("value", 0.0) : 0.0;
      std::string why;
      if (auto x = bench::samples_of(t.result, bo.headline, bo.slo, why)) samples.push_back(std::move(*x));
      requests += s.value("requests", 0.0);
      errors += s.value("errors", 0.0);
      for (const char* k : {"output_tps", "ttft_ms", "itl_ms"})
        if (s.contains(k) && s[k].contains("median")) means[k].push_back(s[k]["median"].get<double>());
      if (s.contains("e2e_ms") && s["e2e_ms"].contains("p99")) means["e2e_p99"].push_back(s["e2e_ms"]["p99"].get<double>());
      means["total_output_tps"].push_back(s.value("total_output_tps", 0.0));
    }
    a["per_trial"].push_back(pt);
  }
  std::vector<const json*> results;
  for (const auto& t : trials) results.push_back(t.result.is_null() ? nullptr : &t.result);
  for (const auto& w : bench::merge_trial_warnings(results))
    a["warnings"].push_back((w.who.empty() ? "" : w.who + ": ") + w.text);
  a["failed"] = first == nullptr;
  a["valid"] = first != nullptr && a["invalid_reasons"].empty();
  std::string joined;
  for (const auto& r : a["invalid_reasons"]) joined += (joined.empty() ? "" : "; ") + r.get<std::string>();
  a["invalid_reason"] = joined;
  auto mean = [](const std::vector<double>& v) {
    return v.empty() ? 0.0 : std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  };
  const bench::metric_def* def = bench::find_metric(bo.headline);
  json summary = {{"requests", requests},
                  {"errors", errors},
                  {"output_tps", {{"median", mean(means["output_tps"])}}},
                  {"ttft_ms", {{"median", mean(means["ttft_ms"])}}},
                  {"itl_ms", {{"median", mean(means["itl_ms"])}}},
                  {"e2e_ms", {{"p99", mean(means["e2e_p99"])}}},
                  {"total_output_tps", mean(means["total_output_tps"])}};
  if (def && !samples.empty()) {
    auto est = bench::estimator(samples).run(bo.stats.bootstrap_resamples, bo.stats.confidence, bo.stats.seed + 200);
    summary["headline"] = bench::to_json(est, *def);
    // One lifecycle of a curve: its capacity's interval comes from its points' intervals (result.json's
    // headline), which a run-level estimate over one lifecycle cannot give.
    if (bo.headline == "capacity" && samples.size() == 1 && first && first->contains("summary") &&
        (*first)["summary"].is_object()) {
      const json own = (*first)["summary"].value("headline", json::object());
      if (own.is_object() && own.value("metric", std::string()) == "capacity" && own.contains("value")) summary["headline"] = own;
    }
    for (const auto& w : bench::trial_warnings(est, *def, 0.01)) a["warnings"].push_back(w);
    if (samples.size() == 1 && trials.size() > 1)
      a["warnings"].push_back("only one of " + std::to_string(trials.size()) + " trials has a result");
  }
  // With --repeats R: the headline's spread within a warm lifecycle (between its passes) and
  // between lifecycles, reported apart (analysis/variance.hpp).
  {
    std::vector<json> results;
    for (const auto& t : trials)
      if (!t.result.is_null()) results.push_back(t.result);
    if (auto v = analysis::components(results, bo.headline, bo.slo)) summary["variance_components"] = analysis::to_json(*v);
  }
  if (first) a["summary"] = summary;  // a config without any result has no numbers to log
  else a["summary"] = json::object();
  if (first) {
    for (const char* k : {"snapshot", "snapshot_id", "workload", "workload_fingerprint", "options", "model", "label", "repo"})
      if (first->contains(k)) a[k] = (*first)[k];
  }
  return a;
}

namespace {

std::string fmt(double v, int prec = 2) { return base::fixed(v, prec); }

/// The capacity column's cell of a config: one lifecycle's capacity with its interval from its
/// points (capacity_short), or over several the t interval of their capacities; "below lowest"
/// when a lifecycle's curve met the objectives at no load; "-" without a curve.
std::string capacity_cell(const sweep_entry& e, const bench::options& bo, json& out) {
  std::vector<const json*> caps;
  for (const auto& t : e.trials)
    if (!t.result.is_null() && t.result.contains("load") && t.result["load"].is_object() &&
        t.result["load"].contains("capacity") && t.result["load"]["capacity"].is_object())
      caps.push_back(&t.result["load"]["capacity"]);
  if (caps.empty()) return "-";
  if (caps.size() == 1) {
    out = *caps[0];
    return bench::capacity_short(*caps[0]);
  }
  std::vector<bench::trial_samples> samples;
  for (std::size_t i = 0; i < e.trials.size(); ++i) {
    const auto& t = e.trials[i];
    if (t.result.is_null()) continue;
    std::string why;
    if (auto x = bench::samples_of(t.result, "capacity", bo.slo, why))
      samples.push_back(std::move(*x));
    else {
      out = {{"value", nullptr}, {"below_lowest", true}, {"trial", i + 1}, {"text", why}};
      return "below lowest (trial " + std::to_string(i + 1) + ")";
    }
  }
  const auto* def = bench::find_metric("capacity");
  auto est = bench::estimator(samples).run(bo.stats.bootstrap_resamples, bo.stats.confidence, bo.stats.seed + 300);
  out = bench::to_json(est, *def);
  std::string text = base::fixed(out.value("value", 0.0), 2);
  if (out.contains("ci") && out["ci"].is_array() && out["ci"].size() == 2 && out["ci"][0].is_number())
    text += " [" + base::fixed(out["ci"][0].get<double>(), 2) + ", " + base::fixed(out["ci"][1].get<double>(), 2) + "]";
  return text + " (" + std::to_string(samples.size()) + " trials)";
}

bench::side side_of(const sweep_entry& e, const std::string& group) {
  bench::side s;
  s.label = e.config;
  s.group = group;
  for (const auto& t : e.trials)
    if (!t.result.is_null()) {
      s.trials.push_back(t.result);
      s.paths.push_back(t.result_path);
    }
  return s;
}

}  // namespace

std::string trials_text(const json& a) {
  std::ostringstream os;
  const json h = a["summary"].value("headline", json::object());
  for (const auto& t : a.value("per_trial", json::array())) {
    os << "trial " << t.value("trial", 0) << ": ";
    if (t.contains("headline"))
      os << fmt(t["headline"].get<double>()) << (t.value("valid", false) ? "" : " (invalid)");
    else
      os << "no result";
    os << "  " << t.value("run_dir", std::string()) << "\n";
  }
  if (h.contains("value")) {
    os << "headline " << h.value("metric", std::string()) << " " << fmt(h.value("value", 0.0));
    if (h.contains("ci") && h["ci"].is_array())
      os << " [" << fmt(h["ci"][0].get<double>()) << ", " << fmt(h["ci"][1].get<double>()) << "]";
    os << " " << h.value("unit", std::string()) << ", mean of " << h.value("trials", 0) << " trials";
    if (h.contains("between_trial_cv")) os << ", between-trial CV " << fmt(h["between_trial_cv"].get<double>() * 100) << "%";
    os << "\n  (" << h.value("ci_method", std::string()) << ")\n";
  }
  if (a["summary"].contains("variance_components")) {
    const json& v = a["summary"]["variance_components"];
    os << "variance components of " << h.value("metric", std::string()) << " over " << v.value("lifecycles", 0)
       << " lifecycle(s) of " << v.value("passes_per_lifecycle", 0) << " passes: within a lifecycle CV "
       << fmt(v.value("within_lifecycle_cv", 0.0) * 100) << "%, "
       << (v.value("lifecycles", 0) >= 2 ? "between lifecycles CV " + fmt(v.value("between_lifecycle_cv", 0.0) * 100) + "%"
                                         : std::string("between lifecycles: not seen (one lifecycle)"))
       << "\n  (" << v.value("covers", std::string()) << ")\n";
  }
  if (a.value("valid", false))
    os << "valid\n";
  else
    for (const auto& r : a.value("invalid_reasons", json::array())) os << "INVALID: " << r.get<std::string>() << "\n";
  for (const auto& w : a.value("warnings", json::array())) os << "warning: " << w.get<std::string>() << "\n";
  return os.str();
}

sweep_report report_sweep(const std::vector<sweep_entry>& entries, const bench::options& bo,
                          const bench::compare_options& co, const std::string& sweep_dir, bool interrupted,
                          int requested_trials) {
  sweep_report rep;
  int trials = entries.empty() ? 0 : static_cast<int>(entries[0].trials.size());
  const bench::metric_def* def = bench::find_metric(bo.headline);
  bool higher = def ? def->higher_is_better : true;
  auto valid = [](const sweep_entry& e) { return e.aggregate.value("valid", false); };
  // const json's operator[] on a missing key is undefined behaviour (it reads past the map): every
  // read of an aggregate goes through summary_of, which answers an empty object for a row that has
  // no summary (a config whose every trial failed).
  static const json kEmpty = json::object();
  auto summary_of = [](const sweep_entry& e) -> const json& {
    auto it = e.aggregate.find("summary");
    return it != e.aggregate.end() && it->is_object() ? *it : kEmpty;
  };
  auto head = [&](const sweep_entry& e) { return summary_of(e).value("headline", json::object()); };
  auto value = [&](const sweep_entry& e) { return head(e).value("value", 0.0); };
  std::vector<std::size_t> order(entries.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) {
    if (valid(entries[x]) != valid(entries[y])) return valid(entries[x]);
    return higher ? value(entries[x]) > value(entries[y]) : value(entries[x]) < value(entries[y]);
  });
  bench::side first_side;
  bool first_ok = !entries.empty() && valid(entries[0]);
  if (first_ok) first_side = side_of(entries[0], sweep_dir);
  double noise_floor = -1;
  if (first_ok && trials >= 2) noise_floor = head(entries[0]).value("between_trial_cv", 0.0);
  bench::compare_options vo = co;
  vo.metrics = {bo.headline};
  vo.slo = bo.slo;
  json doc = {{"sweep_dir", fs::absolute(sweep_dir).string()},
              {"interrupted", interrupted},
              {"trials", trials},
              {"headline_metric", bo.headline},
              {"noise", co.noise},
              {"noise_floor", noise_floor >= 0 ? json(noise_floor) : json(nullptr)},
              {"configs", json::array()},
              {"rows", json::array()}};
  for (const auto& e : entries) {
    json c = {{"config", e.config}, {"results", json::array()}, {"valid", valid(e)}, {"headline", head(e)}};
    for (const auto& t : e.trials)
      if (!t.result_path.empty()) c["results"].push_back(relative_to(t.result_path, sweep_dir));
    doc["configs"].push_back(c);
  }
  std::ostringstream table;
  std::string unit = def ? def->unit : "";
  // With --slo objectives and curves: a capacity column (each config's, with its interval).
  bool capacity_column = false;
  std::string capacity_axis;
  if (!bo.objectives.empty())
    for (const auto& e : entries)
      for (const auto& t : e.trials)
        if (!t.result.is_null() && t.result.contains("load") && t.result["load"].is_object() &&
            t.result["load"].contains("capacity")) {
          capacity_column = true;
          if (capacity_axis.empty()) capacity_axis = t.result["load"]["capacity"].value("axis", std::string());
        }
  doc["capacity_column"] = capacity_column;
  constexpr int kCapacityWidth = 26;
  table << std::left << std::setw(4) << "#" << std::setw(30) << "config" << std::right << std::setw(12)
        << bo.headline << std::setw(22) << (trials >= 2 ? "CI (trials+requests)" : "CI (requests only)")
        << std::setw(9) << "delta" << "  " << std::left << std::setw(15) << "vs first" << std::right << std::setw(7)
        << "errors";
  if (capacity_column) table << std::setw(kCapacityWidth) << "capacity [CI]";
  table << "  differs from first in\n";
  int rank = 0;
  for (std::size_t idx : order) {
    const auto& e = entries[idx];
    if (e.trials.empty()) {  // interrupted before it started: no row, nothing to tear down
      table << std::left << std::setw(4) << "-" << std::setw(30) << fs::path(e.config).filename().string()
            << "not run (interrupted)\n";
      doc["configs"][idx]["not_run"] = true;
      continue;
    }
    bool ok = valid(e);
    bool teardown = std::all_of(e.trials.begin(), e.trials.end(), [](const outcome& t) { return t.teardown_verified; });
    json row = {{"config", e.config}, {"ok", ok}, {"valid", ok}, {"teardown_verified", teardown},
                {"trials", e.trials.size()}};
    if (!e.trials.empty()) row["run_dir"] = relative_to(e.trials[0].run_dir, sweep_dir);
    std::string name = base::shorten_middle(std::to_string(idx + 1) + ". " + fs::path(e.config).filename().string(), 28);
    table << std::left << std::setw(4) << (ok ? std::to_string(++rank) : "-") << std::setw(30) << name;
    const json& summary = summary_of(e);
    std::string errors = summary.contains("errors") && summary["errors"].is_number() ? fmt(summary["errors"].get<double>(), 0) : "-";
    if (ok) {
      json h = head(e);
      double v = h.value("value", 0.0);
      double fv = first_ok ? value(entries[0]) : 0;
      double delta = fv > 0 ? (v / fv - 1.0) * 100.0 : 0;
      std::string ci = h.contains("ci") && h["ci"].is_array()
                           ? "[" + fmt(h["ci"][0].get<double>()) + ", " + fmt(h["ci"][1].get<double>()) + "]"
                           : "(none)";
      std::string verdict = "(first)", differs;
      if (idx != 0 && first_ok) {
        const bench::side other = side_of(e, sweep_dir);
        auto cmp = bench::compare_sides(first_side, other, vo);
        verdict = !cmp.comparable ? "not comparable" : cmp.metrics.empty() ? "-" : cmp.metrics[0].verdict;
        row["verdict"] = verdict;
        row["comparison"] = bench::to_json(cmp);
        auto d = snap::diff_snapshots(base::member(entries[0].trials[0].result, "snapshot"),
                                      base::member(other.trials[0], "snapshot"));
        for (auto it = d["sections"].begin(); it != d["sections"].end(); ++it)
          differs += (differs.empty() ? "" : ", ") + it.key() + " (" + std::to_string(it.value().size()) + ")";
        row["differs_from_first"] = d;
        if (differs.empty()) differs = "nothing";
      } else if (idx != 0) {
        verdict = "-";
      }
      std::ostringstream d;
      d << std::showpos << std::fixed << std::setprecision(1) << delta << "%";
      table << std::right << std::setw(12) << fmt(v) << std::setw(22) << ci << std::setw(9)
            << (fv > 0 && idx != 0 ? d.str() : "") << "  " << std::left << std::setw(15) << verdict << std::right
            << std::setw(7) << errors;
      if (capacity_column) {
        json cap;
        table << "  " << std::setw(kCapacityWidth - 2) << capacity_cell(e, bo, cap);
        row["capacity"] = cap;
      }
      table << "  " << (idx == 0 ? "(first)" : differs) << "\n";
      row["headline"] = v;
      row["headline_ci"] = h.contains("ci") ? h["ci"] : json(nullptr);
      row["delta_pct"] = delta;
    } else {
      // The whole reason of the first trial that has one (the engine's last output included).
      std::string why;
      for (std::size_t t = 0; t < e.trials.size() && why.empty(); ++t)
        if (!e.trials[t].reason.empty())
          why = (e.trials.size() > 1 ? "trial " + std::to_string(t + 1) + ": " : "") + e.trials[t].reason;
      if (why.empty()) why = e.aggregate.value("invalid_reason", std::string());
      bool failed = e.aggregate.value("failed", false);
      table << std::right << std::setw(12) << "-" << std::setw(22) << "" << std::setw(9) << "" << "  " << std::left
            << std::setw(15) << (failed ? "FAILED" : "INVALID") << std::right << std::setw(7) << errors;
      if (capacity_column) {
        json cap;
        table << "  " << std::setw(kCapacityWidth - 2) << capacity_cell(e, bo, cap);
        if (!cap.is_null()) row["capacity"] = cap;
      }
      table << "  " << base::one_line_reason(why) << "\n";
      row["error"] = why;
      for (const auto& t : e.trials)
        if (t.error) {
          row["error_code"] = to_string(code_of(t.error));
          break;
        }
      rep.any_bad = true;
    }
    for (const auto& t : e.trials)
      if (!t.result_path.empty()) {
        row["result"] = relative_to(t.result_path, sweep_dir);  // the first trial's, relative like configs[].results
        break;
      }
    if (!e.trials.empty() && e.trials[0].result.is_object() && e.trials[0].result.contains("snapshot_id"))
      row["snapshot_id"] = e.trials[0].result["snapshot_id"];
    doc["rows"].push_back(row);
  }
  // sweep --vary: each variant's knob values, by the row number of the table.
  bool any_variant = false;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (entries[i].variant.empty()) continue;
    if (!any_variant) table << "knobs (sweep --vary; 1 is the base config):\n";
    any_variant = true;
    std::string knobs;
    for (auto it = entries[i].variant.begin(); it != entries[i].variant.end(); ++it)
      knobs += (knobs.empty() ? "" : ", ") + it.key() + "=" + it.value().get<std::string>();
    table << "  " << i + 1 << ". " << knobs << "\n";
    doc["configs"][i]["variant"] = entries[i].variant;
  }
  if (capacity_column) {
    std::string objs;
    for (const auto& o : bo.objectives) objs += (objs.empty() ? "" : ", ") + o.text;
    table << "capacity: the highest " << (capacity_axis.empty() ? std::string("load") : capacity_axis)
          << " whose point (and every lower one) meets " << objs
          << "; its interval from the points' intervals (one trial) or over the trials\n";
  }
  if (noise_floor >= 0)
    table << "noise floor: the first config's trials spread by " << fmt(noise_floor * 100, 2)
          << "% (between-trial CV of " << bo.headline << "); an A/A sweep (the same config twice) measures it\n";
  else if (trials < 2 && requested_trials >= 2)
    table << "interrupted after " << trials << " of " << requested_trials
          << " trials per config: no interval over lifecycles yet (the finished ones keep their validity)\n";
  else if (trials < 2)
    table << "one trial per config: intervals cover request-to-request noise only (--trials 3 sees run-to-run noise)\n";
  for (std::size_t i = 0; i < entries.size(); ++i)
    for (const auto& t : entries[i].trials)
      if (!t.result.is_null() && t.result.contains("engine_metrics")) {
        std::string line = bench::engine_metric_line(t.result["engine_metrics"]);
        if (!line.empty())
          table << "engine counters: config " << i + 1 << " (" << fs::path(entries[i].config).filename().string()
                << "): " << line << "\n";
        break;
      }
  for (std::size_t i = 0; i < entries.size(); ++i)
    for (const auto& w : entries[i].aggregate.value("warnings", json::array()))
      table << "warning: config " << i + 1 << " (" << fs::path(entries[i].config).filename().string()
            << "): " << w.get<std::string>() << "\n";
  rep.doc = doc;
  rep.table = table.str();
  const sweep_entry* best = nullptr;
  for (std::size_t idx : order)
    if (valid(entries[idx])) {
      best = &entries[idx];
      break;
    }
  if (interrupted) rep.any_bad = true;
  // The last line is a number only when the exit status is 0 (docs/cli.md, "The last line"): a
  // sweep that was cut short or lost a config says so, with the best of the rest beside it.
  std::size_t bad = 0;
  for (const auto& e : entries)
    if (!valid(e)) ++bad;
  std::string so_far = best ? "; best of the valid: " + base::fixed(value(*best), 2) + " (" +
                                  fs::path(best->config).filename().string() + ")"
                            : "";
  if (best && !rep.any_bad)
    rep.best_line = base::fixed(value(*best), 2);
  else if (interrupted)
    rep.best_line = "invalid: interrupted" + so_far;
  else if (!best)
    rep.best_line = "invalid: no config gave a valid result";
  else
    rep.best_line = "invalid: " + std::to_string(bad) + " of " + std::to_string(entries.size()) +
                    " configs gave no valid result" + so_far;
  return rep;
}

}  // namespace bp::measure
