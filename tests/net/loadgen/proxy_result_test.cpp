// Results from the proxy's own records (net/loadgen/proxy_result.hpp): the same numbers bench's
// summary gives, each failure counted by kind, windows by header and by id range.
#include "net/loadgen/proxy_result.hpp"
#include "net/proxy/request_log.hpp"

#include <gtest/gtest.h>

using namespace bp::bench;
using json = nlohmann::json;

namespace {
/// A record as the proxy prints it (request_log's own line writer).
json record(std::uint64_t id, int status, double ttft, double e2e, std::vector<double> events, int completion,
            std::string window = "", bool local = false, bool aborted = false, std::string error = "") {
  bp::net::request_record r;
  r.id = id;
  r.method = "POST";
  r.path = "/v1/chat/completions";
  r.start_unix_us = 1'700'000'000'000'000 + static_cast<std::int64_t>(id) * 1000;
  r.status = status;
  r.stream = true;
  r.local = local;
  r.client_aborted = aborted;
  r.error = error;
  r.first_content_ms = ttft;
  r.last_byte_ms = e2e;
  r.content_ms = std::move(events);
  r.completion_tokens = completion;
  r.prompt_tokens = completion >= 0 ? 7 : -1;
  r.window = std::move(window);
  return json::parse(bp::net::to_json_line(r));
}
}  // namespace

TEST(ProxyResult, RecordsBecomeBenchsRequestsWithEveryFailureCountedByKind) {
  proxy_measurement m;
  m.records = {record(1, 200, 10, 40, {10, 20, 30, 40}, 4),
               record(2, 200, 12, 42, {12, 22, 32, 42}, 4, "phase"),
               record(3, 503, -1, 1, {}, -1, "", true, false, "engine not ready"),
               record(4, 200, 11, 25, {11, 25}, -1, "", false, true, "client went away"),
               record(5, 500, -1, 3, {}, -1)};
  m.url = "http://127.0.0.1:1";
  m.model = "m";
  options o;
  o.max_error_rate = 1;
  json r = result_from_proxy(m, o);
  EXPECT_EQ(r["source"], "proxy");
  EXPECT_EQ(r["summary"]["requests"], 5);
  EXPECT_EQ(r["summary"]["completed"], 2);
  EXPECT_EQ(r["summary"]["error_kinds"]["proxy answered"], 1);
  EXPECT_EQ(r["summary"]["error_kinds"]["client aborted"], 1);
  EXPECT_EQ(r["summary"]["error_kinds"]["http 500"], 1);
  EXPECT_EQ(r["summary"]["proxy_counts"]["answered_by_proxy"], 1);
  EXPECT_EQ(r["summary"]["proxy_counts"]["client_aborted"], 1);
  EXPECT_FALSE(r["summary"].contains("concurrency"));  // the client's: never claimed
  EXPECT_DOUBLE_EQ(r["summary"]["ttft_ms"]["median"].get<double>(), 11.0);
  EXPECT_EQ(r["summary"]["output_tokens"]["median"].get<double>(), 4.0);
  EXPECT_EQ(r["requests"][0]["itl_ms"].size(), 3u);
  EXPECT_EQ(r["requests"][0]["usage_source"], "server");
  EXPECT_TRUE(r["valid"].get<bool>());
  // The same requests through bench's own summary give the same numbers: one code path.
  std::vector<request_result> rs;
  for (const auto& rec : m.records) rs.push_back(from_proxy_record(rec, 1'700'000'000'001'000));
  json b = summarize_requests(rs, r["summary"]["wall_s"].get<double>(), o);
  EXPECT_EQ(b["ttft_ms"], r["summary"]["ttft_ms"]);
  EXPECT_EQ(b["output_tps"], r["summary"]["output_tps"]);

  o.max_error_rate = 0;
  json strict = result_from_proxy(m, o);
  EXPECT_FALSE(strict["valid"].get<bool>());
  EXPECT_NE(strict["invalid_reason"].get<std::string>().find("3 of 5 requests failed"), std::string::npos);
}

TEST(ProxyResult, WindowsSelectByHeaderOrByIdRange) {
  json a = record(1, 200, 1, 2, {1, 2}, 2), b = record(2, 200, 1, 2, {1, 2}, 2, "x"), c = record(3, 200, 1, 2, {1, 2}, 2);
  EXPECT_EQ(b["window"], "x");
  EXPECT_FALSE(a.contains("window"));
  window_span byheader{"x"};
  EXPECT_FALSE(in_window(a, byheader));
  EXPECT_TRUE(in_window(b, byheader));
  window_span api{"y"};
  api.api = true;
  api.after_id = 1;
  api.through_id = 2;
  EXPECT_FALSE(in_window(a, api));
  EXPECT_TRUE(in_window(b, api));
  EXPECT_FALSE(in_window(c, api));
}

TEST(ProxyResult, NoRecordIsAnInvalidResultSayingSo) {
  proxy_measurement m;
  m.window = "empty";
  const options defaults;  // a named object: GCC 12 warns (maybe-uninitialized) on options{} here
  json r = result_from_proxy(m, defaults);
  EXPECT_FALSE(r["valid"].get<bool>());
  EXPECT_NE(r["invalid_reason"].get<std::string>().find("no request in window 'empty'"), std::string::npos);
}
