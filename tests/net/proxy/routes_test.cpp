// bench-proxy's own routes as a pure function: no sockets.
#include "net/proxy/routes.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

using namespace bp::net;

namespace {
local_request get(local_route where, std::string_view target = "/x") {
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
  auto a = answer_locally(get(local_route::meta), st);
  EXPECT_EQ(a.status, 503);
  EXPECT_NE(a.headers.find("Retry-After: 2"), std::string::npos);
  auto doc = std::make_shared<meta_document>();
  doc->bytes = "{\"schema_version\":1}";
  doc->sha256 = "abc";
  st.publish(doc);
  a = answer_locally(get(local_route::meta), st);
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(a.body, doc->bytes);
  EXPECT_EQ(a.headers, "ETag: \"abc\"\r\n");
  auto cond = get(local_route::meta);
  cond.if_none_match = "\"abc\"";
  a = answer_locally(cond, st);
  EXPECT_EQ(a.status, 304);
  EXPECT_TRUE(a.body_omitted);
}

TEST(LocalRoutes, OnlyGetAndHeadAreAllowedAndHeadOmitsTheBody) {
  run_status st;
  auto post = get(local_route::healthz);
  post.get = false;
  post.method = "POST";
  auto a = answer_locally(post, st);
  EXPECT_EQ(a.status, 405);
  EXPECT_EQ(a.headers, "Allow: GET, HEAD\r\n");
  auto head = get(local_route::healthz);
  head.get = false;
  head.head = true;
  a = answer_locally(head, st);
  EXPECT_EQ(a.status, 200);
  EXPECT_TRUE(a.body_omitted);
  EXPECT_EQ(nlohmann::json::parse(a.body)["state"], "starting");
}

TEST(LocalRoutes, UnknownPathsAre404NamingThePathWithoutTheQueryEvenWithBadBytes) {
  run_status st;
  auto a = answer_locally(get(local_route::not_found, "/admin\xff?token=secret"), st);
  EXPECT_EQ(a.status, 404);
  auto j = nlohmann::json::parse(a.body);
  std::string msg = j["error"]["message"];
  EXPECT_NE(msg.find("no route for GET /admin"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("token"), std::string::npos);
}
