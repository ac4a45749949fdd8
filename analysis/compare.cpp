#include "analysis/compare.hpp"
#include "base/text.hpp"
#include "analysis/curves.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

#include "base/files.hpp"
#include "base/json_read.hpp"
#include "analysis/engine_metrics.hpp"
#include "analysis/small_sample.hpp"
#include "analysis/warnings.hpp"
#include "analysis/conditions.hpp"

namespace bp::bench {

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

json read_json(const std::string& path) {
  // Nested at most base::json_file_depth deep; errors PATH:LINE:COLUMN (docs/meta-schema.md).
  return base::read_json_file(path, base::json_file_depth, base::default_read_limit);
}

/// A number a result may hold: finite, not negative, and within reason (a latency of 1e308 ms or
/// a count of 10^300 is a broken file, not a measurement).
bool sane(const json& v) {
  if (!v.is_number()) return false;
  double x = v.get<double>();
  return std::isfinite(x) && x >= 0 && x < 1e15;
}

}  // namespace

std::string result_problem(const json& j) {
  auto type_of = [](const json& v) -> std::string { return v.type_name(); };
  for (const char* k : {"snapshot", "summary", "options", "workload"})
    if (j.contains(k) && !j[k].is_object()) return std::string("field ") + k + ": expected an object, found " + type_of(j[k]);
  if (j.contains("valid") && !j["valid"].is_boolean())
    return "field valid: expected true or false, found " + type_of(j["valid"]) + " " + j["valid"].dump();
  if (j.contains("model") && !j["model"].is_string() && !j["model"].is_null())
    return "field model: expected a string, found " + type_of(j["model"]);
  if (j.contains("summary") && j["summary"].contains("headline") && !j["summary"]["headline"].is_object())
    return "field summary.headline: expected an object, found " + type_of(j["summary"]["headline"]);
  if (!j.contains("requests")) return "";
  const json& reqs = j["requests"];
  if (!reqs.is_array()) return "field requests: expected an array, found " + type_of(reqs);
  for (std::size_t i = 0; i < reqs.size(); ++i) {
    const json& r = reqs[i];
    std::string at = "field requests[" + std::to_string(i) + "]";
    if (!r.is_object()) return at + ": expected an object, found " + type_of(r);
    if (r.contains("ok") && !r["ok"].is_boolean()) return at + ".ok: expected true or false";
    for (const char* k : {"e2e_ms", "ttft_ms", "start_ms", "output_tokens", "query_line", "index"})
      if (r.contains(k) && !r[k].is_null() && !sane(r[k]))
        return at + "." + k + ": expected a finite number >= 0, found " + r[k].dump();
    if (r.contains("itl_ms")) {
      if (!r["itl_ms"].is_array()) return at + ".itl_ms: expected an array, found " + type_of(r["itl_ms"]);
      for (std::size_t g = 0; g < r["itl_ms"].size(); ++g)
        if (!sane(r["itl_ms"][g]))
          return at + ".itl_ms[" + std::to_string(g) + "]: expected a finite number >= 0, found " + r["itl_ms"][g].dump();
    }
  }
  return "";
}

