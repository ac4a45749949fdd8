#include "analysis/engine_metrics.hpp"
#include "base/text.hpp"

#include <cmath>
#include <cstdlib>
#include <iomanip>
#include <sstream>

#include "configs/engine_kinds.hpp"

namespace bp::bench {

using json = nlohmann::json;

std::vector<prom_sample> parse_exposition(const std::string& text) {
  std::vector<prom_sample> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    prom_sample s;
    std::size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ' && line[i] != '\t') ++i;
    s.name = line.substr(0, i);
    if (i < line.size() && line[i] == '{') {
      ++i;
      bool ok = true;
      while (i < line.size() && line[i] != '}') {
        std::size_t eq = line.find('=', i);
        if (eq == std::string::npos || eq + 1 >= line.size() || line[eq + 1] != '"') {
          ok = false;
          break;
        }
        std::string key = line.substr(i, eq - i);
        std::string val;
        std::size_t j = eq + 2;
        for (; j < line.size() && line[j] != '"'; ++j) {
          if (line[j] == '\\' && j + 1 < line.size()) {
            ++j;
            val += line[j] == 'n' ? '\n' : line[j];
          } else {
            val += line[j];
          }
        }
        s.labels[key] = val;
        i = j + 1;
        if (i < line.size() && line[i] == ',') ++i;
      }
      if (!ok || i >= line.size()) continue;
      ++i;  // '}'
    }
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    std::string v = line.substr(i, line.find_first_of(" \t", i) - i);
    char* end = nullptr;
    s.value = std::strtod(v.c_str(), &end);
    if (s.name.empty() || end == v.c_str()) continue;
    out.push_back(std::move(s));
  }
  return out;
}

namespace {

/// Sum of the series `name` (optionally one value per `label`).
std::map<std::string, double> values(const std::vector<prom_sample>& samples, const engine_series& s, bool& present) {
  std::map<std::string, double> out;
  present = false;
  for (const auto& x : samples) {
    if (x.name != s.name) continue;
    present = true;
    std::string k = s.by_label.empty() ? "" : (x.labels.count(s.by_label) ? x.labels.at(s.by_label) : "");
    out[k] += x.value;
  }
  return out;
}

std::string fmt(double v, int prec) { return base::fixed(v, prec); }

}  // namespace

