#include "actors/campaign/try_run.hpp"

#include "actors/campaign/campaign.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <sstream>
#include <stdexcept>

#include <spdlog/spdlog.h>

#include "actors/engine_run.hpp"
#include "actors/campaign/trials.hpp"
#include "analysis/compare.hpp"
#include "analysis/disturbance.hpp"
#include "analysis/ledger.hpp"
#include "analysis/metrics.hpp"
#include "analysis/sequential.hpp"
#include "analysis/stats.hpp"
#include "analysis/variance.hpp"
#include "base/json_read.hpp"
#include "base/files.hpp"
#include "base/text.hpp"

namespace bp::measure {

namespace fs = std::filesystem;
using json = nlohmann::json;

double parse_duration_s(const std::string& text) {
  if (text.empty()) throw std::invalid_argument("empty duration");
  const std::string example = " (e.g. 90s, 30m, 2h, 1h30m)";
  double total = 0;
  std::size_t i = 0;
  bool any = false;
  while (i < text.size()) {
    std::size_t j = i;
    int dots = 0, digits = 0;
    while (j < text.size() && (std::isdigit(static_cast<unsigned char>(text[j])) || text[j] == '.')) {
      (text[j] == '.' ? dots : digits) += 1;
      ++j;
    }
    if (j == i || digits == 0 || dots > 1) throw std::invalid_argument("'" + text + "' is not a duration" + example);
    double v = std::stod(text.substr(i, j - i));
    double unit = 1;
    if (j < text.size()) {
      char u = text[j];
      if (u == 's') unit = 1;
      else if (u == 'm') unit = 60;
      else if (u == 'h') unit = 3600;
      else throw std::invalid_argument("'" + text + "': unknown unit '" + std::string(1, u) + "' (s, m or h)");
      ++j;
    } else if (any) {
      throw std::invalid_argument("'" + text + "': a number without a unit after the first part");
    }
    total += v * unit;
    any = true;
    i = j;
  }
  if (!std::isfinite(total) || total < 1 || total > 30 * 86400.0)
    throw std::invalid_argument("'" + text + "' is not a duration between 1 s and 30 days");
  return total;
}

namespace {

std::string pct(double ratio) {
  std::ostringstream os;
  os << std::showpos << std::fixed << std::setprecision(1) << (ratio - 1.0) * 100.0 << "%";
  return os.str();
}

using side_runs = try_plan::side_runs;

json side_json(const side_runs& s) {
  json j = {{"config", s.config}, {"lifecycles", json::array()}};
  for (std::size_t i = 0; i < s.outcomes.size(); ++i) {
    const auto& o = s.outcomes[i];
    json l = {{"round", i + 1}, {"run_dir", o.run_dir}, {"valid", o.valid}, {"engine_seconds", s.seconds[i]}};
    if (!o.result_path.empty()) l["result"] = o.result_path;
    if (!o.result.is_null()) l["headline"] = bench::headline(o.result);
    if (!o.valid) l["reason"] = o.reason;
    j["lifecycles"].push_back(l);
  }
  return j;
}

}  // namespace


try_plan::try_plan(try_options opts, lifecycle_fn lifecycle, const interrupt_state& st, std::function<double()> now_s)
    : opts_(std::move(opts)),
      lifecycle_(std::move(lifecycle)),
      st_(st),
      now_s_(std::move(now_s)),
      design_(&analysis::make_design(opts_.max_rounds, opts_.confidence)),
      def_(bench::find_metric(opts_.bench.headline)),
      base_{opts_.baseline, {}, {}},
      cand_{opts_.candidate, {}, {}},
      order_rng_(opts_.seed) {
  if (!def_) throw std::invalid_argument("unknown headline metric '" + opts_.bench.headline + "'");
  started_ = now_s_();
  table_ << std::left << std::setw(7) << "round" << std::setw(8) << "order" << std::right << std::setw(14)
         << "baseline" << std::setw(14) << "candidate" << std::setw(9) << "change" << "   " << std::left
         << "sequential interval (its level)\n";
}

void try_plan::stop(const std::string& why) {
  if (verdict_.empty()) stop_why_ = why;
}

std::shared_ptr<lifecycle_job> try_plan::next() {
  if (over_) return nullptr;
  if (leg_ == 0 && attempt_ == 0) {
    // A new round: is there one, may it start, and in which order.
    if (k_ > opts_.max_rounds) return end();
    if (st_.interrupted() || !stop_why_.empty()) {
      verdict_ = "interrupted";
      return end();
    }
    if (opts_.budget_s > 0 && k_ > 1) {
      // Another round fits only if it is expected to end within the budget.
      double per_round = engine_s_ / (k_ - 1);
      if (now_s_() - started_ + per_round > opts_.budget_s) {
        verdict_ = "inconclusive";
        why_ = "the time budget (" + base::fixed(opts_.budget_s, 0) + " s) allows no further round";
        return end();
      }
    }
    cand_first_ = opts_.shuffled ? (order_rng_() & 1) != 0 : (k_ % 2 == 0);
    round_ = {{"round", k_}, {"order", cand_first_ ? "candidate, baseline" : "baseline, candidate"}};
  } else if (!stop_why_.empty()) {
    verdict_ = "interrupted";
    return end();
  }
  bool is_cand = (leg_ == 0) == cand_first_;
  const side_runs& s = is_cand ? cand_ : base_;
  const char* side = is_cand ? "candidate" : "baseline";
  std::string dir = (fs::path(opts_.dir) / side / ("round-" + std::to_string(k_))).string();
  if (attempt_) dir += "-redo-" + std::to_string(attempt_);
  spdlog::info("[try] round {}/{}: {} ({}){}", k_, opts_.max_rounds, side, s.config,
               attempt_ ? " again: the last one was disturbed" : "");
  auto job = std::make_shared<lifecycle_job>();
  job->what = "round " + std::to_string(k_) + " " + side + " (" + s.config + ")";
  job->run = [f = lifecycle_, config = s.config, dir] { return f(config, dir); };
  return job;
}

std::shared_ptr<lifecycle_job> try_plan::end() {
  over_ = true;
  return nullptr;
}

void try_plan::done(lifecycle_job& job) {
  outcome o = std::move(job.out);
  double took = job.seconds;
  engine_s_ += took;
  bool is_cand = (leg_ == 0) == cand_first_;
  side_runs& s = is_cand ? cand_ : base_;
  const char* side = is_cand ? "candidate" : "baseline";
  auto keep = [&] {
    s.outcomes.push_back(o);
    s.seconds.push_back(took);
  };
  if (!(st_.interrupted() || !o.valid)) {
    auto d = analysis::disturbances(o.result.value("conditions", json()), {opts_.disturbance_cores});
    if (!d.empty()) {
      std::string all;
      for (const auto& x : d) all += (all.empty() ? "" : "; ") + x;
      redone_.push_back({{"round", k_}, {"side", side}, {"run_dir", o.run_dir}, {"reasons", d},
                         {"redone", attempt_ < opts_.redo_disturbed}});
      spdlog::warn("[try] round {} {} lifecycle disturbed: {}", k_, side, all);
      if (attempt_ >= opts_.redo_disturbed) {
        // The disturbance persists: no verdict from a machine that is busy.
        keep();
        verdict_ = "inconclusive";
        why_ = "the machine was busy: the " + std::string(side) + " lifecycle of round " + std::to_string(k_) +
               " was disturbed " + std::to_string(attempt_ + 1) + " times (" + all + ")";
        over_ = true;
        return;
      }
      ++attempt_;  // next() runs it again
      return;
    }
  }
  keep();
  attempt_ = 0;
  if (st_.interrupted()) {
    verdict_ = "interrupted";
    over_ = true;
    return;
  }
  if (!o.valid) {
    verdict_ = "failed";
    why_ = std::string(side) + " lifecycle of round " + std::to_string(k_) + ": " +
           (o.reason.empty() ? "no result" : o.reason.substr(0, o.reason.find('\n')));
    over_ = true;
    return;
  }
  if (leg_ == 0) {
    leg_ = 1;
    return;
  }
  leg_ = 0;
  end_round();
  ++k_;
}

void try_plan::end_round() {
  // The first round also checks that the two can be compared at all (workload bytes, answered
  // queries, model, load shape): nothing more is spent on a pair that cannot be.
  if (k_ == 1) {
    bench::side a{"baseline", {base_.outcomes[0].result}, {base_.outcomes[0].result_path}, opts_.dir};
    bench::side b{"candidate", {cand_.outcomes[0].result}, {cand_.outcomes[0].result_path}, opts_.dir};
    not_comparable_ = bench::comparability(a, b);
    std::string shape = bench::load_shape_of(base_.outcomes[0].result);
    if (!opts_.best_load_shape.empty() && !shape.empty() && shape != opts_.best_load_shape)
      not_comparable_.push_back("load shape differs from the ledger's best (line " + std::to_string(opts_.best_line) +
                                "): " + opts_.best_load_shape + " there, " + shape + " here");
    if (!not_comparable_.empty()) {
      verdict_ = "not comparable";
      why_ = not_comparable_[0];
      over_ = true;
      return;
    }
    // --campaign-spread: the earlier decisions of this load shape, pooled (its first look is
    // at round 2, so it is chosen now, before any look).
    if (!opts_.campaign.empty()) {
      std::string lines;
      prior_ = analysis::pool_pieces(opts_.campaign, shape, &lines);
      if (prior_.usable()) {
        design_ = &analysis::make_design(opts_.max_rounds, opts_.confidence, 1.0, 3, prior_.df);
        prior_doc_ = {{"df", prior_.df}, {"design_df", design_->prior_df}, {"sd", std::sqrt(prior_.var)},
                      {"ledger", opts_.campaign_ledger}, {"lines", lines}, {"guard_p", design_->guard_p}};
        spdlog::info("[try] the campaign's spread: sd {:.2f}% of the round log ratios, {} df from {} lines {}",
                     std::sqrt(prior_.var) * 100, prior_.df, opts_.campaign_ledger, lines);
      } else {
        prior_doc_ = {{"df", 0}, {"ledger", opts_.campaign_ledger},
                      {"why_not", "no earlier decision of this load shape (" + shape + ")"}};
        spdlog::info("[try] --campaign-spread: no earlier decision in {} of this load shape: each round's own spread",
                     opts_.campaign_ledger);
      }
    }
  }
  double hb = bench::headline(base_.outcomes.back().result), hc = bench::headline(cand_.outcomes.back().result);
  if (!(hb > 0) || !(hc > 0) || !std::isfinite(hb) || !std::isfinite(hc)) {
    verdict_ = "failed";
    why_ = "round " + std::to_string(k_) + ": a headline that is not a positive number (" + base::fixed(hb, 3) + ", " +
           base::fixed(hc, 3) + ")";
    over_ = true;
    return;
  }
  log_ratios_.push_back(std::log(hc / hb));
  last_ = analysis::look(*design_, log_ratios_, opts_.noise, def_->higher_is_better, prior_);
  if (!prior_doc_.is_null() && prior_.usable()) {
    prior_doc_["used_through_round"] = last_.prior_used ? k_ : prior_doc_.value("used_through_round", 0);
    if (last_.dropped_at) prior_doc_["dropped_at_round"] = last_.dropped_at;
    if (last_.guard_p >= 0) prior_doc_["last_guard_p"] = last_.guard_p;
  }
  json& r = round_;
  r["baseline"] = hb;
  r["candidate"] = hc;
  r["ratio"] = hc / hb;
  r["look"] = {{"ratio", last_.ratio}, {"low", last_.low}, {"high", last_.high}, {"level", last_.level},
               {"verdict", !last_.verdict.empty() ? last_.verdict : last_.futile ? "futile" : "continue"}};
  rounds_.push_back(r);
  table_ << std::left << std::setw(7) << k_ << std::setw(8) << (cand_first_ ? "B A" : "A B") << std::right
         << std::setw(14) << base::fixed(hb, 2) << std::setw(14) << base::fixed(hc, 2) << std::setw(9)
         << pct(hc / hb) << "   " << std::left;
  if (last_.level > 0)
    table_ << "[" << pct(last_.low) << ", " << pct(last_.high) << "] (" << base::fixed(last_.level * 100, 1) << "%)"
           << (last_.verdict.empty() ? "" : "  -> " + last_.verdict);
  else
    table_ << "(no interval before round " << design_->first_look << ")";
  table_ << "\n";
  if (!last_.verdict.empty()) {
    verdict_ = last_.verdict;
    over_ = true;
    return;
  }
  if (last_.futile && design_->futility) {
    verdict_ = "inconclusive";
    why_ = "no verdict is within reach by round " + std::to_string(opts_.max_rounds) +
           " at this spread (stopped early: the remaining rounds would be spent for nothing)";
    over_ = true;
  }
}

try_result try_plan::finish() {
  try_result res;
  if (verdict_.empty()) {
    verdict_ = "inconclusive";
    why_ = "no verdict within " + std::to_string(opts_.max_rounds) + " rounds";
  }
  // A change smaller than what this machine's lifecycles spread by (an A/A measured it) is not
  // called, however the intervals fell.
  bool below_resolution = false;
  if ((verdict_ == "faster" || verdict_ == "slower") && opts_.resolution > 0 &&
      std::fabs(std::log(last_.ratio)) < std::log1p(opts_.resolution)) {
    below_resolution = true;
    why_ = verdict_ + " " + pct(last_.ratio) + " is below this machine's resolution: its lifecycles spread by " +
           opts_.resolution_source;
    verdict_ = "inconclusive";
  }
  // What would resolve an inconclusive one: the rounds at which the last interval, narrowing as
  // 1/sqrt(rounds), would clear the nearer edge of the noise band.
  std::string needed;
  if (below_resolution) {
    needed = "nothing more of the same: the change is smaller than this machine's between-lifecycle spread "
             "(a quieter machine, or an A/A measured with more trials, resolves finer)";
  } else if (verdict_ == "inconclusive" && last_.level > 0) {
    double half = (std::log(last_.high) - std::log(last_.low)) / 2, m = std::log(last_.ratio);
    double target = std::fabs(std::fabs(m) - std::log1p(opts_.noise));
    if (target > 1e-9) {
      double n = std::ceil(last_.rounds * (half / target) * (half / target));
      needed = "about " + base::fixed(std::max(n, last_.rounds + 1.0), 0) +
               " rounds at this spread (--max-rounds), or a wider --noise";
    } else {
      needed = "the estimate lies on the edge of ±" + base::fixed(opts_.noise * 100, 1) +
               "%: no number of rounds resolves it";
    }
  }
  // Each side's lifecycles as a trials record (`compare` and `report` read the try's folder).
  json sides = json::object();
  for (auto* s : {&base_, &cand_}) {
    const char* name = s == &base_ ? "baseline" : "candidate";
    std::string sdir = (fs::path(opts_.dir) / name).string();
    std::error_code ec;
    fs::create_directories(sdir, ec);
    json agg = aggregate_trials(s->config, s->outcomes, opts_.bench, sdir);
    agg["interleaved_with"] = opts_.dir;
    if (!s->outcomes.empty())
      base::write_file_atomic((fs::path(sdir) / "trials.json").string(),
                              agg.dump(2, ' ', false, json::error_handler_t::replace) + "\n", true);
    sides[name] = side_json(*s);
    sides[name]["trials"] = (fs::path(name) / "trials.json").string();
  }
  res.verdict = verdict_;
  json decision = {{"verdict", verdict_},
                   {"metric", opts_.bench.headline},
                   {"higher_is_better", def_->higher_is_better},
                   {"rounds", static_cast<int>(log_ratios_.size())},
                   {"lifecycles", base_.outcomes.size() + cand_.outcomes.size()},
                   {"engine_seconds", engine_s_},
                   {"noise", opts_.noise},
                   {"confidence", opts_.confidence},
                   {"resolution", opts_.resolution > 0 ? json(opts_.resolution) : json(nullptr)},
                   {"procedure", analysis::describe(*design_)},
                   {"baseline", opts_.baseline},
                   {"candidate", opts_.candidate}};
  if (last_.level > 0) {
    decision["ratio"] = last_.ratio;
    decision["low"] = last_.low;
    decision["high"] = last_.high;
    decision["level"] = last_.level;
  } else if (!log_ratios_.empty()) {
    decision["ratio"] = last_.ratio;
  }
  if (!why_.empty()) decision["reason"] = why_;
  int redos = 0;
  for (const auto& r : redone_)
    if (r.value("redone", false)) ++redos;
  decision["redone_disturbed"] = redos;
  decision["lifecycles"] = base_.outcomes.size() + cand_.outcomes.size() + static_cast<std::size_t>(redos);
  if (!needed.empty()) decision["needed"] = needed;
  if (!not_comparable_.empty()) decision["not_comparable_because"] = not_comparable_;
  json doc = {{"schema_version", 1},
              {"kind", "bench-proxy try"},
              {"dir", opts_.dir},
              {"interleaved_with", opts_.dir},
              {"config_path", opts_.candidate},
              {"baseline_config", opts_.baseline},
              {"finished_at", base::utc_now_iso()},
              {"decision", decision},
              {"design", analysis::to_json(*design_)},
              {"rounds", rounds_},
              {"disturbed", redone_},
              {"disturbance_rule", {{"others_burst_cores", opts_.disturbance_cores},
                                    {"redo_disturbed", opts_.redo_disturbed},
                                    {"also", "telemetry's condition warnings (docs/telemetry.md)"}}},
              {"sides", sides}};
  if (!opts_.baseline_from.empty()) doc["baseline_from"] = opts_.baseline_from;
  // --against best: the best's value in the ledger against its re-measurement now. The old
  // lifecycles never enter the decision (they have no paired candidate); a shift says the
  // machine or the engine moved since.
  std::string drift_line;
  if (opts_.best_value > 0 && base_.outcomes.size() >= 2) {
    json agg = aggregate_trials(base_.config, base_.outcomes, opts_.bench, (fs::path(opts_.dir) / "baseline").string());
    json h = agg.value("summary", json::object()).value("headline", json::object());
    if (h.contains("ci") && h["ci"].is_array() && h["ci"].size() == 2) {
      double now = h.value("value", 0.0), lo = h["ci"][0], hi = h["ci"][1];
      bool inside = opts_.best_value >= lo && opts_.best_value <= hi;
      doc["best_drift"] = {{"ledger_line", opts_.best_line}, {"then", opts_.best_value}, {"now", now},
                           {"now_ci", {lo, hi}}, {"drifted", !inside}};
      drift_line = "the best measured " + base::fixed(opts_.best_value, 2) + " at ledger line " +
                   std::to_string(opts_.best_line) + ", now " + base::fixed(now, 2) + " [" + base::fixed(lo, 2) + ", " +
                   base::fixed(hi, 2) + "]: " +
                   (inside ? "consistent"
                           : "drifted by " + pct(now / opts_.best_value) + " (the machine or the engine moved)");
    }
  }
  if (!opts_.label.empty()) doc["label"] = opts_.label;
  // The ledger row's usual fields come from the candidate's lifecycles.
  json cand_agg =
      aggregate_trials(cand_.config, cand_.outcomes, opts_.bench, (fs::path(opts_.dir) / "candidate").string());
  for (const char* k : {"summary", "workload", "workload_fingerprint", "options", "model", "snapshot_id", "repo"})
    if (cand_agg.contains(k)) doc[k] = cand_agg[k];
  // The row's description and engine kind (the snapshot itself stays in the lifecycles' folders).
  const json& cfg = base::member(base::member(cand_agg, "snapshot"), "config");
  for (const char* k : {"description", "engine"})
    if (cfg.is_object() && cfg.contains(k) && cfg[k].is_string()) doc[k] = cfg[k];
  doc["valid"] = verdict_ == "faster" || verdict_ == "slower" || verdict_ == "no change" || verdict_ == "inconclusive";
  if (!doc["valid"].get<bool>()) doc["invalid_reason"] = verdict_ + (why_.empty() ? "" : ": " + why_);
  res.doc = doc;
  // The last line, machine-readable: "faster +3.4% [+2.1%, +4.6%] after 4 rounds".
  std::string after = " after " + std::to_string(log_ratios_.size()) + " round" + (log_ratios_.size() == 1 ? "" : "s");
  if (verdict_ == "faster" || verdict_ == "slower" || verdict_ == "no change") {
    res.last_line = verdict_ + " " + pct(last_.ratio) + " [" + pct(last_.low) + ", " + pct(last_.high) + "]" + after;
    res.exit_status = verdict_ == "faster" ? 0 : 1;
  } else if (verdict_ == "inconclusive") {
    res.last_line = "inconclusive " + (log_ratios_.empty() ? std::string("(no round)") : pct(last_.ratio)) +
                    (last_.level > 0 ? " [" + pct(last_.low) + ", " + pct(last_.high) + "]" : std::string()) + after;
    res.exit_status = 4;
  } else if (verdict_ == "not comparable") {
    res.last_line = "not comparable: " + why_;
    res.exit_status = 3;
  } else if (verdict_ == "interrupted") {
    res.last_line = "interrupted" + after;
    res.exit_status = 130;
  } else {
    res.last_line = "failed: " + why_;
    res.exit_status = 5;
  }
  std::ostringstream text;
  text << "baseline:  " << opts_.baseline << (opts_.baseline_from.empty() ? "" : " (the ledger's best)") << "\n"
       << "candidate: " << opts_.candidate << "\n"
       << "headline:  " << opts_.bench.headline << " (" << (def_->higher_is_better ? "higher" : "lower")
       << " is better), noise ±" << base::fixed(opts_.noise * 100, 1) << "%\n";
  text << table_.str();
  text << "verdict: " << verdict_;
  if (!why_.empty()) text << " (" << why_ << ")";
  text << "\n";
  if (!needed.empty()) text << "needed: " << needed << "\n";
  for (const auto& r : not_comparable_) text << "  - " << r << "\n";
  text << "engine time: " << base::fixed(engine_s_, 1) << " s in " << base_.outcomes.size() + cand_.outcomes.size()
       << " lifecycles";
  if (redos > 0) text << " (" << redos << " more run again: their windows were disturbed)";
  text << "\n";
  for (const auto& r : redone_)
    text << "disturbed: round " << r["round"].get<int>() << " " << r["side"].get<std::string>() << ": "
         << r["reasons"][0].get<std::string>() << (r["redone"].get<bool>() ? " (run again)" : "") << "\n";
  if (!drift_line.empty()) text << "baseline: " << drift_line << "\n";
  // --repeats R: where each side's spread lives (the decision uses one value per lifecycle).
  for (const char* name : {"baseline", "candidate"}) {
    const auto& outs = name == std::string("baseline") ? base_.outcomes : cand_.outcomes;
    std::vector<json> results;
    for (const auto& o : outs)
      if (!o.result.is_null()) results.push_back(o.result);
    if (auto v = analysis::components(results, opts_.bench.headline, opts_.bench.slo)) {
      res.doc["variance_components"][name] = analysis::to_json(*v);
      text << name << ": within a lifecycle CV " << base::fixed(v->within_cv * 100, 2) << "% (" << v->passes
           << " passes each), "
           << (v->lifecycles >= 2 ? "between lifecycles CV " + base::fixed(v->between_cv * 100, 2) + "%"
                                  : std::string("between lifecycles: not seen (one lifecycle)"))
           << "\n";
    }
  }
  if (!prior_doc_.is_null()) {
    res.doc["campaign_spread"] = prior_doc_;
    if (prior_.usable())
      text << "campaign's spread: sd " << base::fixed(std::sqrt(prior_.var) * 100, 2) << "% over " << prior_.df
           << " df (" << opts_.campaign_ledger << " lines " << prior_doc_.value("lines", std::string()) << ")"
           << (last_.dropped_at ? ", dropped at round " + std::to_string(last_.dropped_at) +
                                     ": this pair spread more than the campaign's"
                               : ", used through round " + std::to_string(prior_doc_.value("used_through_round", 0)))
           << "\n";
    else
      text << "campaign's spread: none of this load shape in " << opts_.campaign_ledger << "\n";
  }
  text << "procedure: " << analysis::describe(*design_) << "\n";
  res.text = text.str();
  return res;
}

try_result run_try(const try_options& opts, const lifecycle_fn& lifecycle, const interrupt_state& st,
                   const std::function<double()>& now_s) {
  try_plan plan(opts, lifecycle, st, now_s);
  drive(plan, now_s);
  return plan.finish();
}

}  // namespace bp::measure
