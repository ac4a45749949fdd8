#pragma once
/// What bench-proxy answers itself (/healthz, /meta, 404 and the JSON error bodies): a pure
/// function from request to response, apart from the session's I/O and Boost-free. Adding a
/// local route: a case here, its path in http1::request_parser::on_request_impl, a test in
/// tests/net/proxy/routes_test.cpp (docs/architecture.md, "Adding an HTTP route").
#include <string>
#include <string_view>

#include "net/proxy/run_status.hpp"

namespace bp::net {

enum class local_route { healthz, meta, not_found };

struct local_request {
  local_route where = local_route::not_found;
  std::string_view method;  ///< as sent
  std::string_view target;  ///< path and query
  bool get = false, head = false;
  std::string_view if_none_match;
};

struct local_answer {
  int status = 200;
  const char* reason = "OK";
  std::string body;
  std::string headers;  ///< extra header lines, each ending in CRLF
  bool body_omitted = false;  ///< HEAD or 304: Content-Length as for GET, no body bytes
};

/// The answer to a request for one of bench-proxy's own routes.
local_answer answer_locally(const local_request& r, const run_status& status);

/// {"error": {"message", "type", "code"}}; invalid UTF-8 in `msg` (client bytes) is replaced.
std::string json_error(int code, std::string_view type, const std::string& msg);

}  // namespace bp::net
