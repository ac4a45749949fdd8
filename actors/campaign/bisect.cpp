#include "actors/campaign/bisect.hpp"
#include "actors/campaign/sweep.hpp"

#include <algorithm>
#include <filesystem>
#include <iomanip>
#include <set>
#include <sstream>

#include <spdlog/spdlog.h>

#include "base/files.hpp"
#include "base/sha256.hpp"
#include "base/text.hpp"
#include "configs/variants.hpp"

namespace bp::measure {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string key_of(std::vector<std::string> units) {
  std::sort(units.begin(), units.end());
  std::string k;
  for (const auto& u : units) k += (k.empty() ? "" : "+") + u;
  return k;
}

std::string pct(double ratio) {
  std::ostringstream os;
  os << std::showpos << std::fixed << std::setprecision(1) << (ratio - 1.0) * 100.0 << "%";
  return os.str();
}

/// The decision of a step's try.json, in a line: "slower -12.3% [-14.0%, -10.6%] after 3 rounds".
std::string decision_line(const json& d) {
  std::string v = d.value("verdict", std::string("?"));
  if (v != "faster" && v != "slower" && v != "no change" && v != "inconclusive")
    return v + (d.contains("reason") ? ": " + base::one_line_reason(d.value("reason", std::string())) : std::string());
  if (!d.contains("ratio")) return v;
  std::string s = v + " " + pct(d.value("ratio", 1.0));
  if (d.contains("low")) s += " [" + pct(d.value("low", 1.0)) + ", " + pct(d.value("high", 1.0)) + "]";
  return s + " after " + std::to_string(d.value("rounds", 0)) + " rounds";
}

}  // namespace

json bisect_key(const try_options& d, const std::string& good, const std::string& bad) {
  json k;
  for (const auto& [name, path] : {std::pair<const char*, const std::string&>{"good", good}, {"bad", bad}}) {
    std::string hex, err;
    std::uint64_t size = 0;
    if (!sha256_file(path, hex, size, err)) throw std::runtime_error(path + ": " + err);
    k[name] = hex;
  }
  k.update(measurement_key(d.bench));
  k["noise"] = d.noise;
  k["confidence"] = d.confidence;
  k["max_rounds"] = d.max_rounds;
  k["campaign_spread"] = !d.campaign.empty();
  return k;
}

std::string resume_mismatch(const json& recorded, const json& key) {
  if (!recorded.is_object()) return "its bisect.json has no resume_key (made by an older bench-proxy)";
  for (auto it = key.begin(); it != key.end(); ++it) {
    if (recorded.contains(it.key()) && recorded[it.key()] == it.value()) continue;
    std::string what = it.key() == "good" || it.key() == "bad" ? std::string(it.key() == "good" ? "GOOD" : "BAD") +
                                                                     " (its sha256: the file changed)"
                       : it.key() == "workload" ? std::string("the workload (its sha256 or spec)")
                                                : "--" + it.key();
    return "not the same bisect: " + what + " differs (" + recorded.value(it.key(), json()).dump() + " there, " +
           it.value().dump() + " now)";
  }
  return "";
}

