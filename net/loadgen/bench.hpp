#pragma once
/// The benchmark client: workload parsing, request execution with precise per-token timing,
/// statistics and the result record. Boost-free; blocking sockets on worker threads.
/// Metric definitions: docs/metrics.md (named in every result as "metric_definitions").
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "analysis/ledger.hpp"
#include "analysis/metrics.hpp"
#include "analysis/stats.hpp"
#include "analysis/curves.hpp"
#include "net/loadgen/load_profile.hpp"

namespace bp::bench {

/// One workload row: the OpenAI request fields (sent) and everything else (kept, never sent).
struct query {
  int line = 0;               ///< 1-based line in the workload file
  nlohmann::json request;     ///< chat completion request body without model/stream
  nlohmann::json metadata;    ///< other columns/fields
};

/// Loads CSV (header row; `prompt` or `messages` column required) or JSONL (one object per line;
/// `messages` or `prompt` required). Throws std::runtime_error naming file:line on bad rows.
/// `sha256`, when given, receives the digest of exactly the bytes parsed.
std::vector<query> load_workload(const std::string& path, std::string* sha256 = nullptr);

/// Fields of an OpenAI chat completion request that bench sends; anything else is metadata.
bool is_request_field(const std::string& name);

/// Server-Sent Events splitter: feed body bytes, get each event's data (joined data: lines).
class sse_parser {
 public:
  void feed(std::string_view bytes, const std::function<void(const std::string& data)>& on_event);

 private:
  std::string buf_;
};

struct request_result {
  int index = 0;
  int query_line = 0;
  bool ok = false;
  std::string error;         ///< "http 500", "timeout", "broken stream: ...", "connect: ..."
  int http_status = 0;
  double ttft_ms = 0;        ///< send -> first content event
  double e2e_ms = 0;         ///< send -> end of response
  std::vector<double> itl_ms;  ///< gaps between consecutive content events
  int output_tokens = 0;
  bool usage_from_server = false;
  int prompt_tokens = 0;
  int content_events = 0;
  double start_offset_ms = 0;  ///< when it was sent, relative to its load point's start
  double planned_offset_ms = -1;  ///< open loop: when it was due (relative to the point's start); -1: closed loop
  int point = 0;               ///< its load point (result.load.points)
  int query_index = 0;         ///< which query (0-based, in file order) it sent; sessions: which session
  int session_turn = 0;        ///< sessions: the turn (1-based); 0 otherwise
  std::string window;          ///< why it is outside the point's measurement window ("" inside)
  std::uint64_t proxy_id = 0;  ///< x-bench-proxy-request-id (0: the server is not bench-proxy)
  std::string output_text;     ///< kept only with keep_text
};

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
};

struct summary_stats {
  std::size_t n = 0;
  double mean = 0, median = 0, p90 = 0, p99 = 0, min = 0, max = 0;
};
summary_stats summarize(std::vector<double> v);
nlohmann::json to_json(const summary_stats& s);

/// Percentile with linear interpolation between closest ranks (numpy's default).
double percentile(std::vector<double> values, double p);

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

/// One request as result.json's `requests` array holds it.
nlohmann::json request_json(const request_result& r);
/// The summary of a set of requests (a result's, a load point's, or the proxy's records of a
/// client's: net/loadgen/proxy_result.hpp): counts and error kinds (a failed request without an
/// error text counts as "cancelled: not sent"), each metric with its spread and interval, throughput
/// over `wall_s`; `o` gives the statistics options, concurrency, rate and streaming.
nlohmann::json summarize_requests(const std::vector<request_result>& results, double wall_s, const options& o);
/// summary.headline: `o.headline` with its interval, read back from `doc`'s requests.
nlohmann::json headline_json(const nlohmann::json& doc, const options& o);

/// Runs the benchmark and returns result.json's content. Throws on setup errors (unreachable
/// server, bad workload); per-request failures are counted in the result.
nlohmann::json run(const options& o);

/// One request on an open connection (exposed for the client accuracy benchmark and tests).
class client {
 public:
  explicit client(const std::string& url);
  ~client();
  void set_read_delay_ms(double ms);
  request_result send(const std::string& body, bool stream, double timeout_s, bool keep_text = false);
  std::string last_error() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// Redacts every string of `result` that is a secret the snapshot names by its keyed digest.
void redact_like_snapshot(nlohmann::json& result, const nlohmann::json& snapshot);

/// Marks `result` invalid with one more reason (kept once; `invalid_reason` joins them all).
void add_invalid_reason(nlohmann::json& result, const std::string& reason);

/// The last line bench/run/sweep print: the headline number for a valid result, otherwise a line
/// no shell loop can mistake for a number ("invalid: ...", "failed: ...").
std::string headline_line(const nlohmann::json& result);

/// The headline number (summary.headline.value): by default the median of the per-request
/// output tokens per second; --headline chooses another metric (analysis/metrics.hpp).
double headline(const nlohmann::json& result);

/// GET /meta: {id, json} or nullopt with `err` (and the HTTP status when there was one).
struct snapshot_ref {
  std::string id;
  nlohmann::json doc;
};
std::optional<snapshot_ref> fetch_snapshot(const std::string& base_url, std::string& err, int* status = nullptr);

/// The most of an engine's /metrics answer read per scrape, and how long one scrape may take
/// (docs/metrics.md, "Engine counters").
inline constexpr std::uint64_t kMetricsMaxBytes = 16u << 20;
inline constexpr long kMetricsTimeoutMs = 10000;

/// GET `url` (an engine's Prometheus /metrics) reading at most `max_bytes` of its body for at most
/// `timeout`. A 200 answer's body; empty when there was none (no connection, another status).
/// An answer larger than `max_bytes` or not finished in time is cut: its complete lines are
/// returned and `cut` says why ("more than N bytes", "no end after N ms"); otherwise `cut` is
/// left empty.
std::string scrape_engine_metrics(const std::string& url, std::uint64_t max_bytes, std::chrono::milliseconds timeout,
                                  std::string& cut);

}  // namespace bp::bench
