// The proxy's stopwatch without sockets: which events count as content, usage reading, the
// incremental event splitter across arbitrary read boundaries, and the record log and its file.
#include "net/proxy/proxy_metrics.hpp"
#include "net/proxy/request_log.hpp"
#include "net/proxy/request_timing.hpp"
#include "net/proxy/run_status.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <set>
#include <fstream>

#include <nlohmann/json.hpp>

using namespace bp::net;
using namespace std::chrono_literals;

TEST(ProxyTiming, ContentBearingEventsAreThoseWithGeneratedText) {
  using sse::content_bearing;
  EXPECT_TRUE(content_bearing(R"({"choices":[{"delta":{"content":"Hi"}}]})"));
  EXPECT_TRUE(content_bearing(R"({"choices":[{"delta":{"content" : "\n"}}]})"));
  EXPECT_TRUE(content_bearing(R"({"choices":[{"text":"x","index":0}]})"));
  EXPECT_TRUE(content_bearing(R"({"choices":[{"delta":{"reasoning_content":"think"}}]})"));
  EXPECT_TRUE(content_bearing(R"({"choices":[{"delta":{"tool_calls":[{"index":0}]}}]})"));
  // Role-only, empty, null, finish-only and usage-only events carry no token.
  EXPECT_FALSE(content_bearing(R"({"choices":[{"delta":{"role":"assistant","content":""}}]})"));
  EXPECT_FALSE(content_bearing(R"({"choices":[{"delta":{"role":"assistant","content":null}}]})"));
  EXPECT_FALSE(content_bearing(R"({"choices":[{"delta":{},"finish_reason":"stop"}]})"));
  EXPECT_FALSE(content_bearing(R"({"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5}})"));
  EXPECT_FALSE(content_bearing(R"({"choices":[{"delta":{"tool_calls":[]}}]})"));
  // A key spelled inside a string value is escaped there, so it is never taken for the key.
  EXPECT_FALSE(content_bearing(R"({"choices":[{"delta":{"role":"\"content\":\"x","content":""}}]})"));
  // logprobs' "content" is a list, not generated text.
  EXPECT_FALSE(content_bearing(R"({"choices":[{"logprobs":{"content":[]},"delta":{"content":""}}]})"));
}

TEST(ProxyTiming, UsageIsReadFromTheLastUsageObject) {
  int p = -1, c = -1;
  EXPECT_TRUE(sse::usage(R"({"usage":{"prompt_tokens":12,"completion_tokens":34,"total_tokens":46}})", p, c));
  EXPECT_EQ(p, 12);
  EXPECT_EQ(c, 34);
  EXPECT_FALSE(sse::usage(R"({"usage":null})", p, c));
  EXPECT_FALSE(sse::usage(R"({"usage":{"prompt_tokens":1)", p, c));  // cut short
  // A nested "usage" inside a string does not end the object early.
  EXPECT_TRUE(sse::usage(R"({"x":{"usage":{"note":"}{","completion_tokens":7}}})", p, c));
  EXPECT_EQ(c, 7);
  EXPECT_EQ(p, -1);
  // The last usage whose value is an object; a later "usage": null, or one inside a string, is not it.
  EXPECT_TRUE(sse::usage(R"({"usage":{"prompt_tokens":1,"completion_tokens":2},"x":{"usage" : null}})", p, c));
  EXPECT_EQ(p, 1);
  EXPECT_EQ(c, 2);
  EXPECT_TRUE(sse::usage(R"({"usage":{"prompt_tokens":1,"completion_tokens":2},"usage" :
    {"prompt_tokens":3,"completion_tokens":4},"note":"\"usage\":{\"prompt_tokens\":9}"})", p, c));
  EXPECT_EQ(p, 3);
  EXPECT_EQ(c, 4);
  EXPECT_FALSE(sse::usage(R"({"note":"\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":9}"})", p, c));
}

