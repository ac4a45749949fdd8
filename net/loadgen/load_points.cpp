#include "net/loadgen/load_points.hpp"

#include "analysis/warnings.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <limits>
#include <list>
#include <mutex>
#include <thread>

namespace bp::bench {

using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;


namespace {

std::int64_t unix_us_now() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

/// One load point: closed loop (sync, concurrency=N: N workers, each sends when its last
/// request ended) or open loop (each request at its planned time, on one of a pool of client
/// threads that grows up to --max-inflight; a request none is free for is sent late, and its
/// lateness recorded).
point_outcome run_point(point_context& ctx, const load_point& pt, long count, long point_index) {
  const options& o = ctx.o;
  const load_profile& prof = o.load;
  point_outcome out;
  out.point = pt;
  bool open = pt.open_loop();
  std::vector<double> planned;
  if (open) {
    std::size_t n = static_cast<std::size_t>(count);
    planned = pt.how == load_point::kind::trace && ctx.schedule
                  ? std::vector<double>(ctx.schedule->begin(),
                                        ctx.schedule->begin() + static_cast<long>(std::min(n, ctx.schedule->size())))
              : pt.how == load_point::kind::ramp
                  ? ramp_schedule(pt.ramp_shape, pt.value, pt.ramp_end, prof.burstiness, n, prof.duration_s, ctx.seed)
                  : arrival_schedule(pt.how == load_point::kind::rate ? pt.value : 0, prof.burstiness, n,
                                     prof.duration_s, ctx.seed);
    count = static_cast<long>(planned.size());
  }
  double duration_ms = prof.duration_s * 1000;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<request_result> results;
  results.reserve(static_cast<std::size_t>(std::min<long>(count, 100000)));
  std::atomic<long> next{0}, done{0}, errors{0};
  std::atomic<int> busy{0}, spawned{0}, alive{0};
  bool want_more = false;
  double last_send = 0;
  int cap = open ? std::max(1, prof.max_inflight) : 1;
  std::size_t nb = ctx.bodies.size();
  auto start = clock_type::now();
  out.start_unix_us = unix_us_now();
  auto elapsed_ms = [&] { return std::chrono::duration<double, std::milli>(clock_type::now() - start).count(); };
  auto worker = [&] {
    {
      client c(ctx.target);
      if (o.read_delay_ms > 0) c.set_read_delay_ms(o.read_delay_ms);
      for (;;) {
        if (o.cancel && o.cancel->load()) break;
        long i = next.fetch_add(1);
        if (i >= count) break;
        if (open && duration_ms > 0 && elapsed_ms() >= duration_ms) break;  // throughput for --duration
        if (open) {
          std::this_thread::sleep_until(start + std::chrono::microseconds(static_cast<long>(planned[static_cast<std::size_t>(i)] * 1000)));
          // Every thread busy sending: ask for one more, so the next request finds one free.
          if (++busy >= spawned.load() && spawned.load() < cap) {
            std::lock_guard<std::mutex> g(mu);
            want_more = true;
            cv.notify_all();
          }
        } else if (duration_ms > 0 && elapsed_ms() >= duration_ms) {
          break;
        }
        if (!ctx.sessions->empty()) {
          // A multi-turn session: each turn carries the history with the engine's actual answers,
          // after the session's think time; a failed turn ends the session.
          const auto& se = (*ctx.sessions)[static_cast<std::size_t>(i) % ctx.sessions->size()];
          std::vector<std::string> answers;
          for (std::size_t t = 0; t < se.turns.size(); ++t) {
            if (t > 0 && t - 1 < se.think_ms.size() && se.think_ms[t - 1] > 0)
              std::this_thread::sleep_for(std::chrono::microseconds(static_cast<long>(se.think_ms[t - 1] * 1000)));
            if (o.cancel && o.cancel->load()) break;
            double offset = elapsed_ms();
            auto r = c.send(ctx.finish(workloads::with_history(se, t, answers)), o.stream, o.timeout_s, true);
            answers.push_back(r.output_text);
            if (!o.keep_text) r.output_text.clear();
            r.index = static_cast<int>(i * 1000 + static_cast<long>(t));
            r.query_index = static_cast<int>(static_cast<std::size_t>(i) % ctx.sessions->size());
            r.query_line = static_cast<int>(t + 1);
            r.session_turn = static_cast<int>(t + 1);
            r.start_offset_ms = offset;
            r.planned_offset_ms = open && t == 0 ? planned[static_cast<std::size_t>(i)] : -1;
            r.point = static_cast<int>(point_index);
            bool ok = r.ok;
            if (!ok) errors++;
            std::lock_guard<std::mutex> g(mu);
            last_send = std::max(last_send, offset);
            results.push_back(std::move(r));
            if (!ok) break;
          }
          if (open) --busy;
          long d = ++done;
          if (o.progress) o.progress(d, duration_ms > 0 && !open ? 0 : count, errors.load());
          continue;
        }
        double offset = elapsed_ms();
        std::size_t q = static_cast<std::size_t>(i + ctx.body_offset) % nb;
        auto r = c.send(ctx.bodies[q], o.stream, o.timeout_s, o.keep_text);
        if (open) --busy;
        r.index = static_cast<int>(i);
        r.query_index = static_cast<int>(q);
        r.query_line = ctx.lines[q];
        r.start_offset_ms = offset;
        r.planned_offset_ms = open ? planned[static_cast<std::size_t>(i)] : -1;
        r.point = static_cast<int>(point_index);
        if (!r.ok) errors++;
        long d = ++done;
        std::lock_guard<std::mutex> g(mu);
        last_send = std::max(last_send, offset);
        results.push_back(std::move(r));
        if (o.progress) o.progress(d, duration_ms > 0 && !open ? 0 : count, errors.load());
      }
    }
    std::lock_guard<std::mutex> g(mu);
    --alive;
    cv.notify_all();
  };
  std::list<std::thread> pool;
  auto spawn = [&] {
    ++spawned;
    ++alive;
    pool.emplace_back(worker);
  };
  int first = open ? std::min(cap, 4) : std::max(1, static_cast<int>(pt.how == load_point::kind::sync ? 1 : pt.value));
  {
    std::unique_lock<std::mutex> lock(mu);
    for (int i = 0; i < first; ++i) spawn();
    // Open loop: grow the pool whenever every thread is busy; the point ends when all have left.
    while (alive.load() > 0) {
      cv.wait(lock, [&] { return want_more || alive.load() == 0; });
      if (want_more) {
        want_more = false;
        if (spawned.load() < cap) spawn();
        else out.inflight_capped = true;
      }
    }
  }
  for (auto& t : pool) t.join();
  if (open && busy.load() >= cap) out.inflight_capped = true;
  out.threads = spawned.load();
  out.wall_s = std::chrono::duration<double>(clock_type::now() - start).count();
  out.send_span_s = last_send / 1000.0;
  std::sort(results.begin(), results.end(), [](const request_result& a, const request_result& b) { return a.index < b.index; });
  // The measurement window: requests sent before --warmup-window or ending in the last
  // --cooldown-window are left out of the statistics and said to be (never silently dropped).
  if (prof.warmup_window_s > 0 || prof.cooldown_window_s > 0) {
    double span = duration_ms > 0 ? duration_ms : out.wall_s * 1000;
    double lo = prof.warmup_window_s * 1000, hi = span - prof.cooldown_window_s * 1000;
    for (auto& r : results) {
      double b = r.start_offset_ms, e = r.start_offset_ms + r.e2e_ms;
      if (e <= lo) r.window = "before";
      else if (b < lo) r.window = "straddles start";
      else if (b >= hi) r.window = "after";
      else if (e > hi) r.window = "straddles end";
    }
  }
  out.results = std::move(results);
  out.planned = std::move(planned);
  return out;
}

std::string fmt_ms(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f", v);
  return buf;
}

namespace {
json stats_of(std::vector<double> v, const options& o, std::uint64_t seed) {
  stats_options so = o.stats;
  so.seed = seed;
  return to_json(compute_stats(v, so), so);
}

}  // namespace

/// One load point as result.load.points[i] (or, for a single point, the parts of the result).
json point_json(const point_outcome& p, const options& o, bool single) {
  const load_profile& prof = o.load;
  json j;
  j["label"] = p.point.label();
  j["refined"] = p.point.refined;
  std::vector<request_result> in;
  for (const auto& r : p.results)
    if (r.window.empty()) in.push_back(r);
  double wall = p.wall_s;
  if (prof.warmup_window_s > 0 || prof.cooldown_window_s > 0) {
    double span = prof.duration_s > 0 ? prof.duration_s : p.wall_s;
    wall = std::max(0.0, span - prof.warmup_window_s - prof.cooldown_window_s);
    json w = {{"start_s", prof.warmup_window_s}, {"end_s", span - prof.cooldown_window_s}, {"measured", in.size()}};
    for (const char* k : {"before", "straddles start", "straddles end", "after"}) {
      long n = 0;
      for (const auto& r : p.results) n += r.window == k ? 1 : 0;
      w[k] = n;
    }
    w["note"] = "requests outside the window, or straddling one of its edges, are left out of this point's statistics";
    j["window"] = w;
  }
  json summary = summarize_requests(in, wall, o);
  summary["threads"] = p.threads;
  json doc = {{"summary", summary}, {"requests", json::array()}};
  for (const auto& r : in) doc["requests"].push_back(request_json(r));
  if (o.headline != "capacity") summary["headline"] = headline_json(doc, o);
  if (!single) {
    doc["summary"] = summary;
    for (const auto& w : result_warnings(doc, o.stats.percentiles)) {
      if (!j.contains("warnings")) j["warnings"] = json::array();
      j["warnings"].push_back(w);
    }
  }
  // Load on the x axis: workers, or requests/s; a sweep puts its sync and throughput points on
  // the rate axis at their measured rates.
  bool rate_axis = prof.is_sweep() || p.point.open_loop();
  double load = p.point.load();
  if (prof.is_sweep() && !(p.point.how == load_point::kind::rate)) load = p.request_rate();
  if (p.point.how == load_point::kind::throughput) load = p.request_rate();
  j["kind"] = p.point.how == load_point::kind::sync ? "sync"
              : p.point.how == load_point::kind::concurrency ? "concurrency"
              : p.point.how == load_point::kind::rate ? "rate"
              : p.point.how == load_point::kind::throughput ? "throughput" : "ramp";
  j["load"] = load;
  j["axis"] = rate_axis ? "req/s" : "concurrency";
  if (p.point.open_loop()) {
    // Schedule honesty (docs/metrics.md, "Open loop"): planned vs actual send times.
    std::vector<double> late, ttft_planned, e2e_planned;
    for (const auto& r : in) {
      double l = std::max(0.0, r.start_offset_ms - r.planned_offset_ms);
      late.push_back(l);
      if (r.ok) {
        ttft_planned.push_back(r.ttft_ms + l);
        e2e_planned.push_back(r.e2e_ms + l);
      }
    }
    json sc;
    double requested = p.point.how == load_point::kind::rate ? p.point.value : 0;
    if (p.point.how == load_point::kind::ramp) requested = p.results.size() / std::max(1e-9, prof.duration_s);
    std::size_t sent = p.results.size();
    double achieved = p.send_span_s > 0 && sent > 1 ? static_cast<double>(sent - 1) / p.send_span_s : 0;
    sc["requested_rate"] = requested > 0 ? json(requested) : json(nullptr);
    sc["planned_span_s"] = p.results.empty() ? 0.0 : p.results.back().planned_offset_ms / 1000.0;
    sc["achieved_rate"] = achieved;
    sc["sent"] = sent;
    sc["burstiness"] = prof.burstiness;
    sc["start_unix_us"] = p.start_unix_us;
    sc["threads"] = p.threads;
    sc["max_inflight"] = prof.max_inflight;
    sc["lateness_ms"] = stats_of(late, o, o.stats.seed + 11);
    sc["ttft_from_planned_ms"] = stats_of(ttft_planned, o, o.stats.seed + 12);
    sc["e2e_from_planned_ms"] = stats_of(e2e_planned, o, o.stats.seed + 13);
    std::vector<double> sl = late;
    std::sort(sl.begin(), sl.end());
    double p50 = sl.empty() ? 0 : percentile_sorted(sl, 50), p99 = sl.empty() ? 0 : percentile_sorted(sl, 99);
    bool behind_rate = requested > 0 && p.point.how == load_point::kind::rate && sc["planned_span_s"].get<double>() > 0 &&
                       achieved < 0.9 * (static_cast<double>(sent - 1) / sc["planned_span_s"].get<double>());
    bool kept = p50 <= 1.0 && p99 <= 10.0 && !behind_rate;
    sc["kept"] = kept;
    sc["rule"] = "kept: median lateness <= 1 ms, p99 <= 10 ms, and the achieved send rate at least 0.9 of the planned one";
    if (!kept) {
      char buf[320];
      std::snprintf(buf, sizeof(buf),
                    "the client fell behind its schedule: median lateness %.2f ms, p99 %.2f ms%s; latencies from the "
                    "planned send time (ttft_from_planned_ms) are the ones a user at this rate would see",
                    p50, p99, p.inflight_capped ? " (every one of --max-inflight threads was busy)" : "");
      sc["warning"] = buf;
      j["warnings"] = json::array({buf});
    }
    j["schedule"] = sc;
  }
  {
    std::vector<double> send, end, ttft;
    for (const auto& r : in) {
      send.push_back(r.start_offset_ms);
      end.push_back(r.ok || r.http_status > 0 ? r.start_offset_ms + r.e2e_ms : std::numeric_limits<double>::quiet_NaN());
      ttft.push_back(r.ok ? r.ttft_ms + (r.planned_offset_ms >= 0 ? std::max(0.0, r.start_offset_ms - r.planned_offset_ms) : 0)
                          : std::numeric_limits<double>::quiet_NaN());
    }
    // Over-saturation is an open-loop matter: a closed loop bounds the queue by its workers.
    json sat = p.point.open_loop() ? saturation(send, end, ttft)
                                   : json{{"over_saturated", nullptr},
                                          {"reason", "closed loop: the workers bound the requests in flight"}};
    if (sat["over_saturated"] == true) {
      std::string w = "over-saturated: TTFT and requests in flight grew over the point's duration (TTFT median " +
                      fmt_ms(sat["ttft_first_third_ms"].get<double>()) + " ms in the first third, " +
                      fmt_ms(sat["ttft_last_third_ms"].get<double>()) +
                      " ms in the last): the engine cannot keep this load, and its numbers depend on how long it ran";
      if (!j.contains("warnings")) j["warnings"] = json::array();
      j["warnings"].push_back(w);
    }
    j["saturation"] = sat;
  }
  json objs = json::array();
  std::uint64_t seed = o.stats.seed + 1000;
  for (const auto& ob : o.objectives) objs.push_back(objective_at(doc, ob, o.stats.bootstrap_resamples, o.stats.confidence, seed++));
  if (!o.objectives.empty()) j["objectives"] = objs;
  j["summary"] = summary;
  (void)single;
  return j;
}

/// result.load.points: every measured point in load order.
json curve_points(const std::vector<point_outcome>& points, const options& o, bool full) {
  json pts = json::array();
  for (std::size_t i = 0; i < points.size(); ++i) {
    json j = point_json(points[i], o, false);
    j["index"] = i;
    if (!full) j.erase("summary");
    pts.push_back(std::move(j));
  }
  std::stable_sort(pts.begin(), pts.end(), [](const json& a, const json& b) { return a["load"].get<double>() < b["load"].get<double>(); });
  return pts;
}

}  // namespace bp::bench
