#pragma once
/// The benchmark client: workload parsing, request execution with precise per-token timing,
/// statistics and the result record. Boost-free; blocking sockets on worker threads.
/// Metric definitions: docs/metrics.md (named in every result as "metric_definitions").
///
/// The parts: net/loadgen/workload_file.hpp (--queries files), stream_client.hpp (one timed
/// request, /meta, /metrics), summary.hpp (numbers and the result record), load_points.hpp (one
/// load point, closed or open loop) and workloads.hpp (generated and imported workloads); this
/// header holds the options and run(), which puts them together.
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "analysis/ledger.hpp"
#include "analysis/metrics.hpp"
#include "analysis/stats.hpp"
#include "analysis/curves.hpp"
#include "net/loadgen/load_profile.hpp"
#include "net/loadgen/stream_client.hpp"
#include "net/loadgen/summary.hpp"
#include "net/loadgen/workload_file.hpp"

namespace bp::bench {

/// A generated or imported workload instead of --queries (net/loadgen/workloads.hpp).
struct workload_source {
  std::string synthetic;     ///< --synthetic SPEC (also the suffix of --prefix-groups, the turns of --sessions)
  std::string sharegpt;      ///< --sharegpt FILE
  int prefix_groups = 0;     ///< --prefix-groups G (with --prefix-len P)
  int prefix_len = 0;
  std::string sessions;      ///< --sessions SPEC: synthetic multi-turn sessions (with --sharegpt: its conversations)
  std::string trace;         ///< --trace FILE (a schedule of its own)
  double time_scale = 1;     ///< --time-scale
  bool any() const { return !synthetic.empty() || !sharegpt.empty() || prefix_groups > 0 || !sessions.empty() || !trace.empty(); }
  /// What result.json's workload.path says: "synthetic input=...", "sharegpt FILE", ...
  std::string describe() const;
};

struct options {
  std::string url;  ///< http://HOST:PORT (the proxy)
  std::string queries_path;
  workload_source generated;  ///< any(): the workload is this, not queries_path
  std::string model;  ///< empty: first id of GET /v1/models
  int concurrency = 1;
  double rate = 0;  ///< requests/s, Poisson arrivals; 0 = as fast as the concurrency allows
  long num_requests = 0;  ///< 0: every query once per repeat
  int repeats = 1;
  int warmup = 1;  ///< requests sent first and excluded from the statistics
  bool stream = true;
  std::optional<int> max_tokens;
  double timeout_s = 600;
  std::uint64_t seed = 1;
  bool keep_text = false;
  bool require_snapshot = true;
  double max_error_rate = 0;  ///< failed/total above this makes the result invalid
  stats_options stats;        ///< percentiles, bootstrap resamples, confidence, seed
  std::string headline = "output_tps";  ///< the metric the last line, the TSV and sweep tables report
  slo_map slo;                          ///< thresholds for the goodput metric
  std::vector<slo_objective> objectives;  ///< --slo METRIC_pNN_ms<=MS: per point, and the capacity
  int capacity_refine = 2;              ///< extra points bisecting the load at the capacity's boundary
  load_profile load;                    ///< --load and its companions (points empty: --concurrency/--rate)
  bool reset_prefix_cache = false;      ///< empty the engine's prefix cache after warmup (needs /meta)
  double read_delay_ms = 0;             ///< a deliberately slow client: wait this long before each read
  std::function<void(long done, long total, long errors)> progress;
  const std::atomic<bool>* cancel = nullptr;  ///< set: no new request is started
  /// The snapshot this process published (run, sweep, try): when `url` confirms it by ETag, its
  /// document is taken from here instead of being fetched and parsed (fetch_snapshot).
  std::shared_ptr<snapshot_ref> known_snapshot;
};

/// Generated workloads (--synthetic, --prefix-groups, --sessions) without -n: this many requests.
inline constexpr long kDefaultGeneratedRequests = 100;
/// The most distinct requests (or sessions) a generated workload makes; a longer point cycles.
inline constexpr long kMaxGeneratedRequests = 1000000;

/// The most requests one load point sends when it runs for a --duration without --requests.
inline constexpr long kMaxRequestsPerPoint = 1000000;

/// Checks a generated or imported workload before anything starts: the specs parse, the files
/// load (without the engine's tokenizer). Throws std::invalid_argument / std::runtime_error naming
/// the option, file and line.
void check_workload(const options& o);

/// Runs the benchmark and returns result.json's content. Throws on setup errors (unreachable
/// server, bad workload); per-request failures are counted in the result.
nlohmann::json run(const options& o);

}  // namespace bp::bench
