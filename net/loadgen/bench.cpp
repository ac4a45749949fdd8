#include "net/loadgen/bench.hpp"
#include "configs/engine_kinds.hpp"
#include "net/loadgen/crosscheck.hpp"
#include "analysis/engine_metrics.hpp"
#include "net/loadgen/prefix_cache.hpp"
#include "net/loadgen/workloads.hpp"
#include "analysis/warnings.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <limits>
#include <list>
#include <fstream>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/files.hpp"
#include "base/json_read.hpp"
#include "base/text.hpp"
#include "base/numbers.hpp"
#include "base/redact.hpp"
#include "base/sha256.hpp"
#include "net/client/http_client.hpp"

namespace bp::bench {

using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;

namespace {

const std::set<std::string> kRequestFields = {
    "messages",          "prompt",         "max_tokens",  "max_completion_tokens", "temperature", "top_p",
    "n",                 "stop",           "seed",        "presence_penalty",      "frequency_penalty",
    "response_format",   "tools",          "tool_choice", "logprobs",              "top_logprobs",
    "logit_bias",        "user",           "model"};

std::string trim(const std::string& s) { return std::string(base::trim(s)); }

/// RFC 4180 records with the line each starts on.
std::vector<std::pair<int, std::vector<std::string>>> parse_csv(const std::string& text, const std::string& path) {
  std::vector<std::pair<int, std::vector<std::string>>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false, field_started = false;
  int line = 1, row_line = 1;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field.push_back('"');
          ++i;
        } else {
          quoted = false;
        }
      } else {
        if (c == '\n') ++line;
        field.push_back(c);
      }
      continue;
    }
    if (c == '"' && !field_started) {
      quoted = true;
      field_started = true;
    } else if (c == ',') {
      row.push_back(field);
      field.clear();
      field_started = false;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      row.push_back(field);
      field.clear();
      field_started = false;
      if (!(row.size() == 1 && row[0].empty())) rows.emplace_back(row_line, row);
      row.clear();
      ++line;
      row_line = line;
    } else {
      field.push_back(c);
      field_started = true;
    }
  }
  if (quoted) throw std::runtime_error(path + ":" + std::to_string(row_line) + ": unterminated quoted field");
  if (field_started || !row.empty()) {
    row.push_back(field);
    rows.emplace_back(row_line, row);
  }
  return rows;
}

void check_request(const json& req, const std::string& where) {
  if (req.contains("messages")) {
    if (!req["messages"].is_array() || req["messages"].empty())
      throw std::runtime_error(where + ": 'messages' must be a non-empty list");
    for (const auto& m : req["messages"])
      if (!m.is_object() || !m.contains("role") || !m.contains("content"))
        throw std::runtime_error(where + ": every message needs 'role' and 'content'");
  } else {
    throw std::runtime_error(where + ": needs 'messages' (or a 'prompt' column)");
  }
  for (const char* k : {"max_tokens", "max_completion_tokens", "n", "seed", "top_logprobs"})
    if (req.contains(k) && !req[k].is_number_integer()) throw std::runtime_error(where + ": '" + k + "' must be an integer");
  // A count of tokens or choices below 1 (or a negative number of logprobs) is refused here, not
  // sent to the engine to fail or be ignored request by request.
  for (const char* k : {"max_tokens", "max_completion_tokens", "n"})
    if (req.contains(k) && req[k].get<long long>() < 1)
      throw std::runtime_error(where + ": '" + k + "' must be at least 1, got " + req[k].dump());
  if (req.contains("top_logprobs") && req["top_logprobs"].get<long long>() < 0)
    throw std::runtime_error(where + ": 'top_logprobs' must not be negative, got " + req["top_logprobs"].dump());
  for (const char* k : {"temperature", "top_p", "presence_penalty", "frequency_penalty"})
    if (req.contains(k) && !req[k].is_number()) throw std::runtime_error(where + ": '" + k + "' must be a number");
}

