// The proxy in-process, against the real mock-engine binary as upstream.
#include "net/proxy/proxy_server.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "base/process/engine_child.hpp"
#include "net/client/http_client.hpp"

using namespace bp::net;
using namespace std::chrono_literals;

namespace {

class ProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string err;
    engine_port_ = bp::free_loopback_port(err);
    ASSERT_GT(engine_port_, 0) << err;
    std::string port = std::to_string(engine_port_);
    std::string exe = std::string(BP_BIN_DIR) + "/mock-engine";
    mock_ = ::fork();
    if (mock_ == 0) {
      ::execl(exe.c_str(), exe.c_str(), "--port", port.c_str(), "--tokens", "8", "--itl-ms", "30", nullptr);
      _exit(127);
    }
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      auto r = http_fetch("GET", "http://127.0.0.1:" + port + "/health", "", 1s, err);
      if (r && r->status == 200) break;
      std::this_thread::sleep_for(20ms);
    }
    server_options o;
    o.listen = "127.0.0.1:0";
    o.threads = 2;
    o.max_request_body = 8u << 20;
    proxy_ = proxy_server::create(o, status_, err);
    ASSERT_TRUE(proxy_) << err;
    server_hooks h;
    h.on_open = [this](std::shared_ptr<connection_handle> c) {
      std::lock_guard<std::mutex> lk(handles_mu_);
      handles_.push_back(std::move(c));
      opened_++;
    };
    h.on_close = [this](std::uint64_t, const conn_stats& st, const std::string&) {
      closed_++;
      aborts_ += static_cast<int>(st.client_aborts);
    };
    proxy_->start(h);
    base_ = "http://" + proxy_->local_address();
  }
  void TearDown() override {
    if (proxy_) proxy_->shutdown();
    if (mock_ > 0) {
      ::kill(mock_, SIGKILL);
      ::waitpid(mock_, nullptr, 0);
    }
  }
  http_response get(const std::string& path, std::vector<std::pair<std::string, std::string>> headers = {}) {
    http_connection c;
    std::string err;
    EXPECT_TRUE(c.connect("127.0.0.1", proxy_->local_port(), 2s, err)) << err;
    http_response r;
    EXPECT_TRUE(c.request("GET", path, "", headers, 5s, r, err)) << err;
    return r;
  }
  std::string raw(const std::string& request) {
    int fd = connect_client();
    timeval tv{5, 0};  // raw reads until the proxy closes: 5 s without a byte is a hang
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    // The proxy may answer (413) and close before all of an oversized request is sent.
    for (std::size_t off = 0; off < request.size();) {
      ssize_t w = ::send(fd, request.data() + off, request.size() - off, MSG_NOSIGNAL);
      if (w <= 0) break;
      off += static_cast<std::size_t>(w);
    }
    std::string out;
    char buf[4096];
    for (ssize_t n; (n = ::recv(fd, buf, sizeof(buf), 0)) > 0;) out.append(buf, static_cast<std::size_t>(n));
    ::close(fd);
    return out;
  }
  /// The handle of the connection whose client socket is `fd` (its peer is that socket's address).
  std::shared_ptr<connection_handle> handle_of(int fd) {
    sockaddr_in me{};
    socklen_t len = sizeof me;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&me), &len);
    std::string peer = "127.0.0.1:" + std::to_string(ntohs(me.sin_port));
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < deadline) {
      {
        std::lock_guard<std::mutex> lk(handles_mu_);
        for (auto& h : handles_)
          if (h->peer() == peer) return h;
      }
      std::this_thread::sleep_for(5ms);
    }
    ADD_FAILURE() << "no handle for " << peer;
    return nullptr;
  }
  int connect_client() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(proxy_->local_port());
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
  }
  static std::string stream_request(int max_tokens) {
    std::string body = R"({"messages":[{"role":"user","content":"hi"}],"stream":true,"max_tokens":)" +
                       std::to_string(max_tokens) + "}";
    return "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + body;
  }
  long engine_cancelled() {
    std::string err;
    auto r = http_fetch("GET", "http://127.0.0.1:" + std::to_string(engine_port_) + "/mock/stats", "", 1s, err);
    return r ? nlohmann::json::parse(r->body)["cancelled"].get<long>() : -1;
  }
  /// What one connection's end said: once, with its counters and why.
  struct end_seen {
    std::mutex mu;
    int calls = 0;
    conn_stats st;
    std::string why;
    connection_handle::end_listener listener() {
      return [this](const conn_stats& s, const std::string& w) {
        std::lock_guard<std::mutex> lk(mu);
        calls++;
        st = s;
        why = w;
      };
    }
    bool wait(std::chrono::milliseconds d = 5000ms) {
      auto deadline = std::chrono::steady_clock::now() + d;
      while (std::chrono::steady_clock::now() < deadline) {
        {
          std::lock_guard<std::mutex> lk(mu);
          if (calls > 0) return true;
        }
        std::this_thread::sleep_for(5ms);
      }
      return false;
    }
  };

  run_status status_;
  std::unique_ptr<proxy_server> proxy_;
  std::mutex handles_mu_;
  std::vector<std::shared_ptr<connection_handle>> handles_;
  pid_t mock_ = -1;
  int engine_port_ = 0;
  std::string base_;
  std::atomic<int> opened_{0}, closed_{0}, aborts_{0};
};

}  // namespace