TEST(ProxyTiming, UsageInTheEnginesOrdersAndShapes) {
  struct row {
    const char* body;
    bool found;
    int prompt, completion;
  } rows[] = {
      // vLLM: total before completion, details null after.
      {R"({"id":"x","usage":{"prompt_tokens":7,"total_tokens":12,"completion_tokens":5,"prompt_tokens_details":null}})",
       true, 7, 5},
      // OpenAI: details objects after the counts.
      {R"({"usage":{"prompt_tokens":19,"completion_tokens":10,"total_tokens":29,"prompt_tokens_details":{"cached_tokens":0}}})",
       true, 19, 10},
      // A nested object before the counts: read past it.
      {R"({"usage":{"prompt_tokens_details":{"cached_tokens":3},"prompt_tokens":4,"completion_tokens":2}})", true, 4,
       2},
      // Whitespace and newlines between everything.
      {"{\"usage\" : {\n  \"completion_tokens\" : 8 ,\n  \"prompt_tokens\" :\t3\n}\n}\n", true, 3, 8},
      // Not whole numbers: not counts.
      {R"({"usage":{"prompt_tokens":1.5,"completion_tokens":2}})", true, -1, 2},
      {R"({"usage":{"prompt_tokens":-1,"completion_tokens":2e1}})", false, -1, -1},
      {R"({"usage":{"prompt_tokens":"3","completion_tokens":4}})", true, -1, 4},
      // Larger than an int: not taken.
      {R"({"usage":{"prompt_tokens":12345678901,"completion_tokens":4}})", true, -1, 4},
      {R"({"usage":{"prompt_tokens":123456789,"completion_tokens":4}})", true, 123456789, 4},
      // The first of a repeated key, as the general way reads it.
      {R"({"usage":{"prompt_tokens":1,"prompt_tokens":9,"completion_tokens":2}})", true, 1, 2},
      // 'g' elsewhere after the usage ("tag", "length") does not hide it.
      {R"({"usage":{"prompt_tokens":1,"completion_tokens":2},"finish_reason":"length","tag":"gg"})", true, 1, 2},
      {R"({"usage":{}})", false, -1, -1},
      {R"(usage":{"prompt_tokens":1,"completion_tokens":2}})", false, -1, -1},  // no opening quote
  };
  for (const auto& r : rows) {
    int p = -1, c = -1;
    EXPECT_EQ(sse::usage(r.body, p, c), r.found) << r.body;
    if (!r.found) continue;
    EXPECT_EQ(p, r.prompt) << r.body;
    EXPECT_EQ(c, r.completion) << r.body;
  }
}

namespace {
// Feeds `body` to a watch in pieces of `step` bytes, each piece "read" 1 ms after the previous
// and examined once "written" (process), as the session does; settle() after the last byte.
request_record watch_stream(const std::string& body, std::size_t step, bool stream = true) {
  request_record rec;
  rec.status = 200;
  response_watch w;
  auto t0 = steady_clock::time_point{} + 1s;
  w.begin(&rec, t0);
  w.set_stream(stream);
  auto t = t0;
  for (std::size_t i = 0; i < body.size(); i += step) {
    t += 1ms;
    w.at(t);
    w.feed(std::string_view(body).substr(i, step));
    w.process();
  }
  w.finish();
  w.settle();
  return rec;
}
}  // namespace

TEST(ProxyTiming, EventsAreSplitAtBlankLinesWhateverTheReadBoundaries) {
  std::string body =
      "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n"
      "data: {\"choices\":[{\"delta\":{\"content\":\"A\"}}]}\r\n\r\n"
      ": a comment\n\n"
      "event: x\ndata: {\"choices\":[{\"delta\":{\"content\":\"B\"}}]}\n\n"
      "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":2}}\n\n"
      "data: [DONE]\n\n";
  for (std::size_t step : {std::size_t(1), std::size_t(7), std::size_t(64), body.size()}) {
    auto rec = watch_stream(body, step);
    ASSERT_EQ(rec.content_ms.size(), 2u) << "step " << step;
    EXPECT_EQ(rec.completion_tokens, 2);
    EXPECT_EQ(rec.prompt_tokens, 4);
    EXPECT_GT(rec.first_content_ms, 0);
    EXPECT_EQ(rec.first_content_ms, rec.content_ms[0]);
    EXPECT_TRUE(rec.stream);
    if (step == 1) {
      // Each event is stamped with the read that completed it: the role-only event (ending at
      // byte 68) is not the first token; "A" ends at byte 120.
      std::size_t a_end = body.find("\r\n\r\n") + 4;
      EXPECT_DOUBLE_EQ(rec.first_content_ms, static_cast<double>(a_end));
    }
  }
}

