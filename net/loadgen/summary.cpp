#include "net/loadgen/summary.hpp"

#include <algorithm>
#include <set>

#include "analysis/metrics.hpp"
#include "analysis/stats.hpp"
#include "base/numbers.hpp"
#include "base/redact.hpp"
#include "base/text.hpp"
#include "net/loadgen/bench.hpp"

namespace bp::bench {

using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return percentile_sorted(v, p);
}

summary_stats summarize(std::vector<double> v) {
  summary_stats s;
  s.n = v.size();
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / static_cast<double>(v.size());
  s.median = percentile_sorted(v, 50);
  s.p90 = percentile_sorted(v, 90);
  s.p99 = percentile_sorted(v, 99);
  s.min = v.front();
  s.max = v.back();
  return s;
}

json to_json(const summary_stats& s) {
  if (s.n == 0) return {{"n", 0}};
  return {{"n", s.n}, {"mean", s.mean}, {"median", s.median}, {"p90", s.p90},
          {"p99", s.p99}, {"min", s.min}, {"max", s.max}};
}

// request_json, summarize_requests and headline_json are bench.hpp's: results from the proxy's
// records (net/loadgen/proxy_result.cpp) are made by the same code.
json request_json(const request_result& r) {
  json j = {{"index", r.index},          {"query_line", r.query_line}, {"ok", r.ok},
            {"http_status", r.http_status}, {"start_ms", r.start_offset_ms}, {"e2e_ms", r.e2e_ms}};
  if (r.point > 0) j["point"] = r.point;
  if (r.session_turn > 0) {
    j["session"] = r.query_index;
    j["turn"] = r.session_turn;
  }
  if (r.planned_offset_ms >= 0) {
    j["planned_ms"] = r.planned_offset_ms;
    j["lateness_ms"] = std::max(0.0, r.start_offset_ms - r.planned_offset_ms);
  }
  if (!r.window.empty()) j["window"] = r.window;
  if (r.proxy_id) j["proxy_request_id"] = r.proxy_id;
  if (!r.ok) {
    j["error"] = r.error;
    return j;
  }
  j["ttft_ms"] = r.ttft_ms;
  j["output_tokens"] = r.output_tokens;
  j["usage_source"] = r.usage_from_server ? "server" : "stream_events";
  j["prompt_tokens"] = r.prompt_tokens;
  j["content_events"] = r.content_events;
  j["itl_ms"] = r.itl_ms;
  if (!r.output_text.empty()) j["output_text"] = r.output_text;
  return j;
}

/// The summary of a set of requests (a result's, or one load point's): counts, each metric with
/// its spread and interval, throughput over `wall_s`.
json summarize_requests(const std::vector<request_result>& results, double wall_s, const options& o) {
  std::vector<double> ttft, itl, tpot, e2e, tokens, tps, decode_tps;
  json error_kinds = json::object();
  double total_tokens = 0;
  long completed = 0, server_usage = 0;
  for (const auto& r : results) {
    if (!r.ok) {
      std::string e = r.error.empty() ? "cancelled: not sent" : r.error;
      std::string kind = e.substr(0, e.find(':'));
      error_kinds[kind] = error_kinds.value(kind, 0) + 1;
      continue;
    }
    completed++;
    if (r.usage_from_server) server_usage++;
    ttft.push_back(r.ttft_ms);
    e2e.push_back(r.e2e_ms);
    tokens.push_back(r.output_tokens);
    total_tokens += r.output_tokens;
    for (double g : r.itl_ms) itl.push_back(g);
    if (r.e2e_ms > 0) tps.push_back(r.output_tokens / (r.e2e_ms / 1000.0));
    if (r.output_tokens > 1 && r.e2e_ms > r.ttft_ms) {
      tpot.push_back((r.e2e_ms - r.ttft_ms) / (r.output_tokens - 1));
      decode_tps.push_back((r.output_tokens - 1) / ((r.e2e_ms - r.ttft_ms) / 1000.0));
    }
  }
  long total = static_cast<long>(results.size());
  json s;
  s["requests"] = total;
  s["completed"] = completed;
  s["errors"] = total - completed;
  s["error_kinds"] = error_kinds;
  s["wall_s"] = wall_s;
  s["concurrency"] = std::max(1, o.concurrency);
  s["rate"] = o.rate > 0 ? json(o.rate) : json(nullptr);
  s["streaming"] = o.stream;
  s["usage_counted_by_server"] = completed > 0 && server_usage == completed;
  s["usage_source"] = server_usage == completed ? "server" : (server_usage == 0 ? "stream_events" : "mixed");
  // Uncertainty on every number (docs/metrics.md, "Uncertainty"): each metric with its spread,
  // the chosen percentiles and a seeded bootstrap interval of its median; throughput-type metrics
  // (bad tail low) also get p10 and p1.
  std::uint64_t metric_seed = o.stats.seed;
  auto stat = [&](const std::vector<double>& v, bool low_tail) {
    stats_options so = o.stats;
    so.low_tail = low_tail;
    so.seed = metric_seed++;
    return to_json(compute_stats(v, so), so);
  };
  s["ttft_ms"] = stat(ttft, false);
  s["itl_ms"] = stat(itl, false);
  s["tpot_ms"] = stat(tpot, false);
  s["e2e_ms"] = stat(e2e, false);
  s["output_tokens"] = stat(tokens, false);
  s["output_tps"] = stat(tps, true);
  s["decode_tps"] = stat(decode_tps, true);
  s["statistics"] = {{"bootstrap_resamples", o.stats.bootstrap_resamples},
                     {"confidence", o.stats.confidence},
                     {"seed", o.stats.seed},
                     {"ci_method", "percentile bootstrap of the median over requests (one run: request-to-request "
                                   "noise only, not run-to-run noise)"}};
  s["request_throughput"] = wall_s > 0 ? completed / wall_s : 0;
  s["total_output_tps"] = wall_s > 0 ? total_tokens / wall_s : 0;
  return s;
}