json csv_value(const std::string& col, const std::string& v) {
  static const std::set<std::string> ints = {"max_tokens", "max_completion_tokens", "n", "seed", "top_logprobs"};
  static const std::set<std::string> nums = {"temperature", "top_p", "presence_penalty", "frequency_penalty"};
  if (ints.count(col)) {
    auto x = base::parse_integer(v, -(1ll << 53), 1ll << 53);
    if (!x) throw std::invalid_argument("'" + col + "' must be a whole number, got '" + v + "'");
    return *x;
  }
  if (nums.count(col)) {
    auto x = base::parse_number(v, -1e300, 1e300);
    if (!x) throw std::invalid_argument("'" + col + "' must be a finite number, got '" + v + "'");
    return *x;
  }
  if (col == "messages" || col == "stop" || col == "response_format" || col == "tools" || col == "tool_choice" ||
      col == "logit_bias") {
    try {
      return base::parse_json(v, col, base::workload_json_depth);
    } catch (const base::json_input_error& e) {
      throw std::invalid_argument("'" + col + "': " + e.reason() + " (line " + std::to_string(e.line()) +
                                  ", column " + std::to_string(e.column()) + " of the cell)");
    }
  }
  return v;
}

}  // namespace

bool is_request_field(const std::string& name) { return kRequestFields.count(name) > 0; }

std::vector<query> load_workload(const std::string& path, std::string* sha256) {
  std::string text;
  try {
    text = base::read_file_limited(path);
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("cannot read workload file: ") + e.what());
  }
  if (sha256) *sha256 = sha256_hex(text);
  // A workload is UTF-8 text (docs/cli.md, "Workload files"): the first ill-formed byte is an
  // error at its line and column, not a type_error when the first request is serialised.
  if (auto bad = base::first_bad_utf8(text); bad != std::string::npos) {
    auto [line, column] = base::line_column(text, bad);
    char byte[8];
    std::snprintf(byte, sizeof(byte), "0x%02X", static_cast<unsigned char>(text[bad]));
    throw std::runtime_error(path + ":" + std::to_string(line) + ":" + std::to_string(column) +
                             ": not UTF-8 (byte " + byte + "): a workload file must be UTF-8 text");
  }
  // A byte-order mark (spreadsheets write one) is not part of the first column's name.
  if (text.rfind("\xEF\xBB\xBF", 0) == 0) text.erase(0, 3);
  std::vector<query> out;
  bool jsonl = path.size() >= 6 && (path.substr(path.size() - 6) == ".jsonl" || path.substr(path.size() - 5) == ".json");
  if (jsonl) {
    std::istringstream is(text);
    std::string line;
    int n = 0;
    while (std::getline(is, line)) {
      ++n;
      if (trim(line).empty() || trim(line)[0] == '#') continue;
      std::string where = path + ":" + std::to_string(n);
      // Nested at most base::workload_json_depth deep (docs/cli.md): errors are path:line:column.
      json j = base::parse_json(line, path, base::workload_json_depth, static_cast<std::size_t>(n));
      if (!j.is_object()) throw std::runtime_error(where + ": each line must be a JSON object");
      query q;
      q.line = n;
      q.request = json::object();
      q.metadata = json::object();
      for (auto it = j.begin(); it != j.end(); ++it) {
        if (it.key() == "prompt" && !j.contains("messages")) {
          if (!it.value().is_string()) throw std::runtime_error(where + ": 'prompt' must be a string");
          q.request["messages"] = json::array({{{"role", "user"}, {"content", it.value()}}});
        } else if (it.key() == "system") {
          q.metadata["system"] = it.value();
        } else if (is_request_field(it.key()) && it.key() != "model") {
          q.request[it.key()] = it.value();
        } else {
          q.metadata[it.key()] = it.value();
        }
      }
      if (j.contains("system") && j["system"].is_string() && q.request.contains("messages"))
        q.request["messages"].insert(q.request["messages"].begin(), json{{"role", "system"}, {"content", j["system"]}});
      check_request(q.request, where);
      q.metadata = base::bound_json(std::move(q.metadata), base::workload_metadata_depth, base::workload_metadata_bytes);
      out.push_back(std::move(q));
    }
  } else {
    auto rows = parse_csv(text, path);
    if (rows.empty()) throw std::runtime_error(path + ": empty workload");
    auto header = rows[0].second;
    for (auto& h : header) h = trim(h);
    bool has_prompt = std::find(header.begin(), header.end(), "prompt") != header.end();
    bool has_messages = std::find(header.begin(), header.end(), "messages") != header.end();
    if (!has_prompt && !has_messages)
      throw std::runtime_error(path + ":1: the header needs a 'prompt' or 'messages' column");
    for (std::size_t r = 1; r < rows.size(); ++r) {
      const auto& [line, cells] = rows[r];
      std::string where = path + ":" + std::to_string(line);
      if (cells.size() != header.size())
        throw std::runtime_error(where + ": " + std::to_string(cells.size()) + " fields, the header has " +
                                 std::to_string(header.size()));
      query q;
      q.line = line;
      q.request = json::object();
      q.metadata = json::object();
      std::string system;
      for (std::size_t c = 0; c < header.size(); ++c) {
        const std::string& col = header[c];
        const std::string& v = cells[c];
        if (col == "prompt") {
          if (!has_messages) q.request["messages"] = json::array({{{"role", "user"}, {"content", v}}});
        } else if (col == "system") {
          system = v;
          q.metadata["system"] = v;
        } else if (is_request_field(col) && col != "model") {
          if (v.empty()) continue;
          try {
            q.request[col] = csv_value(col, v);
          } catch (const std::invalid_argument& e) {
            throw std::runtime_error(where + ": column " + e.what());
          } catch (const std::exception& e) {
            throw std::runtime_error(where + ": column '" + col + "': bad value '" + v.substr(0, 80) + "': " + e.what());
          }
        } else {
          q.metadata[col] = v;
        }
      }
      if (!system.empty() && q.request.contains("messages"))
        q.request["messages"].insert(q.request["messages"].begin(), json{{"role", "system"}, {"content", system}});
      check_request(q.request, where);
      q.metadata = base::bound_json(std::move(q.metadata), base::workload_metadata_depth, base::workload_metadata_bytes);
      out.push_back(std::move(q));
    }
  }
  if (out.empty()) throw std::runtime_error(path + ": no queries");
  return out;
}

