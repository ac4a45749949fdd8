#include "net/loadgen/summary.hpp"

#include "analysis/warnings.hpp"

namespace bp::bench {

using json = nlohmann::json;

json request_json(const request_result& r) {
  json j = {{"index", r.index},          {"query_line", r.query_line}, {"ok", r.ok},
            {"http_status", r.http_status}, {"start_ms", r.start_offset_ms}, {"e2e_ms", r.e2e_ms}};
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

void summarize_requests(json& result, std::vector<request_result>& results, const request_shape& shape,
                        const stats_options& stats) {
  const long total = shape.total;
  const double wall_s = shape.wall_s;
  std::vector<double> ttft, itl, tpot, e2e, tokens, tps, decode_tps;
  json reqs = json::array();
  json error_kinds = json::object();
  double total_tokens = 0;
  long completed = 0, server_usage = 0;
  for (auto& r : results) {
    if (r.error.empty() && !r.ok) r.error = "cancelled: not sent";
    reqs.push_back(request_json(r));
    if (!r.ok) {
      std::string kind = r.error.substr(0, r.error.find(':'));
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
  json s;
  s["requests"] = total;
  s["completed"] = completed;
  s["errors"] = total - completed;
  s["error_kinds"] = error_kinds;
  s["wall_s"] = wall_s;
  s["concurrency"] = shape.concurrency;
  s["rate"] = shape.rate > 0 ? json(shape.rate) : json(nullptr);
  s["streaming"] = shape.stream;
  s["usage_counted_by_server"] = completed > 0 && server_usage == completed;
  s["usage_source"] = server_usage == completed ? "server" : (server_usage == 0 ? "stream_events" : "mixed");
  // Uncertainty on every number (docs/metrics.md, "Uncertainty"): each metric with its spread,
  // the chosen percentiles and a seeded bootstrap interval of its median; throughput-type metrics
  // (bad tail low) also get p10 and p1.
  std::uint64_t metric_seed = stats.seed;
  auto stat = [&](const std::vector<double>& v, bool low_tail) {
    stats_options so = stats;
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
  s["statistics"] = {{"bootstrap_resamples", stats.bootstrap_resamples},
                     {"confidence", stats.confidence},
                     {"seed", stats.seed},
                     {"ci_method", "percentile bootstrap of the median over requests (one run: request-to-request "
                                   "noise only, not run-to-run noise)"}};
  s["request_throughput"] = wall_s > 0 ? completed / wall_s : 0;
  s["total_output_tps"] = wall_s > 0 ? total_tokens / wall_s : 0;
  result["summary"] = s;
  result["requests"] = reqs;
}

void add_headline_and_warnings(json& result, const std::string& headline, const slo_map& slo,
                               const stats_options& stats) {
  // The headline: the chosen metric with its interval, read back from exactly these requests.
  const metric_def* def = find_metric(headline);
  if (!def) throw std::invalid_argument("--headline: unknown metric '" + headline + "' (" + metric_names() + ")");
  std::string why;
  auto samples = samples_of(result, headline, slo, why);
  json h;
  if (samples) {
    h = to_json(estimator({*samples}).run(stats.bootstrap_resamples, stats.confidence, stats.seed + 100), *def);
  } else {
    h = {{"metric", def->name}, {"description", def->description}, {"unit", def->unit},
         {"higher_is_better", def->higher_is_better}, {"value", 0.0}, {"ci", nullptr}, {"trials", 1},
         {"error", why}};
  }
  result["summary"]["headline"] = h;
  result["warnings"] = result_warnings(result, stats.percentiles);
}

}  // namespace bp::bench