/// The headline (summary.headline): the chosen metric with its interval, read back from exactly
/// these requests; capacity takes its interval from the curve's points.
json headline_json(const json& doc, const options& o) {
  const metric_def* def = find_metric(o.headline);
  if (!def) throw std::invalid_argument("--headline: unknown metric '" + o.headline + "' (" + metric_names() + ")");
  std::string why;
  auto samples = samples_of(doc, o.headline, o.slo, why);
  json h;
  if (samples) {
    h = to_json(estimator({*samples}).run(o.stats.bootstrap_resamples, o.stats.confidence, o.stats.seed + 100), *def);
  } else {
    h = {{"metric", def->name}, {"description", def->description}, {"unit", def->unit},
         {"higher_is_better", def->higher_is_better}, {"value", 0.0}, {"ci", nullptr}, {"trials", 1},
         {"error", why}};
  }
  if (def->name == "capacity" && samples && doc.contains("load")) {
    const json& cap = doc["load"]["capacity"];
    h["unit"] = cap.value("axis", std::string("load"));
    if (cap.contains("ci") && cap["ci"].is_array() && cap["ci"].size() == 2 && cap["ci"][0].is_number() &&
        cap["ci"][1].is_number()) {
      h["ci"] = cap["ci"];
      h["ci_method"] = "from the load points' intervals (analysis/curves.hpp)";
    }
    h["text"] = cap.value("text", std::string());
  }
  return h;
}

namespace {
void collect_digests(const json& j, const std::string& key_id, std::set<std::string>& out) {
  if (j.is_object()) {
    if (j.value("redacted", false) && j.contains("hmac_sha256") && j.value("key_id", "") == key_id) {
      out.insert(j["hmac_sha256"].get<std::string>());
      return;
    }
    for (const auto& v : j) collect_digests(v, key_id, out);
  } else if (j.is_array()) {
    for (const auto& v : j) collect_digests(v, key_id, out);
  }
}
void redact_matching(json& j, const base::redactor& red, const std::set<std::string>& digests) {
  if (j.is_string()) {
    const auto& s = j.get_ref<const std::string&>();
    if (s.size() >= base::min_secret_length && digests.count(red.digest(s))) j = red.redacted_value(s);
  } else if (j.is_object() || j.is_array()) {
    for (auto& v : j) redact_matching(v, red, digests);
  }
}
}  // namespace

void redact_like_snapshot(json& result, const json& snapshot) {
  // The bench never sees the config's secrets, but the snapshot names them by keyed digest: any
  // string of the result whose digest under the same key matches (a model name given as a
  // secret, echoed by /v1/models) is redacted the same way.
  base::redactor red({}, base::secret_key());
  std::set<std::string> digests;
  collect_digests(snapshot, red.key_id(), digests);
  if (digests.empty()) return;
  for (auto it = result.begin(); it != result.end(); ++it)
    if (it.key() != "snapshot" && it.key() != "requests") redact_matching(it.value(), red, digests);
}

void add_invalid_reason(json& result, const std::string& reason) {
  auto& reasons = result["invalid_reasons"];
  if (!reasons.is_array()) reasons = json::array();
  for (const auto& r : reasons)
    if (r == reason) return;
  reasons.push_back(reason);
  result["valid"] = false;
  std::string joined;
  for (const auto& r : reasons) joined += (joined.empty() ? "" : "; ") + r.get<std::string>();
  result["invalid_reason"] = joined;
}

std::string headline_line(const json& result) {
  if (result.is_null()) return "failed: no result";
  if (!result.value("valid", false)) {
    // One line: each reason by its first line.
    std::string line;
    for (const auto& r : result.value("invalid_reasons", json::array())) {
      std::string s = r.get<std::string>();
      line += (line.empty() ? "" : "; ") + s.substr(0, s.find('\n'));
    }
    return "invalid: " + (line.empty() ? std::string("unknown reason") : line);
  }
  // A headline without a number (a capacity below the lowest load measured) says so in words.
  const json h = result.value("summary", json::object()).value("headline", json::object());
  if (h.is_object() && h.contains("error") && h["error"].is_string())
    return "no " + h.value("metric", std::string("headline")) + ": " + h["error"].get<std::string>();
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.2f", headline(result));
  return buf;
}

double headline(const json& result) {
  try {
    return result.at("summary").at("headline").at("value").get<double>();
  } catch (const std::exception&) {
    return 0;
  }
}

}  // namespace bp::bench