TEST_F(ProxyTest, V1AnswersServiceUnavailableUntilTheEngineIsReady) {
  auto r = get("/v1/models");
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body.find("not ready"), std::string::npos);
}

TEST_F(ProxyTest, ForwardsMethodPathQueryBodyAndDropsHopByHopHeaders) {
  proxy_->set_upstream_port(static_cast<std::uint16_t>(engine_port_));
  http_connection c;
  std::string err;
  ASSERT_TRUE(c.connect("127.0.0.1", proxy_->local_port(), 2s, err));
  http_response r;
  ASSERT_TRUE(c.request("POST", "/v1/mock/echo?a=1&b=2", "{\"x\":1}",
                        {{"X-Custom", "kept"}, {"Connection", "keep-alive, X-Hop"}, {"X-Hop", "dropped"},
                         {"Keep-Alive", "timeout=5"}, {"Proxy-Connection", "x"}},
                        5s, r, err))
      << err;
  ASSERT_EQ(r.status, 200) << r.body;
  auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["method"], "POST");
  EXPECT_EQ(j["target"], "/v1/mock/echo?a=1&b=2");
  EXPECT_EQ(j["body"], "{\"x\":1}");
  EXPECT_EQ(j["headers"]["X-Custom"][0], "kept");
  EXPECT_FALSE(j["headers"].contains("X-Hop"));
  EXPECT_FALSE(j["headers"].contains("Keep-Alive"));
  EXPECT_FALSE(j["headers"].contains("Proxy-Connection"));
  // Keep-alive: a second request on the same client connection.
  ASSERT_TRUE(c.request("GET", "/v1/models", "", {}, 5s, r, err)) << err;
  EXPECT_EQ(r.status, 200);
}

TEST_F(ProxyTest, StreamArrivesProgressively) {
  proxy_->set_upstream_port(static_cast<std::uint16_t>(engine_port_));
  http_connection c;
  std::string err;
  ASSERT_TRUE(c.connect("127.0.0.1", proxy_->local_port(), 2s, err));
  std::vector<std::chrono::steady_clock::time_point> at;
  http_response r;
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(c.request("POST", "/v1/chat/completions",
                        R"({"messages":[{"role":"user","content":"hi"}],"stream":true})", {}, 10s, r, err,
                        [&](std::string_view) { at.push_back(std::chrono::steady_clock::now()); }))
      << err;
  ASSERT_GE(at.size(), 8u);
  // 8 tokens 30 ms apart: the pieces arrive spread over the stream, not in one batch at the end
  // (a lower bound only; how fast is perf/'s business).
  EXPECT_GT(at.back() - at.front(), 150ms);
  (void)t0;
}