json engine_metrics(const std::string& kind, const std::string& before, const std::string& after,
                    double bench_prompt_tokens, double bench_output_tokens) {
  json m = {{"kind", kind}, {"series", json::object()}, {"absent", json::array()}, {"counter_reset", false}};
  const engine_kind* k = find_engine_kind(kind);
  if (!k || k->metrics.empty()) {
    m["error"] = "bench-proxy knows no /metrics series of the engine kind '" + kind + "'";
    return m;
  }
  m["names_hold_for"] = k->metrics_note;
  auto b = parse_exposition(before), a = parse_exposition(after);
  if (a.empty()) {
    m["error"] = "the engine's " + k->metrics_path + " answered no samples (" + k->metrics_note + ")";
    return m;
  }
  std::map<std::string, double> d;  // key -> delta (or end value), unlabelled series only
  for (const auto& s : k->metrics) {
    bool pb = false, pa = false;
    auto vb = values(b, s, pb);
    auto va = values(a, s, pa);
    if (!pa) {
      m["absent"].push_back(s.name);  // not exposed by this engine or version: absent, never zero
      continue;
    }
    json entry = {{"name", s.name}, {"type", s.counter ? "counter delta" : "gauge at the end"}};
    if (s.by_label.empty()) {
      double x = va[""];
      if (s.counter) {
        double y = pb ? vb[""] : 0;
        if (x < y) m["counter_reset"] = true;
        x -= y;
      }
      entry["value"] = x;
      d[s.key] = x;
    } else {
      json per = json::object();
      for (const auto& [label, x] : va) {
        double y = s.counter && vb.count(label) ? vb[label] : 0;
        if (s.counter && x < y) m["counter_reset"] = true;
        per[label] = s.counter ? x - y : x;
      }
      entry["by_" + s.by_label] = per;
    }
    m["series"][s.key] = entry;
  }
  json derived = json::object();
  auto has = [&](const char* key) { return d.count(key) > 0; };
  if (has("spec_drafts") && has("spec_accepted_tokens") && d["spec_drafts"] > 0) {
    derived["mean_acceptance_length"] = 1 + d["spec_accepted_tokens"] / d["spec_drafts"];
    if (has("spec_draft_tokens") && d["spec_draft_tokens"] > 0)
      derived["acceptance_rate"] = d["spec_accepted_tokens"] / d["spec_draft_tokens"];
    if (m["series"].contains("spec_accepted_per_position")) {
      json per = json::object();
      for (auto it = m["series"]["spec_accepted_per_position"]["by_position"].begin();
           it != m["series"]["spec_accepted_per_position"]["by_position"].end(); ++it)
        per[it.key()] = it.value().get<double>() / d["spec_drafts"];
      derived["acceptance_per_position"] = per;
    }
  }
  if (has("prefix_cache_queries") && has("prefix_cache_hits") && d["prefix_cache_queries"] > 0)
    derived["prefix_cache_hit_rate"] = d["prefix_cache_hits"] / d["prefix_cache_queries"];
  if (has("spec_accept_length")) derived["mean_acceptance_length"] = d["spec_accept_length"];
  if (has("cache_hit_rate")) derived["prefix_cache_hit_rate"] = d["cache_hit_rate"];
  if (has("preemptions")) derived["preemptions"] = d["preemptions"];
  m["derived"] = derived;
  // The engine's token counts against the bench's own: a difference means another client.
  json check = json::object();
  if (bench_output_tokens >= 0 && has("generation_tokens"))
    check["generation_tokens"] = {{"engine", d["generation_tokens"]}, {"bench", bench_output_tokens},
                                  {"equal", std::fabs(d["generation_tokens"] - bench_output_tokens) < 0.5}};
  if (bench_prompt_tokens >= 0 && has("prompt_tokens")) {
    double engine = d["prompt_tokens"] + (has("prompt_tokens_cached") ? d["prompt_tokens_cached"] : 0);
    check["prompt_tokens"] = {{"engine", engine}, {"bench", bench_prompt_tokens},
                              {"equal", std::fabs(engine - bench_prompt_tokens) < 0.5}};
  }
  m["cross_check"] = check;
  return m;
}

std::vector<std::string> engine_metric_warnings(const json& m) {
  std::vector<std::string> out;
  if (m.contains("error")) {
    out.push_back("engine counters: " + m["error"].get<std::string>());
    return out;
  }
  if (m.value("counter_reset", false))
    out.push_back("engine counters went backwards between the scrapes (an engine restart?): their deltas are invalid");
  const json checks = m.value("cross_check", json::object());
  for (auto it = checks.begin(); it != checks.end(); ++it)
    if (!it.value().value("equal", true))
      out.push_back("the engine counted " + fmt(it.value()["engine"].get<double>(), 0) + " " + it.key() +
                    " during the bench, the bench " + fmt(it.value()["bench"].get<double>(), 0) +
                    ": someone else used the engine, or the counts differ in meaning");
  return out;
}

std::string engine_metric_line(const json& m) {
  if (!m.is_object() || !m.contains("derived")) return {};
  const json& d = m["derived"];
  std::string s;
  if (d.contains("mean_acceptance_length")) s += "mean acceptance length " + fmt(d["mean_acceptance_length"], 2);
  if (d.contains("acceptance_rate")) s += std::string(s.empty() ? "" : ", ") + "acceptance " + fmt(100 * d["acceptance_rate"].get<double>(), 1) + "%";
  if (d.contains("prefix_cache_hit_rate"))
    s += std::string(s.empty() ? "" : ", ") + "prefix-cache hit rate " + fmt(100 * d["prefix_cache_hit_rate"].get<double>(), 1) + "%";
  if (d.contains("preemptions")) s += std::string(s.empty() ? "" : ", ") + "preemptions " + fmt(d["preemptions"], 0);
  return s;
}

}  // namespace bp::bench