namespace {

json read_result(const std::string& path) {
  json j = read_json(path);
  if (!j.is_object() || !j.contains("kind") || !j["kind"].is_string() || j["kind"] != "bench-proxy bench result")
    throw std::runtime_error(path + ": not a bench-proxy result (no \"kind\": \"bench-proxy bench result\")");
  std::string problem = result_problem(j);
  if (!problem.empty()) throw std::runtime_error(path + ": " + problem);
  return j;
}

/// A listing's paths are relative to the folder holding it (so a moved or copied folder reads its
/// own files). An absolute path (written by an older bench-proxy) is first rebased from the folder
/// it was written in (`recorded`) onto this one; only when no such file exists here is the
/// absolute path itself read, and that is said (a copy would otherwise read the original's files).
/// A path outside the recorded folder is read as it is, silently: a resumed sweep lists the
/// lifecycles it reused from the interrupted sweep's folder that way.
std::string listed_path(const fs::path& dir, const json& entry, const std::string& recorded, const std::string& listing) {
  if (!entry.is_string()) throw std::runtime_error(listing + ": a results entry is not a path: " + entry.dump());
  fs::path q(entry.get<std::string>());
  if (!q.is_absolute()) return (dir / q).string();
  std::error_code ec;
  if (!recorded.empty()) {
    fs::path rec = fs::path(recorded).lexically_normal();
    fs::path rel = q.lexically_normal().lexically_relative(rec);
    if (rel.empty() || *rel.begin() == "..")
      return q.string();  // outside the folder by design: a lifecycle a resumed sweep reused from the interrupted one's
    fs::path here = dir / rel;
    if (fs::exists(here, ec)) return here.string();
  }
  std::cerr << "warning: " << listing << " lists an absolute path"
            << (recorded.empty() ? " (written by an older bench-proxy)" : " inside the folder it was written in (" + recorded + ")")
            << " and this folder has no file in its place: reading " << q.string() << "\n";
  return q.string();
}

side side_from_listing(const fs::path& dir, const std::string& label, const json& results, const std::string& recorded,
                       const std::string& listing) {
  side s;
  s.label = label;
  for (const auto& r : results) {
    std::string p = listed_path(dir, r, recorded, listing);
    s.trials.push_back(read_result(p));
    s.paths.push_back(p);
  }
  return s;
}

std::string fmt(double v, int prec = 2) { return base::fixed(v, prec); }

/// The round a lifecycle ran in, from its folder's name (a sweep's trial-N, a try's round-N, and
/// their -redo-M and -2 variants); 0 when the name does not say.
int round_of(const std::string& result_path) {
  std::string name = fs::path(result_path).parent_path().filename().string();
  for (const char* prefix : {"trial-", "round-"}) {
    std::size_t n = std::strlen(prefix);
    if (name.compare(0, n, prefix) != 0) continue;
    int v = 0;
    std::size_t i = n;
    for (; i < name.size() && std::isdigit(static_cast<unsigned char>(name[i])) && v < 100000; ++i) v = v * 10 + (name[i] - '0');
    if (i > n && (i == name.size() || name[i] == '-')) return v;
  }
  return 0;
}

/// Whether trial i of each side ran in the same round: both sides' folders name their rounds and
/// the rounds are the same, in order. A lifecycle that produced no result (a failed start) leaves
/// its round out of one side only, and then pairing by position would pair different rounds.
/// Unknown rounds (folders that do not name them) count as aligned: the listing's order is all there is.
bool rounds_align(const side& a, const side& b) {
  if (a.paths.size() != a.trials.size() || b.paths.size() != b.trials.size() || a.paths.size() != b.paths.size())
    return true;  // not listed by folder: the order is all there is
  for (std::size_t i = 0; i < a.paths.size(); ++i) {
    int ra = round_of(a.paths[i]), rb = round_of(b.paths[i]);
    if (ra && rb && ra != rb) return false;
  }
  return true;
}

std::string pct(double ratio) {
  std::ostringstream os;
  os << std::showpos << std::fixed << std::setprecision(1) << (ratio - 1.0) * 100.0 << "%";
  return os.str();
}

std::set<int> answered(const json& result) {
  std::set<int> s;
  for (const auto& r : base::member(result, "requests"))
    if (r.value("ok", false)) s.insert(r.value("query_line", 0));
  return s;
}

std::string str(const json& j, std::initializer_list<const char*> keys) {
  const json* cur = &j;
  for (const char* k : keys) {
    if (!cur->is_object() || !cur->contains(k)) return "(none)";
    cur = &(*cur)[k];
  }
  return cur->is_string() ? cur->get<std::string>() : cur->dump();
}

}  // namespace

namespace {
std::function<std::vector<json>(const std::string&)>& serve_folder_reader() {
  static std::function<std::vector<json>(const std::string&)> reader;
  return reader;
}
}  // namespace

void set_serve_folder_reader(std::function<std::vector<json>(const std::string& dir)> reader) {
  serve_folder_reader() = std::move(reader);
}