TEST_F(ProxyTest, MalformedRequestsGet400AsJsonAndUnknownPaths404) {
  auto out = raw("BLAH\r\n\r\n");
  EXPECT_EQ(out.rfind("HTTP/1.1 400", 0), 0u) << out;
  EXPECT_NE(out.find("application/json"), std::string::npos);
  auto r = get("/admin");
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(r.body.find("no route"), std::string::npos);
}

TEST_F(ProxyTest, OversizedBodyGets413) {
  proxy_->set_upstream_port(static_cast<std::uint16_t>(engine_port_));
  std::string body(9u << 20, 'x');
  auto out = raw("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) +
                 "\r\n\r\n" + body);
  EXPECT_EQ(out.rfind("HTTP/1.1 413", 0), 0u) << out.substr(0, 200);
}

TEST_F(ProxyTest, MetaIs503ThenFrozenBytesWithEtag) {
  auto r = get("/meta");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.header("retry-after"), "2");
  auto doc = std::make_shared<meta_document>();
  doc->bytes = "{\"schema_version\":1}\n";
  doc->sha256 = "abc";
  EXPECT_TRUE(status_.publish(doc));
  auto other = std::make_shared<meta_document>();
  other->bytes = "changed";
  EXPECT_FALSE(status_.publish(other));  // exactly once
  auto a = get("/meta"), b = get("/meta");
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(a.body, doc->bytes);
  EXPECT_EQ(b.body, a.body);
  EXPECT_EQ(a.header("etag"), "\"abc\"");
  auto c = get("/meta", {{"If-None-Match", "\"abc\""}});
  EXPECT_EQ(c.status, 304);
}

TEST_F(ProxyTest, HealthzReportsState) {
  status_.set_state(run_state::warming);
  status_.set_engine_pid(1234);
  auto j = nlohmann::json::parse(get("/healthz").body);
  EXPECT_EQ(j["state"], "warming");
  EXPECT_EQ(j["engine_pid"], 1234);
}

TEST_F(ProxyTest, ClientDisconnectMidStreamClosesUpstream) {
  proxy_->set_upstream_port(static_cast<std::uint16_t>(engine_port_));
  std::string req =
      "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ";
  std::string body = R"({"messages":[{"role":"user","content":"hi"}],"stream":true,"max_tokens":200})";
  req += std::to_string(body.size()) + "\r\n\r\n" + body;
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(proxy_->local_port());
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_GT(::send(fd, req.data(), req.size(), 0), 0);
  char buf[512];
  ASSERT_GT(::recv(fd, buf, sizeof(buf), 0), 0);  // the stream has started
  ::close(fd);
  // The engine notices: its cancelled counter goes up well before 200 tokens x 30 ms.
  auto deadline = std::chrono::steady_clock::now() + 3s;
  long cancelled = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    std::string err;
    auto r = http_fetch("GET", "http://127.0.0.1:" + std::to_string(engine_port_) + "/mock/stats", "", 1s, err);
    if (r) cancelled = nlohmann::json::parse(r->body)["cancelled"].get<long>();
    if (cancelled > 0) break;
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(cancelled, 1);
  deadline = std::chrono::steady_clock::now() + 2s;
  while (aborts_.load() == 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(aborts_.load(), 1);
}

TEST(ListenAddress, Parsing) {
  std::string h, err;
  std::uint16_t p = 0;
  ASSERT_TRUE(parse_listen_address("0.0.0.0:8080", h, p, err));
  EXPECT_EQ(h, "0.0.0.0");
  EXPECT_EQ(p, 8080);
  ASSERT_TRUE(parse_listen_address(":9000", h, p, err));
  EXPECT_EQ(h, "127.0.0.1");
  ASSERT_TRUE(parse_listen_address("[::1]:9000", h, p, err));
  EXPECT_EQ(h, "::1");
  EXPECT_FALSE(parse_listen_address("host:notaport", h, p, err));
  EXPECT_FALSE(parse_listen_address("example.com:80", h, p, err));
}

TEST(ListenAddress, AddressInUseIsReportedAtCreate) {
  run_status st;
  std::string err;
  server_options o;
  o.listen = "127.0.0.1:0";
  auto a = proxy_server::create(o, st, err);
  ASSERT_TRUE(a);
  o.listen = a->local_address();
  auto b = proxy_server::create(o, st, err);
  EXPECT_FALSE(b);
  EXPECT_NE(err.find("in use"), std::string::npos) << err;
}

namespace {

/// Sends `head` then `body` in 256 KiB pieces with small pauses; returns the decoded response.
http_response send_slowly(std::uint16_t port, const std::string& head, const std::string& body) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  std::string all = head + body;
  for (std::size_t off = 0; off < all.size();) {
    std::size_t n = std::min<std::size_t>(256 * 1024, all.size() - off);
    ssize_t w = ::send(fd, all.data() + off, n, MSG_NOSIGNAL);
    EXPECT_GT(w, 0);
    if (w <= 0) break;
    off += static_cast<std::size_t>(w);
    std::this_thread::sleep_for(2ms);
  }
  char buf[65536];
  response_reader rr;
  while (!rr.done()) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    EXPECT_TRUE(rr.feed(std::string_view(buf, static_cast<std::size_t>(n)))) << rr.error();
  }
  ::close(fd);
  EXPECT_TRUE(rr.done());
  return rr.response();
}

}  // namespace