bisect_result run_bisect(const bisect_options& opts, const try_fn& run_one, const check_fn& check,
                         const interrupt_state& st) {
  bisect_result res;
  std::string good_text = base::read_file_limited(opts.good, 1 << 20);
  std::string bad_text = base::read_file_limited(opts.bad, 1 << 20);
  auto units = variants::diff_units(good_text, opts.good, bad_text, opts.bad);
  std::map<std::string, variants::unit> by_key;
  for (const auto& u : units) by_key[u.key] = u;
  json doc = {{"schema_version", 1},
              {"kind", "bench-proxy bisect"},
              {"good", opts.good},
              {"bad", opts.bad},
              {"dir", opts.dir},
              {"metric", opts.decision.bench.headline},
              {"noise", opts.decision.noise},
              {"confidence", opts.decision.confidence},
              {"units", json::array()},
              {"steps", json::array()}};
  if (!opts.resume_key.is_null()) doc["resume_key"] = opts.resume_key;
  for (const auto& u : units) doc["units"].push_back({{"key", u.key}, {"good", u.from}, {"bad", u.to}});
  std::map<std::string, json> done = opts.done;
  std::string direction;  // BAD's verdict against GOOD: what a subset must reproduce
  std::string stop;       // why the search ended early: a verdict word of bisect_result::answer
  std::string stop_why;
  bool uncertain = false;  // some step was inconclusive: the set found may not be minimal
  int step = 0;
  double engine_s = 0;
  std::ostringstream table;
  table << std::left << std::setw(6) << "step" << std::setw(44) << "units applied to GOOD" << "decision\n";
  auto save = [&] {
    base::write_file_atomic((fs::path(opts.dir) / "bisect.json").string(),
                            doc.dump(2, ' ', false, json::error_handler_t::replace) + "\n", false);
  };
  // One test: GOOD plus `subset` against GOOD; its verdict (cached, also across a resume).
  auto test = [&](const std::vector<std::string>& subset) -> std::string {
    std::string k = key_of(subset);
    ++step;
    json rec = {{"step", step}, {"units", subset}};
    json decision;
    bool replayed = false;
    if (opts.fresh && opts.fresh->count(k)) {
      replayed = true;
      // Decided earlier in this process (a bisect_plan replays the search after every step).
      decision = opts.fresh->at(k);
      std::string fv = decision.value("verdict", std::string());
      if (fv != "interrupted" && fv != "failed") done[k] = decision;
    } else if (auto it = done.find(k); it != done.end()) {
      decision = it->second;
      rec["reused"] = true;
    } else if (st.interrupted() && !(opts.step_dirs && opts.step_dirs->count(k))) {
      --step;  // stopped before this step began: no folder, no record
      stop = "interrupted";
      return "interrupted";
    } else {
      std::vector<std::pair<std::string, std::string>> names;
      for (const auto& u : subset) names.emplace_back(u, by_key[u].to);
      bool everything = subset.size() == units.size();
      std::string stem = everything ? "all" : variants::file_stem(names);
      std::string cand;
      if (everything) {
        cand = opts.bad;
      } else {
        cand = (fs::path(opts.dir) / "configs" / (stem + ".yaml")).string();
        std::error_code ec;
        fs::create_directories(fs::path(cand).parent_path(), ec);
        std::string text = "# generated by bench-proxy bisect: " + opts.good + " with " + k + " from " + opts.bad +
                           "\n" + variants::apply_units(good_text, bad_text, subset, opts.repo_root);
        if (!fs::exists(cand)) base::write_file_atomic(cand, text, true);
        auto errors = check(cand);
        if (!errors.empty()) {
          stop = "invalid config";
          stop_why = cand + ": " + errors[0];
          return "invalid";
        }
      }
      char num[8];
      std::snprintf(num, sizeof num, "%02d", step);
      try_options o = opts.decision;
      o.candidate = cand;
      o.baseline = opts.good;
      // A fresh folder: a step interrupted before a resume keeps its own (and a replayed search
      // finds the one it made for this step).
      if (opts.step_dirs && opts.step_dirs->count(k)) {
        o.dir = opts.step_dirs->at(k);
      } else {
        o.dir = base::make_unique_dir((fs::path(opts.dir) / ("step-" + std::string(num) + "_" + stem)).string());
        if (opts.step_dirs) (*opts.step_dirs)[k] = o.dir;
        spdlog::info("[bisect] step {}: GOOD + {}", step, k);
      }
      auto r = run_one(o);
      base::write_file_atomic((fs::path(o.dir) / "try.json").string(),
                              r.doc.dump(2, ' ', false, json::error_handler_t::replace) + "\n", true);
      decision = r.doc["decision"];
      decision["try"] = (fs::path(o.dir) / "try.json").string();
      decision["config"] = cand;
      if (r.verdict != "interrupted" && r.verdict != "failed") done[k] = decision;
      if (opts.fresh) (*opts.fresh)[k] = decision;
    }
    engine_s += decision.value("engine_seconds", 0.0);
    rec["decision"] = decision;
    doc["steps"].push_back(rec);
    // A step replayed from this process's decisions is on disk already (saved when it was decided,
    // in the same order): saving again would rewrite bisect.json once per step per replay.
    if (!replayed) save();
    std::string label = k.size() > 42 ? k.substr(0, 39) + "..." : k;
    table << std::left << std::setw(6) << step << std::setw(44) << label << decision_line(decision)
          << (rec.contains("reused") ? " (reused)" : "") << "\n";
    return decision.value("verdict", std::string("failed"));
  };

  std::vector<std::string> all;
  for (const auto& u : units) all.push_back(u.key);
  std::vector<std::string> c = all;
  if (units.empty()) {
    stop = "no difference";
    stop_why = opts.good + " and " + opts.bad + " do not differ in any unit (only in description, if at all)";
  } else {
    std::string v = test(all);
    if (v == "faster" || v == "slower") {
      direction = v;
    } else if (v == "no change") {
      stop = "no difference";
      stop_why = "GOOD and BAD do not differ in " + opts.decision.bench.headline + " (no change): nothing to bisect";
    } else if (v == "inconclusive") {
      stop = "inconclusive";
      std::string reason = doc["steps"].empty() ? std::string()
                                                : doc["steps"].back()["decision"].value("reason", std::string());
      stop_why = "the first decision (BAD against GOOD) was inconclusive" + (reason.empty() ? "" : " (" + reason + ")") +
                 ": no difference in " + opts.decision.bench.headline + " was shown, so there is nothing to bisect yet";
    } else if (v != "invalid") {
      stop = v;
      stop_why = "the first decision (BAD against GOOD) ended " + v;
    }
  }
  // ddmin: split the set into n chunks; keep a chunk that reproduces, else a complement that
  // does, else split finer; ends 1-minimal (removing any one unit loses the difference).
  auto reproduces = [&](const std::vector<std::string>& s) {
    if (!stop.empty()) return false;
    std::string v = test(s);
    if (v == "inconclusive") uncertain = true;
    if (v == "failed" || v == "interrupted" || v == "not comparable" || v == "invalid") {
      if (stop.empty()) {
        stop = v == "invalid" ? "invalid config" : v;
        if (stop_why.empty()) stop_why = "a step ended " + v;
      }
      return false;
    }
    return v == direction;
  };
  std::size_t n = 2;
  // Interrupted or not, the search goes on through the steps already decided (a bisect_plan
  // replays it after a Ctrl-C to write bisect.json): the first undecided one ends it.
  while (stop.empty() && c.size() >= 2) {
    std::vector<std::vector<std::string>> chunks;
    std::size_t size = c.size(), start = 0;
    for (std::size_t i = 0; i < n; ++i) {
      std::size_t len = size / n + (i < size % n ? 1 : 0);
      chunks.emplace_back(c.begin() + static_cast<long>(start), c.begin() + static_cast<long>(start + len));
      start += len;
    }
    bool reduced = false;
    for (const auto& ch : chunks)
      if (reproduces(ch)) {
        c = ch;
        n = 2;
        reduced = true;
        break;
      }
    if (!reduced && n > 2)
      for (const auto& ch : chunks) {
        std::vector<std::string> comp;
        for (const auto& u : c)
          if (std::find(ch.begin(), ch.end(), u) == ch.end()) comp.push_back(u);
        if (reproduces(comp)) {
          c = comp;
          n = std::max<std::size_t>(n - 1, 2);
          reduced = true;
          break;
        }
      }
    if (!reduced) {
      if (n >= c.size()) break;
      n = std::min(c.size(), 2 * n);
    }
  }
  if (st.interrupted() && stop.empty()) stop = "interrupted";
  if (stop == "interrupted" && stop_why.empty())
    stop_why = "stopped before the search ended: the same command with --resume " + opts.dir +
               " (and the same workload options) continues it";
  // The answer.
  std::ostringstream text;
  text << "GOOD: " << opts.good << "\nBAD:  " << opts.bad << "\n" << units.size()
       << (units.size() == 1 ? " unit differs:\n" : " units differ:\n");
  for (const auto& u : units) text << "  " << u.label() << "\n";
  text << table.str();
  json answer = json::object();
  if (stop.empty()) {
    std::string units_text;
    for (const auto& u : c) units_text += (units_text.empty() ? "" : " + ") + by_key[u].label();
    res.answer = c.size() == 1 ? "found" : "interaction";
    // The decision of exactly this set, for the line.
    json d = done.count(key_of(c)) ? done[key_of(c)] : json::object();
    answer = {{"verdict", res.answer}, {"units", c}, {"direction", direction}, {"decision", d}};
    if (uncertain) answer["uncertain"] = "a step was inconclusive and counted as not reproducing: the set may not be minimal";
    res.last_line = (c.size() == 1 ? "found: " : "interaction (only together): ") + units_text + ": " +
                    decision_line(d);
    res.exit_status = 0;
  } else {
    res.answer = stop;
    answer = {{"verdict", stop}, {"reason", stop_why}};
    res.last_line = stop + ": " + stop_why;
    res.exit_status = stop == "no difference" ? 1
                      : stop == "invalid config" ? 2
                      : stop == "not comparable" ? 3
                      : stop == "inconclusive" ? 4
                      : stop == "interrupted" ? 130
                                              : 5;
    if (stop == "interrupted") answer["resume"] = "bench-proxy bisect --resume " + opts.dir + " (with the same options)";
  }
  answer["steps"] = step;
  answer["engine_seconds"] = engine_s;
  doc["answer"] = answer;
  save();
  res.doc = doc;
  text << "answer: " << res.last_line << "\n";
  if (answer.contains("uncertain")) text << "note: " << answer["uncertain"].get<std::string>() << "\n";
  text << "engine time: " << base::fixed(engine_s, 1) << " s over " << step << " steps\n";
  res.text = text.str();
  return res;
}

