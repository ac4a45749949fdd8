#pragma once
/// Results from the proxy's own records (issue 31): any client's requests, timed by bench-proxy
/// (requests.jsonl, GET /proxy/requests), become a result.json with the same summary, intervals,
/// headline and warnings as bench's (bench.hpp's summarize_requests, headline_json: one code path), marked
/// `"source": "proxy"`. Used by `run --client` (actors/campaign/client_run.cpp) and to read the
/// folder of a plain `serve` (meta.json + requests.jsonl) wherever a result is an input.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "net/loadgen/bench.hpp"

namespace bp::bench {

/// One proxy record as bench's per-request result: ok only for a complete 2xx relayed from the
/// engine. Failures are counted by kind: "http N" (the engine's status), "proxy answered" (a
/// 502/503/504/413... bench-proxy gave itself), "client aborted" (the client left before the
/// end), "stream error" (an error event mid-stream), "upstream error". `t0_unix_us`: the
/// measurement's start (start_ms counts from it).
request_result from_proxy_record(const nlohmann::json& record, std::int64_t t0_unix_us);

/// A window of the measurement (POST /proxy/window, or the x-bench-proxy-window header).
struct window_span {
  std::string name;
  std::uint64_t after_id = 0;             ///< requests with a larger id ...
  std::uint64_t through_id = UINT64_MAX;  ///< ... up to this one (UINT64_MAX: no API bounds, header only)
  bool api = false;                       ///< opened through POST /proxy/window
  bool left_open = false;                 ///< still open when the client exited: closed then
  double start_unix_s = 0, stop_unix_s = 0;
};

/// The windows of a measurement, in the order they first appeared: those of `listing` (GET
/// /proxy/window's "windows", or windows.jsonl's last line per name) that reach past `start_id`,
/// and every name the x-bench-proxy-window header carried in `records`. A window still open is
/// closed at `end_id` / `end_unix_s` and marked left_open.
std::vector<window_span> window_spans(const nlohmann::json& listing, const std::vector<nlohmann::json>& records,
                                      std::uint64_t start_id, std::uint64_t end_id, double end_unix_s);

/// Does `record` belong to window `w`? Its x-bench-proxy-window header names it, or (API windows)
/// its id lies in (after_id, through_id].
bool in_window(const nlohmann::json& record, const window_span& w);

struct proxy_measurement {
  std::vector<nlohmann::json> records;  ///< the measurement's records, by id
  double start_unix_s = 0, end_unix_s = 0;  ///< its wall-clock window (0: from the records)
  std::string url, model;               ///< model empty: the one most requests named is unknown: "(client's)"
  nlohmann::json workload;              ///< {path, sha256, rows} when known, else null
  nlohmann::json client;                ///< result.client: the command, its exit, its files; null: none (a serve folder)
  std::string window;                   ///< the window's name, when the result is one window's
};

/// The result of one window of `m` (its records in the window; an API window's clock is its
/// start and stop), with `window` and `window_info` (how it was marked, its id range, left_open).
nlohmann::json window_result(const proxy_measurement& m, const window_span& w, const options& o);

/// A result.json from the proxy's records. Validity: no request completed; more failed requests
/// than `o.max_error_rate` allows. Snapshot, engine counters and conditions are the caller's.
nlohmann::json result_from_proxy(const proxy_measurement& m, const options& o);

/// The records of a requests.jsonl (bounded read). Throws std::runtime_error naming FILE:LINE.
std::vector<nlohmann::json> read_requests_jsonl(const std::string& path);

/// Is `dir` the folder of a plain serve (meta.json and requests.jsonl, no result.json)?
bool is_serve_folder(const std::string& dir);

/// A plain serve's folder as results: its snapshot from meta.json, its numbers from the /v1
/// records of requests.jsonl (default statistics options): one result for all of them, or, when
/// the folder has measurement windows (windows.jsonl, x-bench-proxy-window), one per window.
/// Throws std::runtime_error naming the file.
std::vector<nlohmann::json> results_from_serve_folder(const std::string& dir);

}  // namespace bp::bench