TEST(ProxyTiming, AnErrorEventIsAFailedRequestAsBenchCountsIt) {
  std::string why;
  // Top-level "error" key, as bench reads it: the message when there is one, else the value.
  EXPECT_TRUE(sse::error_event(R"({"error":{"code":500,"message":"The model produced output that does not match","type":"server_error"}})", why));
  EXPECT_EQ(why, "The model produced output that does not match");
  EXPECT_TRUE(sse::error_event(R"({"id":"x", "error" : "boom"})", why));
  EXPECT_EQ(why, "\"boom\"");
  EXPECT_TRUE(sse::error_event(R"({"error":{"code":1,"detail":{"message":"inner"}}})", why));
  EXPECT_EQ(why, R"({"code":1,"detail":{"message":"inner"}})");
  EXPECT_TRUE(sse::error_event(R"({"error":{"message":"with \"quotes\" and }{"}})", why));
  EXPECT_EQ(why, R"(with \"quotes\" and }{)");
  // Not at the top level, or only spelled inside a string: no error.
  EXPECT_FALSE(sse::error_event(R"({"choices":[{"delta":{},"error":"x"}]})", why));
  EXPECT_FALSE(sse::error_event(R"({"choices":[{"delta":{"content":"\"error\":1"}}]})", why));
  EXPECT_FALSE(sse::error_event(R"({"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":2}})", why));
  // A long message is cut.
  EXPECT_TRUE(sse::error_event("{\"error\":{\"message\":\"" + std::string(1000, 'm') + "\"}}", why));
  EXPECT_EQ(why.size(), 240u);

  // llama-server's stream: tokens, then the error event, then the end without [DONE].
  std::string body =
      "data: {\"choices\":[{\"delta\":{\"content\":\"A\"}}]}\n\n"
      "data: {\"choices\":[{\"delta\":{\"content\":\"B\"}}]}\n\n"
      "data: {\"error\":{\"code\":500,\"message\":\"The model produced output that does not match the expected peg-native format\",\"type\":\"server_error\"}}\n\n";
  for (std::size_t step : {std::size_t(1), std::size_t(13), body.size()}) {
    auto rec = watch_stream(body, step);
    EXPECT_EQ(rec.content_ms.size(), 2u) << "step " << step;
    EXPECT_TRUE(rec.upstream_error);
    EXPECT_EQ(rec.error,
              "stream error: the engine sent an error event: The model produced output that does not match the expected "
              "peg-native format");
    EXPECT_FALSE(rec.complete());
  }
  // The same without the blank line at the end (the body just stops).
  auto rec = watch_stream(body.substr(0, body.size() - 2), 7);
  EXPECT_TRUE(rec.upstream_error);
  EXPECT_FALSE(rec.complete());
  // A normal stream stays complete.
  rec = watch_stream("data: {\"choices\":[{\"delta\":{\"content\":\"A\"}}]}\n\ndata: [DONE]\n\n", 5);
  EXPECT_TRUE(rec.error.empty());
  EXPECT_FALSE(rec.upstream_error);
}

TEST(ProxyTiming, APlainBodyIsItsOwnFirstTokenAndItsUsageIsReadAtTheEnd) {
  std::string body(20000, ' ');
  body = "{\"choices\":[{\"message\":{\"content\":\"" + std::string(20000, 'x') +
         "\"}}],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":21},\"timings\":{}}";
  auto rec = watch_stream(body, 4096, false);
  EXPECT_EQ(rec.completion_tokens, 21);
  EXPECT_EQ(rec.prompt_tokens, 9);
  EXPECT_TRUE(rec.content_ms.empty());
  EXPECT_DOUBLE_EQ(rec.first_content_ms, static_cast<double>((body.size() + 4095) / 4096));
}

TEST(ProxyTiming, RecordJsonHasTimingsButNoContent) {
  request_record r;
  r.id = 7;
  r.method = "POST";
  r.path = "/v1/chat/completions";
  r.status = 200;
  r.stream = true;
  r.first_content_ms = 50;
  r.content_ms = {50, 70, 91};
  r.last_byte_ms = 92;
  r.completion_tokens = 3;
  auto j = nlohmann::json::parse(to_json_line(r));
  EXPECT_EQ(j["ttft_ms"], 50.0);
  EXPECT_EQ(j["itl_ms"], nlohmann::json::array({20.0, 21.0}));
  EXPECT_EQ(j["e2e_ms"], 92.0);
  EXPECT_NEAR(j["output_tps"].get<double>(), 3 / 0.092, 1e-3);  // three decimals
  EXPECT_EQ(j["t_ms"]["forwarded"], nullptr);
  EXPECT_FALSE(j.contains("body"));
}

