#include "net/loadgen/bench.hpp"
#include "configs/engine_kinds.hpp"
#include "net/loadgen/crosscheck.hpp"
#include "analysis/engine_metrics.hpp"
#include "net/loadgen/prefix_cache.hpp"
#include "analysis/warnings.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
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

namespace {

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

}  // namespace

json run(const options& o) {
  std::string workload_sha256;
  auto queries = load_workload(o.queries_path, &workload_sha256);
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

  // The request schedule: queries in file order, repeated.
  long total = o.num_requests > 0 ? o.num_requests : static_cast<long>(queries.size()) * std::max(1, o.repeats);
  std::vector<std::string> bodies;
  std::vector<int> lines;
  for (long i = 0; i < total + o.warmup; ++i) {
    const auto& q = queries[static_cast<std::size_t>(i % static_cast<long>(queries.size()))];
    json req = q.request;
    req["model"] = model;
    if (o.max_tokens) req["max_tokens"] = *o.max_tokens;
    if (o.stream) {
      req["stream"] = true;
      req["stream_options"] = {{"include_usage", true}};
    }
    bodies.push_back(req.dump());
    lines.push_back(q.line);
  }
  std::string target = "http://" + up.host + ":" + std::to_string(up.port) + "/v1/chat/completions";

  // Warmup: sequential, excluded from every statistic.
  {
    client c(target);
    for (int i = 0; i < o.warmup; ++i) {
      auto r = c.send(bodies[static_cast<std::size_t>(i)], o.stream, o.timeout_s);
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

  std::vector<double> arrivals(static_cast<std::size_t>(total), 0.0);
  if (o.rate > 0) {
    std::mt19937_64 rng(o.seed);
    std::exponential_distribution<double> gap(o.rate);
    double t = 0;
    for (auto& a : arrivals) {
      a = t;
      t += gap(rng) * 1000.0;
    }
  }
  std::vector<request_result> results(static_cast<std::size_t>(total));
  std::atomic<long> next{0}, done{0}, errors{0};
  auto run_start = clock_type::now();
  std::mutex progress_mu;
  auto worker = [&] {
    client c(target);
    if (o.read_delay_ms > 0) c.set_read_delay_ms(o.read_delay_ms);
    for (;;) {
      if (o.cancel && o.cancel->load()) return;
      long i = next.fetch_add(1);
      if (i >= total) return;
      if (o.rate > 0) std::this_thread::sleep_until(run_start + std::chrono::microseconds(static_cast<long>(arrivals[static_cast<std::size_t>(i)] * 1000)));
      double offset = std::chrono::duration<double, std::milli>(clock_type::now() - run_start).count();
      auto r = c.send(bodies[static_cast<std::size_t>(i + o.warmup)], o.stream, o.timeout_s, o.keep_text);
      r.index = static_cast<int>(i);
      r.query_line = lines[static_cast<std::size_t>(i + o.warmup)];
      r.start_offset_ms = offset;
      if (!r.ok) errors++;
      results[static_cast<std::size_t>(i)] = std::move(r);
      long d = ++done;
      if (o.progress) {
        std::lock_guard<std::mutex> g(progress_mu);
        o.progress(d, total, errors.load());
      }
    }
  };
  int conc = std::max(1, o.concurrency);
  std::vector<std::thread> pool;
  for (int i = 1; i < conc; ++i) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  double wall_s = std::chrono::duration<double>(clock_type::now() - run_start).count();

  std::string metrics_after = metrics_url.empty() ? "" : scrape_metrics(cut_after);
  auto after = fetch_snapshot(base, err);
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
  s["concurrency"] = conc;
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
  result["summary"] = s;
  result["options"] = {{"queries", o.queries_path}, {"concurrency", conc}, {"rate", o.rate},
                       {"requests", total}, {"repeats", o.repeats}, {"warmup", o.warmup},
                       {"stream", o.stream}, {"timeout_s", o.timeout_s}, {"read_delay_ms", o.read_delay_ms},
                       {"max_tokens", o.max_tokens ? json(*o.max_tokens) : json(nullptr)}};
  {
    json meta = json::array();
    for (const auto& q : queries) meta.push_back({{"line", q.line}, {"metadata", q.metadata}});
    result["workload"] = {{"path", o.queries_path}, {"sha256", ""}, {"rows", queries.size()}, {"metadata", meta}};
    result["workload"]["sha256"] = workload_sha256;
  }
  result["requests"] = reqs;
  {
    // The headline: the chosen metric with its interval, read back from exactly these requests.
    const metric_def* def = find_metric(o.headline);
    if (!def) throw std::invalid_argument("--headline: unknown metric '" + o.headline + "' (" + metric_names() + ")");
    std::string why;
    auto samples = samples_of(result, o.headline, o.slo, why);
    json h;
    if (samples) {
      h = to_json(estimator({*samples}).run(o.stats.bootstrap_resamples, o.stats.confidence, o.stats.seed + 100), *def);
    } else {
      h = {{"metric", def->name}, {"description", def->description}, {"unit", def->unit},
           {"higher_is_better", def->higher_is_better}, {"value", 0.0}, {"ci", nullptr}, {"trials", 1},
           {"error", why}};
    }
    result["summary"]["headline"] = h;
    result["warnings"] = result_warnings(result, o.stats.percentiles);
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
        const json& q = queries[static_cast<std::size_t>((r.index + o.warmup) % static_cast<long>(queries.size()))].request;
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
