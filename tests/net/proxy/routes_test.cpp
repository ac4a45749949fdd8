// bench-proxy's own routes as a pure function: no sockets.
#include "net/proxy/routes.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

using namespace bp::net;

namespace {
local_request get(route where, std::string_view target = "/x") {
  local_request r;
  r.where = where;
  r.method = "GET";
  r.target = target;
  r.get = true;
  return r;
}
}  // namespace

TEST(LocalRoutes, MetaIs503WithRetryAfterUntilPublishedThenBytesWithEtagAnd304) {
  run_status st;
  auto a = answer_locally(get(route::meta), {st});
  EXPECT_EQ(a.status, 503);
  EXPECT_NE(a.headers.find("Retry-After: 2"), std::string::npos);
  auto doc = std::make_shared<meta_document>();
  doc->bytes = "{\"schema_version\":1}";
  doc->sha256 = "abc";
  st.publish(doc);
  a = answer_locally(get(route::meta), {st});
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(a.body, doc->bytes);
  EXPECT_EQ(a.headers, "ETag: \"abc\"\r\n");
  auto cond = get(route::meta);
  cond.if_none_match = "\"abc\"";
  a = answer_locally(cond, {st});
  EXPECT_EQ(a.status, 304);
  EXPECT_TRUE(a.body_omitted);
}

TEST(LocalRoutes, OnlyGetAndHeadAreAllowedAndHeadOmitsTheBody) {
  run_status st;
  auto post = get(route::healthz);
  post.get = false;
  post.method = "POST";
  auto a = answer_locally(post, {st});
  EXPECT_EQ(a.status, 405);
  EXPECT_EQ(a.headers, "Allow: GET, HEAD\r\n");
  auto head = get(route::healthz);
  head.get = false;
  head.head = true;
  a = answer_locally(head, {st});
  EXPECT_EQ(a.status, 200);
  EXPECT_TRUE(a.body_omitted);
  EXPECT_EQ(nlohmann::json::parse(a.body)["state"], "starting");
}

