#include "net/loadgen/stream_client.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <stdexcept>
#include <thread>

#include "base/json_read.hpp"
#include "base/numbers.hpp"
#include "base/text.hpp"
#include "net/client/http_client.hpp"

namespace bp::bench {

using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;

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

namespace {

// GET /meta, with If-None-Match when `known_id` is given (then a 304 is an answer too); nullopt
// and `err` for anything else than 200 or that 304.
std::optional<net::http_response> get_meta(const std::string& base_url, const std::string& known_id, std::string& err,
                                           int* status) {
  std::vector<std::pair<std::string, std::string>> headers;
  if (!known_id.empty()) headers.emplace_back("If-None-Match", "\"" + known_id + "\"");
  auto r = net::http_fetch("GET", base_url + "/meta", "", std::chrono::seconds(30), err, 256ull << 20, headers);
  if (!r) return std::nullopt;
  if (status) *status = r->status;
  if (r->status != 200 && !(r->status == 304 && !known_id.empty())) {
    err = "GET /meta answered HTTP " + std::to_string(r->status);
    return std::nullopt;
  }
  return r;
}

// The snapshot id a /meta answer names: its ETag without the quotes.
std::string etag_id(const net::http_response& r) {
  std::string etag = r.header("etag");
  if (etag.size() >= 2 && etag.front() == '"') etag = etag.substr(1, etag.size() - 2);
  return etag;
}

}  // namespace

std::optional<snapshot_ref> fetch_snapshot(const std::string& base_url, std::string& err, int* status) {
  auto r = get_meta(base_url, "", err, status);
  if (!r) return std::nullopt;
  snapshot_ref s;
  s.id = etag_id(*r);
  try {
    s.doc = base::parse_json(r->body, base_url + "/meta", base::json_file_depth);
  } catch (const std::exception& e) {
    err = std::string("GET /meta: not JSON: ") + e.what();
    return std::nullopt;
  }
  return s;
}

std::optional<snapshot_ref> fetch_snapshot(const std::string& base_url, std::string& err, int* status,
                                           const std::shared_ptr<snapshot_ref>& known) {
  if (known && !known->id.empty()) {
    std::string why;
    auto id = fetch_snapshot_id(base_url, known->id, why);
    if (id && *id == known->id) {
      if (status) *status = 200;
      snapshot_ref taken = std::move(*known);
      known->id.clear();  // taken: a second call fetches
      return taken;
    }
  }
  return fetch_snapshot(base_url, err, status);
}

std::optional<std::string> fetch_snapshot_id(const std::string& base_url, const std::string& known_id,
                                             std::string& err) {
  if (known_id.empty()) {  // nothing to compare an ETag with: the whole document must be JSON
    auto s = fetch_snapshot(base_url, err);
    if (!s) return std::nullopt;
    return s->id;
  }
  auto r = get_meta(base_url, known_id, err, nullptr);
  if (!r) return std::nullopt;
  return r->status == 304 ? known_id : etag_id(*r);
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

}  // namespace bp::bench
