#pragma once
/// bench's HTTP side: one streaming request with per-token timing (client), the SSE splitter it
/// reads events with, GET /meta (the provenance snapshot) and a bounded scrape of an engine's
/// /metrics. Boost-free: net/client/http_client.hpp underneath, blocking on the caller's thread.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace bp::bench {

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

/// GET /meta: {id, json} or nullopt with `err` (and the HTTP status when there was one).
struct snapshot_ref {
  std::string id;
  nlohmann::json doc;
};
std::optional<snapshot_ref> fetch_snapshot(const std::string& base_url, std::string& err, int* status = nullptr);
/// The same, but when `known` (a snapshot this process published, not null) is what `base_url`
/// serves, confirmed by its ETag (a 304, nothing sent), its document is taken from `known` and
/// nothing is parsed; otherwise fetched as above.
std::optional<snapshot_ref> fetch_snapshot(const std::string& base_url, std::string& err, int* status,
                                           const std::shared_ptr<snapshot_ref>& known);
/// The id of the snapshot `base_url` serves now, by GET /meta with If-None-Match: "known_id": a
/// 304 says it is still `known_id` and nothing is sent or parsed (a /meta of a large venv is
/// megabytes of JSON); a 200 names the other one by its ETag. With no `known_id` the document is
/// fetched and must be JSON, as fetch_snapshot. nullopt (and `err`) when there is none.
std::optional<std::string> fetch_snapshot_id(const std::string& base_url, const std::string& known_id, std::string& err);

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
