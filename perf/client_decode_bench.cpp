// bp-client-decode-bench: what decoding a response costs the benchmark client (net/client's
// response_reader), without sockets: the mock engine's answers, recorded, decoded over and over.
//
//   bp-client-decode-bench [N=200000] [ROUNDS=5]
//
// plain:  a 260-byte chat completion with Content-Length, in one read (as `bench --no-stream` gets it)
// stream: 32 SSE events, chunked, the header in one read and then one read per event (as a
//         streamed request arrives at 5 ms per token), each body piece to a callback
// Prints the median over ROUNDS of ns per response for each. Built against any version of
// net/client/http_client.cpp (the interface is the same), it gives before/after figures.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "net/client/http_client.hpp"

namespace {

const std::string kPlain =
    "HTTP/1.1 200 OK\r\nServer: mock-engine\r\nContent-Type: application/json\r\nContent-Length: 260\r\n\r\n"
    R"({"choices":[{"finish_reason":"length","index":0,"message":{"content":"request","role":"assistant"}}],)"
    R"("created":1796648872,"id":"chatcmpl-mock-1","model":"mock-model","object":"chat.completion",)"
    R"("usage":{"completion_tokens":1,"prompt_tokens":1,"total_tokens":2}})";

std::vector<std::string> stream_reads() {
  std::vector<std::string> reads = {
      "HTTP/1.1 200 OK\r\nServer: mock-engine\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
      "Transfer-Encoding: chunked\r\n\r\n"};
  for (int i = 0; i < 32; ++i) {
    std::string event = R"(data: {"choices":[{"delta":{"content":" token)" + std::to_string(i) +
                        R"("},"finish_reason":null,"index":0}],"created":1796648872,"id":"chatcmpl-mock-2",)"
                        R"("model":"mock-model","object":"chat.completion.chunk"})" "\n\n";
    char hex[16];
    std::snprintf(hex, sizeof(hex), "%zx\r\n", event.size());
    reads.push_back(hex + event + "\r\n");
  }
  reads.back() += "0\r\n\r\n";
  return reads;
}

template <class F>
double ns_per(long n, F&& f) {
  auto t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < n; ++i) f();
  return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() / n;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  long n = argc > 1 ? std::atol(argv[1]) : 200000;
  int rounds = argc > 2 ? std::atoi(argv[2]) : 5;
  auto reads = stream_reads();
  std::size_t sink = 0;
  std::function<void(std::string_view)> on_body = [&](std::string_view p) { sink += p.size(); };
  std::vector<double> plain, stream;
  for (int r = 0; r < rounds; ++r) {
    plain.push_back(ns_per(n, [&] {
      bp::net::response_reader rr;
      if (!rr.feed(kPlain) || !rr.done()) std::abort();
      sink += rr.response().body.size();
    }));
    stream.push_back(ns_per(n / 8, [&] {
      bp::net::response_reader rr;
      for (const auto& read : reads)
        if (!rr.feed(read, on_body)) std::abort();
      if (!rr.done()) std::abort();
    }));
  }
  std::printf("plain: %.0f ns per response\nstream (32 events, one read each): %.0f ns per response, %.1f ns per event\n",
              median(plain), median(stream), median(stream) / 32);
  return sink == 0;
}