namespace {

/// Thrown by the plan's stand-in for a try: this step is not decided yet.
struct step_pending {
  try_options o;
};

/// A step that was never started because the bisect was stopped first.
try_result not_started(const try_options& o) {
  try_result r;
  r.verdict = "interrupted";
  r.doc = {{"kind", "bench-proxy try"}, {"dir", o.dir}, {"config_path", o.candidate},
           {"decision", {{"verdict", "interrupted"}, {"reason", "stopped before this step started"},
                         {"engine_seconds", 0.0}, {"rounds", 0}}}};
  r.last_line = "interrupted after 0 rounds";
  r.exit_status = 130;
  return r;
}

}  // namespace

bisect_plan::bisect_plan(bisect_options opts, lifecycle_fn lifecycle, check_fn check, const interrupt_state& st,
                         std::function<double()> now_s)
    : opts_(std::move(opts)), lifecycle_(std::move(lifecycle)), check_(std::move(check)), st_(st), now_s_(std::move(now_s)) {
  opts_.fresh = &fresh_;
  opts_.step_dirs = &step_dirs_;
}

std::shared_ptr<lifecycle_job> bisect_plan::next() {
  for (;;) {
    if (current_) {
      if (auto job = current_->next()) return job;
      results_[current_opts_.dir] = current_->finish();
      current_.reset();
    }
    if (over_) return nullptr;
    // The search again, with every decision so far: it ends, or it needs the next step.
    try {
      result_ = run_bisect(
          opts_,
          [this](const try_options& o) -> try_result {
            if (auto it = results_.find(o.dir); it != results_.end()) return it->second;
            if (!stopped_.empty() || st_.interrupted()) return not_started(o);
            throw step_pending{o};
          },
          check_, st_);
      over_ = true;
      return nullptr;
    } catch (step_pending& p) {
      current_opts_ = p.o;
      current_ = std::make_shared<try_plan>(p.o, lifecycle_, st_, now_s_);
    }
  }
}

void bisect_plan::done(lifecycle_job& job) {
  if (current_) current_->done(job);
}

void bisect_plan::stop(const std::string& why) {
  stopped_ = why;
  if (current_) current_->stop(why);
}

}  // namespace bp::measure
