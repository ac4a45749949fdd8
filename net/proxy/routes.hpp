#pragma once
/// What bench-proxy answers itself (/healthz, /meta, /metrics, /proxy/requests, /proxy/window, 404 and the JSON
/// error bodies): a pure
/// function from request to response, apart from the session's I/O and Boost-free. Adding a
/// local route: its row in route_table.hpp, a case here, a test in tests/net/proxy/routes_test.cpp
/// (docs/architecture.md, "Adding things").
#include <string>
#include <string_view>

#include "net/proxy/proxy_metrics.hpp"
#include "net/proxy/request_log.hpp"
#include "net/proxy/route_table.hpp"
#include "net/proxy/run_status.hpp"

namespace bp::net {

struct local_request {
  route where = route::not_found;  ///< a local one (route_table.hpp); any other is answered 404
  std::string_view method;  ///< as sent
  std::string_view target;  ///< path and query
  bool get = false, head = false;
  std::string_view if_none_match;
  std::string_view body;  ///< POST /proxy/window's body (at most http1::max_local_body + 1 bytes of it)
};

struct local_answer {
  int status = 200;
  const char* reason = "OK";
  std::string body;
  const char* content_type = "application/json";
  std::string headers;  ///< extra header lines, each ending in CRLF
  bool body_omitted = false;  ///< HEAD or 304: Content-Length as for GET, no body bytes
};

/// What the local routes read: the run's state, the proxy's request records and metrics.
struct local_sources {
  local_sources(const run_status& s, const request_log* r = nullptr, const proxy_metrics* m = nullptr,
                proxy_metrics::gauges g = {})
      : status(s), requests(r), metrics(m), gauges(g) {}
  const run_status& status;
  const request_log* requests = nullptr;
  const proxy_metrics* metrics = nullptr;
  proxy_metrics::gauges gauges;
  request_log* windows = nullptr;  ///< POST /proxy/window starts and stops windows here (null: 503)
};

/// The answer to a request for one of bench-proxy's own routes.
local_answer answer_locally(const local_request& r, const local_sources& src);

/// The most records one GET /proxy/requests returns (its `limit` default and ceiling).
inline constexpr std::size_t kRequestsPageDefault = 1000, kRequestsPageMax = 10000;

/// {"error": {"message", "type", "code"}}; invalid UTF-8 in `msg` (client bytes) is replaced.
std::string json_error(int code, std::string_view type, const std::string& msg);

}  // namespace bp::net
