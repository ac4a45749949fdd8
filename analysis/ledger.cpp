#include "analysis/ledger.hpp"
#include "base/text.hpp"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <map>
#include <sstream>
#include <stdexcept>

#include "analysis/compare.hpp"
#include "analysis/metrics.hpp"

namespace bp::bench {

using json = nlohmann::json;

namespace {

const char* kTsvHeaderV1 =
    "time\tdescription\tengine\tsnapshot_id\tvenv_merkle\trequests\terrors\tmedian_output_tps\t"
    "median_ttft_ms\tmedian_itl_ms\tp99_e2e_ms\ttotal_output_tps\tvalidity\tresult";
const char* kTsvHeaderV2 =
    "time\tdescription\tengine\tsnapshot_id\tvenv_merkle\trequests\terrors\tmedian_output_tps\t"
    "median_ttft_ms\tmedian_itl_ms\tp99_e2e_ms\ttotal_output_tps\tvalidity\tresult\tconfig\treasons";
// v3 = v2 and the campaign columns after it (positions of the older columns never move).
const char* kTsvHeaderV3 =
    "time\tdescription\tengine\tsnapshot_id\tvenv_merkle\trequests\terrors\tmedian_output_tps\t"
    "median_ttft_ms\tmedian_itl_ms\tp99_e2e_ms\ttotal_output_tps\tvalidity\tresult\tconfig\treasons\t"
    "label\trepo_commit\trepo_dirty\tworkload_sha256\tload_shape\ttrials\theadline_metric\theadline\t"
    "headline_ci_low\theadline_ci_high";

std::string field(const json& j, std::initializer_list<const char*> keys) {
  const json* cur = &j;
  for (const char* k : keys) {
    if (!cur->is_object() || !cur->contains(k)) return "";
    cur = &(*cur)[k];
  }
  if (cur->is_null()) return "";
  std::string s = cur->is_string() ? cur->get<std::string>() : cur->dump();
  for (auto& c : s)
    if (c == '\t' || c == '\n' || c == '\r') c = ' ';
  return s;
}

std::string number(const json& j, std::initializer_list<const char*> keys) {
  std::string v = field(j, keys);
  return v.empty() ? v : base::fixed(std::atof(v.c_str()), 3);
}

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : line) {
    if (c == '\t') {
      out.push_back(cur);
      cur.clear();
    } else if (c != '\r') {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

std::optional<double> opt_number(const std::string& s) {
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || !std::isfinite(v)) return std::nullopt;
  return v;
}

std::string fmt(double v, int prec = 2) { return base::fixed(v, prec); }

}  // namespace

std::string append_tsv(const std::string& path, const json& r, const std::string& result_path) {
  // The header decides the format: a ledger started by an older bench-proxy keeps its columns.
  std::string first_line;
  {
    std::ifstream in(path);
    std::getline(in, first_line);
  }
  bool fresh = first_line.empty();
  int version = fresh ? 3 : first_line == kTsvHeaderV1 ? 1 : first_line == kTsvHeaderV2 ? 2 : 3;
  std::string status = r.value("failed", false) ? "failed" : r.value("valid", false) ? "valid" : "invalid";
  std::string row = field(r, {"finished_at"}) + "\t" + field(r, {"snapshot", "config", "description"}) + "\t" +
                    field(r, {"snapshot", "config", "engine"}) + "\t" + field(r, {"snapshot_id"}) + "\t" +
                    field(r, {"snapshot", "venv", "merkle_sha256"}) + "\t" + field(r, {"summary", "requests"}) + "\t" +
                    field(r, {"summary", "errors"}) + "\t" + number(r, {"summary", "output_tps", "median"}) + "\t" +
                    number(r, {"summary", "ttft_ms", "median"}) + "\t" + number(r, {"summary", "itl_ms", "median"}) +
                    "\t" + number(r, {"summary", "e2e_ms", "p99"}) + "\t" + number(r, {"summary", "total_output_tps"}) +
                    "\t" + (version == 1 && status == "failed" ? "invalid" : status) + "\t" + result_path;
  if (version >= 2) row += "\t" + field(r, {"config_path"}) + "\t" + field(r, {"invalid_reason"});
  if (version >= 3) {
    const json& o = r.contains("options") ? r["options"] : json::object();
    std::string shape = o.is_object() && !o.empty()
                            ? "concurrency=" + field(o, {"concurrency"}) + " rate=" + field(o, {"rate"}) +
                                  " max_tokens=" + field(o, {"max_tokens"}) + " requests=" + field(o, {"requests"})
                            : "";
    const json h = r.contains("summary") ? r["summary"].value("headline", json::object()) : json::object();
    std::string lo, hi;
    if (h.contains("ci") && h["ci"].is_array() && h["ci"].size() == 2) {
      lo = base::fixed(h["ci"][0].get<double>(), 3);
      hi = base::fixed(h["ci"][1].get<double>(), 3);
    }
    row += "\t" + field(r, {"label"}) + "\t" + field(r, {"repo", "commit"}) + "\t" + field(r, {"repo", "dirty"}) +
           "\t" + field(r, {"workload", "sha256"}) + "\t" + shape + "\t" +
           (r.contains("trials") && r["trials"].is_number() ? r["trials"].dump() : status == "failed" ? "" : "1") +
           "\t" + field(h, {"metric"}) + "\t" + number(h, {"value"}) + "\t" + lo + "\t" + hi;
  }
  std::ofstream f(path, std::ios::app);
  if (!f) throw std::runtime_error(path + ": cannot append to the results TSV");
  if (fresh) f << kTsvHeaderV3 << "\n";
  f << row << "\n";
  f.flush();
  if (!f) throw std::runtime_error(path + ": cannot append to the results TSV");
  return row;
}

std::vector<ledger_row> load_ledger(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open the results TSV");
  std::string line;
  if (!std::getline(in, line)) throw std::runtime_error(path + ": empty (no header)");
  auto header = split_tabs(line);
  std::map<std::string, std::size_t> col;
  for (std::size_t i = 0; i < header.size(); ++i) col[header[i]] = i;
  if (!col.count("time") || !col.count("validity"))
    throw std::runtime_error(path + ":1: not a bench-proxy results TSV (no time and validity columns)");
  std::vector<ledger_row> rows;
  std::size_t n = 1;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty()) continue;
    auto f = split_tabs(line);
    if (f.size() != header.size())
      throw std::runtime_error(path + ":" + std::to_string(n) + ": " + std::to_string(f.size()) + " fields, the header has " +
                               std::to_string(header.size()));
    auto get = [&](const char* name) -> std::string {
      auto it = col.find(name);
      return it == col.end() ? "" : f[it->second];
    };
    ledger_row r;
    r.line = n;
    r.time = get("time");
    r.label = get("label");
    r.status = get("validity");
    r.description = get("description");
    r.config = get("config");
    r.result = get("result");
    r.reasons = get("reasons");
    r.repo_commit = get("repo_commit");
    r.repo_dirty = get("repo_dirty");
    r.workload = get("workload_sha256");
    r.load_shape = get("load_shape");
    if (auto t = opt_number(get("trials"))) r.trials = static_cast<int>(*t);
    r.metric = get("headline_metric");
    if (r.metric.empty() || r.metric == "median output_tps") {
      r.metric = "output_tps";
      r.value = opt_number(get("headline"));
      if (!r.value) r.value = opt_number(get("median_output_tps"));
    } else {
      r.value = opt_number(get("headline"));
    }
    r.ci_low = opt_number(get("headline_ci_low"));
    r.ci_high = opt_number(get("headline_ci_high"));
    rows.push_back(r);
  }
  return rows;
}

