#include "net/proxy/routes.hpp"

#include <charconv>

#include <nlohmann/json.hpp>

namespace bp::net {

namespace {
constexpr std::size_t http1_max_local_body = 4096;  // http1::max_local_body (routes.cpp stays Boost-free)
}

std::string json_error(int code, std::string_view type, const std::string& msg) {
  nlohmann::json j = {{"error", {{"message", msg}, {"type", std::string(type)}, {"code", code}}}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

namespace {

/// The value of `name` in a query string ("" when absent); `found` says whether it was there.
/// `count` gets how many times it is there (a repeated parameter is refused, not first-wins).
std::string_view query_param(std::string_view target, std::string_view name, bool& found, int* count = nullptr) {
  found = false;
  if (count) *count = 0;
  std::string_view value;
  auto q = target.find('?');
  if (q == std::string_view::npos) return {};
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    auto amp = rest.find('&');
    std::string_view kv = rest.substr(0, amp);
    auto eq = kv.find('=');
    if (kv.substr(0, eq) == name) {
      if (count) ++*count;
      if (!found) value = eq == std::string_view::npos ? std::string_view() : kv.substr(eq + 1);
      found = true;
    }
    if (amp == std::string_view::npos) break;
    rest.remove_prefix(amp + 1);
  }
  return value;
}

bool whole_number(std::string_view s, std::uint64_t& out) {
  if (s.empty() || s.size() > 19) return false;
  auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

}  // namespace

namespace {
/// "/v1/*, /engine/metrics, ... and /meta": the table's paths, for the 404 message.
std::string served_paths() {
  std::string out;
  for (std::size_t i = 0; i < kRouteTable.size(); ++i) {
    const auto& e = kRouteTable[i];
    out += (i == 0 ? "" : i + 1 == kRouteTable.size() ? " and " : ", ") + std::string(e.path) + (e.prefix ? "/*" : "");
  }
  return out;
}
}  // namespace

local_answer answer_locally(const local_request& r, const local_sources& src) {
  const run_status& status = src.status;
  local_answer a;
  a.body_omitted = r.head;
  auto method_not_allowed = [&] {
    a.status = 405;
    a.reason = "Method Not Allowed";
    a.body = json_error(405, "invalid_request_error", "use GET");
    a.headers = "Allow: GET, HEAD\r\n";
    a.body_omitted = false;
    return a;
  };
  switch (r.where) {
    case route::healthz:
      if (!r.get && !r.head) return method_not_allowed();
      a.body = status.healthz_json();
      a.headers = "Cache-Control: no-store\r\n";
      return a;
    case route::meta: {
      if (!r.get && !r.head) return method_not_allowed();
      auto doc = status.meta();
      if (!doc) {
        a.status = 503;
        a.reason = "Service Unavailable";
        a.body = status.meta_pending_json();
        a.headers = "Retry-After: 2\r\nCache-Control: no-store\r\n";
        return a;
      }
      std::string etag = "\"" + doc->sha256 + "\"";
      a.headers = "ETag: " + etag + "\r\n";
      if (!r.if_none_match.empty() && (r.if_none_match == etag || r.if_none_match == "*")) {
        a.status = 304;
        a.reason = "Not Modified";
        a.body_omitted = true;
        return a;
      }
      a.body = doc->bytes;
      return a;
    }
    case route::metrics:
      if (!r.get && !r.head) return method_not_allowed();
      a.content_type = "text/plain; version=0.0.4; charset=utf-8";
      a.headers = "Cache-Control: no-store\r\n";
      a.body = src.metrics ? src.metrics->exposition(status, src.gauges) : std::string();
      return a;
    case route::proxy_requests: {
      if (!r.get && !r.head) return method_not_allowed();
      std::uint64_t after = 0, limit = kRequestsPageDefault;
      bool found = false;
      auto bad = [&](const std::string& msg) {
        a.status = 400;
        a.reason = "Bad Request";
        a.body = json_error(400, "invalid_request_error", msg);
        a.body_omitted = false;
        return a;
      };
      for (const char* p : {"after", "limit"}) {
        int n = 0;
        query_param(r.target, p, found, &n);
        if (n > 1) return bad(std::string("/proxy/requests: '") + p + "' is given " + std::to_string(n) + " times");
      }
      std::string_view v = query_param(r.target, "after", found);
      if (found && !whole_number(v, after))
        return bad("/proxy/requests: 'after' must be a request id (a whole number), got '" + std::string(v) + "'");
      v = query_param(r.target, "limit", found);
      if (found && (!whole_number(v, limit) || limit == 0 || limit > kRequestsPageMax))
        return bad("/proxy/requests: 'limit' must be a whole number from 1 to " + std::to_string(kRequestsPageMax) +
                   ", got '" + std::string(v) + "'");
      bool more = false;
      std::uint64_t last = after, first = 0, evicted = 0;
      if (src.requests) {
        for (const auto& line : src.requests->after(after, static_cast<std::size_t>(limit), &more, &last, &first)) {
          a.body += line;
          a.body += '\n';
        }
        evicted = src.requests->evicted_through();
      }
      a.content_type = "application/x-ndjson";
      // Paging: ask again with after=<X-Bench-Proxy-Last-Id> while X-Bench-Proxy-More is true.
      a.headers = "Cache-Control: no-store\r\nX-Bench-Proxy-Last-Id: " + std::to_string(last) +
                  "\r\nX-Bench-Proxy-More: " + (more ? "true" : "false") + "\r\n";
      // Records after `after` that already left the window are said, never skipped silently
      // (requests.jsonl has every one).
      if (evicted > after)
        a.headers += "X-Bench-Proxy-Evicted-Through: " + std::to_string(evicted) +
                     "\r\nX-Bench-Proxy-First-Id: " + std::to_string(first) + "\r\n";
      return a;
    }
    case route::proxy_window: {
      // Measurement windows (docs/clients.md): POST {"name": N, "action": "start"|"stop"}; GET lists them.
      auto bad = [&](int code, const char* reason, const std::string& msg) {
        a.status = code;
        a.reason = reason;
        a.body = json_error(code, "invalid_request_error", "/proxy/window: " + msg);
        a.body_omitted = false;
        return a;
      };
      auto listing = [&] {
        nlohmann::json ws = nlohmann::json::array();
        if (src.windows)
          for (const auto& w : src.windows->windows())
            ws.push_back({{"name", w.name},
                          {"after_id", w.after_id},
                          {"through_id", w.open ? nlohmann::json(nullptr) : nlohmann::json(w.through_id)},
                          {"start_unix_us", w.start_unix_us},
                          {"stop_unix_us", w.open ? nlohmann::json(nullptr) : nlohmann::json(w.stop_unix_us)},
                          {"open", w.open}});
        return ws;
      };
      a.headers = "Cache-Control: no-store\r\n";
      if (r.get || r.head) {
        nlohmann::json j = {{"windows", listing()}, {"last_id", src.windows ? src.windows->last_id() : 0}};
        a.body = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        return a;
      }
      if (r.method != "POST") {
        method_not_allowed();
        a.body = json_error(405, "invalid_request_error", "use POST to start or stop a window, GET to list them");
        a.headers = "Allow: GET, HEAD, POST\r\n";
        return a;
      }
      if (!src.windows) return bad(503, "Service Unavailable", "no request log");
      if (r.body.size() > http1_max_local_body)
        return bad(400, "Bad Request", "the body is larger than " + std::to_string(http1_max_local_body) + " bytes");
      nlohmann::json body = nlohmann::json::parse(r.body.begin(), r.body.end(), nullptr, false);
      if (body.is_discarded() || !body.is_object())
        return bad(400, "Bad Request", "the body must be a JSON object {\"name\": NAME, \"action\": \"start\"|\"stop\"}");
      for (auto it = body.begin(); it != body.end(); ++it)
        if (it.key() != "name" && it.key() != "action") return bad(400, "Bad Request", "unknown key '" + it.key() + "'");
      if (!body.contains("name") || !body["name"].is_string()) return bad(400, "Bad Request", "'name' must be a string");
      if (!body.contains("action") || !body["action"].is_string())
        return bad(400, "Bad Request", "'action' must be \"start\" or \"stop\"");
      std::string err;
      const std::string name = body["name"].get<std::string>(), action = body["action"].get<std::string>();
      if (!src.windows->window_action(name, action, err)) return bad(400, "Bad Request", err);
      nlohmann::json j = {{"name", name}, {"action", action}, {"windows", listing()}};
      a.body = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      return a;
    }
    case route::proxy:
    case route::engine_metrics:  // forwarded by the session, never answered here
    case route::not_found:
      break;
  }
  std::string_view path = r.target.substr(0, r.target.find('?'));
  a.status = 404;
  a.reason = "Not Found";
  a.body_omitted = false;
  a.body = json_error(404, "not_found",
                      "no route for " + std::string(r.method) + " " + std::string(path) + " (bench-proxy serves " +
                          served_paths() + ")");
  return a;
}

}  // namespace bp::net
