#include "actors/campaign/report.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>

#include "base/files.hpp"
#include "base/json_read.hpp"
#include "base/text.hpp"
#include "analysis/compare.hpp"
#include "analysis/ledger.hpp"
#include "snapshot/diff.hpp"
#include "snapshot/telemetry/telemetry.hpp"

namespace bp::embedded {
extern const unsigned char chart_js[];
extern const std::size_t chart_js_size;
}  // namespace bp::embedded

namespace bp::measure {

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr std::size_t kCdfPoints = 400;       // quantiles at evenly spaced ranks
constexpr std::size_t kTimelinePoints = 600;  // every k-th request

/// (value, cumulative fraction) at up to kCdfPoints evenly spaced ranks of the sorted values.
json cdf(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  json pts = json::array();
  std::size_t n = v.size();
  if (n == 0) return pts;
  std::size_t m = std::min(n, kCdfPoints);
  for (std::size_t i = 0; i < m; ++i) {
    std::size_t r = m == 1 ? n - 1 : i * (n - 1) / (m - 1);
    pts.push_back({v[r], static_cast<double>(r + 1) / static_cast<double>(n)});
  }
  return pts;
}

/// [index, value] of every k-th request, k chosen so at most kTimelinePoints remain.
json timeline(const std::vector<std::pair<double, double>>& v) {
  json pts = json::array();
  std::size_t k = std::max<std::size_t>(1, (v.size() + kTimelinePoints - 1) / kTimelinePoints);
  for (std::size_t i = 0; i < v.size(); i += k) pts.push_back({v[i].first, v[i].second});
  return pts;
}

/// A number, or null when the field is missing or not a number.
json num_or_null(const json& o, const char* k) {
  return o.is_object() && o.contains(k) && o[k].is_number() ? o[k] : json(nullptr);
}

/// [lo, hi] when both ends are numbers, else null.
json pair_or_null(const json& o, const char* k) {
  if (!o.is_object() || !o.contains(k) || !o[k].is_array() || o[k].size() != 2) return nullptr;
  return o[k][0].is_number() && o[k][1].is_number() ? o[k] : json(nullptr);
}

/// A load curve (result.load, docs/report.md "Load curves"): per point what the charts and the
/// table show, in load order, with the knee, the capacity and the objectives.
json curve_of(const json& result) {
  const json& L = result["load"];
  json pts = json::array();
  std::string axis;
  for (const auto& p : L["points"]) {
    if (!p.is_object()) continue;
    const json s = p.value("summary", json::object());
    if (axis.empty()) axis = p.value("axis", std::string());
    json lat = json::object();
    for (const char* m : {"ttft_ms", "itl_ms", "tpot_ms", "e2e_ms", "output_tps"}) {
      const json x = s.value(m, json::object());
      if (!x.is_object() || x.empty()) continue;
      json e = {{"median", num_or_null(x, "median")}, {"median_ci", pair_or_null(x, "median_ci")}};
      for (auto it = x.begin(); it != x.end(); ++it)
        if (it.key().size() > 1 && it.key()[0] == 'p' && it.value().is_number() &&
            it.key().find_first_not_of("0123456789.", 1) == std::string::npos)
          e[it.key()] = it.value();
      lat[m] = e;
    }
    json objs = json::array();
    for (const auto& o : p.value("objectives", json::array()))
      if (o.is_object())
        objs.push_back({{"objective", o.value("objective", std::string())}, {"metric", o.value("metric", std::string())},
                        {"p", num_or_null(o, "p")}, {"limit", num_or_null(o, "limit")},
                        {"value", num_or_null(o, "value")}, {"ci", pair_or_null(o, "ci")},
                        {"met", o.value("met", std::string())}});
    json e = {{"label", p.value("label", std::string())},
              {"load", num_or_null(p, "load")},
              {"kind", p.value("kind", std::string())},
              {"refined", p.value("refined", false)},
              {"completed", num_or_null(s, "completed")},
              {"requests", num_or_null(s, "requests")},
              {"errors", num_or_null(s, "errors")},
              {"request_throughput", num_or_null(s, "request_throughput")},
              {"total_output_tps", num_or_null(s, "total_output_tps")},
              {"latency", lat},
              {"objectives", objs},
              {"warnings", p.value("warnings", json::array()).size()}};
    const json sat = p.value("saturation", json::object());
    e["over_saturated"] = sat.is_object() && sat.contains("over_saturated") && sat["over_saturated"].is_boolean()
                              ? sat["over_saturated"]
                              : json(nullptr);
    if (p.contains("schedule") && p["schedule"].is_object()) {
      const json& sc = p["schedule"];
      e["open_loop"] = true;
      e["lateness_p50_ms"] = num_or_null(sc.value("lateness_ms", json::object()), "median");
      e["lateness_p99_ms"] = num_or_null(sc.value("lateness_ms", json::object()), "p99");
      e["requested_rate"] = num_or_null(sc, "requested_rate");
      e["achieved_rate"] = num_or_null(sc, "achieved_rate");
      e["kept"] = sc.contains("kept") && sc["kept"].is_boolean() ? sc["kept"] : json(nullptr);
    }
    pts.push_back(e);
  }
  std::stable_sort(pts.begin(), pts.end(), [](const json& a, const json& b) {
    return a["load"].is_number() && b["load"].is_number() && a["load"].get<double>() < b["load"].get<double>();
  });
  json c = {{"profile", L.value("profile", std::string())}, {"axis", axis.empty() ? "load" : axis}, {"points", pts},
            {"objectives", L.value("objectives", json::array())}};
  c["knee"] = L.contains("knee") && L["knee"].is_object()
                  ? json{{"load", num_or_null(L["knee"], "load")}, {"throughput", num_or_null(L["knee"], "throughput")}}
                  : json(nullptr);
  if (L.contains("capacity") && L["capacity"].is_object()) {
    const json& k = L["capacity"];
    json ci = json::array({nullptr, nullptr});
    if (k.contains("ci") && k["ci"].is_array() && k["ci"].size() == 2) ci = k["ci"];
    c["capacity"] = {{"value", num_or_null(k, "value")}, {"ci", ci},
                     {"text", k.value("text", k.value("error", std::string()))},
                     {"below_lowest", k.contains("below_lowest") && k["below_lowest"].is_boolean() ? k["below_lowest"] : json(false)},
                     {"at_least", k.contains("at_least") && k["at_least"].is_boolean() ? k["at_least"] : json(false)}};
  } else {
    c["capacity"] = nullptr;
  }
  return c;
}

bool is_ledger(const std::string& path) {
  std::ifstream in(path);
  std::string first;
  std::getline(in, first);
  return first.rfind("time\t", 0) == 0;
}

std::string meta_of(const std::string& result_path) {
  fs::path m = fs::path(result_path).parent_path() / "meta.json";
  std::error_code ec;
  return fs::exists(m, ec) ? fs::absolute(m).string() : "";
}

json config_entry(const bench::side& s, const bench::side* baseline, const std::string& headline,
                  const bench::compare_options& co) {
  json c;
  c["label"] = s.label;
  // What the config is: its file and its description (docs/report.md "Overview").
  c["config_path"] = nullptr;
  c["description"] = nullptr;
  if (!s.trials.empty() && s.trials[0].is_object()) {
    const json& r0 = s.trials[0];
    if (r0.contains("config_path") && r0["config_path"].is_string()) c["config_path"] = r0["config_path"];
    // By reference: the snapshot is the whole of /meta (megabytes with a large venv).
    const json& cfg = base::member(base::member(r0, "snapshot"), "config");
    if (cfg.is_object() && cfg.contains("description") && cfg["description"].is_string())
      c["description"] = cfg["description"];
  }
  c["results"] = s.paths;
  c["trials"] = s.trials.size();
  json metas = json::array();
  for (const auto& p : s.paths) metas.push_back(meta_of(p));
  c["metas"] = metas;
  bool valid = true;
  double errors = 0;
  json warnings = json::array();
  std::vector<double> ttft, itl, e2e, tps;
  json tl_tps = json::array(), tl_ttft = json::array();
  for (std::size_t t = 0; t < s.trials.size(); ++t) {
    const json& r = s.trials[t];
    valid = valid && r.value("valid", false);
    errors += r.value("summary", json::object()).value("errors", 0.0);
    for (const auto& w : r.value("warnings", json::array()))
      warnings.push_back((s.trials.size() > 1 ? "trial " + std::to_string(t + 1) + ": " : "") + w.get<std::string>());
    std::vector<std::pair<double, double>> a, b;
    static const json no_requests = json::array();
    const json& requests = r.contains("requests") && r["requests"].is_array() ? r["requests"] : no_requests;
    for (const auto& q : requests) {
      if (!q.value("ok", false)) continue;
      double e = q.value("e2e_ms", 0.0);
      ttft.push_back(q.value("ttft_ms", 0.0));
      e2e.push_back(e);
      if (q.contains("itl_ms") && q["itl_ms"].is_array())
        for (const auto& g : q["itl_ms"])
          if (g.is_number()) itl.push_back(g.get<double>());
      double x = q.value("index", 0.0);
      if (e > 0) {
        tps.push_back(q.value("output_tokens", 0.0) / (e / 1000.0));
        a.emplace_back(x, tps.back());
      }
      b.emplace_back(x, q.value("ttft_ms", 0.0));
    }
    tl_tps.push_back({{"trial", t + 1}, {"points", timeline(a)}});
    tl_ttft.push_back({{"trial", t + 1}, {"points", timeline(b)}});
  }
  // Conditions over time, where the run recorded telemetry (docs/telemetry.md).
  json tele = json::array();
  for (std::size_t t = 0; t < s.paths.size(); ++t) {
    fs::path csv = fs::path(s.paths[t]).parent_path() / "telemetry.csv";
    std::error_code ec;
    if (!fs::exists(csv, ec)) continue;
    auto samples = telemetry::read_csv(csv.string());
    if (samples.empty()) continue;
    double t0 = samples.front().t;
    std::map<std::string, std::vector<std::pair<double, double>>> series;
    for (const auto& x : samples) {
      bool gpu = x.source.rfind("gpu", 0) == 0 && x.source != "gpu";
      bool wanted = (gpu && (x.series == "sm_clock_mhz" || x.series == "power_w" || x.series == "temp_c" ||
                             x.series == "sw_power_cap" || x.series == "hw_slowdown" || x.series == "hw_thermal_slowdown" ||
                             x.series == "sw_thermal_slowdown" || x.series == "hw_power_brake_slowdown")) ||
                    (x.source == "cpu" && x.series == "steal_pct") || (x.source == "others" && x.series == "cpu_cores") ||
                    (x.source == "engine" && x.series == "cpu_cores");
      if (wanted && x.text.empty()) series[x.source + "." + x.series].emplace_back(x.t - t0, x.value);
    }
    json js = json::object();
    for (const auto& [k, v] : series) js[k] = timeline(v);
    tele.push_back({{"trial", t + 1}, {"series", js}});
  }
  if (!tele.empty()) c["telemetry"] = tele;
  if (!s.trials.empty() && s.trials[0].contains("engine_metrics")) c["engine_metrics"] = s.trials[0]["engine_metrics"];
  // A load curve (--load): the first trial's (each trial measured every point; one is drawn).
  if (!s.trials.empty() && s.trials[0].contains("load") && s.trials[0]["load"].is_object() &&
      s.trials[0]["load"].contains("points") && s.trials[0]["load"]["points"].is_array()) {
    try {
      c["curve"] = curve_of(s.trials[0]);
      if (s.trials.size() > 1) c["curve"]["of_trial"] = 1;
    } catch (const json::exception& e) {  // a hand-edited or foreign result.json: the rest of the page stands
      c.erase("curve");
      warnings.push_back(std::string("the load curve could not be read: ") + e.what());
    }
  }
  c["valid"] = valid;
  c["errors"] = errors;
  c["warnings"] = warnings;
  c["snapshot_id"] = s.trials.empty() ? json(nullptr) : s.trials[0].value("snapshot_id", json(nullptr));
  c["cdf"] = {{"ttft_ms", cdf(ttft)}, {"itl_ms", cdf(itl)}, {"e2e_ms", cdf(e2e)}, {"output_tps", cdf(tps)}};
  c["timeline"] = {{"output_tps", tl_tps}, {"ttft_ms", tl_ttft}};
  // The headline over this config's trials, with the same estimator as everywhere else.
  std::vector<bench::trial_samples> samples;
  std::string why;
  for (const auto& r : s.trials)
    if (auto x = bench::samples_of(r, headline, co.slo, why)) samples.push_back(std::move(*x));
  // One trial: exactly the headline its result.json holds; several: the t interval over them.
  const json own = s.trials.size() == 1 ? s.trials[0].value("summary", json::object()).value("headline", json::object())
                                        : json::object();
  if (own.value("metric", std::string()) == headline && own.contains("value"))
    c["headline"] = own;
  else if (const auto* def = bench::find_metric(headline); def && !samples.empty())
    c["headline"] = bench::to_json(bench::estimator(samples).run(10000, co.confidence, co.seed), *def);
  if (baseline && baseline != &s) {
    bench::compare_options o = co;
    o.metrics = {headline};
    auto cmp = bench::compare_sides(*baseline, s, o);
    c["verdict"] = !cmp.comparable ? "not comparable" : cmp.metrics.empty() ? "-" : cmp.metrics[0].verdict;
    c["not_comparable_because"] = cmp.reasons;
    if (!cmp.metrics.empty() && cmp.metrics[0].has_ci)
      c["change_ci"] = {cmp.metrics[0].ratio_low - 1, cmp.metrics[0].ratio_high - 1};
    if (!cmp.metrics.empty()) c["change"] = cmp.metrics[0].ratio - 1;
    static const json none = json::object();
    const json& a = baseline->trials.empty() ? none : baseline->trials[0];
    const json& b = s.trials.empty() ? none : s.trials[0];
    if (a.contains("snapshot") && b.contains("snapshot") && a["snapshot"].is_object() && b["snapshot"].is_object())
      c["diff"] = snap::diff_snapshots(a["snapshot"], b["snapshot"])["sections"];
  } else {
    c["verdict"] = "baseline";
  }
  return c;
}

}  // namespace

