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

// ---- what Beast's parser decides (net/client decodes with it since issue 25) ----

namespace {

/// Feeds `msg` `step` bytes at a time; the body pieces in order.
std::vector<std::string> feed_in_steps(response_reader& r, const std::string& msg, std::size_t step) {
  std::vector<std::string> pieces;
  for (std::size_t i = 0; i < msg.size(); i += step) {
    if (!r.feed(std::string_view(msg).substr(i, step), [&](std::string_view p) { pieces.emplace_back(p); })) break;
  }
  return pieces;
}

}  // namespace

TEST(ResponseReader, ChunkExtensionsAreAcceptedAndSkipped) {
  std::string msg =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;name=value;flag\r\nhello\r\n6 ;q=\"a b;c\"\r\n world\r\n0;last\r\n\r\n";
  for (std::size_t step : {std::size_t{1}, std::size_t{3}, msg.size()}) {
    response_reader r;
    auto pieces = feed_in_steps(r, msg, step);
    ASSERT_TRUE(r.done()) << "step " << step << ": " << r.error();
    std::string body;
    for (const auto& p : pieces) body += p;
    EXPECT_EQ(body, "hello world") << "step " << step;
    EXPECT_TRUE(r.keep_alive());
  }
}

TEST(ResponseReader, EachBodyByteIsHandedOnAsItArrives) {
  // bench's TTFT: an event is seen when its bytes arrive, not when its chunk or the body ends.
  response_reader r;
  std::vector<std::string> pieces;
  auto sink = [&](std::string_view p) { pieces.emplace_back(p); };
  ASSERT_TRUE(r.feed("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n", sink));
  EXPECT_TRUE(r.header_done());
  ASSERT_TRUE(r.feed("20\r\ndata: {\"a\"", sink));
  ASSERT_EQ(pieces.size(), 1u);
  EXPECT_EQ(pieces[0], "data: {\"a\"");
  ASSERT_TRUE(r.feed(":1}\n\n", sink));
  ASSERT_EQ(pieces.size(), 2u);
  EXPECT_EQ(pieces[1], ":1}\n\n");
  EXPECT_FALSE(r.done());
  ASSERT_TRUE(r.feed("0123456789abcdefg\r\n0\r\n\r\n", sink)) << r.error();  // the 32 bytes end here
  EXPECT_TRUE(r.done());

  response_reader cl;
  pieces.clear();
  ASSERT_TRUE(cl.feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", sink));
  ASSERT_EQ(pieces.size(), 1u);
  EXPECT_EQ(pieces[0], "abc");
}

TEST(ResponseReader, ACloseDelimitedBodyEndsAtTheCloseAndEndsTheConnection) {
  std::string msg = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nno length, no chunks";
  for (std::size_t step : {std::size_t{1}, std::size_t{7}, msg.size()}) {
    response_reader r;
    for (std::size_t i = 0; i < msg.size(); i += step) ASSERT_TRUE(r.feed(msg.substr(i, step))) << r.error();
    EXPECT_FALSE(r.done());
    ASSERT_TRUE(r.feed_eof()) << r.error();
    EXPECT_TRUE(r.done());
    EXPECT_EQ(r.response().body, "no length, no chunks");
    EXPECT_FALSE(r.keep_alive());
  }
  // A header cut by the close is not a close-delimited message.
  response_reader cut;
  ASSERT_TRUE(cut.feed("HTTP/1.1 200 OK\r\nContent-Ty"));
  EXPECT_FALSE(cut.feed_eof());
  EXPECT_EQ(cut.error(), "connection closed mid-response");
  response_reader nothing;
  EXPECT_FALSE(nothing.feed_eof());
  EXPECT_EQ(nothing.error(), "connection closed before a response");
}

TEST(ResponseReader, ABadStatusLineIsNamed) {
  for (std::string line : {"SMTP ready", "HTTP/2.0 200 OK", "HTTP/1.1 2x0 OK", "HTTP/1.1 200", "HTTP/1.1  200 OK"}) {
    response_reader r;
    EXPECT_FALSE(r.feed(line + "\r\nContent-Length: 0\r\n\r\n")) << line;
    EXPECT_EQ(r.error(), "bad status line '" + line + "'");
  }
  response_reader ctl;
  EXPECT_FALSE(ctl.feed(std::string("HTTP/1.1 200 O\x01K\r\n\r\n")));
  EXPECT_EQ(ctl.error(), "bad status line 'HTTP/1.1 200 O\\x01K'");
}

TEST(ResponseReader, BadHeadersAndFramingAreNamed) {
  response_reader field;
  EXPECT_FALSE(field.feed("HTTP/1.1 200 OK\r\nno colon here\r\n\r\n"));
  EXPECT_EQ(field.error().rfind("bad header line 'no colon here'", 0), 0u) << field.error();
  response_reader length;
  EXPECT_FALSE(length.feed("HTTP/1.1 200 OK\r\nContent-Length: 12x\r\n\r\n"));
  EXPECT_EQ(length.error(), "bad Content-Length in 'Content-Length: 12x'");
  response_reader two;
  EXPECT_FALSE(two.feed("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"));
  EXPECT_EQ(two.error(), "bad Content-Length in 'Content-Length: 4'");
  response_reader both;  // the body's end would be ambiguous: refused, not guessed
  EXPECT_FALSE(both.feed("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"));
  EXPECT_EQ(both.error().rfind("bad Transfer-Encoding in 'Transfer-Encoding: chunked'", 0), 0u) << both.error();
  response_reader size;
  EXPECT_FALSE(size.feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n"));
  EXPECT_EQ(size.error(), "bad chunk size line 'zz'");
  response_reader crlf;
  EXPECT_FALSE(crlf.feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n"));
  EXPECT_EQ(crlf.error(), "missing CRLF after chunk data (got 'def')");
}

TEST(ResponseReader, AnOversizedHeaderIsAnErrorWhateverTheReadSizes) {
  std::string field = "X-Filler: " + std::string(1000, 'f') + "\r\n";
  std::string head = "HTTP/1.1 200 OK\r\n";
  while (head.size() <= response_reader::max_header_bytes) head += field;
  for (std::size_t step : {std::size_t{16384}, std::size_t{1000}, head.size()}) {
    response_reader r;
    bool ok = true;
    for (std::size_t i = 0; ok && i < head.size(); i += step) ok = r.feed(head.substr(i, step));
    EXPECT_FALSE(ok) << "step " << step;
    EXPECT_EQ(r.error(), "response header larger than 262144 bytes") << "step " << step;
  }
  // One field alone over the bound, never ending.
  response_reader endless;
  bool ok = endless.feed("HTTP/1.1 200 OK\r\nX-Endless: ");
  for (int i = 0; ok && i < 100; ++i) ok = endless.feed(std::string(16384, 'e'));
  EXPECT_FALSE(ok);
  EXPECT_EQ(endless.error(), "response header larger than 262144 bytes");
  // Just under the bound is fine.
  std::string big = "HTTP/1.1 200 OK\r\n";
  while (big.size() + field.size() + 40 < response_reader::max_header_bytes) big += field;
  response_reader fits;
  ASSERT_TRUE(fits.feed(big + "Content-Length: 2\r\n\r\nok")) << fits.error();
  EXPECT_TRUE(fits.done());
}

TEST(ResponseReader, ABodyOverTheLimitIsAnErrorUnlessStreamed) {
  std::string msg = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789";
  response_reader kept(false, 8);
  EXPECT_FALSE(kept.feed(msg));
  EXPECT_EQ(kept.error(), "response body larger than the limit of 8 bytes");
  response_reader streamed(false, 8);
  std::string seen;
  ASSERT_TRUE(streamed.feed(msg, [&](std::string_view p) { seen += p; })) << streamed.error();
  EXPECT_EQ(seen, "0123456789");
}

TEST(ResponseReader, HeadersTrailersAndBodilessAnswers) {
  response_reader r;
  ASSERT_TRUE(r.feed(
      "HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
      "HTTP/1.1 200 Fine\r\nX-Two:  padded value \t\r\nTransfer-Encoding: chunked\r\n\r\n"
      "2\r\nok\r\n0\r\nX-Trailer: t\r\n\r\n"));
  ASSERT_TRUE(r.done());
  EXPECT_EQ(r.response().status, 200);
  EXPECT_EQ(r.response().reason, "Fine");
  EXPECT_EQ(r.response().header("x-two"), "padded value");
  EXPECT_EQ(r.response().header("link"), "");       // the interim response's fields are not the answer's
  EXPECT_EQ(r.response().header("x-trailer"), "");  // trailers are dropped
  EXPECT_EQ(r.response().body, "ok");

  response_reader head(true);
  ASSERT_TRUE(head.feed("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"));
  EXPECT_TRUE(head.done());
  EXPECT_TRUE(head.keep_alive());
  response_reader none;
  ASSERT_TRUE(none.feed("HTTP/1.1 204 No Content\r\n\r\n"));
  EXPECT_TRUE(none.done());
  response_reader closing;
  ASSERT_TRUE(closing.feed("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"));
  EXPECT_TRUE(closing.done());
  EXPECT_FALSE(closing.keep_alive());
  response_reader old;
  ASSERT_TRUE(old.feed("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"));
  EXPECT_FALSE(old.keep_alive());
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