TEST(ProxyTiming, RecordLineNumbersAreExactAtEveryMagnitude) {
  // Every number of a line, written two digits at a time, against the plain way of writing it.
  std::vector<std::uint64_t> values = {0, 1, 9, 10, 42, 99, 100, 101, 999, 1000, 1001, 65535, 999999, 1000000,
                                       1796152641529822ull, 18446744073709551615ull};
  for (std::uint64_t v = 0; v < 2100; v += 7) values.push_back(v);
  for (std::uint64_t v : values) {
    request_record r;
    r.id = v;
    r.connection = v / 3;
    r.bytes_in = v;
    r.bytes_out = v + 1;
    r.status = static_cast<int>(v % 1000);
    r.start_unix_us = static_cast<std::int64_t>(v % 4102444800000000ull);  // before 2100
    r.last_byte_ms = static_cast<double>(v % 100000000) / 1000.0;  // whole microseconds
    r.response_header_ms = static_cast<double>(v % 997) + 0.0006;  // rounds to ...001
    auto j = nlohmann::json::parse(to_json_line(r));
    EXPECT_EQ(j["id"].get<std::uint64_t>(), v);
    EXPECT_EQ(j["connection"].get<std::uint64_t>(), v / 3);
    EXPECT_EQ(j["bytes_out"].get<std::uint64_t>(), v + 1);
    EXPECT_EQ(j["status"].get<int>(), static_cast<int>(v % 1000));
    EXPECT_EQ(j["start_unix_us"].get<std::int64_t>(), r.start_unix_us);
    std::string line = to_json_line(r);
    // Milliseconds: three decimals, exactly.
    char want[64];
    std::snprintf(want, sizeof want, "\"last_byte\":%llu.%03llu", static_cast<unsigned long long>(v % 100000000 / 1000),
                  static_cast<unsigned long long>(v % 100000000 % 1000));
    EXPECT_NE(line.find(want), std::string::npos) << line;
    std::snprintf(want, sizeof want, "\"response_header\":%llu.001", static_cast<unsigned long long>(v % 997));
    EXPECT_NE(line.find(want), std::string::npos) << line;
    // The wall-clock start: the same second and microseconds as the number beside it.
    std::time_t t = static_cast<std::time_t>(r.start_unix_us / 1000000);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char iso[40];
    std::size_t n = std::strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%S", &tm);
    std::snprintf(iso + n, sizeof iso - n, ".%06lldZ", static_cast<long long>(r.start_unix_us % 1000000));
    EXPECT_EQ(j["started_at"].get<std::string>(), iso);
  }
  request_record neg;
  neg.prompt_tokens = 0;
  neg.completion_tokens = 2147483647;
  auto j = nlohmann::json::parse(to_json_line(neg));
  EXPECT_EQ(j["usage"]["prompt_tokens"], 0);
  EXPECT_EQ(j["usage"]["completion_tokens"], 2147483647);
  EXPECT_EQ(j["output_tokens"], 2147483647);
}

TEST(ProxyTiming, RecordLineStringsAreEscapedAtEveryOffset) {
  // Strings are copied eight bytes at a time until a byte needs escaping: each kind of byte at
  // each offset of strings of every length up to 24 reads back as it was (bytes from 0x80 up as
  // \u00XX, i.e. U+0080..U+00FF).
  const std::string specials = std::string("\x01\x1f\"\\\x7f\x80\xff ~!", 10);
  auto decoded = [](const std::string& raw) {
    std::string out;
    for (unsigned char c : raw) {
      if (c < 0x80) {
        out += static_cast<char>(c);
      } else {
        out += static_cast<char>(0xc0 | (c >> 6));
        out += static_cast<char>(0x80 | (c & 0x3f));
      }
    }
    return out;
  };
  for (std::size_t len = 1; len <= 24; ++len)
    for (std::size_t at = 0; at < len; ++at)
      for (char special : specials) {
        request_record r;
        r.path = std::string(len, 'p');
        r.path[at] = special;
        r.method = r.path;
        auto j = nlohmann::json::parse(to_json_line(r));
        ASSERT_EQ(j["path"].get<std::string>(), decoded(r.path)) << len << " " << at << " " << int(special);
        ASSERT_EQ(j["method"].get<std::string>(), decoded(r.path));
      }
}