TEST(LocalRoutes, UnknownPathsAre404NamingThePathWithoutTheQueryEvenWithBadBytes) {
  run_status st;
  auto a = answer_locally(get(route::not_found, "/admin\xff?token=secret"), {st});
  EXPECT_EQ(a.status, 404);
  auto j = nlohmann::json::parse(a.body);
  std::string msg = j["error"]["message"];
  EXPECT_NE(msg.find("no route for GET /admin"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("token"), std::string::npos);
}

namespace {
request_record done_record(std::uint64_t id) {
  request_record r;
  r.id = id;
  r.method = "POST";
  r.path = "/v1/chat/completions";
  r.status = 200;
  r.stream = true;
  r.first_content_ms = 10;
  r.content_ms = {10, 12, 15};
  r.last_byte_ms = 16;
  return r;
}
}  // namespace

TEST(LocalRoutes, ProxyRequestsPagesRecordsAfterAnIdInIdOrderAsJsonLines) {
  run_status st;
  request_log log(100);
  for (std::uint64_t id : {3, 1, 2, 5, 4}) log.add(done_record(id));  // completion order != id order
  local_sources src{st, &log};
  auto a = answer_locally(get(route::proxy_requests, "/proxy/requests?after=1&limit=3"), src);
  ASSERT_EQ(a.status, 200);
  EXPECT_STREQ(a.content_type, "application/x-ndjson");
  std::vector<std::uint64_t> ids;
  std::size_t pos = 0;
  while (pos < a.body.size()) {
    auto nl = a.body.find('\n', pos);
    ids.push_back(nlohmann::json::parse(a.body.substr(pos, nl - pos))["id"].get<std::uint64_t>());
    pos = nl + 1;
  }
  EXPECT_EQ(ids, (std::vector<std::uint64_t>{2, 3, 4}));
  EXPECT_NE(a.headers.find("X-Bench-Proxy-Last-Id: 4\r\n"), std::string::npos) << a.headers;
  EXPECT_NE(a.headers.find("X-Bench-Proxy-More: true\r\n"), std::string::npos) << a.headers;
  a = answer_locally(get(route::proxy_requests, "/proxy/requests?after=4"), src);
  EXPECT_EQ(nlohmann::json::parse(a.body.substr(0, a.body.find('\n')))["id"], 5);
  EXPECT_NE(a.headers.find("X-Bench-Proxy-More: false"), std::string::npos);
}

TEST(LocalRoutes, ProxyRequestsSaysWhenRecordsLeftTheWindow) {
  run_status st;
  request_log log(3);
  for (std::uint64_t id = 1; id <= 6; ++id) log.add(done_record(id));  // 1..3 leave the window
  local_sources src{st, &log};
  auto a = answer_locally(get(route::proxy_requests, "/proxy/requests?after=0"), src);
  ASSERT_EQ(a.status, 200);
  EXPECT_NE(a.headers.find("X-Bench-Proxy-Evicted-Through: 3\r\n"), std::string::npos) << a.headers;
  EXPECT_NE(a.headers.find("X-Bench-Proxy-First-Id: 4\r\n"), std::string::npos) << a.headers;
  a = answer_locally(get(route::proxy_requests, "/proxy/requests?after=3"), src);
  EXPECT_EQ(a.headers.find("Evicted"), std::string::npos) << a.headers;  // nothing after 3 was lost
}

TEST(LocalRoutes, ProxyRequestsRefusesBadParametersNamingThem) {
  run_status st;
  request_log log;
  local_sources src{st, &log};
  for (const char* t : {"/proxy/requests?after=-1", "/proxy/requests?after=x", "/proxy/requests?limit=0",
                        "/proxy/requests?limit=10001", "/proxy/requests?after=99999999999999999999",
                        "/proxy/requests?after=1&after=2", "/proxy/requests?limit=1&x=2&limit=3"}) {
    auto a = answer_locally(get(route::proxy_requests, t), src);
    EXPECT_EQ(a.status, 400) << t;
    std::string msg = nlohmann::json::parse(a.body)["error"]["message"];
    EXPECT_TRUE(msg.find("'after'") != std::string::npos || msg.find("'limit'") != std::string::npos) << msg;
  }
}

TEST(LocalRoutes, MetricsIsThePrometheusTextFormatWithTheInfoGauge) {
  run_status st;
  st.set_config_description("mock demo");
  st.set_engine_metrics("/metrics", "mock");
  proxy_metrics m;
  m.observe(done_record(1));
  local_sources src{st, nullptr, &m, {2, 3}};
  auto a = answer_locally(get(route::metrics, "/metrics"), src);
  ASSERT_EQ(a.status, 200);
  EXPECT_STREQ(a.content_type, "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(a.body.find("bench_proxy_ttft_seconds_count 1"), std::string::npos) << a.body;
  EXPECT_NE(a.body.find("bench_proxy_inter_token_latency_seconds_count 2"), std::string::npos);
  EXPECT_NE(a.body.find("bench_proxy_requests_total{route=\"/v1/chat/completions\",status=\"200\"} 1"),
            std::string::npos);
  EXPECT_NE(a.body.find("config=\"mock demo\""), std::string::npos);
  EXPECT_NE(a.body.find("snapshot_id=\"\""), std::string::npos);
  EXPECT_NE(a.body.find("bench_proxy_open_connections 3"), std::string::npos);
}

namespace {
local_request window_post(std::string_view body) {
  local_request r;
  r.where = route::proxy_window;
  r.method = "POST";
  r.target = "/proxy/window";
  r.body = body;
  return r;
}
}  // namespace

TEST(LocalRoutes, ProxyWindowStartsAndStopsNamedWindowsByRequestId) {
  run_status st;
  request_log log;
  local_sources src{st, &log};
  src.windows = &log;
  log.next_id();  // request 1 arrived before the window
  auto a = answer_locally(window_post(R"({"name": "phase one", "action": "start"})"), src);
  ASSERT_EQ(a.status, 200) << a.body;
  log.next_id();
  log.next_id();  // requests 2 and 3 inside it
  a = answer_locally(window_post(R"({"name": "phase one", "action": "stop"})"), src);
  ASSERT_EQ(a.status, 200) << a.body;
  a = answer_locally(get(route::proxy_window, "/proxy/window"), src);
  ASSERT_EQ(a.status, 200);
  auto j = nlohmann::json::parse(a.body);
  EXPECT_EQ(j["last_id"], 3);
  ASSERT_EQ(j["windows"].size(), 1u);
  EXPECT_EQ(j["windows"][0]["name"], "phase one");
  EXPECT_EQ(j["windows"][0]["after_id"], 1);
  EXPECT_EQ(j["windows"][0]["through_id"], 3);
  EXPECT_EQ(j["windows"][0]["open"], false);
}

TEST(LocalRoutes, ProxyWindowRefusesUnknownActionsNamesAndBadBodiesWith400) {
  run_status st;
  request_log log;
  local_sources src{st, &log};
  src.windows = &log;
  for (const char* body : {R"({"name": "a", "action": "pause"})",  // unknown action
                           R"({"name": "never", "action": "stop"})",  // unknown name
                           "{\"name\": \"caf\xc3\xa9\", \"action\": \"start\"}",  // not printable ASCII
                           "{\"name\": \"tab\\there\", \"action\": \"start\"}",   // a control character
                           R"({"name": "", "action": "start"})", R"({"name": "a/b", "action": "start"})",
                           R"({"name": "..", "action": "start"})", R"({"action": "start"})", R"(["a"])", "not json",
                           R"({"name": "a", "action": "start", "extra": 1})"}) {
    auto a = answer_locally(window_post(body), src);
    EXPECT_EQ(a.status, 400) << body;
    EXPECT_NE(a.body.find("/proxy/window"), std::string::npos) << a.body;
  }
  ASSERT_EQ(answer_locally(window_post(R"({"name": "a", "action": "start"})"), src).status, 200);
  EXPECT_EQ(answer_locally(window_post(R"({"name": "a", "action": "start"})"), src).status, 400);  // once
  ASSERT_EQ(answer_locally(window_post(R"({"name": "a", "action": "stop"})"), src).status, 200);
  EXPECT_EQ(answer_locally(window_post(R"({"name": "a", "action": "stop"})"), src).status, 400);  // once
  auto put = window_post("{}");
  put.method = "PUT";
  EXPECT_EQ(answer_locally(put, src).status, 405);
}

// One table (net/proxy/route_table.hpp) decides every route: the parser's route, the local
// answer, the metrics label and the 404 message all come from it.
TEST(RouteTable, EveryPathHasOneRouteOneLabelAndIsNamedInThe404) {
  run_status st;
  auto missing = answer_locally(get(route::not_found, "/nowhere"), {st});
  ASSERT_EQ(missing.status, 404);
  for (const auto& e : kRouteTable) {
    EXPECT_EQ(find_route(e.path), e.where) << e.path;
    EXPECT_EQ(route_entry_of(e.where), &e) << e.path;
    if (e.prefix) {
      EXPECT_EQ(find_route(std::string(e.path) + "/anything"), e.where) << e.path;
      EXPECT_EQ(find_route(std::string(e.path) + "x"), route::not_found) << e.path;
    } else {
      EXPECT_EQ(route_label(e.path), e.path);  // each route of its own label
      EXPECT_EQ(find_route(std::string(e.path) + "/x"), route::not_found) << e.path;
    }
    EXPECT_NE(missing.body.find(std::string(e.path)), std::string::npos) << e.path << ": " << missing.body;
    // A local route is answered here (never the 404 of an unknown path).
    if (e.local) {
      EXPECT_NE(answer_locally(get(e.where, e.path), {st}).body, missing.body) << e.path;
    }
  }
  EXPECT_EQ(route_label("/v1/chat/completions?x=1"), "/v1/chat/completions");
  EXPECT_EQ(route_label("/v1/models/m"), "/v1/models");
  EXPECT_EQ(route_label("/v1/unheard-of"), "/v1/other");
  EXPECT_EQ(route_label("/admin"), "other");
}