std::vector<side> load_sides(const std::string& path) {
  std::error_code ec;
  fs::path p(path);
  if (fs::is_directory(p, ec)) {
    if (fs::exists(p / "sweep.json")) {
      json sw = read_json((p / "sweep.json").string());
      std::vector<side> out;
      std::size_t i = 0;
      for (const auto& c : sw.value("configs", json::array())) {
        ++i;
        if (c.value("results", json::array()).empty()) continue;  // failed every trial: nothing to compare
        out.push_back(side_from_listing(
            p, path + " config " + std::to_string(i) + " (" + c.value("config", std::string("?")) + ")", c["results"],
            sw.value("sweep_dir", std::string()), (p / "sweep.json").string()));
        out.back().group = fs::absolute(p).lexically_normal().string();  // one sweep: trials interleaved by round
      }
      if (out.empty()) throw std::runtime_error(path + "/sweep.json: no config of this sweep has a result");
      return out;
    }
    if (fs::exists(p / "try.json")) {
      // A try: its baseline and candidate lifecycles, interleaved by round (pairs).
      read_json((p / "try.json").string());
      std::vector<side> out;
      for (const char* name : {"baseline", "candidate"}) {
        fs::path t = p / name / "trials.json";
        if (!fs::exists(t)) throw std::runtime_error((p / "try.json").string() + ": no " + t.string());
        json tj = read_json(t.string());
        if (!tj.contains("results") || !tj["results"].is_array() || tj["results"].empty())
          throw std::runtime_error(path + ": the try's " + name + " has no result to compare (" +
                                   tj.value("invalid_reason", std::string("no lifecycle finished")) + ")");
        out.push_back(side_from_listing(p / name, path + " " + name, tj.value("results", json::array()),
                                        tj.value("dir", std::string()), t.string()));
        out.back().group = fs::absolute(p).lexically_normal().string();
      }
      return out;
    }
    if (fs::exists(p / "trials.json")) {
      json t = read_json((p / "trials.json").string());
      if (!t.contains("results") || !t["results"].is_array() || t["results"].empty())
        throw std::runtime_error(path + ": no trial has a result to compare (" +
                                 t.value("invalid_reason", std::string("no lifecycle finished")) + ")");
      return {side_from_listing(p, path, t.value("results", json::array()), t.value("dir", std::string()),
                                (p / "trials.json").string())};
    }
    if (fs::exists(p / "result.json")) return {side{path, {read_result((p / "result.json").string())}, {(p / "result.json").string()}, {}}};
    if (serve_folder_reader() && fs::exists(p / "meta.json") && fs::exists(p / "requests.jsonl")) {
      std::vector<side> out;
      for (auto& r : serve_folder_reader()(path)) {
        std::string label = r.contains("window") && r["window"].is_string()
                                ? path + " window " + r["window"].get<std::string>()
                                : path;
        out.push_back(side{label, {std::move(r)}, {(p / "requests.jsonl").string()}, {}});
      }
      return out;
    }
    throw std::runtime_error(path + ": a folder without result.json, trials.json, sweep.json or meta.json with requests.jsonl");
  }
  if (!fs::exists(p, ec)) throw std::runtime_error(path + ": no such file or folder");
  return {side{path, {read_result(path)}, {path}, {}}};
}

std::vector<std::string> default_compare_metrics(const std::string& headline) {
  std::vector<std::string> out = {headline};
  for (const char* m : {"output_tps", "total_output_tps", "ttft_p50", "itl_p50", "e2e_p99"})
    if (m != headline) out.push_back(m);
  return out;
}

