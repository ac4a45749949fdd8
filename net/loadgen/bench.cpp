#include "net/loadgen/bench.hpp"
#include "configs/engine_kinds.hpp"
#include "net/loadgen/crosscheck.hpp"
#include "analysis/engine_metrics.hpp"
#include "net/loadgen/prefix_cache.hpp"
#include "net/loadgen/workloads.hpp"
#include "analysis/warnings.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <stdexcept>

#include "base/json_read.hpp"
#include "base/text.hpp"
#include "net/client/http_client.hpp"

#include "net/loadgen/load_points.hpp"

namespace bp::bench {

using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;

std::string workload_source::describe() const {
  if (!trace.empty()) return "trace " + trace + " (time scale " + fmt_ms(time_scale) + ")";
  if (!sessions.empty()) return "sessions " + sessions + (sharegpt.empty() ? "" : " from sharegpt " + sharegpt);
  if (!sharegpt.empty()) return "sharegpt " + sharegpt;
  if (prefix_groups > 0)
    return "prefix groups=" + std::to_string(prefix_groups) + " len=" + std::to_string(prefix_len) +
           (synthetic.empty() ? "" : " suffix " + synthetic);
  return "synthetic " + synthetic;
}

void check_workload(const options& o) {
  const workload_source& g = o.generated;
  if (!g.any()) return;
  if (!g.synthetic.empty()) workloads::parse_synthetic(g.synthetic);
  if (!g.sessions.empty()) workloads::parse_sessions(g.sessions);
  if (g.prefix_groups > 0 && g.prefix_len <= 0) throw std::invalid_argument("--prefix-groups needs --prefix-len P (tokens)");
  if (g.prefix_groups <= 0 && g.prefix_len > 0) throw std::invalid_argument("--prefix-len needs --prefix-groups G");
  if (!g.trace.empty()) workloads::load_trace(g.trace, g.time_scale, o.seed);
  if (!g.sharegpt.empty()) {
    if (!g.sessions.empty()) workloads::load_sharegpt_sessions(g.sharegpt);
    else workloads::load_sharegpt(g.sharegpt);
  }
}

namespace {

/// --model, or the first id the server's GET /v1/models names.
std::string resolve_model(const options& o, const std::string& base) {
  if (!o.model.empty()) return o.model;
  std::string err;
  auto r = net::http_fetch("GET", base + "/v1/models", "", std::chrono::seconds(30), err);
  if (!r || r->status != 200)
    throw std::runtime_error(base + "/v1/models: " + (r ? "HTTP " + std::to_string(r->status) : err) +
                             " (pass --model)");
  try {
    return base::parse_json(r->body, "GET /v1/models", base::engine_json_depth).at("data").at(0).at("id").get<std::string>();
  } catch (const std::exception&) {
    throw std::runtime_error(base + "/v1/models: no model id in the answer (pass --model)");
  }
}

/// What is sent: the queries (a file's, or a generated or imported workload's), the sessions and
/// a trace's arrivals where the workload has them, and what result.json says of it.
struct prepared_workload {
  std::vector<query> queries;
  std::vector<workloads::session> sessions;
  std::vector<double> trace_arrivals;
  json info = json::object();  ///< result.workload's extra keys for a generated workload
  std::string sha256;          ///< the file's bytes (a generated workload has its fingerprint instead)
};

/// A generated or imported workload (net/loadgen/workloads.hpp), counted by the engine's own
/// tokenizer where its kind has one (on its private port: the proxy forwards /v1 only).
prepared_workload generate_workload(const options& o, const std::optional<snapshot_ref>& before,
                                    const std::string& model) {
  prepared_workload w;
  const workload_source& g = o.generated;
  std::optional<workloads::token_counter> tok;
  std::string why = "no snapshot (no engine kind or port)";
  if (before) {
    std::string kind = before->doc.contains("engine") && before->doc["engine"].is_object()
                           ? before->doc["engine"].value("kind", std::string())
                           : std::string();
    tok = workloads::engine_token_counter(workloads::engine_base_url(before->doc), kind, model, &why);
  }
  const workloads::token_counter* tp = tok ? &*tok : nullptr;
  w.info["tokens_counted_by"] = tok ? tok->source : "estimated (" + why + ")";
  std::size_t n = static_cast<std::size_t>(
      o.load.requests > 0 ? o.load.requests : o.num_requests > 0 ? o.num_requests : kDefaultGeneratedRequests);
  n = std::min<std::size_t>(n, kMaxGeneratedRequests) + static_cast<std::size_t>(std::max(0, o.warmup));
  std::size_t skipped = 0;
  if (!g.trace.empty()) {
    auto tr = workloads::load_trace(g.trace, g.time_scale, o.seed, tp, &w.sha256);
    w.queries = std::move(tr.queries);
    w.trace_arrivals = std::move(tr.arrival_ms);
    w.info["kind"] = "trace";
    w.info["time_scale"] = g.time_scale;
  } else if (!g.sessions.empty()) {
    if (!g.sharegpt.empty()) {
      auto spec = workloads::parse_sessions(g.sessions);
      w.sessions = workloads::load_sharegpt_sessions(g.sharegpt, spec.think_ms, &w.sha256, tp, &skipped);
    } else {
      w.sessions = workloads::synthetic_sessions(workloads::parse_sessions(g.sessions), n, o.seed, tp);
    }
    w.info["kind"] = "sessions";
    for (const auto& se : w.sessions) w.queries.push_back(se.turns.at(0));
  } else if (!g.sharegpt.empty()) {
    w.queries = workloads::load_sharegpt(g.sharegpt, &w.sha256, tp, &skipped);
    w.info["kind"] = "sharegpt";
  } else if (g.prefix_groups > 0) {
    auto spec = g.synthetic.empty() ? workloads::synthetic_spec{} : workloads::parse_synthetic(g.synthetic);
    w.queries = workloads::prefix_workload(g.prefix_groups, g.prefix_len, spec, n, o.seed, tp);
    w.info["kind"] = "prefix";
    w.info["prefix_groups"] = g.prefix_groups;
    w.info["prefix_len"] = g.prefix_len;
  } else {
    w.queries = workloads::synthetic(workloads::parse_synthetic(g.synthetic), n, o.seed, tp);
    w.info["kind"] = "synthetic";
  }
  if (skipped > 0) w.info["skipped_conversations"] = skipped;
  if (w.queries.empty()) throw std::runtime_error(g.describe() + ": no requests");
  w.info["spec"] = g.describe();
  return w;
}

/// The points measured first, and how many requests each sends (`per_point`); a sweep adds its
/// rates after its first two, the capacity search its refined points after all of them.
std::vector<load_point> plan_points(const options& o, const prepared_workload& w, long& per_point) {
  const load_profile& prof = o.load;
  per_point = prof.requests > 0     ? prof.requests
              : o.num_requests > 0 ? o.num_requests
                                   : static_cast<long>(w.queries.size()) * std::max(1, o.repeats);
  if (prof.duration_s > 0 && prof.requests <= 0) per_point = kMaxRequestsPerPoint;
  std::vector<load_point> plan = prof.points;
  if (prof.is_sweep()) {
    load_point t;
    t.how = load_point::kind::throughput;
    t.value = 0;
    plan = {load_point{}, t};
  }
  if (!w.trace_arrivals.empty()) {
    // A trace brings its own schedule: one open-loop point, request i at arrival i.
    const auto& a = w.trace_arrivals;
    load_point p;
    p.how = load_point::kind::trace;
    p.value = a.size() > 1 && a.back() > 0 ? static_cast<double>(a.size() - 1) / (a.back() / 1000.0) : 0;
    plan = {p};
    per_point = static_cast<long>(a.size());
  }
  if (!w.sessions.empty()) per_point = std::min<long>(per_point, static_cast<long>(w.sessions.size()));
  if (plan.empty()) {
    load_point p;
    if (o.rate > 0) {
      p.how = load_point::kind::rate;
      p.value = o.rate;
    } else if (o.concurrency > 1) {
      p.how = load_point::kind::concurrency;
      p.value = o.concurrency;
    }
    plan.push_back(p);
  }
  return plan;
}

/// The engine's own counters (its Prometheus /metrics on its private port, named by /meta),
/// scraped right before and right after the measured requests.
struct engine_scrape {
  std::string url, kind;
  std::string before, after;
  std::string cut_before, cut_after;  ///< why a scrape was cut short; empty when it was not