void sse_parser::feed(std::string_view bytes, const std::function<void(const std::string&)>& on_event) {
  buf_.append(bytes.data(), bytes.size());
  for (;;) {
    std::size_t end = std::string::npos, sep = 0;
    auto a = buf_.find("\n\n");
    auto b = buf_.find("\r\n\r\n");
    if (a != std::string::npos && (b == std::string::npos || a < b)) {
      end = a;
      sep = 2;
    } else if (b != std::string::npos) {
      end = b;
      sep = 4;
    }
    if (end == std::string::npos) return;
    std::string event = buf_.substr(0, end);
    buf_.erase(0, end + sep);
    std::string data;
    std::istringstream is(event);
    std::string line;
    bool any = false;
    while (std::getline(is, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.rfind("data:", 0) == 0) {
        std::string d = line.substr(5);
        if (!d.empty() && d[0] == ' ') d.erase(0, 1);
        if (any) data += "\n";
        data += d;
        any = true;
      }
    }
    if (any) on_event(data);
  }
}

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

struct client::impl {
  net::url_parts url;
  net::http_connection conn;
  std::string last_error;
};

client::client(const std::string& url) : impl_(std::make_unique<impl>()) {
  std::string err;
  if (!net::parse_url(url, impl_->url, err)) throw std::runtime_error(err);
}

client::~client() = default;

void client::set_read_delay_ms(double ms) {
  impl_->conn.set_read_delay(std::chrono::microseconds(static_cast<long>(ms * 1000)));
}

std::string client::last_error() const { return impl_->last_error; }

