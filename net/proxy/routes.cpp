#include "net/proxy/routes.hpp"

#include <nlohmann/json.hpp>

namespace bp::net {

std::string json_error(int code, std::string_view type, const std::string& msg) {
  nlohmann::json j = {{"error", {{"message", msg}, {"type", std::string(type)}, {"code", code}}}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

local_answer answer_locally(const local_request& r, const run_status& status) {
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
    case local_route::healthz:
      if (!r.get && !r.head) return method_not_allowed();
      a.body = status.healthz_json();
      a.headers = "Cache-Control: no-store\r\n";
      return a;
    case local_route::meta: {
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
    case local_route::not_found:
      break;
  }
  std::string_view path = r.target.substr(0, r.target.find('?'));
  a.status = 404;
  a.reason = "Not Found";
  a.body_omitted = false;
  a.body = json_error(404, "not_found",
                      "no route for " + std::string(r.method) + " " + std::string(path) +
                          " (bench-proxy serves /v1/*, /engine/metrics, /healthz and /meta)");
  return a;
}

}  // namespace bp::net