  explicit engine_scrape(const std::optional<snapshot_ref>& snap) {
    if (!snap || !snap->doc.contains("engine") || !snap->doc["engine"].is_object()) return;
    const json& e = snap->doc["engine"];
    kind = e.value("kind", std::string());
    if (const engine_kind* k = find_engine_kind(kind); k && !k->metrics_path.empty() && e.value("port", 0) > 0)
      url = "http://127.0.0.1:" + std::to_string(e.value("port", 0)) + k->metrics_path;
  }
  std::string scrape(std::string& cut) const {
    return url.empty() ? "" : scrape_engine_metrics(url, kMetricsMaxBytes, std::chrono::milliseconds(kMetricsTimeoutMs), cut);
  }
};

/// result.engine_metrics: the counters' deltas checked against the requests bench counted.
void add_engine_counters(json& result, const engine_scrape& sc, const std::vector<request_result>& results,
                         const std::vector<query>& queries, const options& o) {
  if (sc.url.empty()) return;
  double prompt = 0, output = 0;
  bool server_counts = true;
  for (const auto& r : results)
    if (r.ok) {
      prompt += r.prompt_tokens;
      output += r.output_tokens;
      server_counts = server_counts && r.usage_from_server;
    }
  json em = engine_metrics(sc.kind, sc.before, sc.after, server_counts ? prompt : -1, server_counts ? output : -1);
  // Requests that failed after the engine answered 200 were counted by the engine too.
  std::vector<failed_request_tokens> failed;
  for (const auto& r : results)
    if (!r.ok && r.http_status == 200) {
      const json& q = queries[static_cast<std::size_t>(r.query_index) % queries.size()].request;
      int cap = o.max_tokens ? *o.max_tokens
                : q.contains("max_tokens") && q["max_tokens"].is_number_integer() ? q["max_tokens"].get<int>()
                : q.contains("max_completion_tokens") && q["max_completion_tokens"].is_number_integer()
                    ? q["max_completion_tokens"].get<int>()
                    : -1;
      failed.push_back({r.usage_from_server ? r.output_tokens : r.content_events, cap,
                        r.usage_from_server ? r.prompt_tokens : -1});
    }
  if (em.contains("cross_check")) account_failed_requests(em["cross_check"], failed);
  em["url"] = sc.url;
  em["raw"] = {{"before", sc.before}, {"after", sc.after}};  // write_result moves them to files
  if (!sc.cut_before.empty() || !sc.cut_after.empty()) {
    // An answer cut at the size or time bound is said to be cut, never "answered no samples".
    em["cut"] = {{"before", sc.cut_before.empty() ? json(nullptr) : json(sc.cut_before)},
                 {"after", sc.cut_after.empty() ? json(nullptr) : json(sc.cut_after)}};
    std::string why = !sc.cut_after.empty() ? sc.cut_after : sc.cut_before;
    if (em.contains("error"))
      em["error"] = "the engine's answer at " + sc.url + " was cut (" + why + ") and what was read of it held no samples";
    else
      result["warnings"].push_back("engine counters: the engine's answer at " + sc.url + " was cut (" + why +
                                   "): the counters come from the part read before the cut");
  }
  for (const auto& w : engine_metric_warnings(em)) result["warnings"].push_back(w);
  result["engine_metrics"] = em;
}

/// result.client_overhead_ms: the client checked against the proxy's stopwatch, request by request.
void add_client_overhead(json& result, const std::string& base, const std::vector<request_result>& results,
                         long completed, const options& o) {
  std::vector<std::uint64_t> ids;
  for (const auto& r : results)
    if (r.ok && r.proxy_id) ids.push_back(r.proxy_id);
  json co;
  if (ids.empty()) {
    co = {{"matched", 0}, {"requests", completed},
          {"note", "the server sent no x-bench-proxy-request-id: not a bench-proxy (or an older one)"}};
  } else {
    std::string cerr;
    auto recs = fetch_proxy_records(base, ids, cerr);
    std::vector<timed_pair> pairs;
    for (const auto& r : results) {
      if (!r.ok || !r.proxy_id) continue;
      auto it = recs.find(r.proxy_id);
      if (it == recs.end() || !it->second["ttft_ms"].is_number() || !it->second["e2e_ms"].is_number()) continue;
      pairs.push_back({r.ttft_ms, r.e2e_ms, it->second["ttft_ms"].get<double>(), it->second["e2e_ms"].get<double>()});
    }
    co = client_overhead(pairs, static_cast<std::size_t>(completed));
    if (!cerr.empty()) co["error"] = cerr;
    if (o.read_delay_ms > 0) co["read_delay_ms"] = o.read_delay_ms;
  }
  for (const auto& w : client_overhead_warnings(co)) result["warnings"].push_back(w);
  result["client_overhead_ms"] = co;
}

/// result.load of a curve: its points, knee, saturation throughput and capacity; the headline and
/// warnings then come from the points (a curve's pooled numbers mix loads).
void add_curve(json& result, const std::vector<point_outcome>& points, const options& o, long per_point) {
  const load_profile& prof = o.load;
  json per_point_json = prof.duration_s > 0 && prof.requests <= 0 ? json(nullptr) : json(per_point);
  json load = {{"profile", prof.text}, {"burstiness", prof.burstiness}, {"duration_s", prof.duration_s},
               {"requests_per_point", per_point_json}, {"warmup_window_s", prof.warmup_window_s},
               {"cooldown_window_s", prof.cooldown_window_s}, {"max_inflight", prof.max_inflight}};
  json pts = curve_points(points, o, true);
  std::vector<double> x, y;
  for (const auto& p : pts)
    if (p["summary"].value("completed", 0L) > 0) {
      x.push_back(p["load"].get<double>());
      y.push_back(p["summary"].value("total_output_tps", 0.0));
    }
  load["knee"] = knee(x, y);
  load["saturation_throughput"] = y.empty() ? json(nullptr) : json(*std::max_element(y.begin(), y.end()));
  json objectives = json::array();
  for (const auto& ob : o.objectives) objectives.push_back(ob.text);
  load["objectives"] = objectives;
  if (!o.objectives.empty()) load["capacity"] = capacity(pts, o.objectives);
  load["points"] = pts;
  result["load"] = load;
  result["summary"]["pooled_over_points"] = pts.size();
  result["summary"]["headline"] = headline_json(result, o);
  for (const auto& p : pts)
    for (const auto& w : p.value("warnings", json::array()))
      result["warnings"].push_back(p["label"].get<std::string>() + ": " + w.get<std::string>());
}

}  // namespace

json run(const options& o) {
  prepared_workload w;
  if (!o.generated.any()) w.queries = load_workload(o.queries_path, &w.sha256);
  std::string base = o.url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  net::url_parts up;
  std::string err;
  if (!net::parse_url(base, up, err)) throw std::runtime_error(err);

  json result;
  result["schema_version"] = 1;
  result["kind"] = "bench-proxy bench result";
  result["bench_proxy_version"] = BENCH_PROXY_VERSION;
  result["metric_definitions"] = "docs/metrics.md (bench-proxy " BENCH_PROXY_VERSION ")";
  result["started_at"] = base::utc_now_iso();
  result["url"] = base;

  int meta_status = 0;
  auto before = fetch_snapshot(base, err, &meta_status, o.known_snapshot);
  if (!before && o.require_snapshot)
    throw std::runtime_error(base + ": no provenance snapshot: " + err +
                             (meta_status == 503 ? " (not published yet: wait for /healthz state 'ready')" : ""));
  std::string model = resolve_model(o, base);
  result["model"] = model;
  if (o.generated.any()) w = generate_workload(o, before, model);

  // The request bodies: one per query, in file order; request k of a point is query
  // (warmup + k) mod the number of queries, so every point sends the same sequence.
  std::vector<std::string> bodies;
  std::vector<int> lines;
  auto finish = [&](json req) {
    req["model"] = model;
    if (o.max_tokens) req["max_tokens"] = *o.max_tokens;
    if (o.stream) {
      req["stream"] = true;
      req["stream_options"] = {{"include_usage", true}};
    }
    return req.dump();
  };
  for (const auto& q : w.queries) {
    bodies.push_back(finish(q.request));
    lines.push_back(q.line);
  }
  std::string target = "http://" + up.host + ":" + std::to_string(up.port) + "/v1/chat/completions";

  // Warmup: sequential, excluded from every statistic.
  {
    client c(target);
    for (int i = 0; i < o.warmup; ++i) {
      auto r = c.send(bodies[static_cast<std::size_t>(i) % bodies.size()], o.stream, o.timeout_s);
      if (!r.ok) throw std::runtime_error("warmup request " + std::to_string(i + 1) + " failed: " + r.error);
    }
  }
  // Prefix-cache hygiene: the measured requests start from an empty prefix cache. The engine's
  // kind and private port come from the snapshot; the engine is on this host, behind the proxy.
  json reset = nullptr;
  if (o.reset_prefix_cache) {
    if (!before || !before->doc.contains("engine") || !before->doc["engine"].is_object())
      throw std::invalid_argument("--reset-prefix-cache needs a bench-proxy with /meta (the engine's kind and port)");
    const json& e = before->doc["engine"];
    reset = reset_prefix_cache(e.value("kind", std::string()), "127.0.0.1", e.value("port", 0), 30);
  }
  engine_scrape counters(before);
  counters.before = counters.scrape(counters.cut_before);

  // The load points (net/loadgen/load_profile.hpp, load_points.hpp): each a full measurement of its own.
  const load_profile& prof = o.load;
  long per_point = 0;
  std::vector<load_point> plan = plan_points(o, w, per_point);
  point_context ctx{o, bodies, lines, target, 1, nullptr, nullptr, {}, 0};
  ctx.schedule = &w.trace_arrivals;
  ctx.sessions = &w.sessions;
  ctx.finish = finish;
  ctx.body_offset = w.trace_arrivals.empty() ? o.warmup : 0;
  std::vector<point_outcome> points;
  auto run_start = clock_type::now();
  auto measure = [&](const load_point& pt) {
    if (o.cancel && o.cancel->load()) return false;
    ctx.seed = o.seed + 7919 * points.size();
    points.push_back(run_point(ctx, pt, per_point, static_cast<long>(points.size())));
    return true;
  };
  for (const auto& pt : plan)
    if (!measure(pt)) break;
  if (prof.is_sweep() && points.size() == 2) {
    // sweep[:N]: N open-loop rates evenly between the synchronous and the saturation rates.
    double sync_rate = points[0].request_rate(), max_rate = points[1].request_rate();
    for (double r : sweep_rates(sync_rate, max_rate, prof.sweep_rates)) {
      load_point p;
      p.how = load_point::kind::rate;
      p.value = r;
      if (!measure(p)) break;
    }
  }
  double wall_s = std::chrono::duration<double>(clock_type::now() - run_start).count();
  bool curve = prof.is_curve();
  if (curve && !o.objectives.empty()) {
    // The capacity search: bisect the load between the capacity's point and the next, failing one.
    for (int i = 0; i < o.capacity_refine; ++i) {
      json pts = curve_points(points, o, false);
      bool whole = !points.empty() && !prof.is_sweep() && !points[0].point.open_loop();
      auto mid = refine_load(pts, o.objectives, whole);
      if (!mid) break;
      load_point p;
      p.how = prof.is_sweep() || points[0].point.open_loop() ? load_point::kind::rate : load_point::kind::concurrency;
      p.value = *mid;
      p.refined = true;
      if (!measure(p)) break;
    }
  }
  counters.after = counters.scrape(counters.cut_after);
  // Only its id: the same snapshot is a 304, nothing to transfer or parse.
  auto after = fetch_snapshot_id(base, before ? before->id : std::string(), err);

  // The result: every request, the summary, the workload, and what the points say.
  std::vector<request_result> results;
  for (auto& pt : points)
    for (auto& r : pt.results) {
      r.index = static_cast<int>(results.size());
      results.push_back(r);
    }
  long total = static_cast<long>(results.size());
  int conc = plan.size() == 1 && plan[0].how == load_point::kind::concurrency ? static_cast<int>(plan[0].value)
                                                                              : std::max(1, o.concurrency);
  json reqs = json::array();
  for (auto& r : results) {
    if (r.error.empty() && !r.ok) r.error = "cancelled: not sent";
    reqs.push_back(request_json(r));
  }
  json s = summarize_requests(results, wall_s, o);
  long completed = s["completed"].get<long>();
  json error_kinds = s["error_kinds"];
  s["concurrency"] = conc;
  s["rate"] = !curve && plan[0].how == load_point::kind::rate ? json(plan[0].value) : json(nullptr);
  result["summary"] = s;
  result["options"] = {{"queries", o.queries_path}, {"concurrency", conc}, {"rate", o.rate},
                       {"requests", prof.duration_s > 0 && prof.requests <= 0 ? json(nullptr) : json(per_point)},
                       {"repeats", o.repeats}, {"warmup", o.warmup},
                       {"stream", o.stream}, {"timeout_s", o.timeout_s}, {"read_delay_ms", o.read_delay_ms},
                       {"max_tokens", o.max_tokens ? json(*o.max_tokens) : json(nullptr)},
                       {"load", prof.text}};
  {
    json meta = json::array();
    for (const auto& q : w.queries) meta.push_back({{"line", q.line}, {"metadata", q.metadata}});
    result["workload"] = {{"path", o.queries_path}, {"sha256", w.sha256}, {"rows", w.queries.size()}, {"metadata", meta}};
    if (o.generated.any()) {
      result["workload"]["path"] = o.generated.describe();
      for (auto it = w.info.begin(); it != w.info.end(); ++it) result["workload"][it.key()] = it.value();
    }
    // The fingerprint (docs/workloads.md): the request bodies in workload order (each point sends
    // them cyclically) and the first point's planned arrivals when it is an open loop.
    std::vector<double> schedule;
    if (!points.empty() && points[0].point.open_loop()) schedule = points[0].planned;
    auto fp = w.sessions.empty() ? workloads::fingerprint(bodies, schedule) : workloads::fingerprint(w.sessions);
    result["workload_fingerprint"] = fp.to_json();
  }
  result["requests"] = reqs;
  if (!curve && !points.empty()) {
    // One load point: the result is that point (schedule and window only where they apply).
    json one = point_json(points[0], o, true);
    for (const char* k : {"schedule", "window", "saturation"})
      if (one.contains(k)) result[k] = one[k];
    if (one.contains("window")) {
      // The statistics are the window's requests only (the others stay listed, marked "window").
      json sw = one["summary"];
      for (const char* k : {"concurrency", "rate"}) sw[k] = s[k];
      result["summary"] = sw;
    }
  }
  result["summary"]["headline"] = headline_json(result, o);
  result["warnings"] = curve ? json::array() : json(result_warnings(result, o.stats.percentiles));
  if (curve) {
    add_curve(result, points, o, per_point);
  } else if (result.contains("schedule") && !result["schedule"].value("kept", true)) {
    result["warnings"].push_back(result["schedule"].value("warning", std::string("the client fell behind its schedule")));
  }
  add_engine_counters(result, counters, results, w.queries, o);
  add_client_overhead(result, base, results, completed, o);

  // Validity: every reason the numbers may not stand for the engine /meta describes.
  result["finished_at"] = base::utc_now_iso();
  result["valid"] = true;
  result["invalid_reasons"] = json::array();
  if (o.reset_prefix_cache) {
    result["prefix_cache_reset"] = reset;
    if (!reset.value("ok", false))
      add_invalid_reason(result, "the prefix cache was not reset: " + reset.value("error", std::string("unknown")));
  }
  bool cancelled = o.cancel && o.cancel->load();
  if (cancelled) add_invalid_reason(result, "interrupted");
  if (!before) {
    add_invalid_reason(result, "no snapshot before the run: " + err);
  } else if (!after && !cancelled) {
    add_invalid_reason(result, "no snapshot after the run (did the engine restart or the proxy stop?)");
  } else if (after && *after != before->id) {
    add_invalid_reason(result, "the snapshot changed during the run (" + before->id + " -> " + *after +
                                   "): another process answered");
  }
  if (completed == 0 && !cancelled) add_invalid_reason(result, "no request completed");
  long failed = total - completed;
  if (failed > 0 && !cancelled && static_cast<double>(failed) > o.max_error_rate * static_cast<double>(total)) {
    std::string kinds;
    for (auto it = error_kinds.begin(); it != error_kinds.end(); ++it)
      kinds += (kinds.empty() ? "" : ", ") + it.key() + ": " + std::to_string(it.value().get<long>());
    char rate[32];
    std::snprintf(rate, sizeof(rate), "%g", o.max_error_rate);
    add_invalid_reason(result, std::to_string(failed) + " of " + std::to_string(total) + " requests failed (" + kinds +
                                   "), above --max-error-rate " + rate);
  }
  result["snapshot_id"] = before ? json(before->id) : json(nullptr);
  result["snapshot_id_after"] = after ? json(*after) : json(nullptr);
  if (before) redact_like_snapshot(result, before->doc);
  result["snapshot"] = before ? std::move(before->doc) : json(nullptr);  // moved: megabytes with a large venv
  return result;
}

}  // namespace bp::bench