TEST(ProxyTiming, RecordLinesStayValidJsonWhateverAnErrorOrPathHolds) {
  request_record r;
  r.path = "/v1/a\"b\\c";
  r.error = std::string("engine said \"no\"\n\t\x01 \xff\xfe");
  auto j = nlohmann::json::parse(to_json_line(r));
  EXPECT_EQ(j["path"], "/v1/a\"b\\c");
  EXPECT_EQ(j["error"].get<std::string>().substr(0, 16), "engine said \"no\"");
  EXPECT_EQ(j["ttft_ms"], nullptr);
  EXPECT_EQ(j["usage"], nullptr);
}

TEST(ProxyTiming, RecordsLeavingTheWindowComeBackForReuse) {
  // Past the window a handed-over record is answered with a used one (no allocation per
  // request), whatever the sizes of the writer's batches.
  request_log log(3);
  std::set<const request_record*> storage;
  int used = 0;
  auto r = std::make_unique<request_record>();
  for (std::uint64_t i = 1; i <= 40; ++i) {
    r->reset();
    r->id = i;
    storage.insert(r.get());
    log.add(r);
    ASSERT_TRUE(r);
    if (r->id != 0) ++used;  // not a fresh one
    if (i % (1 + i % 4) == 0) log.after(0, 100);  // a drain now and then: batches of 1 to 4
  }
  EXPECT_GE(used, 30);
  EXPECT_LE(storage.size(), 3u + 4u + 1u);  // the window, the largest batch, the one in hand
  auto lines = log.after(0, 100);
  ASSERT_EQ(lines.size(), 3u);  // the latest three
  EXPECT_EQ(nlohmann::json::parse(lines.back())["id"], 40);
}

TEST(ProxyTiming, TheWindowsPackedRecordsGiveTheLinesTheRecordsGive) {
  // Window slots are reused: a long stream's storage, then short requests inline, then a stream
  // again; every line /proxy/requests serves is the line the record itself gives.
  request_log log(2);
  std::vector<std::string> want;
  for (int k = 0; k < 30; ++k) {
    request_record r;
    r.id = static_cast<std::uint64_t>(k + 1);
    r.method = k % 3 ? "POST" : "PATCH";
    r.path = k % 4 == 0 ? "/v1/" + std::string(static_cast<std::size_t>(k) * 10, 'x') : "/v1/chat/completions";
    r.error = k % 5 == 0 ? "engine closed the connection after " + std::to_string(k) + " bytes" : "";
    r.status = 200;
    r.stream = k % 2 == 0;
    r.first_content_ms = 1.5 + k;
    r.last_byte_ms = 100.25 + k;
    for (int e = 0; r.stream && e < (k % 3 == 0 ? 300 : 3); ++e) r.content_ms.push_back(1.5 + k + e * 0.0307);
    r.completion_tokens = k % 7 == 0 ? -1 : 5;
    want.push_back(to_json_line(r));
    auto p = std::make_unique<request_record>(r);
    log.add(p);
    auto got = log.after(0, 10);
    ASSERT_FALSE(got.empty());
    ASSERT_EQ(got.back(), want.back()) << k;
    if (got.size() == 2) {
      EXPECT_EQ(got.front(), want[want.size() - 2]) << k;
    }
    auto j = nlohmann::json::parse(got.back());
    EXPECT_EQ(j["path"], r.path);
    EXPECT_EQ(j["error"], r.error.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.error));
    EXPECT_EQ(j["itl_ms"].size(), r.content_ms.empty() ? 0u : r.content_ms.size() - 1);
    if (r.content_ms.size() > 1) {
      EXPECT_NEAR(j["itl_ms"][0].get<double>(), 0.0307, 0.0005);
    }
  }
}

TEST(ProxyTiming, TheLogFileIsNeverOverwrittenAndGetsEveryRecord) {
  auto dir = std::filesystem::temp_directory_path() / ("bp_reqlog_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::string path = (dir / "requests.jsonl").string();
  {
    request_log log(2);  // a small window: the file still gets all
    std::string err;
    ASSERT_TRUE(log.open_file(path, err)) << err;
    for (std::uint64_t i = 1; i <= 5; ++i) {
      request_record r;
      r.id = i;
      log.add(std::move(r));
    }
    EXPECT_EQ(log.after(0, 100).size(), 2u);
    log.close_file();
  }
  std::ifstream in(path);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) EXPECT_EQ(nlohmann::json::parse(line)["id"], ++n);
  EXPECT_EQ(n, 5);
  request_log again;
  std::string err;
  EXPECT_FALSE(again.open_file(path, err));
  EXPECT_NE(err.find("never overwritten"), std::string::npos) << err;
  std::filesystem::remove_all(dir);
}