TEST_F(ProxyTest, LargeBodiesStreamThroughIntactWithContentLengthAndChunked) {
  proxy_->set_upstream_port(static_cast<std::uint16_t>(engine_port_));
  // Beyond the small-body threshold and beyond the back-pressure bound.
  std::string payload(3u << 20, 'p');
  for (std::size_t i = 0; i < payload.size(); i += 997) payload[i] = static_cast<char>('a' + i % 26);
  auto r = send_slowly(proxy_->local_port(),
                       "POST /v1/mock/echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: " +
                           std::to_string(payload.size()) + "\r\n\r\n",
                       payload);
  ASSERT_EQ(r.status, 200) << r.body.substr(0, 200);
  auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["body"].get<std::string>(), payload);
  EXPECT_EQ(j["headers"]["Content-Length"][0], std::to_string(payload.size()));

  // Chunked from the client: re-framed chunk by chunk to the engine.
  std::string chunked;
  for (std::size_t off = 0; off < payload.size(); off += 100000) {
    std::size_t n = std::min<std::size_t>(100000, payload.size() - off);
    char hex[32];
    std::snprintf(hex, sizeof(hex), "%zx\r\n", n);
    chunked += hex + payload.substr(off, n) + "\r\n";
  }
  chunked += "0\r\n\r\n";
  r = send_slowly(proxy_->local_port(), "POST /v1/mock/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
                  chunked);
  ASSERT_EQ(r.status, 200) << r.body.substr(0, 200);
  j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["body"].get<std::string>(), payload);
  EXPECT_EQ(j["headers"]["Transfer-Encoding"][0], "chunked");
}

