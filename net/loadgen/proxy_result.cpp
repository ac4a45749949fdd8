#include "net/loadgen/proxy_result.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <sstream>

#include "base/files.hpp"
#include "base/json_read.hpp"
#include "base/sha256.hpp"
#include "base/text.hpp"
#include "analysis/warnings.hpp"

namespace fs = std::filesystem;

namespace bp::bench {

using json = nlohmann::json;

namespace {

double num(const json& j, const char* k, double dflt = -1) {
  auto it = j.find(k);
  return it != j.end() && it->is_number() ? it->get<double>() : dflt;
}

std::string text(const json& j, const char* k) {
  auto it = j.find(k);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

bool flag(const json& j, const char* k) {
  auto it = j.find(k);
  return it != j.end() && it->is_boolean() && it->get<bool>();
}

}  // namespace

request_result from_proxy_record(const json& j, std::int64_t t0_unix_us) {
  request_result r;
  if (j.contains("id") && j["id"].is_number_unsigned()) r.proxy_id = j["id"].get<std::uint64_t>();
  r.http_status = static_cast<int>(num(j, "status", 0));
  double start_us = num(j, "start_unix_us", 0);
  r.start_offset_ms = t0_unix_us > 0 ? std::max(0.0, (start_us - static_cast<double>(t0_unix_us)) / 1000.0) : 0;
  r.e2e_ms = std::max(0.0, num(j, "e2e_ms", 0));
  std::string err = text(j, "error");
  const std::string status = std::to_string(r.http_status);
  if (flag(j, "local")) {
    r.error = "proxy answered: http " + status + (err.empty() ? "" : " (" + err + ")");
  } else if (flag(j, "client_aborted")) {
    r.error = "client aborted: " + (err.empty() ? std::string("the client left before the response was complete") : err);
  } else if (r.http_status / 100 != 2) {
    r.error = "http " + status;
  } else if (!err.empty()) {
    // An error event mid-stream is already "stream error: ..." (bench's own kind).
    r.error = err.rfind("stream error", 0) == 0 ? err : "upstream error: " + err;
  } else if (num(j, "e2e_ms") < 0) {
    r.error = "upstream error: the response never ended";
  }
  if (!r.error.empty()) return r;
  r.ok = true;
  r.ttft_ms = std::max(0.0, num(j, "ttft_ms", r.e2e_ms));
  if (j.contains("itl_ms") && j["itl_ms"].is_array())
    for (const auto& g : j["itl_ms"])
      if (g.is_number()) r.itl_ms.push_back(g.get<double>());
  r.content_events = static_cast<int>(num(j, "content_events", 0));
  r.output_tokens = static_cast<int>(std::max(0.0, num(j, "output_tokens", 0)));
  r.usage_from_server = text(j, "output_tokens_source") == "usage";
  if (j.contains("usage") && j["usage"].is_object()) r.prompt_tokens = static_cast<int>(std::max(0.0, num(j["usage"], "prompt_tokens", 0)));
  return r;
}

bool in_window(const json& rec, const window_span& w) {
  if (text(rec, "window") == w.name) return true;
  if (!w.api || !rec.contains("id") || !rec["id"].is_number_unsigned()) return false;
  auto id = rec["id"].get<std::uint64_t>();
  return id > w.after_id && id <= w.through_id;
}

std::vector<window_span> window_spans(const json& listing, const std::vector<json>& records, std::uint64_t start_id,
                                      std::uint64_t end_id, double end_unix_s) {
  std::vector<window_span> spans;
  if (listing.is_array())
    for (const auto& w : listing) {
      if (!w.is_object() || !w.contains("name") || !w["name"].is_string()) continue;
      window_span s;
      s.name = w["name"].get<std::string>();
      s.api = true;
      s.after_id = w.contains("after_id") && w["after_id"].is_number_unsigned() ? w["after_id"].get<std::uint64_t>() : 0;
      s.start_unix_s = num(w, "start_unix_us", 0) / 1e6;
      if (flag(w, "open")) {
        s.left_open = true;
        s.through_id = end_id;
        s.stop_unix_s = end_unix_s;
      } else {
        s.through_id = w.contains("through_id") && w["through_id"].is_number_unsigned() ? w["through_id"].get<std::uint64_t>() : 0;
        s.stop_unix_s = num(w, "stop_unix_us", 0) / 1e6;
      }
      if (s.through_id <= start_id) continue;  // over before this measurement began
      spans.push_back(s);
    }
  for (const auto& rec : records) {
    std::string name = text(rec, "window");
    if (name.empty()) continue;
    bool known = false;
    for (const auto& s : spans) known = known || s.name == name;
    if (!known) {
      window_span s;
      s.name = name;
      spans.push_back(s);
    }
  }
  return spans;
}

json window_result(const proxy_measurement& m, const window_span& s, const options& o) {
  proxy_measurement wm = m;
  wm.records.clear();
  for (const auto& rec : m.records)
    if (in_window(rec, s)) wm.records.push_back(rec);
  wm.window = s.name;
  if (s.api) {
    wm.start_unix_s = s.start_unix_s;
    wm.end_unix_s = s.stop_unix_s;
  } else {
    wm.start_unix_s = wm.end_unix_s = 0;  // the records' own span
  }
  json wr = result_from_proxy(wm, o);
  wr["window_info"] = {{"name", s.name},
                       {"by", s.api ? "POST /proxy/window" : "x-bench-proxy-window header"},
                       {"left_open", s.left_open}};
  if (s.api) {
    wr["window_info"]["after_id"] = s.after_id;
    wr["window_info"]["through_id"] = s.through_id;
  }
  return wr;
}

json result_from_proxy(const proxy_measurement& m, const options& o) {
  json result;
  result["schema_version"] = 1;
  result["kind"] = "bench-proxy bench result";
  result["source"] = "proxy";
  result["source_note"] =
      "every number is the proxy's own record of the requests (requests.jsonl), whatever client sent them; a "
      "client's own output is kept beside it but never used for the numbers (docs/clients.md)";
  result["bench_proxy_version"] = BENCH_PROXY_VERSION;
  result["metric_definitions"] = "docs/metrics.md (bench-proxy " BENCH_PROXY_VERSION "), \"Proxy-side timing\"";
  result["url"] = m.url;
  result["model"] = m.model;
  if (!m.window.empty()) result["window"] = m.window;
  // The measurement's clock: its wall-clock start, else the first record's.
  std::int64_t t0_us = m.start_unix_s > 0 ? static_cast<std::int64_t>(m.start_unix_s * 1e6) : 0;
  double last_end_us = 0;
  for (const auto& rec : m.records) {
    double s = num(rec, "start_unix_us", 0);
    if (s > 0 && (t0_us == 0 || static_cast<std::int64_t>(s) < t0_us) && m.start_unix_s <= 0)
      t0_us = static_cast<std::int64_t>(s);
    last_end_us = std::max(last_end_us, s + std::max(0.0, num(rec, "e2e_ms", 0)) * 1000.0);
  }
  double wall_s = m.end_unix_s > m.start_unix_s && m.start_unix_s > 0
                      ? m.end_unix_s - m.start_unix_s
                      : (t0_us > 0 && last_end_us > static_cast<double>(t0_us) ? (last_end_us - static_cast<double>(t0_us)) / 1e6 : 0);
  std::vector<request_result> results;
  bool all_stream = !m.records.empty();
  long local = 0, aborted = 0, failed = 0;
  for (const auto& rec : m.records) {
    results.push_back(from_proxy_record(rec, t0_us));
    results.back().index = static_cast<int>(results.size() - 1);
    all_stream = all_stream && flag(rec, "stream");
    if (flag(rec, "local")) ++local;
    else if (flag(rec, "client_aborted")) ++aborted;
    else if (!results.back().ok) ++failed;
  }
  const long total = static_cast<long>(results.size());
  // bench's own summary of these requests (net/loadgen/bench.cpp: one code path).
  options so = o;
  so.stream = all_stream;
  so.rate = 0;
  for (auto& r : results)
    if (!r.ok && r.error.empty()) r.error = "cancelled: not sent";
  result["summary"] = summarize_requests(results, wall_s, so);
  json reqs = json::array();
  for (const auto& r : results) reqs.push_back(request_json(r));
  result["requests"] = std::move(reqs);
  result["summary"].erase("concurrency");
  result["summary"]["proxy_counts"] = {{"records", total}, {"answered_by_proxy", local}, {"client_aborted", aborted},
                                       {"failed_upstream", failed}};
  json opts = {{"source", "proxy"}, {"stream", all_stream}};
  if (m.client.is_object() && m.client.contains("command_line")) opts["client"] = m.client["command_line"];
  if (m.workload.is_object() && m.workload.contains("path")) opts["queries"] = m.workload["path"];
  result["options"] = opts;
  result["workload"] = m.workload.is_object()
                           ? m.workload
                           : json{{"note", "the client's own: unknown to bench-proxy (--queries FILE names it)"}};
  if (!m.client.is_null()) result["client"] = m.client;
  result["summary"]["headline"] = headline_json(result, o);
  result["warnings"] = result_warnings(result, o.stats.percentiles);
  result["valid"] = true;
  result["invalid_reasons"] = json::array();
  const long completed = result["summary"]["completed"].get<long>();
  if (total == 0) add_invalid_reason(result, "the proxy recorded no request" + std::string(m.window.empty() ? "" : " in window '" + m.window + "'"));
  else if (completed == 0) add_invalid_reason(result, "no request completed");
  long bad = total - completed;
  if (bad > 0 && static_cast<double>(bad) > o.max_error_rate * static_cast<double>(total)) {
    std::string kinds;
    const json& ek = result["summary"]["error_kinds"];
    for (auto it = ek.begin(); it != ek.end(); ++it)
      kinds += (kinds.empty() ? "" : ", ") + it.key() + ": " + std::to_string(it.value().get<long>());
    char rate[32];
    std::snprintf(rate, sizeof(rate), "%g", o.max_error_rate);
    add_invalid_reason(result, std::to_string(bad) + " of " + std::to_string(total) + " requests failed (" + kinds +
                                   "), above --max-error-rate " + rate);
  }
  result["finished_at"] = base::utc_now_iso();
  return result;
}

std::vector<json> read_requests_jsonl(const std::string& path) {
  std::string all = base::read_file_limited(path);
  std::vector<json> out;
  base::for_each_line(all, [&](std::string_view line, std::size_t line_no, bool complete) {
    if (!complete) return false;  // a line still being written: not a record yet
    json j = base::parse_json(line, path, base::json_file_depth, line_no);
    if (!j.is_object() || !j.contains("id") || !j["id"].is_number_unsigned())
      throw std::runtime_error(path + ":" + std::to_string(line_no) + ": not a request record (no \"id\")");
    out.push_back(std::move(j));
    return true;
  });
  std::sort(out.begin(), out.end(), [](const json& a, const json& b) { return a["id"].get<std::uint64_t>() < b["id"].get<std::uint64_t>(); });
  return out;
}

bool is_serve_folder(const std::string& dir) {
  std::error_code ec;
  fs::path p(dir);
  return fs::is_directory(p, ec) && fs::exists(p / "meta.json", ec) && fs::exists(p / "requests.jsonl", ec) &&
         !fs::exists(p / "result.json", ec);
}

std::vector<json> results_from_serve_folder(const std::string& dir) {
  fs::path p(dir);
  std::string meta_path = (p / "meta.json").string();
  std::string bytes = base::read_file_limited(meta_path);
  json meta = base::parse_json(bytes, meta_path, base::json_file_depth);
  proxy_measurement m;
  m.records = read_requests_jsonl((p / "requests.jsonl").string());
  m.url = "(a plain serve: " + dir + ")";
  m.model = meta.contains("config") && meta["config"].is_object() ? text(meta["config"], "model") : "";
  if (m.model.empty()) m.model = "(not recorded: a plain serve)";
  // Its windows: the last line of each name in windows.jsonl (each start and stop wrote one).
  json listing = json::array();
  std::error_code ec;
  fs::path wpath = p / "windows.jsonl";
  if (fs::exists(wpath, ec)) {
    std::string all = base::read_file_limited(wpath.string());
    base::for_each_line(all, [&](std::string_view line, std::size_t line_no, bool) {
      json w = base::parse_json(line, wpath.string(), base::json_file_depth, line_no);
      bool replaced = false;
      for (auto& x : listing)
        if (x.value("name", std::string()) == w.value("name", std::string())) {
          x = w;
          replaced = true;
        }
      if (!replaced) listing.push_back(w);
      return true;
    });
  }
  std::uint64_t end_id = 0;
  double end_s = 0;
  for (const auto& rec : m.records) {
    end_id = std::max(end_id, rec["id"].get<std::uint64_t>());
    end_s = std::max(end_s, (num(rec, "start_unix_us", 0) + std::max(0.0, num(rec, "e2e_ms", 0)) * 1000.0) / 1e6);
  }
  options o;
  auto finish = [&](json r) {
    r["snapshot_id"] = sha256_hex(bytes);
    r["snapshot_id_after"] = nullptr;
    r["snapshot"] = meta;
    r["run_dir"] = dir;
    r["serve_folder"] = {{"meta", meta_path}, {"requests", (p / "requests.jsonl").string()}};
    r["warnings"].push_back(
        "a plain serve's folder: the numbers are the proxy's records of every request it served; nobody checked the "
        "snapshot after them, nor the engine's counters");
    return r;
  };
  std::vector<json> out;
  for (const auto& s : window_spans(listing, m.records, 0, end_id, end_s)) out.push_back(finish(window_result(m, s, o)));
  if (out.empty()) out.push_back(finish(result_from_proxy(m, o)));
  return out;
}

}  // namespace bp::bench