std::vector<std::string> comparability(const side& a, const side& b) {
  std::vector<std::string> why;
  auto each = [&](const side& s, const char* name) {
    for (std::size_t i = 0; i < s.trials.size(); ++i)
      if (!s.trials[i].value("valid", false))
        why.push_back(std::string(name) + (s.trials.size() > 1 ? " trial " + std::to_string(i + 1) : "") +
                      " is invalid: " + s.trials[i].value("invalid_reason", std::string("(no reason recorded)")));
  };
  each(a, "baseline");
  each(b, "candidate");
  if (a.trials.empty() || b.trials.empty()) {
    why.push_back("a side has no result");
    return why;
  }
  const json& ra = a.trials[0];
  // Every trial of both sides against the baseline's first.
  std::vector<std::pair<std::string, const json*>> all;
  for (std::size_t i = 0; i < a.trials.size(); ++i) all.emplace_back("baseline trial " + std::to_string(i + 1), &a.trials[i]);
  for (std::size_t i = 0; i < b.trials.size(); ++i) all.emplace_back("candidate trial " + std::to_string(i + 1), &b.trials[i]);
  std::set<std::string> said;
  auto differ = [&](const std::string& what, const std::string& x, const std::string& y, const std::string& who) {
    if (x == y || said.count(what)) return;
    said.insert(what);
    why.push_back(what + " differs: " + x + " (baseline) vs " + y + " (" + who + ")");
  };
  std::set<int> base_ok = answered(ra);
  // Who sent the requests: bench's own client, or a --client command (its requests are the proxy's
  // records, not workload lines: the answered set is bench's check only).
  auto client_of = [](const json& r) {
    return r.value("source", std::string()) == "proxy" ? "client " + str(r, {"options", "client"}) : std::string("bench");
  };
  auto by_bench = [](const json& r) { return r.value("source", std::string()) != "proxy"; };
  for (const auto& [who, r] : all) {
    differ("client", client_of(ra), client_of(*r), who);
    differ("workload (sha256)", str(ra, {"workload", "sha256"}), str(*r, {"workload", "sha256"}), who);
    differ("model", str(ra, {"model"}), str(*r, {"model"}), who);
    for (const char* k : {"concurrency", "rate", "max_tokens", "requests", "repeats", "stream"})
      differ(std::string("load shape (") + k + ")", str(ra, {"options", k}), str(*r, {"options", k}), who);
    auto profile = [](const json& x) {  // results before load profiles were sync or --concurrency/--rate
      std::string p = str(x, {"options", "load"});
      return p.empty() ? std::string("sync") : p;
    };
    differ("load shape (profile)", profile(ra), profile(*r), who);
    // Generated workloads and schedules: the exact request bytes and arrivals (docs/workloads.md).
    if (ra.contains("workload_fingerprint") && r->contains("workload_fingerprint"))
      differ("workload fingerprint", str(ra, {"workload_fingerprint", "sha256"}),
             str(*r, {"workload_fingerprint", "sha256"}), who);
    // A capacity is a capacity at its objectives: the same ones on both sides.
    differ("SLO objectives", ra.contains("load") ? ra["load"].value("objectives", json::array()).dump() : "none",
           r->contains("load") ? (*r)["load"].value("objectives", json::array()).dump() : "none", who);
    std::set<int> ok = answered(*r);
    if (by_bench(ra) && by_bench(*r) && ok != base_ok && !said.count("answered")) {
      said.insert("answered");
      std::vector<int> missing, extra;
      std::set_difference(base_ok.begin(), base_ok.end(), ok.begin(), ok.end(), std::back_inserter(missing));
      std::set_difference(ok.begin(), ok.end(), base_ok.begin(), base_ok.end(), std::back_inserter(extra));
      std::string lines;
      for (std::size_t i = 0; i < missing.size() && i < 10; ++i) lines += (i ? ", " : "") + std::to_string(missing[i]);
      why.push_back("the set of answered queries differs: " + std::to_string(base_ok.size()) + " (baseline) vs " +
                    std::to_string(ok.size()) + " (" + who + ")" +
                    (missing.empty() ? "" : "; not answered there: workload lines " + lines + (missing.size() > 10 ? ", ..." : "")) +
                    (extra.empty() ? "" : "; " + std::to_string(extra.size()) + " answered only there"));
    }
  }
  return why;
}