TEST(ProxyTiming, ABatchFillingTheWriteBufferManyTimesAndAStreamLongerThanItAreWrittenWhole) {
  // 1,000 records of ~700 bytes fill the writer's 64 KiB buffer about ten times; one stream of
  // 12,000 events has a line longer than the buffer. Every line whole, in order, valid JSON.
  auto dir = std::filesystem::temp_directory_path() / ("bp_reqlog_big_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::string path = (dir / "requests.jsonl").string();
  {
    request_log log(10);
    std::string err;
    ASSERT_TRUE(log.open_file(path, err)) << err;
    for (std::uint64_t i = 1; i <= 1000; ++i) {
      request_record r;
      r.id = i;
      r.method = "POST";
      r.path = "/v1/chat/completions";
      r.status = 200;
      r.error = i % 7 == 0 ? std::string(300, '"') : std::string();  // escaped: 600 bytes
      r.first_content_ms = 1.25;
      r.last_byte_ms = 2.5;
      if (i == 500)
        for (int k = 0; k < 12000; ++k) r.content_ms.push_back(1.25 + k * 0.5);
      log.add(std::move(r));
    }
    log.close_file();
  }
  std::ifstream in(path);
  std::string line;
  std::uint64_t n = 0;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["id"], ++n);
    if (n % 7 == 0) {
      EXPECT_EQ(j["error"], std::string(300, '"'));
    }
    if (n == 500) {
      EXPECT_GT(line.size(), 64u * 1024);
      ASSERT_EQ(j["itl_ms"].size(), 11999u);
      EXPECT_EQ(j["itl_ms"][11998], 0.5);
    }
  }
  EXPECT_EQ(n, 1000u);
  std::filesystem::remove_all(dir);
}

TEST(ProxyMetrics, BucketsStartAt100MicrosecondsAndRoutesAreAClosedSet) {
  const auto& b = latency_buckets();
  EXPECT_DOUBLE_EQ(b.front(), 1e-4);
  EXPECT_GT(b.back(), 200.0);
  for (std::size_t i = 1; i < b.size(); ++i) EXPECT_LT(b[i - 1], b[i]);
  EXPECT_EQ(route_label("/v1/chat/completions?x=1"), "/v1/chat/completions");
  EXPECT_EQ(route_label("/v1/models/llama"), "/v1/models");
  EXPECT_EQ(route_label("/v1/anything-a-client-invents"), "/v1/other");
  EXPECT_EQ(route_label("/admin"), "other");
}

TEST(ProxyMetrics, BucketBoundsArePrintedAsWritten) {
  // Issue 27 item 9: le="0.008063000000000001" (prometheus-cpp's 16 digits) is le="0.008063".
  proxy_metrics m;
  run_status st;
  request_record r;
  r.path = "/v1/chat/completions";
  r.status = 200;
  r.last_byte_ms = r.first_content_ms = 5;
  m.observe(r);
  std::string text = m.exposition(st, {});
  EXPECT_EQ(text.find("0.008063000000000001"), std::string::npos);
  EXPECT_NE(text.find("bench_proxy_e2e_seconds_bucket{le=\"0.008063\"} 1"), std::string::npos) << text;
  EXPECT_NE(text.find("bench_proxy_e2e_seconds_bucket{le=\"0.0001\"} 0"), std::string::npos);
  EXPECT_NE(text.find("bench_proxy_e2e_seconds_bucket{le=\"+Inf\"} 1"), std::string::npos);
  // Every bound has at most 4 significant digits and reads back as the bucket's own double.
  std::size_t bounds = 0;
  for (std::size_t at = text.find("bench_proxy_e2e_seconds_bucket{le=\""); at != std::string::npos;
       at = text.find("bench_proxy_e2e_seconds_bucket{le=\"", at + 1)) {
    std::size_t v = at + std::strlen("bench_proxy_e2e_seconds_bucket{le=\"");
    std::string value = text.substr(v, text.find('"', v) - v);
    if (value == "+Inf") continue;
    std::string digits;
    for (char c : value)
      if (c >= '0' && c <= '9' && !(digits.empty() && c == '0')) digits += c;
    EXPECT_LE(digits.size(), 4u) << value;
    EXPECT_EQ(std::strtod(value.c_str(), nullptr), latency_buckets()[bounds]) << value;
    ++bounds;
  }
  EXPECT_EQ(bounds, latency_buckets().size());
}