request_result client::send(const std::string& body, bool stream, double timeout_s, bool keep_text) {
  request_result r;
  auto& c = impl_->conn;
  std::string err;
  auto timeout = std::chrono::milliseconds(static_cast<long>(timeout_s * 1000));
  if (!c.connected() && !c.connect(impl_->url.host, impl_->url.port, timeout, err)) {
    r.error = "connect: " + err;
    return r;
  }
  sse_parser sse;
  clock_type::time_point t0 = clock_type::now(), last_token{};
  bool done_marker = false;
  int usage_tokens = -1;
  std::string parse_error, stream_error;
  auto handle_event = [&](const std::string& data) {
    auto now = clock_type::now();
    if (data == "[DONE]") {
      done_marker = true;
      return;
    }
    json ev;
    try {
      ev = base::parse_json(data, "an SSE event", base::engine_json_depth);
    } catch (const std::exception& e) {
      parse_error = std::string("bad SSE event: ") + e.what();
      return;
    }
    if (ev.contains("error")) {  // an error event from the engine ends the stream without [DONE]
      const auto& e = ev["error"];
      stream_error = e.is_object() && e.contains("message") && e["message"].is_string()
                         ? e["message"].get<std::string>()
                         : e.dump();
      return;
    }
    if (ev.contains("usage") && ev["usage"].is_object() && ev["usage"].contains("completion_tokens")) {
      usage_tokens = ev["usage"]["completion_tokens"].get<int>();
      r.prompt_tokens = ev["usage"].value("prompt_tokens", 0);
    }
    if (!ev.contains("choices") || !ev["choices"].is_array() || ev["choices"].empty()) return;
    const auto& ch = ev["choices"][0];
    std::string piece;
    if (ch.contains("delta") && ch["delta"].is_object()) {
      const auto& d = ch["delta"];
      if (d.contains("content") && d["content"].is_string()) piece = d["content"].get<std::string>();
      if (piece.empty() && d.contains("reasoning_content") && d["reasoning_content"].is_string())
        piece = d["reasoning_content"].get<std::string>();
    } else if (ch.contains("text") && ch["text"].is_string()) {
      piece = ch["text"].get<std::string>();
    }
    if (piece.empty()) return;
    double since_start = std::chrono::duration<double, std::milli>(now - t0).count();
    if (r.content_events == 0)
      r.ttft_ms = since_start;
    else
      r.itl_ms.push_back(std::chrono::duration<double, std::milli>(now - last_token).count());
    last_token = now;
    r.content_events++;
    if (keep_text) r.output_text += piece;
  };
  // An engine's event of the wrong shape ("completion_tokens": "3") is a broken stream of this
  // request, never an exception out of the worker thread.
  auto on_event = [&](const std::string& data) {
    try {
      handle_event(data);
    } catch (const std::exception& e) {
      if (parse_error.empty()) parse_error = "bad SSE event: " + base::printable_utf8(e.what());
    }
  };
  net::http_response resp;
  bool ok;
  t0 = clock_type::now();
  if (stream) {
    ok = c.request("POST", impl_->url.target == "/" ? "/v1/chat/completions" : impl_->url.target, body, {},
                   timeout, resp, err, [&](std::string_view piece) { sse.feed(piece, on_event); });
  } else {
    ok = c.request("POST", impl_->url.target == "/" ? "/v1/chat/completions" : impl_->url.target, body, {},
                   timeout, resp, err);
  }
  auto t1 = clock_type::now();
  r.e2e_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
  r.http_status = resp.status;
  if (auto id = base::parse_integer(resp.header("x-bench-proxy-request-id"), 1, 1ll << 62))
    r.proxy_id = static_cast<std::uint64_t>(*id);
  if (!ok) {
    r.error = err.find("timed out") != std::string::npos ? "timeout: " + err : "broken connection: " + err;
    c.close();
    return r;
  }
  if (resp.status != 200) {
    r.error = "http " + std::to_string(resp.status);
    if (resp.request_cut) {
      // e.g. a prompt over the proxy's --max-body: 413 before the body was read, then a close.
      r.error += ": the server refused the request before reading all of its " + std::to_string(body.size()) +
                 " bytes (" + resp.reason + ")";
      std::string perr;
      if (auto j = base::try_parse_json(resp.body, "the answer", perr, base::engine_json_depth);
          j && j->is_object() && j->contains("error") && (*j)["error"].is_object() &&
          (*j)["error"].contains("message") && (*j)["error"]["message"].is_string())
        r.error += ": " + (*j)["error"]["message"].get<std::string>();
    }
    return r;
  }
  if (stream) {
    if (!stream_error.empty()) {
      r.error = "stream error: the engine sent an error event: " + stream_error;
      return r;
    }
    if (!parse_error.empty()) {
      r.error = "broken stream: " + parse_error;
      return r;
    }
    if (!done_marker) {
      r.error = "broken stream: ended without data: [DONE]";
      return r;
    }
    if (usage_tokens >= 0) {
      r.output_tokens = usage_tokens;
      r.usage_from_server = true;
    } else {
      r.output_tokens = r.content_events;
    }
  } else {
    try {
      auto j = base::parse_json(resp.body, "the response", base::engine_json_depth);
      r.ttft_ms = r.e2e_ms;  // without streaming the first token arrives with the last
      if (j.contains("usage") && j["usage"].is_object()) {
        r.output_tokens = j["usage"].value("completion_tokens", 0);
        r.prompt_tokens = j["usage"].value("prompt_tokens", 0);
        r.usage_from_server = true;
      }
      if (keep_text && j.contains("choices") && !j["choices"].empty())
        r.output_text = j["choices"][0]["message"].value("content", "");
    } catch (const std::exception& e) {
      r.error = std::string("bad response body: ") + e.what();
      return r;
    }
  }
  r.ok = true;
  return r;
}