std::string verdict_of(double low, double high, double noise, bool higher_is_better) {
  double up = 1.0 + noise, down = 1.0 - noise;
  if (low >= down && high <= up) return "no change";
  bool above = low > up, below = high < down;
  if (above) return higher_is_better ? "faster" : "slower";
  if (below) return higher_is_better ? "slower" : "faster";
  return "inconclusive";
}

comparison compare_sides(const side& baseline, const side& candidate, const compare_options& o) {
  comparison c;
  c.baseline = baseline.label;
  c.candidate = candidate.label;
  c.noise = o.noise;
  c.confidence = o.confidence;
  c.reasons = comparability(baseline, candidate);
  c.comparable = c.reasons.empty();
  std::string headline = default_headline;
  if (!baseline.trials.empty())
    headline = baseline.trials[0].value("summary", json::object()).value("headline", json::object()).value("metric", headline);
  if (!find_metric(headline)) headline = default_headline;  // results of an older bench-proxy: "median output_tps"
  std::vector<std::string> metrics = o.metrics.empty() ? default_compare_metrics(headline) : o.metrics;
  auto collect = [&](const side& s, const std::string& m, std::string& err) {
    std::vector<trial_samples> t;
    for (const auto& r : s.trials) {
      std::string why;
      auto x = samples_of(r, m, o.slo, why);
      if (!x) {
        err = s.label + ": " + why;
        return t;
      }
      t.push_back(std::move(*x));
    }
    return t;
  };
  for (const auto& s : {&baseline, &candidate}) {
    // The same warning from several trials is said once, naming them.
    std::vector<const json*> results;
    for (const auto& r : s->trials) results.push_back(&r);
    for (const auto& w : merge_trial_warnings(results))
      c.warnings.push_back(s->label + (w.who.empty() ? "" : " (" + w.who + ")") + ": " + w.text);
  }
  // Conditions (docs/telemetry.md): said when the two ran under different ones.
  if (!baseline.trials.empty() && !candidate.trials.empty())
    for (const auto& d : analysis::conditions_differ(baseline.trials[0].value("conditions", json()),
                                                      candidate.trials[0].value("conditions", json())))
      c.warnings.push_back("different conditions: " + d);
  for (const auto& [who, s] : {std::pair<const char*, const side*>{"baseline", &baseline}, {"candidate", &candidate}})
    if (!s->trials.empty() && s->trials[0].contains("engine_metrics")) {
      std::string line = engine_metric_line(s->trials[0]["engine_metrics"]);
      if (!line.empty()) c.engine_lines.emplace_back(who, line);
    }
  // Caches (/meta's caches section): a cache cold in one and warm in the other is said.
  if (!baseline.trials.empty() && !candidate.trials.empty()) {
    const json& a = base::member(base::member(baseline.trials[0], "snapshot"), "caches");
    const json& b = base::member(base::member(candidate.trials[0], "snapshot"), "caches");
    if (a.is_object() && b.is_object())
      for (auto it = a.begin(); it != a.end(); ++it)
        if (b.contains(it.key()) && it.value().is_object() && b[it.key()].is_object() &&
            it.value().value("state", "") != b[it.key()].value("state", ""))
          c.warnings.push_back("cache " + it.key() + " was " + it.value().value("state", "?") +
                               " in the baseline and " + b[it.key()].value("state", "?") + " in the candidate");
  }
  std::uint64_t seed = o.seed;
  for (const auto& m : metrics) {
    metric_verdict v;
    v.metric = m;
    const metric_def* def = find_metric(m);
    std::string err;
    auto tb = collect(baseline, m, err);
    auto tc = err.empty() ? collect(candidate, m, err) : std::vector<trial_samples>{};
    if (!def || !err.empty()) {
      v.error = def ? err : "unknown metric '" + m + "'";
      v.verdict = "inconclusive";
      c.metrics.push_back(v);
      continue;
    }
    estimator eb(tb), ec(tc);
    v.base = eb.run(o.resamples, o.confidence, seed++);
    v.cand = ec.run(o.resamples, o.confidence, seed++);
    for (const auto* e : {&v.base, &v.cand})
      for (const auto& w : trial_warnings(*e, *def, o.noise))
        c.warnings.push_back((e == &v.base ? baseline.label : candidate.label) + ": " + w);
    v.ratio = v.base.value != 0 ? v.cand.value / v.base.value : 0;
    v.gating = c.metrics.empty();
    const auto& pb = v.base.per_trial;
    const auto& pc = v.cand.per_trial;
    auto positive = [](const std::vector<double>& x) {
      return std::all_of(x.begin(), x.end(), [](double y) { return y > 0 && std::isfinite(y); });
    };
    if (pb.size() >= 2 && pc.size() >= 2 && positive(pb) && positive(pc)) {
      // Lifecycles are the units (docs/statistics.md, "Few units"): a t interval on log ratios
      // with its degrees of freedom, paired by round when the two sides were interleaved.
      analysis::ratio_interval r;
      bool paired = !baseline.group.empty() && baseline.group == candidate.group && pb.size() == pc.size() &&
                    rounds_align(baseline, candidate);
      std::vector<double> d, lb, lc;
      for (double x : pb) lb.push_back(std::log(x));
      for (double x : pc) lc.push_back(std::log(x));
      if (paired) {
        for (std::size_t i = 0; i < pb.size(); ++i) d.push_back(lc[i] - lb[i]);
        r = analysis::paired_ratio_interval(d, o.confidence);
        auto s = analysis::summarize(d);
        v.mean_log = s.mean;
        v.se_log = s.se;
        v.method = "paired t";
      } else {
        r = analysis::welch_ratio_interval(lb, lc, o.confidence);
        auto a = analysis::summarize(lb), b = analysis::summarize(lc);
        v.mean_log = b.mean - a.mean;
        v.se_log = std::sqrt(a.se * a.se + b.se * b.se);
        v.method = "Welch t";
      }
      v.df = r.df;
      v.ratio = r.ratio;
      v.has_ci = r.valid;
      v.ratio_low = r.low;
      v.ratio_high = r.high;
      v.verdict = r.valid ? verdict_of(r.low, r.high, o.noise, def->higher_is_better) : "inconclusive";
    } else if ((eb.resamplable() || ec.resamplable()) && o.resamples > 0 && v.base.value != 0) {
      // One lifecycle on a side: the request-level bootstrap shows how precisely that one
      // lifecycle was measured, but it cannot see run-to-run noise, so it never decides.
      rng g(seed++);
      std::vector<double> ratios;
      ratios.reserve(static_cast<std::size_t>(o.resamples));
      for (int i = 0; i < o.resamples; ++i) {
        double b = eb.draw(g), x = ec.draw(g);
        if (b != 0) ratios.push_back(x / b);
      }
      auto [lo, hi] = percentile_interval(ratios, o.confidence);
      v.has_ci = true;
      v.ratio_low = lo;
      v.ratio_high = hi;
      v.method = "requests only";
      v.verdict = "inconclusive";
      v.needed = "one lifecycle per side cannot see run-to-run noise: measure with --trials 2 or more, or `try`";
    } else {
      v.verdict = "inconclusive";
    }
    if (v.verdict == "inconclusive" && v.needed.empty()) {
      if (!v.has_ci) {
        v.needed = "no interval (one trial of a run-level metric): measure with --trials 2 or more";
      } else {
        // The interval narrows as 1/sqrt(units): how many lifecycles would bring the nearer
        // noise boundary outside it, at the observed spread (pyperf's estimate, for a ratio).
        double w = (v.ratio_high - v.ratio_low) / 2.0;
        double target = std::fabs(std::fabs(v.ratio - 1.0) - o.noise);
        std::size_t units = std::max(pb.size(), pc.size());
        if (target < 1e-9) {
          v.needed = "the estimate lies on the noise boundary: no number of trials resolves ±" + fmt(o.noise * 100, 1) + "%";
        } else {
          double n = std::ceil(static_cast<double>(units) * (w / target) * (w / target));
          v.needed = "about " + fmt(std::max(n, static_cast<double>(units) + 1), 0) + " trials per config to resolve ±" +
                     fmt(o.noise * 100, 1) + "% at this spread (or `try`, which stops as soon as it is decided)";
        }
      }
    }
    c.metrics.push_back(v);
  }
  // Secondary metrics: a directional verdict only where it survives Holm's correction over all
  // of them (one-sided, at the level of the two-sided interval), so five metrics at 95% each
  // do not become a 23% chance that one of them cries wolf. They never gate the exit status.
  std::vector<std::size_t> sec;
  std::vector<double> p;
  for (std::size_t i = 1; i < c.metrics.size(); ++i) {
    auto& v = c.metrics[i];
    v.gating = false;
    if (v.error.empty() && v.df > 0) {
      sec.push_back(i);
      p.push_back(analysis::beyond_noise_p(v.mean_log, v.se_log, v.df, o.noise));
    }
  }
  auto keep = analysis::holm_reject(p, (1 - o.confidence) / 2);
  for (std::size_t j = 0; j < sec.size(); ++j) {
    auto& v = c.metrics[sec[j]];
    if ((v.verdict == "faster" || v.verdict == "slower") && !keep[j]) {
      v.holm = v.verdict + " at its own " + fmt(o.confidence * 100, 0) + "%, not after Holm's correction over " + std::to_string(sec.size()) +
               " secondary metrics";
      v.verdict = "inconclusive";
    }
  }
  // Curves: each load point both sides measured in every lifecycle, on its own.
  if (!baseline.trials.empty() && !candidate.trials.empty() && baseline.trials[0].contains("load") &&
      candidate.trials[0].contains("load")) {
    std::string pm = headline == "capacity" ? std::string(default_headline) : headline;
    c.point_metric = pm;
    for (const auto& label : asked_points(baseline.trials[0])) {
      side pb{baseline.label, {}, {}, baseline.group}, pc{candidate.label, {}, {}, candidate.group};
      bool everywhere = true;
      for (const auto& [from, to] : {std::pair<const side*, side*>{&baseline, &pb}, {&candidate, &pc}})
        for (const auto& r : from->trials) {
          json d = point_result(r, label);
          if (d.is_null()) everywhere = false;
          else to->trials.push_back(std::move(d));
        }
      if (!everywhere) continue;
      compare_options po = o;
      po.metrics = {pm};
      po.seed = seed++;
      comparison pcmp = compare_sides(pb, pc, po);
      if (pcmp.metrics.empty()) continue;
      metric_verdict v = pcmp.metrics[0];
      v.gating = false;
      c.points.emplace_back(label, v);
    }
  }
  return c;
}

