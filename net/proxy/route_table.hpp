#pragma once
/// bench-proxy's HTTP routes, in one table: each path (or prefix), the route it is, whether
/// bench-proxy answers it itself, and its label in bench-proxy's own /metrics. The request parser
/// (http1.hpp) decides a request's route here, the session (session.cpp) forwards or answers
/// by it, the local answers (routes.cpp) switch on it, and the metrics (proxy_metrics.cpp) take
/// their closed label set from it. Adding a route: docs/architecture.md, "Adding things".
/// Header-only, no Boost: read on every request.
#include <array>
#include <cstddef>
#include <string_view>

namespace bp::net {

enum class route { proxy, engine_metrics, healthz, meta, metrics, proxy_requests, proxy_window, not_found };

struct route_entry {
  std::string_view path;  ///< the exact path, or with `prefix` the path and everything below it ("/v1", "/v1/...")
  bool prefix;
  route where;
  bool local;             ///< answered by bench-proxy itself (net/proxy/routes.cpp); else forwarded to the engine
  std::string_view what;  ///< one line for the 404 message and docs/cli.md's endpoint table
};

inline constexpr std::array<route_entry, 7> kRouteTable = {{
    {"/v1", true, route::proxy, false, "the engine's OpenAI API, proxied and timed"},
    {"/engine/metrics", false, route::engine_metrics, false, "the engine's own Prometheus /metrics, passed through"},
    {"/metrics", false, route::metrics, true, "bench-proxy's own Prometheus metrics"},
    {"/proxy/requests", false, route::proxy_requests, true, "the proxy's records of each request"},
    {"/proxy/window", false, route::proxy_window, true, "measurement windows: start, stop, list"},
    {"/healthz", false, route::healthz, true, "the run's state"},
    {"/meta", false, route::meta, true, "the provenance snapshot"},
}};

/// The route of a request path (without its query).
constexpr route find_route(std::string_view path) {
  for (const auto& e : kRouteTable) {
    if (path == e.path) return e.where;
    if (e.prefix && path.size() > e.path.size() && path.substr(0, e.path.size()) == e.path &&
        path[e.path.size()] == '/')
      return e.where;
  }
  return route::not_found;
}

/// The table's entry of a route (nullptr for route::not_found).
constexpr const route_entry* route_entry_of(route r) {
  for (const auto& e : kRouteTable)
    if (e.where == r) return &e;
  return nullptr;
}

static_assert(find_route("/v1") == route::proxy && find_route("/v1/chat/completions") == route::proxy &&
              find_route("/v1x") == route::not_found && find_route("/meta") == route::meta &&
              find_route("/meta/x") == route::not_found && find_route("/") == route::not_found);

}  // namespace bp::net
