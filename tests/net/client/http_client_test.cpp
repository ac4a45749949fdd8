#include "net/client/http_client.hpp"

#include <gtest/gtest.h>

using namespace bp::net;

TEST(ResponseReader, ContentLengthInPieces) {
  response_reader r;
  std::string msg = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"a\": true}";
  for (char c : msg) ASSERT_TRUE(r.feed(std::string_view(&c, 1))) << r.error();
  ASSERT_TRUE(r.done());
  EXPECT_EQ(r.response().status, 200);
  EXPECT_EQ(r.response().body, "{\"a\": true}");
  EXPECT_EQ(r.response().header("content-type"), "application/json");
  EXPECT_TRUE(r.keep_alive());
}

TEST(ResponseReader, ChunkedBodyIsDecodedAndStreamed) {
  response_reader r;
  std::vector<std::string> pieces;
  std::string msg =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "6\r\ndata: \r\n3;ext=1\r\nabc\r\n0\r\nTrailer: x\r\n\r\n";
  ASSERT_TRUE(r.feed(msg, [&](std::string_view p) { pieces.emplace_back(p); })) << r.error();
  ASSERT_TRUE(r.done());
  EXPECT_EQ(pieces.size(), 2u);
  EXPECT_EQ(pieces[0] + pieces[1], "data: abc");
}

TEST(ResponseReader, CloseDelimitedAndInterimResponses) {
  response_reader r;
  ASSERT_TRUE(r.feed("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\n\r\nhello"));
  EXPECT_FALSE(r.done());
  ASSERT_TRUE(r.feed_eof());
  EXPECT_EQ(r.response().body, "hello");
  EXPECT_FALSE(r.keep_alive());
}

TEST(ResponseReader, ProtocolErrors) {
  response_reader a;
  EXPECT_FALSE(a.feed("SMTP ready\r\n"));
  response_reader b;
  EXPECT_FALSE(b.feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"));
  response_reader c;
  ASSERT_TRUE(c.feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"));
  EXPECT_FALSE(c.feed_eof());
  EXPECT_NE(c.error().find("mid-response"), std::string::npos);
}

TEST(Url, Parsing) {
  url_parts u;
  std::string err;
  ASSERT_TRUE(parse_url("http://127.0.0.1:8080/v1/models?x=1", u, err));
  EXPECT_EQ(u.host, "127.0.0.1");
  EXPECT_EQ(u.port, 8080);
  EXPECT_EQ(u.target, "/v1/models?x=1");
  ASSERT_TRUE(parse_url("http://[::1]:9000", u, err));
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.target, "/");
  EXPECT_FALSE(parse_url("https://x", u, err));
  EXPECT_FALSE(parse_url("http://x:99999/", u, err));
}

TEST(Connection, RefusedPortIsAClearError) {
  std::string err;
  auto r = http_fetch("GET", "http://127.0.0.1:1/x", "", std::chrono::seconds(2), err);
  EXPECT_FALSE(r);
  EXPECT_NE(err.find("127.0.0.1:1"), std::string::npos) << err;
}