bool comparison::regressed() const { return !metrics.empty() && metrics[0].verdict == "slower"; }

json to_json(const comparison& c) {
  json j = {{"baseline", c.baseline},   {"candidate", c.candidate}, {"comparable", c.comparable},
            {"not_comparable_because", c.reasons}, {"noise", c.noise}, {"metrics", json::array()},
            {"warnings", c.warnings}};
  for (const auto& [who, line] : c.engine_lines) j["engine_counters"][who] = line;
  for (const auto& v : c.metrics) {
    const metric_def* def = find_metric(v.metric);
    json m = {{"metric", v.metric}, {"verdict", c.comparable ? v.verdict : "not comparable"}};
    if (!v.error.empty()) {
      m["error"] = v.error;
    } else if (def) {
      m["baseline"] = to_json(v.base, *def);
      m["candidate"] = to_json(v.cand, *def);
      m["ratio"] = v.ratio;
      m["ratio_ci"] = v.has_ci ? json::array({v.ratio_low, v.ratio_high}) : json(nullptr);
      m["higher_is_better"] = def->higher_is_better;
      m["ci_method"] = v.method;
      if (v.df > 0) m["df"] = v.df;
    }
    m["gating"] = v.gating;
    if (!v.holm.empty()) m["holm"] = v.holm;
    if (!v.needed.empty()) m["needed"] = v.needed;
    j["metrics"].push_back(m);
  }
  if (!c.points.empty()) {
    j["points_metric"] = c.point_metric;
    j["points"] = json::array();
    for (const auto& [label, v] : c.points) {
      json m = {{"point", label}, {"verdict", c.comparable ? v.verdict : "not comparable"}, {"gating", false}};
      if (!v.error.empty()) {
        m["error"] = v.error;
      } else {
        m["baseline"] = v.base.value;
        m["candidate"] = v.cand.value;
        m["ratio"] = v.ratio;
        m["ratio_ci"] = v.has_ci ? json::array({v.ratio_low, v.ratio_high}) : json(nullptr);
        m["ci_method"] = v.method;
      }
      j["points"].push_back(m);
    }
  }
  return j;
}

