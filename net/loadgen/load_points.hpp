#pragma once
/// One load point of bench (net/loadgen/load_profile.hpp says which): run it, closed loop or open
/// loop, and turn it into result.json's numbers (a point of result.load.points, or the whole
/// result when there is one point).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "net/loadgen/bench.hpp"
#include "net/loadgen/load_profile.hpp"
#include "net/loadgen/workloads.hpp"

namespace bp::bench {

/// What run_point needs besides the point.
struct point_context {
  const options& o;
  const std::vector<std::string>& bodies;
  const std::vector<int>& lines;
  std::string target;
  std::uint64_t seed = 1;
  const std::vector<double>* schedule = nullptr;             ///< a trace's arrivals (kind::trace)
  const std::vector<workloads::session>* sessions = nullptr;  ///< non-empty: each "request" is a session
  std::function<std::string(nlohmann::json)> finish;                    ///< model, stream and max_tokens into a body
  long body_offset = 0;                                       ///< request k sends body (k + offset) mod n
};

struct point_outcome {
  load_point point;
  std::vector<request_result> results;  ///< in the order they were due
  double wall_s = 0;                    ///< from the point's start to its last request's end
  double send_span_s = 0;               ///< from the point's start to its last send
  std::int64_t start_unix_us = 0;       ///< the point's start on the wall clock
  int threads = 0;                      ///< client threads the point used
  bool inflight_capped = false;         ///< open loop: every one of --max-inflight threads was busy once
  std::vector<double> planned;          ///< open loop: the planned send offsets (ms), as scheduled
  double request_rate() const {
    long ok = 0;
    for (const auto& r : results) ok += r.ok ? 1 : 0;
    return wall_s > 0 ? static_cast<double>(ok) / wall_s : 0;
  }
};

/// One load point: closed loop (sync, concurrency=N: N workers, each sends when its last
/// request ended) or open loop (each request at its planned time, on one of a pool of client
/// threads that grows up to --max-inflight; a request none is free for is sent late, and its
/// lateness recorded). `count` requests (a --duration bounds them too); `point_index` is the
/// point's number in the result.
point_outcome run_point(point_context& ctx, const load_point& pt, long count, long point_index);

/// One load point as result.load.points[i] (single: the parts of a one-point result).
nlohmann::json point_json(const point_outcome& p, const options& o, bool single);

/// result.load.points: every measured point in load order (full: with each point's requests' stats).
nlohmann::json curve_points(const std::vector<point_outcome>& points, const options& o, bool full);

/// A number of milliseconds with one decimal ("12.5").
std::string fmt_ms(double v);

}  // namespace bp::bench
