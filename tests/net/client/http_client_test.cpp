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

// ---- issue 26: a server that answers before reading the request; bounded /metrics scrapes ----

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <thread>

#include "net/loadgen/bench.hpp"

namespace {

/// One connection on 127.0.0.1, handled by `serve(fd)` on a thread; the port in port().
class one_shot_server {
 public:
  explicit one_shot_server(std::function<void(int)> serve) {
    lfd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(lfd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    ::listen(lfd_, 4);
    socklen_t len = sizeof(a);
    ::getsockname(lfd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    t_ = std::thread([this, serve] {
      int fd = ::accept(lfd_, nullptr, nullptr);
      if (fd >= 0) {
        serve(fd);
        ::close(fd);
      }
    });
  }
  ~one_shot_server() {
    t_.join();
    ::close(lfd_);
  }
  std::uint16_t port() const { return port_; }

 private:
  int lfd_;
  std::uint16_t port_ = 0;
  std::thread t_;
};

/// Reads up to the end of the request's header (never its body).
void read_header(int fd) {
  std::string got;
  char c;
  while (got.find("\r\n\r\n") == std::string::npos && ::recv(fd, &c, 1, 0) == 1) got += c;
}

void send_text(int fd, const std::string& s) {
  std::size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += static_cast<std::size_t>(n);
  }
}

}  // namespace

TEST(Connection, AnAnswerBeforeTheBodyWasReadIsReturnedNotABrokenPipe) {
  // The proxy's --max-body: 413 after the header, then a close with the body unread.
  std::string answer = R"({"error":{"message":"request body over 33554432 bytes"}})";
  one_shot_server srv([&](int fd) {
    read_header(fd);
    send_text(fd, "HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\nContent-Length: " +
                      std::to_string(answer.size()) + "\r\nConnection: close\r\n\r\n" + answer);
  });
  http_connection c;
  std::string err;
  ASSERT_TRUE(c.connect("127.0.0.1", srv.port(), std::chrono::seconds(30), err)) << err;
  http_response r;
  bool ok = c.request("POST", "/v1/chat/completions", std::string(64u << 20, 'x'), {}, std::chrono::seconds(60), r, err);
  ASSERT_TRUE(ok) << err;
  EXPECT_EQ(r.status, 413);
  EXPECT_TRUE(r.request_cut);
  EXPECT_EQ(r.body, answer);
}

TEST(EngineMetrics, AScrapeOverTheSizeBoundIsCutAtALineEnd) {
  std::string counters = "llamacpp:prompt_tokens_total 10\nllamacpp:tokens_predicted_total 20\n";
  one_shot_server srv([&](int fd) {
    read_header(fd);
    std::string filler(100000, '#');
    filler.back() = '\n';
    send_text(fd, "HTTP/1.1 200 OK\r\nContent-Length: 300000000\r\n\r\n" + counters);
    for (int i = 0; i < 3000; ++i) send_text(fd, filler);  // stops at the first failed send
  });
  std::string cut;
  std::string text = bp::bench::scrape_engine_metrics("http://127.0.0.1:" + std::to_string(srv.port()) + "/metrics",
                                                      1000, std::chrono::seconds(60), cut);
  EXPECT_EQ(cut, "more than 1000 bytes");
  EXPECT_EQ(text.rfind(counters, 0), 0u);
  EXPECT_LE(text.size(), 1000u);
  EXPECT_EQ(text.back(), '\n');
}

TEST(EngineMetrics, AScrapeThatNeverEndsIsCutAtTheTimeBound) {
  std::string counters = "llamacpp:prompt_tokens_total 10\n";
  one_shot_server srv([&](int fd) {
    read_header(fd);
    send_text(fd, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + counters + "llamacpp:partial");
    char c;
    while (::recv(fd, &c, 1, 0) > 0) {
    }  // until the client gives up and closes
  });
  std::string cut;
  std::string text = bp::bench::scrape_engine_metrics("http://127.0.0.1:" + std::to_string(srv.port()) + "/metrics",
                                                      1u << 20, std::chrono::milliseconds(300), cut);
  EXPECT_EQ(cut, "no end after 300 ms");
  EXPECT_EQ(text, counters);  // the unfinished last line is dropped
}

TEST(EngineMetrics, AnOrdinaryScrapeIsWholeAndNotCut) {
  std::string counters = "llamacpp:prompt_tokens_total 10\n";
  one_shot_server srv([&](int fd) {
    read_header(fd);
    send_text(fd, "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(counters.size()) + "\r\n\r\n" + counters);
  });
  std::string cut;
  EXPECT_EQ(bp::bench::scrape_engine_metrics("http://127.0.0.1:" + std::to_string(srv.port()) + "/metrics", 1u << 20,
                                             std::chrono::seconds(30), cut),
            counters);
  EXPECT_TRUE(cut.empty());
}