std::string render(const comparison& c) {
  std::ostringstream os;
  os << "baseline:  " << c.baseline << "\ncandidate: " << c.candidate << "\n";
  if (!c.comparable) {
    os << "NOT COMPARABLE:\n";
    for (const auto& r : c.reasons) os << "  - " << r << "\n";
  }
  os << std::left << std::setw(18) << "metric" << std::right << std::setw(14) << "baseline" << std::setw(14)
     << "candidate" << std::setw(9) << "change" << "  " << std::left << std::setw(22) << (fmt(c.confidence * 100, 0) + "% CI of the change")
     << "verdict (noise ±" << fmt(c.noise * 100, 1) << "%)\n";
  // One row: name, both values, the change with its interval, the verdict; false on an error.
  auto row = [&](const std::string& name, std::size_t width, const metric_verdict& v, const char* note) {
    os << std::left << std::setw(static_cast<int>(width)) << name;
    if (!v.error.empty()) {
      os << "  " << v.error << "\n";
      return false;
    }
    std::string ci = v.has_ci ? "[" + pct(v.ratio_low) + ", " + pct(v.ratio_high) + "]" : "(none)";
    os << std::right << std::setw(14) << fmt(v.base.value) << std::setw(14) << fmt(v.cand.value) << std::setw(9)
       << pct(v.ratio) << "  " << std::left << std::setw(22) << ci << (c.comparable ? v.verdict : "not comparable")
       << note << "\n";
    return true;
  };
  for (const auto& v : c.metrics) {
    if (!row(v.metric, 18, v, v.gating ? "" : " (secondary)")) continue;
    if (!v.holm.empty() && c.comparable) os << "  " << std::string(16, ' ') << v.holm << "\n";
    if (!v.needed.empty() && c.comparable) os << "  " << std::string(16, ' ') << v.needed << "\n";
  }
  if (!c.points.empty()) {
    os << "per load point, " << c.point_metric << " (each point on its own; never gating):\n";
    for (const auto& [label, v] : c.points) row("  " + label, 18, v, "");
  }
  if (!c.metrics.empty() && c.metrics[0].error.empty()) {
    const auto& v = c.metrics[0];
    os << "(" << v.base.trials << " vs " << v.cand.trials << " trial" << (v.cand.trials == 1 ? "" : "s") << "; ";
    if (v.method == "paired t")
      os << "t intervals over lifecycles paired by round, " << fmt(v.df, 0) << " df: they include run-to-run noise";
    else if (v.method == "Welch t")
      os << "Welch t intervals over lifecycles (not interleaved, so not paired), " << fmt(v.df, 1)
         << " df: they include run-to-run noise but not the machine's drift between the two";
    else
      os << "intervals cover request-to-request noise only, not run-to-run noise: no verdict from one lifecycle";
    os << "; only " << v.metric << " gates the exit status)\n";
  }
  for (const auto& [who, line] : c.engine_lines) os << "engine counters (" << who << "): " << line << "\n";
  for (const auto& w : c.warnings) os << "warning: " << w << "\n";
  return os.str();
}

int compare_status(const std::vector<comparison>& all) {
  for (const auto& c : all)
    if (!c.comparable) return 3;
  for (const auto& c : all)
    if (c.regressed()) return 1;
  return 0;
}

}  // namespace bp::bench