namespace {

/// A raw upstream: accepts connections, records every byte it gets, answers each request with
/// canned bytes. Lets a test see exactly what the proxy forwarded, or that it forwarded nothing.
class raw_upstream {
 public:
  /// `hold`: after answering, keep the connection open and silent until the upstream is destroyed.
  explicit raw_upstream(std::string response, bool hold = false) : response_(std::move(response)), hold_(hold) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    ::listen(fd_, 16);
    socklen_t len = sizeof(a);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] {
      for (;;) {
        int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        accepted_++;
        std::string got;
        char buf[4096];
        while (got.find("\r\n\r\n") == std::string::npos) {
          ssize_t n = ::recv(c, buf, sizeof(buf), 0);
          if (n <= 0) break;
          got.append(buf, static_cast<std::size_t>(n));
        }
        {
          std::lock_guard<std::mutex> l(mu_);
          received_ += got;
        }
        if (!got.empty() && !response_.empty()) ::send(c, response_.data(), response_.size(), MSG_NOSIGNAL);
        if (hold_) {
          std::lock_guard<std::mutex> l(mu_);
          held_.push_back(c);
        } else {
          ::close(c);
        }
      }
    });
  }
  ~raw_upstream() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
    for (int c : held_) ::close(c);
  }
  std::uint16_t port() const { return port_; }
  int accepted() const { return accepted_.load(); }
  std::string received() {
    std::lock_guard<std::mutex> l(mu_);
    return received_;
  }

 private:
  std::string response_;
  bool hold_ = false;
  std::vector<int> held_;
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<int> accepted_{0};
  std::mutex mu_;
  std::string received_;
  std::thread thread_;
};

}  // namespace

TEST_F(ProxyTest, FoldedRequestHeadersAre400AndNothingReachesTheEngine) {
  raw_upstream up("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  proxy_->set_upstream_port(up.port());
  std::string big(2000, 'a');
  auto r = raw("POST /v1/x HTTP/1.1\r\nHost: x\r\nX-Fold: aaaa\r\n bbbb\r\nX-Two: " + big + "\r\n " + big +
               "\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 400 ", 0), 0u) << r;
  EXPECT_NE(r.find("folding"), std::string::npos) << r;
  EXPECT_EQ(up.accepted(), 0);
}

TEST_F(ProxyTest, FoldedResponseHeadersReachTheClientUnfoldedAndIntact) {
  std::string big(1500, 'z');
  raw_upstream up("HTTP/1.1 200 OK\r\nX-Fold: aaaa\r\n bbbb\r\nX-Two: cccc\r\n\tdddd\r\nX-Big: " + big + "\r\n " + big +
                  "\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
  proxy_->set_upstream_port(up.port());
  auto r = raw("GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 200 ", 0), 0u) << r;
  EXPECT_NE(r.find("\r\nX-Fold: aaaa bbbb\r\n"), std::string::npos) << r;
  EXPECT_NE(r.find("\r\nX-Two: cccc dddd\r\n"), std::string::npos) << r;
  EXPECT_NE(r.find("\r\nX-Big: " + big + " " + big + "\r\n"), std::string::npos);
  for (unsigned char c : r) EXPECT_TRUE(c == '\r' || c == '\n' || (c >= 0x20 && c < 0x7f)) << int(c);
}