std::optional<snapshot_ref> fetch_snapshot(const std::string& base_url, std::string& err, int* status) {
  auto r = net::http_fetch("GET", base_url + "/meta", "", std::chrono::seconds(30), err);
  if (!r) return std::nullopt;
  if (status) *status = r->status;
  if (r->status != 200) {
    err = "GET /meta answered HTTP " + std::to_string(r->status);
    return std::nullopt;
  }
  snapshot_ref s;
  std::string etag = r->header("etag");
  if (etag.size() >= 2 && etag.front() == '"') etag = etag.substr(1, etag.size() - 2);
  s.id = etag;
  try {
    s.doc = base::parse_json(r->body, base_url + "/meta", base::json_file_depth);
  } catch (const std::exception& e) {
    err = std::string("GET /meta: not JSON: ") + e.what();
    return std::nullopt;
  }
  return s;
}

std::string scrape_engine_metrics(const std::string& url, std::uint64_t max_bytes, std::chrono::milliseconds timeout,
                                  std::string& cut) {
  net::url_parts u;
  std::string err;
  if (!net::parse_url(url, u, err)) return {};
  net::http_connection c;
  if (!c.connect(u.host, u.port, timeout, err)) return {};
  std::string body;
  bool too_big = false;
  net::http_response resp;
  // The body streams through here: once past the bound the socket is shut down, so an endless
  // answer costs at most max_bytes and one more read, never the whole timeout.
  bool ok = c.request("GET", u.target, "", {{"Connection", "close"}}, timeout, resp, err, [&](std::string_view piece) {
    if (too_big) return;
    if (body.size() + piece.size() > max_bytes) {
      body.append(piece.substr(0, max_bytes - body.size()));
      too_big = true;
      ::shutdown(c.native_fd(), SHUT_RDWR);
      return;
    }
    body.append(piece);
  });
  if (ok && !too_big) return resp.status == 200 ? body : std::string();
  if (ok && resp.status != 200) return {};
  if (!too_big && err.find("timed out") == std::string::npos) return {};  // refused, reset, malformed: no answer
  if (body.empty()) {
    if (!too_big) cut = "no answer within " + std::to_string(timeout.count()) + " ms";
    return {};
  }
  cut = too_big ? "more than " + std::to_string(max_bytes) + " bytes"
                : "no end after " + std::to_string(timeout.count()) + " ms";
  auto nl = body.rfind('\n');
  body.resize(nl == std::string::npos ? 0 : nl + 1);  // complete lines only
  return body;
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

/// What run_point needs besides the point.
struct point_context {
  const options& o;
  const std::vector<std::string>& bodies;
  const std::vector<int>& lines;
  std::string target;
  std::uint64_t seed = 1;
  const std::vector<double>* schedule = nullptr;             ///< a trace's arrivals (kind::trace)
  const std::vector<workloads::session>* sessions = nullptr;  ///< non-empty: each "request" is a session
  std::function<std::string(json)> finish;                    ///< model, stream and max_tokens into a body
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

std::int64_t unix_us_now() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

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

json stats_of(std::vector<double> v, const options& o, std::uint64_t seed) {
  stats_options so = o.stats;
  so.seed = seed;
  return to_json(compute_stats(v, so), so);
}

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

}  // namespace

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

json run(const options& o) {
  std::string workload_sha256;
  std::vector<query> queries;
  if (!o.generated.any()) queries = load_workload(o.queries_path, &workload_sha256);
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
  auto before = fetch_snapshot(base, err, &meta_status);
  if (!before && o.require_snapshot)
    throw std::runtime_error(base + ": no provenance snapshot: " + err +
                             (meta_status == 503 ? " (not published yet: wait for /healthz state 'ready')" : ""));

  std::string model = o.model;
  if (model.empty()) {
    auto r = net::http_fetch("GET", base + "/v1/models", "", std::chrono::seconds(30), err);
    if (!r || r->status != 200)
      throw std::runtime_error(base + "/v1/models: " + (r ? "HTTP " + std::to_string(r->status) : err) +
                               " (pass --model)");
    try {
      model = base::parse_json(r->body, "GET /v1/models", base::engine_json_depth).at("data").at(0).at("id").get<std::string>();
    } catch (const std::exception&) {
      throw std::runtime_error(base + "/v1/models: no model id in the answer (pass --model)");
    }
  }
  result["model"] = model;

  // A generated or imported workload (net/loadgen/workloads.hpp), counted by the engine's own
  // tokenizer where its kind has one (on its private port: the proxy forwards /v1 only).
  std::vector<workloads::session> sessions;
  std::vector<double> trace_arrivals;
  json workload_info = json::object();
  if (o.generated.any()) {
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
    workload_info["tokens_counted_by"] = tok ? tok->source : "estimated (" + why + ")";
    std::size_t n = static_cast<std::size_t>(
        o.load.requests > 0 ? o.load.requests : o.num_requests > 0 ? o.num_requests : kDefaultGeneratedRequests);
    n = std::min<std::size_t>(n, kMaxGeneratedRequests) + static_cast<std::size_t>(std::max(0, o.warmup));
    std::size_t skipped = 0;
    if (!g.trace.empty()) {
      auto tr = workloads::load_trace(g.trace, g.time_scale, o.seed, tp, &workload_sha256);
      queries = std::move(tr.queries);
      trace_arrivals = std::move(tr.arrival_ms);
      workload_info["kind"] = "trace";
      workload_info["time_scale"] = g.time_scale;
    } else if (!g.sessions.empty()) {
      if (!g.sharegpt.empty()) {
        auto spec = workloads::parse_sessions(g.sessions);
        sessions = workloads::load_sharegpt_sessions(g.sharegpt, spec.think_ms, &workload_sha256, tp, &skipped);
      } else {
        sessions = workloads::synthetic_sessions(workloads::parse_sessions(g.sessions), n, o.seed, tp);
      }
      workload_info["kind"] = "sessions";
      for (const auto& se : sessions) queries.push_back(se.turns.at(0));
    } else if (!g.sharegpt.empty()) {
      queries = workloads::load_sharegpt(g.sharegpt, &workload_sha256, tp, &skipped);
      workload_info["kind"] = "sharegpt";
    } else if (g.prefix_groups > 0) {
      auto spec = g.synthetic.empty() ? workloads::synthetic_spec{} : workloads::parse_synthetic(g.synthetic);
      queries = workloads::prefix_workload(g.prefix_groups, g.prefix_len, spec, n, o.seed, tp);
      workload_info["kind"] = "prefix";
      workload_info["prefix_groups"] = g.prefix_groups;
      workload_info["prefix_len"] = g.prefix_len;
    } else {
      queries = workloads::synthetic(workloads::parse_synthetic(g.synthetic), n, o.seed, tp);
      workload_info["kind"] = "synthetic";
    }
    if (skipped > 0) workload_info["skipped_conversations"] = skipped;
    if (queries.empty()) throw std::runtime_error(g.describe() + ": no requests");
    workload_info["spec"] = g.describe();
  }

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
  for (const auto& q : queries) {
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
  // The engine's own counters, scraped right before and right after the measured requests.
  std::string metrics_url, metrics_kind;
  std::string cut_before, cut_after;  // why a scrape was cut short; empty when it was not
  auto scrape_metrics = [&](std::string& cut) -> std::string {
    return scrape_engine_metrics(metrics_url, kMetricsMaxBytes, std::chrono::milliseconds(kMetricsTimeoutMs), cut);
  };
  if (before && before->doc.contains("engine") && before->doc["engine"].is_object()) {
    const json& e = before->doc["engine"];
    metrics_kind = e.value("kind", std::string());
    if (const engine_kind* k = find_engine_kind(metrics_kind); k && !k->metrics_path.empty() && e.value("port", 0) > 0)
      metrics_url = "http://127.0.0.1:" + std::to_string(e.value("port", 0)) + k->metrics_path;
  }
  std::string metrics_before = metrics_url.empty() ? "" : scrape_metrics(cut_before);

  // The load points (net/loadgen/load_profile.hpp): each a full measurement of its own.
  const load_profile& prof = o.load;
  long per_point = prof.requests > 0 ? prof.requests
                   : o.num_requests > 0 ? o.num_requests
                                        : static_cast<long>(queries.size()) * std::max(1, o.repeats);
  if (prof.duration_s > 0 && prof.requests <= 0) per_point = kMaxRequestsPerPoint;
  std::vector<load_point> plan = prof.points;
  if (prof.is_sweep()) {
    load_point t;
    t.how = load_point::kind::throughput;
    t.value = 0;
    plan = {load_point{}, t};
  }
  if (!trace_arrivals.empty()) {
    // A trace brings its own schedule: one open-loop point, request i at arrival i.
    load_point p;
    p.how = load_point::kind::trace;
    p.value = trace_arrivals.size() > 1 && trace_arrivals.back() > 0
                  ? static_cast<double>(trace_arrivals.size() - 1) / (trace_arrivals.back() / 1000.0)
                  : 0;
    plan = {p};
    per_point = static_cast<long>(trace_arrivals.size());
  }
  if (!sessions.empty()) per_point = std::min<long>(per_point, static_cast<long>(sessions.size()));
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
  point_context ctx{o, bodies, lines, target, 1, nullptr, nullptr, {}, 0};
  ctx.schedule = &trace_arrivals;
  ctx.sessions = &sessions;
  ctx.finish = finish;
  ctx.body_offset = trace_arrivals.empty() ? o.warmup : 0;
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

  std::string metrics_after = metrics_url.empty() ? "" : scrape_metrics(cut_after);
  auto after = fetch_snapshot(base, err);
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
                       {"requests", prof.duration_s > 0 && prof.requests <= 0 ? json(nullptr) : json(per_point)}, {"repeats", o.repeats}, {"warmup", o.warmup},
                       {"stream", o.stream}, {"timeout_s", o.timeout_s}, {"read_delay_ms", o.read_delay_ms},
                       {"max_tokens", o.max_tokens ? json(*o.max_tokens) : json(nullptr)},
                       {"load", prof.text}};
  {
    json meta = json::array();
    for (const auto& q : queries) meta.push_back({{"line", q.line}, {"metadata", q.metadata}});
    result["workload"] = {{"path", o.queries_path}, {"sha256", ""}, {"rows", queries.size()}, {"metadata", meta}};
    result["workload"]["sha256"] = workload_sha256;
    if (o.generated.any()) {
      result["workload"]["path"] = o.generated.describe();
      for (auto it = workload_info.begin(); it != workload_info.end(); ++it) result["workload"][it.key()] = it.value();
    }
    // The fingerprint (docs/workloads.md): the request bodies in workload order (each point sends
    // them cyclically) and the first point's planned arrivals when it is an open loop.
    std::vector<double> schedule;
    if (!points.empty() && points[0].point.open_loop()) schedule = points[0].planned;
    auto fp = sessions.empty() ? workloads::fingerprint(bodies, schedule) : workloads::fingerprint(sessions);
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
  // A curve's pooled numbers mix loads: its warnings are each point's own (below).
  result["warnings"] = curve ? json::array() : json(result_warnings(result, o.stats.percentiles));
  if (curve) {
    json load = {{"profile", prof.text}, {"burstiness", prof.burstiness}, {"duration_s", prof.duration_s},
                 {"requests_per_point", prof.duration_s > 0 && prof.requests <= 0 ? json(nullptr) : json(per_point)}, {"warmup_window_s", prof.warmup_window_s},
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
  } else if (result.contains("schedule") && !result["schedule"].value("kept", true)) {
    result["warnings"].push_back(result["schedule"].value("warning", std::string("the client fell behind its schedule")));
  }
  if (!metrics_url.empty()) {
    double prompt = 0, output = 0;
    bool server_counts = true;
    for (const auto& r : results)
      if (r.ok) {
        prompt += r.prompt_tokens;
        output += r.output_tokens;
        server_counts = server_counts && r.usage_from_server;
      }
    json em = engine_metrics(metrics_kind, metrics_before, metrics_after, server_counts ? prompt : -1,
                             server_counts ? output : -1);
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
    em["url"] = metrics_url;
    em["raw"] = {{"before", metrics_before}, {"after", metrics_after}};  // write_result moves them to files
    if (!cut_before.empty() || !cut_after.empty()) {
      // An answer cut at the size or time bound is said to be cut, never "answered no samples".
      em["cut"] = {{"before", cut_before.empty() ? json(nullptr) : json(cut_before)},
                   {"after", cut_after.empty() ? json(nullptr) : json(cut_after)}};
      std::string why = !cut_after.empty() ? cut_after : cut_before;
      if (em.contains("error"))
        em["error"] = "the engine's answer at " + metrics_url + " was cut (" + why +
                      ") and what was read of it held no samples";
      else
        result["warnings"].push_back("engine counters: the engine's answer at " + metrics_url + " was cut (" + why +
                                     "): the counters come from the part read before the cut");
    }
    for (const auto& w : engine_metric_warnings(em)) result["warnings"].push_back(w);
    result["engine_metrics"] = em;
  }
  {
    // The client checked against the proxy's stopwatch, request by request.
    std::vector<std::uint64_t> ids;
    for (const auto& r : results)
      if (r.ok && r.proxy_id) ids.push_back(r.proxy_id);
    std::string cerr;
    json co;
    if (ids.empty()) {
      co = {{"matched", 0}, {"requests", completed},
            {"note", "the server sent no x-bench-proxy-request-id: not a bench-proxy (or an older one)"}};
    } else {
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
  } else if (after && after->id != before->id) {
    add_invalid_reason(result, "the snapshot changed during the run (" + before->id + " -> " + after->id +
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
  result["snapshot_id_after"] = after ? json(after->id) : json(nullptr);
  result["snapshot"] = before ? before->doc : json(nullptr);
  if (before) redact_like_snapshot(result, before->doc);
  return result;
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
