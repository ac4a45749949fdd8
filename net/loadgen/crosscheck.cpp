#include "net/loadgen/crosscheck.hpp"

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>
#include <thread>

#include "base/text.hpp"
#include "base/json_read.hpp"
#include "net/client/http_client.hpp"
#include "analysis/stats.hpp"

namespace bp::bench {

using json = nlohmann::json;

namespace {
std::map<std::uint64_t, json> fetch_once(const std::string& base_url, const std::set<std::uint64_t>& wanted,
                                         std::string& err) {
  std::map<std::uint64_t, json> out;
  std::uint64_t after = *wanted.begin() - 1, last_wanted = *wanted.rbegin();
  // Bounded: at most this many pages of 10000 (more records than any bench sends).
  for (int page = 0; page < 1000 && after < last_wanted; ++page) {
    auto r = net::http_fetch("GET", base_url + "/proxy/requests?after=" + std::to_string(after) + "&limit=10000", "",
                             std::chrono::seconds(30), err, 512ull << 20);
    if (!r) return {};
    if (r->status != 200) {
      err = "GET /proxy/requests answered HTTP " + std::to_string(r->status);
      return {};
    }
    std::istringstream in(r->body);
    std::string line;
    std::uint64_t last = after;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      std::string perr;
      auto parsed = base::try_parse_json(line, "GET /proxy/requests", perr);
      json j = parsed ? std::move(*parsed) : json();
      if (!j.is_object() || !j.contains("id") || !j["id"].is_number_unsigned()) {
        err = "GET /proxy/requests: a line is not a record";
        return {};
      }
      std::uint64_t id = j["id"].get<std::uint64_t>();
      last = std::max(last, id);
      if (wanted.count(id)) out.emplace(id, std::move(j));
    }
    if (r->header("x-bench-proxy-more") != "true" || last == after) break;
    after = last;
  }
  return out;
}
}  // namespace

std::map<std::uint64_t, json> fetch_proxy_records(const std::string& base_url, const std::vector<std::uint64_t>& ids,
                                                  std::string& err) {
  if (ids.empty()) return {};
  std::set<std::uint64_t> wanted(ids.begin(), ids.end());
  // A record is handed over once the proxy has written a response's last byte: a moment after a
  // client may already have read it. Ask again for what is missing, for up to 5 s.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  std::map<std::uint64_t, json> out;
  for (;;) {
    auto got = fetch_once(base_url, wanted, err);
    if (!err.empty()) return out;
    for (auto& [id, rec] : got) out[id] = std::move(rec);
    for (const auto& [id, rec] : out) wanted.erase(id);
    if (wanted.empty() || std::chrono::steady_clock::now() >= deadline) return out;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // a poll with a deadline, not a synchronisation
  }
}

namespace {
json median_p99(std::vector<double> v) {
  if (v.empty()) return nullptr;
  std::sort(v.begin(), v.end());
  return {{"median", percentile_sorted(v, 50)}, {"p99", percentile_sorted(v, 99)}};
}
}  // namespace

json client_overhead(const std::vector<timed_pair>& pairs, std::size_t requests) {
  std::vector<double> dt, de, ct, ce, pt, pe;
  for (const auto& p : pairs) {
    dt.push_back(p.client_ttft_ms - p.proxy_ttft_ms);
    de.push_back(p.client_e2e_ms - p.proxy_e2e_ms);
    ct.push_back(p.client_ttft_ms);
    ce.push_back(p.client_e2e_ms);
    pt.push_back(p.proxy_ttft_ms);
    pe.push_back(p.proxy_e2e_ms);
  }
  json j;
  j["matched"] = pairs.size();
  j["requests"] = requests;
  j["definition"] =
      "client minus proxy for the same request (joined by x-bench-proxy-request-id): TTFT from sending to the first "
      "content event, E2E to the last byte; the proxy's clock starts when the request header is complete and stops "
      "at the last byte written (docs/metrics.md, \"Client overhead\")";
  j["ttft"] = median_p99(dt);
  j["e2e"] = median_p99(de);
  j["client"] = {{"ttft_ms", median_p99(ct)}, {"e2e_ms", median_p99(ce)}};
  j["proxy"] = {{"ttft_ms", median_p99(pt)}, {"e2e_ms", median_p99(pe)}};
  return j;
}

std::vector<std::string> client_overhead_warnings(const json& o) {
  std::vector<std::string> out;
  if (!o.is_object() || o.value("matched", 0) == 0) return out;
  auto check = [&](const char* what, const char* key, const char* proxy_key) {
    if (!o[key].is_object() || !o["proxy"][proxy_key].is_object()) return;
    double over = o[key]["median"].get<double>(), base = o["proxy"][proxy_key]["median"].get<double>();
    if (over > 0.5 && base > 0 && over > 0.05 * base)
      out.push_back(std::string("client overhead: the client's median ") + what + " is " + base::fixed(over, 2) +
                    " ms above the proxy's (" + base::fixed(over / base * 100.0, 1) + "% of the " +
                    base::fixed(base, 2) + " ms measured at the proxy): the client's own time is large against what "
                    "it measures");
  };
  check("TTFT", "ttft", "ttft_ms");
  check("E2E", "e2e", "e2e_ms");
  return out;
}

void account_failed_requests(json& cross_check, const std::vector<failed_request_tokens>& failed) {
  if (failed.empty() || !cross_check.is_object()) return;
  double out_seen = 0, out_more = 0, prompt_seen = 0;
  bool out_bounded = true;
  std::size_t prompt_unknown = 0;
  for (const auto& f : failed) {
    out_seen += std::max(0, f.output_seen);
    if (f.max_tokens < 0) out_bounded = false;
    else out_more += std::max(0, f.max_tokens - std::max(0, f.output_seen));
    if (f.prompt >= 0) prompt_seen += f.prompt;
    else ++prompt_unknown;
  }
  std::string n = std::to_string(failed.size()) + (failed.size() == 1 ? " request" : " requests");
  auto account = [&](const char* key, double seen, bool bounded, double more, const std::string& why) {
    if (!cross_check.contains(key) || !cross_check[key].is_object()) return;
    json& c = cross_check[key];
    if (!c.contains("engine") || !c["engine"].is_number() || !c.contains("bench") || !c["bench"].is_number()) return;
    double engine = c["engine"].get<double>(), bench = c["bench"].get<double>() + seen;
    c["bench"] = bench;
    c["bench_failed"] = seen;
    c["failed_requests"] = failed.size();
    c["failed_at_most_more"] = bounded ? json(more) : json(nullptr);
    double gap = engine - bench;
    if (std::fabs(gap) < 0.5) {
      c["equal"] = true;
    } else if (gap > 0 && (!bounded || gap <= more + 0.5)) {
      c["equal"] = true;
      c["explained"] = base::fixed(gap, 0) + " " + key + " of the " + n + " that failed after the engine answered (" + why + ")";
    } else {
      c["equal"] = false;
    }
  };
  account("generation_tokens", out_seen, out_bounded, out_more,
          out_bounded ? "each generates at most its max_tokens" : "a request without max_tokens may generate any number");
  account("prompt_tokens", prompt_seen, prompt_unknown == 0, 0,
          "the engine read their prompts; the bench never learnt their size");
}

}  // namespace bp::bench