TEST_F(ProxyTest, SmuggledBodiesAreRefusedAndNeverForwardedAsRequests) {
  raw_upstream up("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  proxy_->set_upstream_port(up.port());
  for (const char* te : {"chunked, identity", "gzip", "identity", "xchunked"}) {
    auto r = raw(std::string("POST /v1/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ") + te +
                 "\r\n\r\nGET /v1/smuggled HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(r.rfind("HTTP/1.1 501 ", 0), 0u) << te << ": " << r;
    EXPECT_NE(r.find("Connection: close"), std::string::npos);
    // One response only: the body was never parsed as a second request.
    EXPECT_EQ(r.find("HTTP/1.1", 1), std::string::npos) << r;
  }
  EXPECT_EQ(up.accepted(), 0);
  EXPECT_EQ(up.received(), "");
}

TEST_F(ProxyTest, LaxRequestsThatNginxRefusesAreRefused) {
  raw_upstream up("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  proxy_->set_upstream_port(up.port());
  struct probe {
    std::string request;
    const char* status;
  };
  std::vector<probe> probes = {
      {"GET /v1/models HTTP/1.1\r\n\r\n", "400"},
      {"GET /v1/models HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "400"},
      {"GET /v1/models HTTP/1.1\r\nHost: a b\r\n\r\n", "400"},
      {"GET /v1/models HTTP/1.1\r\nHost: u@h\r\n\r\n", "400"},
      {"POST /v1/x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "400"},
      {"CONNECT /v1/x HTTP/1.1\r\nHost: x\r\n\r\n", "400"},
      {"GET /v1/" + std::string(9000, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n", "414"},
      {"GET /v1/" + std::string(70000, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n", "414"},
      {"GET /v1/\xb1\xff HTTP/1.1\r\nHost: x\r\n\r\n", "400"},
      {"GET /\xb1 HTTP/1.1\r\nHost: x\r\n\r\n", "400"},
      {"GET /v1/../healthz HTTP/1.1\r\nHost: x\r\n\r\n", "400"},
      {"GET /v1/%2e%2e/healthz HTTP/1.1\r\nHost: x\r\n\r\n", "400"},
  };
  for (const auto& p : probes) {
    auto r = raw(p.request);
    EXPECT_EQ(r.rfind(std::string("HTTP/1.1 ") + p.status + " ", 0), 0u) << p.request.substr(0, 60) << " -> " << r;
    EXPECT_NE(r.find("application/json"), std::string::npos);
  }
  EXPECT_EQ(up.accepted(), 0);
}

TEST_F(ProxyTest, AnEngineSilentBeforeItsHeaderGets504AndOneSilentMidBodyIsCut) {
  proxy_->shutdown();
  server_options o;
  o.listen = "127.0.0.1:0";
  o.threads = 1;
  o.upstream_header_timeout_s = 0.2;
  o.upstream_idle_timeout_s = 0.2;
  std::string err;
  proxy_ = proxy_server::create(o, status_, err);
  ASSERT_TRUE(proxy_) << err;
  proxy_->start({});
  {
    raw_upstream silent("", true);
    proxy_->set_upstream_port(silent.port());
    auto r = raw("GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(r.rfind("HTTP/1.1 504 ", 0), 0u) << r;
    EXPECT_NE(r.find("no response header"), std::string::npos) << r;
  }
  {
    raw_upstream stalls("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial", true);
    proxy_->set_upstream_port(stalls.port());
    auto r = raw("GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n");
    // The header and the bytes that came left; then the connection was cut (raw() read to EOF).
    EXPECT_EQ(r.rfind("HTTP/1.1 200 ", 0), 0u) << r;
    EXPECT_TRUE(r.size() >= 7 && r.compare(r.size() - 7, 7, "partial") == 0) << r;
  }
  EXPECT_EQ(status_.upstream_timeouts(), 2u);
}

// The I/O threads are edge-triggered (net/proxy/event_loop.hpp): the kernel says once that a
// socket changed. These are the moments where a lost edge would hang a connection.
TEST_F(ProxyTest, AClosedDelimitedBodyArrivingWithTheEnginesFinIsRelayedWhole) {
  std::string body(20000, 'b');
  raw_upstream up("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + body);  // closes after sending
  proxy_->set_upstream_port(up.port());
  // The proxy re-frames the body as chunked for an HTTP/1.1 client; raw() reads to EOF.
  auto r = raw("GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  ASSERT_EQ(r.rfind("HTTP/1.1 200 ", 0), 0u) << r.substr(0, 200);
  auto at = r.find("\r\n\r\n");
  ASSERT_NE(at, std::string::npos);
  ASSERT_NE(r.find("Transfer-Encoding: chunked"), std::string::npos) << r.substr(0, at);
  std::string got;
  bool last = false;
  for (std::size_t p = at + 4; p < r.size() && !last;) {
    auto eol = r.find("\r\n", p);
    ASSERT_NE(eol, std::string::npos);
    std::size_t n = std::stoul(r.substr(p, eol - p), nullptr, 16);
    last = n == 0;
    got += r.substr(eol + 2, n);
    p = eol + 2 + n + 2;
  }
  EXPECT_TRUE(last) << "no last chunk: the end of the engine's body was not seen";
  EXPECT_EQ(got.size(), body.size());
  EXPECT_TRUE(got == body);
}

TEST_F(ProxyTest, AnEngineThatClosedItsKeptAliveConnectionWhileIdleIsRetriedOnAFreshOne) {
  raw_upstream up("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");  // keep-alive by header, closes anyway
  proxy_->set_upstream_port(up.port());
  http_connection c;
  std::string err;
  ASSERT_TRUE(c.connect("127.0.0.1", proxy_->local_port(), 2s, err)) << err;
  for (int i = 0; i < 3; ++i) {
    http_response r;
    ASSERT_TRUE(c.request("GET", "/v1/models", "", {}, 5s, r, err)) << i << ": " << err;
    EXPECT_EQ(r.status, 200) << i;
    EXPECT_EQ(r.body, "ok") << i;
    // The engine's FIN for this request's connection reaches the proxy while nobody reads it.
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (up.accepted() < i + 1 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  }
  EXPECT_EQ(up.accepted(), 3);
}

TEST_F(ProxyTest, ManyPipelinedRequestsInOneSendAreAllAnsweredInOrder) {
  proxy_->set_upstream_port(static_cast<std::uint16_t>(engine_port_));
  // 300 requests of ~100 bytes: many reads of a full buffer, each request answered before the
  // next is parsed; the last asks to close so raw() sees the end.
  std::string req, pad(40, 'p');
  for (int i = 0; i < 300; ++i)
    req += "GET /v1/models?i=" + std::to_string(i) + " HTTP/1.1\r\nHost: x\r\nX-Pad: " + pad + "\r\n" +
           (i == 299 ? "Connection: close\r\n" : "") + "\r\n";
  auto r = raw(req);
  std::size_t n = 0;
  for (std::size_t p = r.find("HTTP/1.1 200 "); p != std::string::npos; p = r.find("HTTP/1.1 200 ", p + 1)) ++n;
  EXPECT_EQ(n, 300u) << r.size();
}

TEST_F(ProxyTest, ALargeResponseToASlowReaderArrivesIntact) {
  // 8 MiB through a client with a small receive buffer: the proxy's writes to the client block
  // again and again, its reads from the engine pause (back-pressure) and resume.
  std::string body(8u << 20, '\0');
  for (std::size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>('a' + (i * 7 + i / 4093) % 26);
  raw_upstream up("HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  proxy_->set_upstream_port(up.port());
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  int small = 4096;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(proxy_->local_port());
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  std::string req = "GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  ASSERT_EQ(::send(fd, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string out;
  char buf[1024];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof(buf), 0)) > 0;) out.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  auto at = out.find("\r\n\r\n");
  ASSERT_NE(at, std::string::npos);
  EXPECT_EQ(out.size() - at - 4, body.size());
  EXPECT_TRUE(out.compare(at + 4, std::string::npos, body) == 0);
}

// The handle: the only way to act on a connection from outside its I/O thread (the connection
// actor's commands), and how its end is heard.

TEST_F(ProxyTest, DrainClosesAnIdleConnectionAtOnceAndABusyOneAfterItsResponseIsComplete) {
  proxy_->set_upstream_port(static_cast<std::uint16_t>(engine_port_));
  int idle = connect_client();
  std::string get = "GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_GT(::send(idle, get.data(), get.size(), 0), 0);
  char buf[65536];
  ASSERT_GT(::recv(idle, buf, sizeof buf, 0), 0);  // answered; the connection stays open, idle
  int busy = connect_client();
  std::string req = stream_request(20);  // 20 tokens, 30 ms apart
  ASSERT_GT(::send(busy, req.data(), req.size(), 0), 0);
  std::string streamed;
  ssize_t n = ::recv(busy, buf, sizeof buf, 0);
  ASSERT_GT(n, 0);  // the stream has started
  streamed.append(buf, static_cast<std::size_t>(n));
  auto hi = handle_of(idle), hb = handle_of(busy);
  ASSERT_TRUE(hi && hb);
  end_seen ei, eb;
  hi->on_end(ei.listener());
  hb->on_end(eb.listener());
  hi->drain("test drain");
  hb->drain("test drain");
  ASSERT_TRUE(ei.wait());
  EXPECT_EQ(ei.why, "test drain");
  EXPECT_EQ(ei.st.requests, 1u);
  EXPECT_EQ(::recv(idle, buf, sizeof buf, 0), 0);  // a FIN, nothing else
  ::close(idle);
  // The busy one: its stream goes on to its end, then the connection closes.
  for (ssize_t m; (m = ::recv(busy, buf, sizeof buf, 0)) > 0;) streamed.append(buf, static_cast<std::size_t>(m));
  ::close(busy);
  EXPECT_NE(streamed.find("[DONE]"), std::string::npos) << streamed.substr(streamed.size() > 300 ? streamed.size() - 300 : 0);
  EXPECT_EQ(streamed.compare(streamed.size() - 5, 5, "0\r\n\r\n"), 0);  // the last chunk: complete
  ASSERT_TRUE(eb.wait());
  EXPECT_EQ(eb.why, "test drain");
  EXPECT_EQ(eb.st.requests, 1u);
  EXPECT_EQ(eb.st.proxied, 1u);
  EXPECT_EQ(eb.st.client_aborts, 0u);
  EXPECT_EQ(eb.calls, 1);
  EXPECT_EQ(engine_cancelled(), 0);
}

TEST_F(ProxyTest, AbortCutsAStreamWithAResetAndTheEngineStopsGenerating) {
  proxy_->set_upstream_port(static_cast<std::uint16_t>(engine_port_));
  int fd = connect_client();
  std::string req = stream_request(200);  // 6 s of stream
  ASSERT_GT(::send(fd, req.data(), req.size(), 0), 0);
  char buf[4096];
  ASSERT_GT(::recv(fd, buf, sizeof buf, 0), 0);
  auto h = handle_of(fd);
  ASSERT_TRUE(h);
  end_seen e;
  h->on_end(e.listener());
  h->abort("test abort");
  ASSERT_TRUE(e.wait());
  EXPECT_EQ(e.why, "test abort");
  EXPECT_EQ(e.st.proxied, 1u);
  EXPECT_EQ(e.st.client_aborts, 0u);  // bench-proxy cut it, not the client
  // The client reads what had arrived, then the reset: a cut response cannot pass for a whole one.
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) {
  }
  EXPECT_EQ(n, -1);
  EXPECT_EQ(errno, ECONNRESET);
  ::close(fd);
  auto deadline = std::chrono::steady_clock::now() + 3s;
  while (engine_cancelled() < 1 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(engine_cancelled(), 1);
}

TEST_F(ProxyTest, CloseEndsAConnectionWithAFinAndTheEndIsHeardOnceEvenByALateListener) {
  int fd = connect_client();
  auto h = handle_of(fd);
  ASSERT_TRUE(h);
  end_seen first;
  h->on_end(first.listener());
  h->close("test close");
  ASSERT_TRUE(first.wait());
  char buf[64];
  EXPECT_EQ(::recv(fd, buf, sizeof buf, 0), 0);
  ::close(fd);
  // A listener that comes after the end hears of it at once, with the same counters and reason.
  end_seen late;
  h->on_end(late.listener());
  EXPECT_EQ(late.calls, 1);
  EXPECT_EQ(late.why, "test close");
  // Commands for a connection that ended do nothing; nor after the server is gone.
  h->abort("too late");
  h->drain("too late");
  proxy_->shutdown();
  proxy_.reset();
  h->close("later still");
  EXPECT_EQ(first.calls, 1);
}

TEST_F(ProxyTest, ShutdownClosesWhatNobodyClosedAndItsHandlesHearOfIt) {
  int fd = connect_client();
  auto h = handle_of(fd);
  ASSERT_TRUE(h);
  end_seen e;
  h->on_end(e.listener());
  proxy_->shutdown();
  ASSERT_TRUE(e.wait(0ms) || e.wait());
  EXPECT_EQ(e.why, "bench-proxy shutting down");
  h->abort("after shutdown");  // dropped: no loop runs it
  ::close(fd);
}