json report_data(const std::vector<std::string>& paths, const results_in_memory& known) {
  std::vector<bench::side> sides;
  std::map<std::size_t, std::size_t> ledger_lines;  // side -> its ledger line
  std::map<std::size_t, std::string> folders;       // side -> the run folder it was named after
  json failed = json::array(), campaign = nullptr, ledger_warnings = json::array();
  for (const auto& p : paths) {
    std::error_code ec;
    if (fs::is_regular_file(p, ec) && is_ledger(p)) {
      std::vector<std::string> warnings;
      auto rows = bench::load_ledger(p, &warnings);
      campaign = bench::to_json(bench::campaign(rows, 0.01));
      for (auto& e : campaign) {  // the config's description, and a failure's engine error line
        for (const auto& r : rows)
          if (e.value("line", std::size_t(0)) == r.line) e["description"] = r.description;
        e["error_line"] = base::engine_error_line(e.value("reasons", std::string()));
      }
      for (auto& w : warnings) ledger_warnings.push_back(std::move(w));
      for (const auto& r : rows) {
        if (r.status != "valid" || r.result.empty() || !fs::exists(r.result, ec)) continue;
        const std::string file = fs::path(r.result).filename().string();
        const bool a_try = file == "try.json";  // its folder: the baseline's and the candidate's lifecycles
        std::string src = file == "trials.json" || a_try ? fs::path(r.result).parent_path().string() : r.result;
        std::vector<bench::side> row_sides;
        try {
          row_sides = bench::load_sides(src);
        } catch (const std::exception& e) {
          // A valid row with nothing to draw (a try decided inconclusive before one side had a
          // lifecycle): said, and the rest of the ledger is reported.
          ledger_warnings.push_back(p + ":" + std::to_string(r.line) + ": not drawn: " + e.what());
          continue;
        }
        for (std::size_t k = 0; k < row_sides.size(); ++k) {
          auto& s = row_sides[k];
          // Named by its config (the file; its description where the row has no file); a
          // config measured on several rows gets its line below, to find it in the campaign. A
          // try's folder gives its baseline first, then its candidate (load_sides).
          const std::string& config = a_try && k == 0 ? r.baseline : r.config;
          s.label = !config.empty() ? fs::path(config).filename().string()
                                    : !r.description.empty() ? r.description : r.label;
          ledger_lines[sides.size()] = r.line;
          sides.push_back(std::move(s));
        }
      }
      continue;
    }
    if (fs::is_directory(p, ec) && fs::exists(fs::path(p) / "sweep.json")) {
      json sw;  // unreadable, malformed or nested too deep: load_sides below says so, naming the file
      try {
        sw = base::read_json_file((fs::path(p) / "sweep.json").string());
      } catch (const std::exception&) {
      }
      if (sw.is_object()) {
        const json configs = sw.value("configs", json::array());
        for (const auto& row : sw.value("rows", json::array())) {  // sorted like the table: numbered like the configs
          if (!row.is_object() || row.value("ok", false)) continue;
          const std::string cfg = row.value("config", std::string()), err = row.value("error", std::string());
          std::string n;
          for (std::size_t k = 0; k < configs.size(); ++k)
            if (configs[k].is_object() && configs[k].value("config", std::string()) == cfg) n = std::to_string(k + 1) + ". ";
          failed.push_back({{"label", n + fs::path(cfg).filename().string()},
                            {"config_path", cfg},
                            {"error", err},
                            {"error_line", base::engine_error_line(err)}});
        }
      }
      bool any = false;
      for (const auto& c : sw.value("configs", json::array()))
        if (!c.value("results", json::array()).empty()) any = true;
      if (!any) continue;  // every config failed: the failed rows say it
    }
    // Short labels: a sweep's configs by number and file name, anything else by its folder.
    std::vector<bench::side> loaded;
    if (auto k = known.find(p); k != known.end() && k->second && fs::is_directory(p, ec) &&
        fs::exists(fs::path(p) / "result.json", ec)) {
      // Moved in (a braced list would copy it: its elements are const), then the side moved in.
      std::vector<json> trials;
      trials.push_back(std::move(*k->second));
      loaded.push_back(bench::side{p, std::move(trials), {(fs::path(p) / "result.json").string()}, {}});
    } else {
      loaded = bench::load_sides(p);
    }
    bool sweep = fs::is_directory(p, ec) && fs::exists(fs::path(p) / "sweep.json");
    for (std::size_t i = 0; i < loaded.size(); ++i) {
      auto& s = loaded[i];
      if (sweep) {
        auto open = s.label.rfind(" (");
        std::string cfg = open == std::string::npos ? s.label : s.label.substr(open + 2, s.label.size() - open - 3);
        auto num = s.label.rfind(" config ");
        std::string n = num == std::string::npos ? std::to_string(i + 1) : s.label.substr(num + 8, open - num - 8);
        s.label = n + ". " + fs::path(cfg).filename().string();
      } else {
        fs::path q = fs::absolute(fs::path(p)).lexically_normal();
        if (q.filename().empty()) q = q.parent_path();  // "dir/" names dir
        std::string folder = (fs::is_directory(q, ec) ? q.filename() : q.parent_path().filename()).string();
        s.label = folder;
        if (fs::exists(q / "try.json", ec)) {
          s.label += i == 0 ? " baseline" : " candidate";
        } else if (!s.trials.empty() && s.trials[0].is_object() && s.trials[0].contains("config_path") &&
                   s.trials[0]["config_path"].is_string() && !s.trials[0]["config_path"].get<std::string>().empty()) {
          // A run is named by its config file, not by its folder ("run"); the folder comes back
          // below where two runs of one config would read alike.
          s.label = fs::path(s.trials[0]["config_path"].get<std::string>()).filename().string();
          folders[sides.size()] = folder;
        }
      }
      sides.push_back(std::move(s));
    }
  }
  // Labels that read alike: a run gets its folder, a ledger row its line.
  {
    std::map<std::string, int> n;
    for (const auto& s : sides) ++n[s.label];
    for (std::size_t i = 0; i < sides.size(); ++i) {
      if (n[sides[i].label] < 2) continue;
      if (folders.count(i)) sides[i].label += " (" + folders[i] + ")";
      else if (ledger_lines.count(i)) sides[i].label += " (line " + std::to_string(ledger_lines[i]) + ")";
    }
  }
  // A try's (or a bisect step's) sequential decision: its path over the rounds.
  json tries = json::array();
  for (const auto& p : paths) {
    std::error_code ec;
    fs::path t = fs::path(p) / "try.json";
    if (!fs::is_directory(p, ec) || !fs::exists(t, ec)) continue;
    json doc;
    try {
      doc = base::read_json_file(t.string());
    } catch (const std::exception&) {
      continue;  // load_sides has already named a broken folder
    }
    const json d = doc.value("decision", json::object());
    json entry = {{"label", fs::path(doc.value("config_path", std::string())).filename().string() + " against " +
                                fs::path(doc.value("baseline_config", std::string())).filename().string()},
                  {"verdict", d.value("verdict", std::string())},
                  {"reason", d.value("reason", std::string())},
                  {"noise", d.value("noise", 0.01)},
                  {"higher_is_better", d.value("higher_is_better", true)},
                  {"metric", d.value("metric", std::string())},
                  {"engine_seconds", d.value("engine_seconds", 0.0)},
                  {"rounds", json::array()}};
    for (const auto& r : doc.value("rounds", json::array())) {
      const json l = r.value("look", json::object());
      entry["rounds"].push_back({{"round", r.value("round", 0)},
                                 {"ratio", r.value("ratio", 1.0)},
                                 {"estimate", l.value("ratio", 1.0)},
                                 {"low", l.value("level", 0.0) > 0 ? json(l.value("low", 1.0)) : json(nullptr)},
                                 {"high", l.value("level", 0.0) > 0 ? json(l.value("high", 1.0)) : json(nullptr)},
                                 {"level", l.value("level", 0.0)},
                                 {"verdict", l.value("verdict", std::string())}});
    }
    tries.push_back(entry);
  }
  json data;
  data["tries"] = tries;
  data["title"] = paths.size() == 1 ? "bench-proxy report: " + paths[0] : "bench-proxy report";
  data["generated_at"] = base::utc_now_iso();
  data["bench_proxy_version"] = BENCH_PROXY_VERSION;
  data["sources"] = paths;
  data["failed"] = failed;
  data["campaign"] = campaign;
  data["ledger_warnings"] = ledger_warnings;
  data["downsampling"] = "CDFs: at most " + std::to_string(kCdfPoints) +
                         " quantiles at evenly spaced ranks of all requests; timelines and telemetry: every k-th point, "
                         "at most " + std::to_string(kTimelinePoints) + " per series and trial";
  std::string headline = bench::default_headline;
  if (!sides.empty() && !sides[0].trials.empty()) {
    std::string h = sides[0].trials[0].value("summary", json::object()).value("headline", json::object()).value("metric", headline);
    if (bench::find_metric(h)) headline = h;
  }
  const auto* def = bench::find_metric(headline);
  // A capacity's unit is its curve's axis (concurrency, req/s), as result.json's headline says.
  std::string unit = def->unit;
  if (headline == "capacity" && !sides.empty() && !sides[0].trials.empty()) {
    const json h = sides[0].trials[0].value("summary", json::object()).value("headline", json::object());
    if (h.is_object() && h.contains("unit") && h["unit"].is_string()) unit = h["unit"].get<std::string>();
  }
  data["headline_metric"] = {{"name", headline}, {"unit", unit}, {"description", def->description},
                             {"higher_is_better", def->higher_is_better}};
  bench::compare_options co;
  data["noise"] = co.noise;
  data["configs"] = json::array();
  for (const auto& s : sides) data["configs"].push_back(config_entry(s, sides.empty() ? nullptr : &sides[0], headline, co));
  return data;
}