std::vector<campaign_entry> campaign(const std::vector<ledger_row>& rows, double noise) {
  std::vector<campaign_entry> out;
  const ledger_row* best = nullptr;
  for (const auto& r : rows) {
    campaign_entry e;
    e.row = r;
    if (r.status == "failed") {
      e.verdict = "failed";
    } else if (r.status != "valid" || !r.value) {
      e.verdict = "invalid";
    } else if (!best) {
      e.verdict = "keep";  // the baseline
      best = &r;
    } else if (r.metric != best->metric || (!r.workload.empty() && !best->workload.empty() && r.workload != best->workload) ||
               (!r.load_shape.empty() && !best->load_shape.empty() && r.load_shape != best->load_shape)) {
      e.verdict = "not comparable";
    } else {
      const metric_def* def = find_metric(r.metric);
      bool higher = def ? def->higher_is_better : true;
      double ratio = *best->value != 0 ? *r.value / *best->value : 0;
      e.change = ratio - 1.0;
      // Relative half-widths of both intervals combined in quadrature (no interval: 0).
      auto hw = [](const ledger_row& x) {
        return x.ci_low && x.ci_high && *x.value != 0 ? (*x.ci_high - *x.ci_low) / 2.0 / std::fabs(*x.value) : 0.0;
      };
      double w = std::sqrt(hw(r) * hw(r) + hw(*best) * hw(*best));
      std::string v = verdict_of(ratio * (1 - w), ratio * (1 + w), noise, higher);
      e.verdict = v == "faster" ? "keep" : v == "slower" ? "discard" : v == "no change" ? "within noise" : "inconclusive";
      if (e.verdict == "keep") best = &r;
    }
    if (best) {
      e.best_line = best->line;
      e.best_value = best->value;
    }
    out.push_back(e);
  }
  return out;
}