namespace {

const char* kStyle = R"CSS(
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1200px;color:#1b1f24;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
.meta{color:#57606a;font-size:12px}table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid #eaeef2;padding:4px 6px;text-align:left;vertical-align:top}th{background:#f6f8fa}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.v-faster{color:#1a7f37;font-weight:600}.v-slower{color:#cf222e;font-weight:600}.v-inconclusive{color:#9a6700}
.v-keep{color:#1a7f37;font-weight:600}.v-discard{color:#cf222e;font-weight:600}.v-not-interleaved,.v-not-comparable{color:#8250df}
.v-not{color:#8250df}.bad{color:#cf222e}.warn{color:#9a6700;font-size:12px}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:16px}.chart{position:relative;height:300px;break-inside:avoid}
details{margin:6px 0}summary{cursor:pointer}code{font-size:12px;word-break:break-all}
@media print{body{max-width:none}.grid{grid-template-columns:1fr}.chart{height:260px}}
)CSS";

const char* kScript = R"JS(
(function(){
const errors=[];window.addEventListener('error',e=>errors.push(String(e.message)));
const origError=console.error;console.error=function(){errors.push(Array.from(arguments).join(' '));origError.apply(console,arguments);};
const D=JSON.parse(document.getElementById('bp-data').textContent);
const $=(t,a,...k)=>{const e=document.createElement(t);for(const[n,v]of Object.entries(a||{}))if(n==='text')e.textContent=v;else e.setAttribute(n,v);for(const c of k)e.append(c);return e;};
const fmt=(x,d=2)=>x==null?'-':Number(x).toFixed(d);const pct=x=>x==null?'':(x>=0?'+':'')+(100*x).toFixed(1)+'%';
const root=document.getElementById('bp-root');const charts=[];
let status=null,queued=false;Chart.register({id:'bpStatus',afterRender(){if(status&&!queued){queued=true;setTimeout(()=>status(),0);}}});
const palette=['#0969da','#cf222e','#1a7f37','#8250df','#bf8700','#57606a','#e16f24','#1b7c83','#a475f9','#d1242f'];
const color=i=>palette[i%palette.length];
const H=D.headline_metric;
root.append($('h1',{text:D.title}),$('div',{class:'meta',text:'generated '+D.generated_at+' by bench-proxy '+D.bench_proxy_version+' from '+D.sources.join(', ')}));
// Overview, sorted like the sweep table: valid first, by the headline.
const cfgs=D.configs.map((c,i)=>Object.assign({index:i},c));
const val=c=>c.headline?c.headline.value:null;
const order=cfgs.slice().sort((a,b)=>(b.valid-a.valid)||((H.higher_is_better?-1:1)*((val(a)??0)-(val(b)??0))));
root.append($('h2',{text:'Overview'}));
const t=$('table',{id:'overview'});
// The noise floor: the baseline's between-trial CV (sweep's "noise floor"), with 2 trials or more.
const base=cfgs[0];const noiseFloor=base&&base.headline&&base.headline.trials>=2&&base.headline.between_trial_cv!=null?base.headline.between_trial_cv:null;
const noiseText='noise \u00b1'+(100*D.noise).toFixed(1)+'%; '+(noiseFloor!=null?'noise floor '+(100*noiseFloor).toFixed(2)+'% (the baseline\u2019s between-trial CV)':'noise floor unmeasured (one trial: --trials 2 or more)');
t.append($('tr',{},...['#','config',H.name+' ('+H.unit+')','95% CI','change','verdict','errors','validity','trials','snapshot','files'].map(h=>$('th',{text:h}))));
let rank=0;
for(const c of order){const h=c.headline||{};const ci=h.ci?'['+fmt(h.ci[0])+', '+fmt(h.ci[1])+']':'(none)';
 const v=c.verdict||'';const vc=v.startsWith('not')?'v-not':'v-'+v.replace(' ','-');
 const files=$('td',{});c.results.forEach((p,i)=>{files.append($('a',{href:'file://'+p,text:'result'+(c.results.length>1?' '+(i+1):'')}),' ');if(c.metas[i])files.append($('a',{href:'file://'+c.metas[i],text:'meta'}),' ');});
 const tr=$('tr',{'data-config':c.label},$('td',{text:c.valid?String(++rank):'-'}),$('td',{class:'cfg',title:c.config_path||''},$('div',{text:c.label}),...(c.description?[$('div',{class:'meta desc',text:c.description})]:[])),$('td',{class:'num',text:fmt(h.value)}),$('td',{class:'num'},$('div',{text:ci}),...((h.per_trial||[]).length>1?[$('div',{class:'meta trials',text:'trials: '+h.per_trial.map(v=>fmt(v)).join(', ')})]:[])),
  $('td',{class:'num',text:c.change!=null?pct(c.change)+(c.change_ci?' ['+pct(c.change_ci[0])+', '+pct(c.change_ci[1])+']':''):''}),$('td',{class:'verdict'},$('span',{class:vc,text:v}),$('div',{class:'meta noise',text:noiseText})),$('td',{class:'num',text:String(c.errors)}),
  $('td',{class:c.valid?'':'bad',text:c.valid?'valid':'INVALID'}),$('td',{class:'num',text:String(c.trials)}),$('td',{},$('code',{text:(c.snapshot_id||'').slice(0,12)})),files);
 t.append(tr);}
// A failed config: the engine's own error line first, the whole reason a click away.
for(const f of D.failed)t.append($('tr',{'data-config':f.label,class:'failed'},$('td',{text:'-'}),$('td',{title:f.config_path||''},$('div',{text:f.label})),
 $('td',{colspan:'9'},$('div',{class:'bad fail-line',text:'FAILED: '+(f.error_line||f.error)}),
  ...(f.error_line?[$('details',{},$('summary',{class:'meta',text:'the whole reason'}),$('div',{class:'meta',style:'white-space:pre-wrap',text:f.error}))]:[]))));
root.append(t);
for(const c of cfgs){if(c.warnings.length||(c.not_comparable_because||[]).length){const d=$('details',{},$('summary',{class:'warn',text:c.label+': '+c.warnings.length+' warning(s)'+((c.not_comparable_because||[]).length?', not comparable':'')}));
 for(const w of c.warnings)d.append($('div',{class:'warn',text:'\u26a0 '+w}));for(const w of (c.not_comparable_because||[]))d.append($('div',{class:'v-not',text:'not comparable: '+w}));root.append(d);}}
function chart(id,title,cfg){const box=$('div',{class:'chart'});const cv=$('canvas',{id:id});box.append(cv);const wrap=$('div',{},$('div',{class:'meta',text:title}),box);
 cfg.options=Object.assign({animation:false,responsive:true,maintainAspectRatio:false,parsing:false,normalized:true,plugins:{legend:{labels:{boxWidth:12}}}},cfg.options||{});
 const ch=new Chart(cv.getContext('2d'),cfg);charts.push({id:id,chart:ch});return wrap;}
// The headline with its interval.
const withH=cfgs.filter(c=>c.headline);
if(withH.length){root.append($('h2',{text:'Headline: '+H.description}));
 const labels=withH.map(c=>c.label.length>40?'\u2026'+c.label.slice(-39):c.label);
 root.append(chart('headline',H.name+' ('+H.unit+'); bars: 95% interval, dots: value'+(withH.some(c=>(c.headline.per_trial||[]).length>1)?', red rings: each trial':''),{type:'bar',data:{labels:labels,datasets:[
  {label:'95% CI',data:withH.map(c=>c.headline.ci||[c.headline.value,c.headline.value]),backgroundColor:'rgba(9,105,218,0.25)',borderColor:'#0969da',borderWidth:1},
  {type:'line',label:'value',data:withH.map(c=>c.headline.value),showLine:false,pointRadius:5,borderColor:'#1b1f24',backgroundColor:'#1b1f24'},
  // Each trial's own value (the evidence behind a t interval over 2 or 3 trials).
  ...(withH.some(c=>(c.headline.per_trial||[]).length>1)?[{type:'line',label:'each trial',data:withH.flatMap((c,i)=>(c.headline.per_trial||[]).map(v=>({x:labels[i],y:v}))),
   showLine:false,pointRadius:7,pointStyle:'circle',borderColor:'#cf222e',backgroundColor:'rgba(255,255,255,0)',borderWidth:1.5,order:-1}]:[])]},
  options:{parsing:true,scales:{y:{beginAtZero:false,title:{display:true,text:H.unit}}}}}));}
// Load curves (--load): latency against load with each point's interval, the SLO lines and the
// capacity; output tok/s per user against total output tok/s (the Pareto view); a table per config.
const withC=cfgs.filter(c=>c.curve&&c.curve.points.length);
const curves={configs:withC.map(c=>c.label),tables:[],objectives:[]};
if(withC.length){root.append($('h2',{text:'Load curves'}));
 const rgba=(hex,a)=>'rgba('+[1,3,5].map(k=>parseInt(hex.slice(k,k+2),16)).join(',')+','+a+')';
 const axes=[...new Set(withC.map(c=>c.curve.axis))];const axisText=axes.join(' / ');
 const num=v=>String(+Number(v).toFixed(2));  // 4, 2.5, 0.33: no trailing zeros
 const finite=v=>Number.isFinite(v)?v:undefined;  // an axis bound only where there is one
 const loadText=(pt,axis)=>pt.load==null?pt.label:num(pt.load)+(axis==='concurrency'?'':' '+axis);
 const objs=[];withC.forEach(c=>c.curve.points.forEach(p=>p.objectives.forEach(o=>{if(!objs.some(x=>x.objective===o.objective))objs.push({objective:o.objective,metric:o.metric,p:o.p,limit:o.limit});})));
 curves.objectives=objs.map(o=>o.objective);
 const xs=withC.flatMap(c=>c.curve.points.map(p=>p.load)).filter(x=>x!=null&&x>0);
 const xmin=Math.min(...xs),xmax=Math.max(...xs);
 const logX=xs.length>1&&xmax/xmin>=8;
 const loads=[...new Set(xs)].sort((a,b)=>a-b);  // the x axis' ticks: the loads measured
 const dash=[[],[6,4],[2,3],[10,3,2,3]];
 // The capacity of each config: a dashed vertical line at its value, its interval shaded (an
 // open end runs to the chart's edge); "below the lowest load" has no line, only its text.
 const marks=withC.filter(c=>c.curve.capacity&&c.curve.capacity.value!=null).map(c=>({config:c.label,x:c.curve.capacity.value,
   lo:c.curve.capacity.ci[0],hi:c.curve.capacity.ci[1],at_least:!!c.curve.capacity.at_least,color:color(c.index),drawn:0}));
 // Draws what Chart.js has no element for: error bars (dataset.errorBars[j] = [lo, hi] or null),
 // point labels (dataset.pointLabels[j]) and the capacity marks; counts what it drew.
 const curvePlugin=(marks)=>({id:'bpCurve',
  beforeDatasetsDraw(ch){const a=ch.chartArea,x=ch.scales.x,ctx=ch.ctx;ctx.save();
   const px=v=>Math.min(a.right,Math.max(a.left,x.getPixelForValue(v)));
   marks.forEach((m,k)=>{let l=m.lo==null?a.left:px(m.lo),r=m.hi==null?a.right:px(m.hi);if(r-l<6){const c=(l+r)/2;l=c-3;r=c+3;}
    ctx.fillStyle=rgba(m.color,0.13);ctx.fillRect(l,a.top,r-l,a.bottom-a.top);
    const cx=px(m.x);ctx.strokeStyle=m.color;ctx.lineWidth=2;ctx.setLineDash([5,3]);ctx.beginPath();ctx.moveTo(cx,a.top);ctx.lineTo(cx,a.bottom);ctx.stroke();ctx.setLineDash([]);
    ctx.fillStyle=m.color;ctx.font='11px system-ui,sans-serif';const t='capacity '+(m.at_least?'\u2265 ':'')+num(m.x)+' ('+m.config+')';
    const w=ctx.measureText(t).width;ctx.fillText(t,cx+4+w>a.right?cx-4-w:cx+4,a.top+12+13*k);m.drawn++;});
   ctx.restore();},
  afterDatasetsDraw(ch){const ctx=ch.ctx,y=ch.scales.y,a=ch.chartArea;ctx.save();ctx.beginPath();ctx.rect(a.left,a.top,a.right-a.left,a.bottom-a.top);ctx.clip();
   ch.data.datasets.forEach((ds,i)=>{if(!ch.isDatasetVisible(i))return;const meta=ch.getDatasetMeta(i);ds.barsDrawn=0;
    meta.data.forEach((el,j)=>{const b=ds.errorBars&&ds.errorBars[j];
     if(b&&b[0]!=null&&b[1]!=null){const y1=y.getPixelForValue(b[0]),y2=y.getPixelForValue(b[1]);ctx.strokeStyle=ds.borderColor;ctx.lineWidth=1.5;ctx.beginPath();
      ctx.moveTo(el.x,y1);ctx.lineTo(el.x,y2);ctx.moveTo(el.x-4,y1);ctx.lineTo(el.x+4,y1);ctx.moveTo(el.x-4,y2);ctx.lineTo(el.x+4,y2);ctx.stroke();ds.barsDrawn++;}
});});
   ctx.restore();ctx.save();  // point labels may stand above the chart area
   ch.data.datasets.forEach((ds,i)=>{if(!ch.isDatasetVisible(i)||!ds.pointLabels)return;ctx.fillStyle=ds.borderColor;ctx.font='11px system-ui,sans-serif';
    ch.getDatasetMeta(i).data.forEach((el,j)=>{const t=ds.pointLabels[j];if(t)ctx.fillText(t,el.x+5,el.y-6);});});
   ctx.restore();}});
 const g=$('div',{class:'grid'});
 // Latency against load: the metrics with a chart of their own (TTFT, e2e, and any an objective names).
 const names={ttft_ms:'time to first token',e2e_ms:'end-to-end latency',itl_ms:'inter-token latency',tpot_ms:'time per output token'};
 const metrics=['ttft_ms','e2e_ms'];for(const o of objs)if(!metrics.includes(o.metric))metrics.push(o.metric);
 for(const m of metrics){
  const ps=[50];if(m==='ttft_ms')ps.push(99);for(const o of objs)if(o.metric===m&&!ps.includes(o.p))ps.push(o.p);
  const ds=[];let lo=Infinity,hi=0;
  withC.forEach(c=>ps.forEach((p,j)=>{const pts=[],bars=[];
   for(const pt of c.curve.points){const L=pt.latency[m];if(!L||pt.load==null)continue;const ob=pt.objectives.find(o=>o.metric===m&&o.p===p);
    const v=p===50?L.median:(L['p'+p]!=null?L['p'+p]:(ob?ob.value:null));if(v==null)continue;
    const b=p===50?L.median_ci:(ob?ob.ci:null);pts.push({x:pt.load,y:v});bars.push(b);
    for(const w of [v].concat(b||[]))if(w>0){lo=Math.min(lo,w);hi=Math.max(hi,w);}}
   if(pts.length)ds.push({label:c.label+' p'+p,data:pts,errorBars:bars,borderColor:color(c.index),backgroundColor:color(c.index),borderDash:dash[j%dash.length],pointRadius:3,borderWidth:1.5,kind:'curve'});}));
  for(const o of objs.filter(o=>o.metric===m)){ds.push({label:'SLO '+o.objective,data:[{x:xmin,y:o.limit},{x:xmax,y:o.limit}],borderColor:'#1b1f24',borderDash:[8,4],borderWidth:2,pointRadius:0,kind:'slo'});lo=Math.min(lo,o.limit);hi=Math.max(hi,o.limit);}
  if(!ds.some(d=>d.kind==='curve'))continue;
  const logY=hi/lo>=20;
  const named=ps.filter(p=>p!==50).map(p=>objs.some(o=>o.metric===m&&o.p===p)?'p'+p+': the objective\u2019s interval':'p'+p+': the point only (no objective names it, so no interval)');
  g.append(chart('curve-'+m,names[m]+' (ms) against load ('+axisText+'); bars: 95% interval of the median'+(named.length?', '+named.join(', '):'')+(objs.some(o=>o.metric===m)?'; black dashed: the SLO':'')+(marks.length?'; dashed vertical: capacity, shaded: its interval':''),
   {type:'line',data:{datasets:ds},plugins:[curvePlugin(marks)],options:{normalized:false,scales:{x:{type:logX?'logarithmic':'linear',title:{display:true,text:axisText},
    afterBuildTicks:ax=>{ax.ticks=loads.map(v=>({value:v}));},ticks:{callback:v=>num(v)}},
    y:{type:logY?'logarithmic':'linear',suggestedMin:finite(lo),suggestedMax:finite(hi),title:{display:true,text:'ms'+(logY?' (log scale)':'')}}}}}));
  charts[charts.length-1].marks=marks;}
 // The Pareto view: what each user gets against what the engine delivers, one line per config
 // through its points in load order, each point labelled with its load; the capacity's point ringed.
 const pds=withC.map(c=>{const P=c.curve.points.filter(p=>p.load!=null&&p.total_output_tps!=null&&p.latency.output_tps&&p.latency.output_tps.median!=null);
  const cap=c.curve.capacity&&c.curve.capacity.value;
  return {label:c.label,data:P.map(p=>({x:p.total_output_tps,y:p.latency.output_tps.median})),errorBars:P.map(p=>p.latency.output_tps.median_ci),
   pointLabels:P.map(p=>num(p.load)),  // the unit is in the caption: labels stay shortpointRadius:P.map(p=>p.load===cap?7:3),pointStyle:P.map(p=>p.load===cap?'rectRot':'circle'),
   showLine:true,borderColor:color(c.index),backgroundColor:color(c.index),borderWidth:1.5,kind:'pareto'};});
 g.append(chart('curve-pareto','output tok/s per user (median per request; bars: its 95% interval) against total output tok/s; points labelled with their load ('+axisText+'), in load order'+(marks.length?'; \u25c6 the capacity\u2019s point':''),
  {type:'scatter',data:{datasets:pds},plugins:[curvePlugin([])],options:{normalized:false,scales:{x:{type:'linear',title:{display:true,text:'total output tok/s'}},
   y:{type:'linear',suggestedMin:finite(Math.min(...pds.flatMap(d=>d.errorBars.filter(b=>b).map(b=>b[0])))),suggestedMax:finite(Math.max(...pds.flatMap(d=>d.errorBars.filter(b=>b).map(b=>b[1])))),title:{display:true,text:'output tok/s per user'}}}}}));
 root.append(g);
 // Per config: each point's numbers and verdicts, the knee and the capacity.
 const verdictClass={yes:'v-keep',no:'bad',likely:'v-inconclusive',unlikely:'v-inconclusive'};
 withC.forEach(c=>{const C=c.curve;const id='curve-table-'+c.index;curves.tables.push(id);
  const open=C.points.some(p=>p.open_loop);
  const os=[];C.points.forEach(p=>p.objectives.forEach(o=>{if(!os.includes(o.objective))os.push(o.objective);}));
  const head=['point','ok/sent','TTFT p50 (ms)','TTFT p99 (ms)','e2e p50 (ms)','tok/s per user','total tok/s'].concat(os).concat(open?['lateness p50 (ms)','over-saturated']:['over-saturated']);
  const t=$('table',{id:id,class:'curve','data-config':c.label},$('tr',{},...head.map(h=>$('th',{text:h}))));
  for(const p of C.points){const L=p.latency;const cell=(v,d=2)=>$('td',{class:'num',text:fmt(v,d)});
   const row=$('tr',{},$('td',{text:p.label+(p.refined?' *':'')}),$('td',{class:'num'+(p.completed<p.requests?' bad':''),text:(p.completed??'-')+'/'+(p.requests??'-')}),
    cell(L.ttft_ms&&L.ttft_ms.median),cell(L.ttft_ms&&L.ttft_ms.p99),cell(L.e2e_ms&&L.e2e_ms.median),cell(L.output_tps&&L.output_tps.median),cell(p.total_output_tps));
   for(const name of os){const o=p.objectives.find(x=>x.objective===name);
    row.append(o?$('td',{class:verdictClass[o.met]||'',text:o.met+' ('+fmt(o.value)+(o.ci?' ['+fmt(o.ci[0])+', '+fmt(o.ci[1])+']':'')+')'}):$('td',{text:'-'}));}
   if(open)row.append($('td',{class:'num'+(p.kept===false?' bad':''),text:p.open_loop?fmt(p.lateness_p50_ms)+(p.kept===false?' (fell behind)':''):'-'}));
   row.append($('td',{class:p.over_saturated?'bad':'',text:p.over_saturated==null?'-':(p.over_saturated?'yes':'no')}));
   t.append(row);}
  const k=C.capacity;
  root.append($('h3',{text:c.label+': '+C.profile+(C.of_trial?' (trial '+C.of_trial+' of '+c.trials+')':'')}),t,
   ...(C.points.some(p=>p.refined)?[$('div',{class:'meta',text:'* a point added by the capacity search (bisection between the last point that meets the objectives and the first that does not)'})]:[]),
   $('div',{class:'curve-knee',text:C.knee&&C.knee.load!=null?'knee at '+loadText(C.knee,C.axis)+' '+(C.axis==='concurrency'?'concurrency ':'')+'('+fmt(C.knee.throughput)+' tok/s)':'no knee: throughput still grows about linearly up to the highest load measured'}),
   $('div',{class:'curve-capacity'+(k&&k.value==null?' bad':''),text:k?'capacity: '+k.text:'capacity: no objectives (--slo METRIC_pNN_ms<=MS)'}));});
 root.append($('div',{class:'meta',text:'verdicts: yes (even the interval\u2019s high end is within the limit), likely / unlikely (the estimate is within / over, the interval straddles the limit), no (even its low end is over)'}));}
// Distributions.
root.append($('h2',{text:'Distributions (CDF, all configs overlaid)'}));
const g=$('div',{class:'grid'});
for(const[key,title,unit]of[['ttft_ms','time to first token','ms'],['itl_ms','inter-token latency','ms'],['e2e_ms','end-to-end latency','ms'],['output_tps','output tokens/s per request','tok/s']]){
 g.append(chart('cdf-'+key,title+' ('+unit+')',{type:'line',data:{datasets:cfgs.map((c,i)=>({label:c.label,data:c.cdf[key].map(p=>({x:p[0],y:p[1]})),borderColor:color(i),pointRadius:0,borderWidth:1.5,stepped:true}))},
  options:{scales:{x:{type:'linear',title:{display:true,text:unit}},y:{min:0,max:1,title:{display:true,text:'fraction of requests'}}}}}));}
root.append(g);
// Timelines.
root.append($('h2',{text:'Timeline (per request, one series per trial)'}));
const g2=$('div',{class:'grid'});
for(const[key,title]of[['output_tps','output tokens/s per request'],['ttft_ms','time to first token (ms)']]){
 const ds=[];cfgs.forEach((c,i)=>c.timeline[key].forEach(tr=>ds.push({label:c.label+(c.trials>1?' trial '+tr.trial:''),data:tr.points.map(p=>({x:p[0],y:p[1]})),borderColor:color(i),backgroundColor:color(i),pointRadius:1.5,showLine:false})));
 g2.append(chart('timeline-'+key,title+' against request index',{type:'scatter',data:{datasets:ds},options:{scales:{x:{type:'linear',title:{display:true,text:'request index'}}}}}));}
root.append(g2);root.append($('div',{class:'meta',text:'downsampling: '+D.downsampling}));
// Conditions: GPU clocks, power, temperature and clock-event reasons; CPU steal and noisy neighbours.
const withT=cfgs.filter(c=>c.telemetry);
if(withT.length){const g3=$('div',{class:'grid'});
 const groups=[['gpu-sm','GPU SM clock (MHz)',k=>k.endsWith('.sm_clock_mhz')],['gpu-power','GPU power (W)',k=>k.endsWith('.power_w')],
  ['gpu-temp','GPU temperature (°C)',k=>k.endsWith('.temp_c')],['gpu-reasons','clock-event reasons active (1 = active)',k=>/^gpu\d+\.(sw_|hw_)/.test(k)],
  ['cpu','CPU steal (%) and cores used by the engine and by other processes',k=>k==='cpu.steal_pct'||k.endsWith('.cpu_cores')]];
 // A series per config, trial and source is too many for a legend: the legend has one entry per
 // source (cpu.steal_pct, engine.cpu_cores, gpu0.power_w, ...) and, with several configs, one per
 // config (its colour; the sources then differ by dash); a click hides or shows the whole group.
 const many=withT.length>1;const dashes=[[],[6,4],[2,3],[10,3,2,3],[1,2],[12,4]];
 for(const[id,title,pick]of groups){const ds=[],keys=[];withT.forEach(c=>c.telemetry.forEach(tr=>Object.entries(tr.series).filter(([k])=>pick(k)).forEach(([k,pts])=>{
   if(!keys.includes(k))keys.push(k);const j=keys.indexOf(k);
   ds.push({label:c.label+(c.trials>1?' trial '+tr.trial:'')+' '+k,data:pts.map(p=>({x:p[0],y:p[1]})),borderColor:many?color(c.index):color(j),borderDash:many?dashes[j%dashes.length]:[],
    pointRadius:0,borderWidth:1.5,stepped:id==='gpu-reasons',group:{cfg:c.label,src:k}});})));
  if(!ds.length)continue;
  const hid=new Set();const items=keys.map((k,j)=>({text:k,id:'src:'+k,color:many?'#57606a':color(j),dash:many?dashes[j%dashes.length]:[]}))
   .concat(many?withT.map(c=>({text:c.label,id:'cfg:'+c.label,color:color(c.index),dash:[]})):[]);
  g3.append(chart('conditions-'+id,title+' \u2014 click a legend entry to hide or show its series',{type:'line',data:{datasets:ds},options:{scales:{x:{type:'linear',title:{display:true,text:'s'}}},
   plugins:{legend:{labels:{boxWidth:24,generateLabels:()=>items.map(it=>({text:it.text,group:it.id,strokeStyle:it.color,fillStyle:'rgba(0,0,0,0)',lineDash:it.dash,lineWidth:2,hidden:hid.has(it.id)}))},
    onClick:(e,item,legend)=>{const ch=legend.chart;if(hid.has(item.group))hid.delete(item.group);else hid.add(item.group);
     ch.data.datasets.forEach((d,i)=>ch.setDatasetVisibility(i,!(hid.has('cfg:'+d.group.cfg)||hid.has('src:'+d.group.src))));ch.update();}}}}}));}
 if(g3.children.length)root.append($('h2',{text:'Conditions (telemetry, seconds since the first sample)'}),g3);}
// The engine's own counters (acceptance, prefix cache, preemptions, token cross-check).
const withE=cfgs.filter(c=>c.engine_metrics&&c.engine_metrics.derived);
if(withE.length){root.append($('h2',{text:'Engine counters (first trial, deltas over the measured requests)'}));
 const et=$('table',{id:'engine-counters'},$('tr',{},...['config','mean acceptance length','acceptance rate','prefix-cache hit rate','preemptions','tokens vs the bench','absent series'].map(h=>$('th',{text:h}))));
 for(const c of withE){const d=c.engine_metrics.derived||{};const x=c.engine_metrics.cross_check||{};
  et.append($('tr',{},$('td',{text:c.label}),$('td',{class:'num',text:fmt(d.mean_acceptance_length)}),$('td',{class:'num',text:d.acceptance_rate==null?'-':(100*d.acceptance_rate).toFixed(1)+'%'}),
   $('td',{class:'num',text:d.prefix_cache_hit_rate==null?'-':(100*d.prefix_cache_hit_rate).toFixed(1)+'%'}),$('td',{class:'num',text:d.preemptions==null?'-':String(d.preemptions)}),
   $('td',{text:Object.entries(x).map(([k,v])=>k+(v.equal?' match':' DIFFER')).join(', ')||'-'}),$('td',{text:(c.engine_metrics.absent||[]).join(', ')||'none'})));}
 root.append(et);}
// The campaign.
if(D.campaign){root.append($('h2',{text:'Campaign (results TSV)'}));const ct=$('table',{id:'campaign'});
 ct.append($('tr',{},...['line','time','config','metric','value','change','verdict','best','try'].map(h=>$('th',{text:h}))));
 for(const r of D.campaign){const t=r.try;const tr=t?t.decision+(t.ratio!=null?' '+pct(t.ratio-1):'')+(t.ci?' ['+pct(t.ci[0]-1)+', '+pct(t.ci[1]-1)+']':'')+
   (t.rounds!=null?' after '+t.rounds+' round(s)':'')+(t.engine_seconds!=null?', '+fmt(t.engine_seconds,0)+' s of engine time':'')+(t.baseline?', against '+t.baseline:'')+(t.baseline_is_best===false?' (not the running best\u2019s config)':'')+(t.procedure?' ('+t.procedure+')':''):'';
  const showChange=!!r.change;  // 0 for the baseline
  // The config by its file (its description below), the row's label beside it.
  const cfgName=r.config?r.config.split('/').pop():(r.description||'');
  const cfgCell=$('td',{title:r.config||''},$('div',{text:cfgName+(r.label&&r.label!==cfgName&&r.label!==cfgName.replace(/\.ya?ml$/,'')?' ['+r.label+']':'')}),...(r.description&&r.description!==cfgName?[$('div',{class:'meta',text:r.description})]:[]));
  const verdictCell=$('td',{class:'v-'+String(r.verdict).split(':')[0].replace(/ /g,'-'),text:r.verdict},
   ...(r.status==='failed'&&(r.error_line||r.reasons)?[$('div',{class:'bad fail-line',text:r.error_line||String(r.reasons).split(/\\n|\n/)[0]})]:[]));
  ct.append($('tr',{},$('td',{text:String(r.line)}),$('td',{text:r.time}),cfgCell,$('td',{text:r.metric}),$('td',{class:'num',text:fmt(r.value)}),
  $('td',{class:'num',text:showChange?pct(r.change)+(r.against_line!=null?' vs line '+r.against_line:''):''}),
  verdictCell,$('td',{text:r.best_line==null?'-':'line '+r.best_line}),$('td',{text:tr})));}
 root.append(ct);
 const last=D.campaign.length?D.campaign[D.campaign.length-1]:null;
 if(last&&last.best_measured_line!=null&&last.best_measured_line!==last.best_line)root.append($('div',{class:'meta',text:'highest measured value: line '+last.best_measured_line+' ('+fmt(last.best_measured_value)+'): a single measurement, not the running best (the best is kept only on a verdict beyond noise)'}));
 root.append($('div',{class:'meta',text:'verdicts against the running best only where it was measured interleaved with the row (the same sweep or try); a try\u2019s verdict is its own decision'}));
 for(const w of (D.ledger_warnings||[]))root.append($('div',{class:'warn',text:'\u26a0 '+w}));}
// What differs.
// A try's sequential decision over the rounds: each round's change, the running estimate and
// the look's interval, against the noise band.
if((D.tries||[]).length){root.append($('h2',{text:'Sequential decisions (try)'}));const gt=$('div',{class:'grid'});
 D.tries.forEach((tr,i)=>{const R=tr.rounds;const n=tr.noise;
  const line=(f)=>R.map(r=>({x:r.round,y:f(r)==null?null:100*(f(r)-1)}));
  gt.append(chart('try'+i,tr.label+': '+tr.verdict+(tr.reason?' ('+tr.reason+')':'')+', '+R.length+' rounds, '+fmt(tr.engine_seconds,0)+' s of engine time; change of '+tr.metric+' (%)',{type:'line',data:{datasets:[
   {label:'round',data:line(r=>r.ratio),showLine:false,pointRadius:4,borderColor:'#1b1f24',backgroundColor:'#1b1f24'},
   {label:'estimate',data:line(r=>r.estimate),borderColor:'#0969da',pointRadius:2},
   {label:'interval low',data:line(r=>r.low),borderColor:'rgba(9,105,218,0.5)',borderDash:[4,3],pointRadius:0,spanGaps:false},
   {label:'interval high',data:line(r=>r.high),borderColor:'rgba(9,105,218,0.5)',borderDash:[4,3],pointRadius:0,spanGaps:false},
   {label:'+noise',data:R.map(r=>({x:r.round,y:100*n})),borderColor:'#cf222e',pointRadius:0,borderWidth:1},
   {label:'-noise',data:R.map(r=>({x:r.round,y:-100*n})),borderColor:'#cf222e',pointRadius:0,borderWidth:1}]},
   options:{scales:{x:{type:'linear',title:{display:true,text:'round'},ticks:{stepSize:1}},y:{title:{display:true,text:'change (%)'}}}}}));});
 root.append(gt);}
const withDiff=cfgs.filter(c=>c.diff);
if(withDiff.length){root.append($('h2',{text:'What differs from the baseline (meta diff)'}));
 for(const c of withDiff){const secs=Object.entries(c.diff);const n=secs.reduce((a,[,v])=>a+v.length,0);
  const d=$('details',{class:'diff'},$('summary',{text:c.label+': '+(n?n+' difference(s) in '+secs.map(([k,v])=>k+' ('+v.length+')').join(', '):'nothing')}));
  for(const[sec,changes]of secs){const st=$('table',{},$('tr',{},...['path','change','baseline','this'].map(h=>$('th',{text:h}))));
   for(const ch of changes)st.append($('tr',{},$('td',{},$('code',{text:ch.path})),$('td',{text:ch.change}),$('td',{},$('code',{text:ch.a===undefined?'':JSON.stringify(ch.a)})),$('td',{},$('code',{text:ch.b===undefined?'':JSON.stringify(ch.b)}))));
   d.append($('details',{},$('summary',{text:sec+' ('+changes.length+')'}),st));}
  root.append(d);}}
window.addEventListener('beforeprint',()=>document.querySelectorAll('details').forEach(d=>d.open=true));
// What was drawn, for tests and for anyone checking the page: charts, series, points, errors, requests.
// Charts draw once their boxes are laid out (after this script): the status is written now and
// again after every later draw, so it reports what was drawn (the curves' error bars and capacity
// marks count themselves as they draw); rendered_ms stays when the scripts finished.
const rendered=performance.now();
status=()=>{queued=false;const st={charts:charts.map(c=>{const o={id:c.id,type:c.chart.config.type,datasets:c.chart.data.datasets.map(ds=>{const d={label:ds.label,points:ds.data.length};
  if(ds.kind)d.kind=ds.kind;if(ds.errorBars){d.error_bars=ds.errorBars.filter(b=>b&&b[0]!=null).length;d.error_bars_drawn=ds.barsDrawn||0;}if(ds.pointLabels)d.point_labels=ds.pointLabels;return d;})};
  o.legend=((c.chart.legend&&c.chart.legend.legendItems)||[]).map(l=>l.text);
  const pl=(c.chart.config.plugins||[]).find(p=>p.id==='bpCurve');if(pl){o.scales={x:c.chart.options.scales.x.type,y:c.chart.options.scales.y.type};}
  if(c.marks)o.marks=c.marks.map(m=>({config:m.config,x:m.x,lo:m.lo,hi:m.hi,drawn:m.drawn>0}));return o;}),curves:curves,
 errors:errors,resources:performance.getEntriesByType('resource').map(r=>r.name),overview_rows:document.querySelectorAll('#overview tr').length-1,noise_floor:noiseFloor,
 overview:[...document.querySelectorAll('#overview tr[data-config]')].map(r=>({config:r.getAttribute('data-config'),text:r.textContent})),rendered_ms:rendered};
document.getElementById('bp-selftest').textContent=JSON.stringify(st);};
status();
})();
)JS";

/// JSON inside a <script> element. Every '<' becomes \u003c (JSON's own escape, the same string
/// to JSON.parse): then neither "</script" nor "<!--" followed by "<script" (which puts the HTML
/// parser in its double-escaped state and swallows the rest of the page) can appear in it. Outside
/// strings JSON has no '<'.
std::string script_safe(const std::string& s) {
  std::string out;
  out.reserve(s.size() + 64);
  for (char c : s) {
    if (c == '<')
      out += "\\u003c";
    else
      out += c;
  }
  return out;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace

std::string render_report(const json& data) {
  std::string chart(reinterpret_cast<const char*>(embedded::chart_js), embedded::chart_js_size);
  std::string out;
  out.reserve(chart.size() + 65536);
  out += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n";
  // Nothing outside this file may be loaded: the policy forbids every fetch the page might try.
  out += "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; script-src 'unsafe-inline'; "
         "style-src 'unsafe-inline'; img-src data:\">\n";
  out += "<title>" + html_escape(data.value("title", std::string("bench-proxy report"))) + "</title>\n<style>";
  out += kStyle;
  out += "</style></head><body>\n<div id=\"bp-root\"></div>\n<pre id=\"bp-selftest\" hidden></pre>\n";
  out += "<script type=\"application/json\" id=\"bp-data\">" +
         script_safe(data.dump(-1, ' ', false, json::error_handler_t::replace)) + "</script>\n";
  // Inlined as it is: it must not hold the one sequence that would end the element early.
  std::string lower = chart;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  if (lower.find("</script") != std::string::npos)
    throw std::runtime_error("the embedded Chart.js contains \"</script\": it cannot be inlined");
  out += "<script>/* Chart.js from Debian's libjs-chart.js (MIT license) */\n" + chart + "\n</script>\n";
  out += "<script>";
  out += kScript;
  out += "</script>\n</body></html>\n";
  return out;
}

std::string write_report(const std::vector<std::string>& paths, const std::string& out,
                         const results_in_memory& known) {
  std::string page = render_report(report_data(paths, known));
  base::write_file_atomic(out, page, true);
  return fs::absolute(out).string();
}

}  // namespace bp::measure