std::string render_campaign(const std::vector<campaign_entry>& c, double noise) {
  std::ostringstream os;
  os << std::left << std::setw(6) << "line" << std::setw(22) << "time" << std::setw(20) << "label" << std::setw(16)
     << "metric" << std::right << std::setw(12) << "value" << std::setw(24) << "CI" << std::setw(9) << "change"
     << "  " << std::left << std::setw(15) << "verdict" << "best\n";
  for (const auto& e : c) {
    const auto& r = e.row;
    std::string label = r.label.empty() ? r.description : r.label;
    if (label.size() > 19) label = label.substr(0, 16) + "...";
    std::string ci = r.ci_low && r.ci_high ? "[" + fmt(*r.ci_low) + ", " + fmt(*r.ci_high) + "]" : "";
    std::ostringstream change;
    if (e.verdict != "keep" || e.best_line != r.line)
      if (e.change != 0) change << std::showpos << std::fixed << std::setprecision(1) << e.change * 100 << "%";
    os << std::left << std::setw(6) << r.line << std::setw(22) << r.time.substr(0, 21) << std::setw(20) << label
       << std::setw(16) << r.metric << std::right << std::setw(12) << (r.value ? fmt(*r.value) : "-") << std::setw(24)
       << ci << std::setw(9) << change.str() << "  " << std::left << std::setw(15) << e.verdict
       << (e.best_line ? "line " + std::to_string(*e.best_line) + " (" + fmt(*e.best_value) + ")" : "-") << "\n";
  }
  os << "(verdicts against the best valid row before each; noise ±" << fmt(noise * 100, 1) << "%)\n";
  return os.str();
}

json to_json(const std::vector<campaign_entry>& c) {
  json a = json::array();
  for (const auto& e : c) {
    const auto& r = e.row;
    a.push_back({{"line", r.line},
                 {"time", r.time},
                 {"label", r.label},
                 {"status", r.status},
                 {"config", r.config},
                 {"result", r.result},
                 {"metric", r.metric},
                 {"value", r.value ? json(*r.value) : json(nullptr)},
                 {"ci", r.ci_low && r.ci_high ? json::array({*r.ci_low, *r.ci_high}) : json(nullptr)},
                 {"trials", r.trials},
                 {"repo_commit", r.repo_commit},
                 {"repo_dirty", r.repo_dirty},
                 {"verdict", e.verdict},
                 {"change", e.change},
                 {"best_line", e.best_line ? json(*e.best_line) : json(nullptr)},
                 {"best_value", e.best_value ? json(*e.best_value) : json(nullptr)},
                 {"reasons", r.reasons}});
  }
  return a;
}

}  // namespace bp::bench
