#include "net/proxy/proxy_metrics.hpp"
#include "net/proxy/route_table.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <mutex>

#include <prometheus/client_metric.h>
#include <prometheus/metric_family.h>
#include <prometheus/metric_type.h>
#include <prometheus/text_serializer.h>

namespace bp::net {

namespace {

// Route labels: a closed set (index = position here): the OpenAI API's routes by name, anything
// else under /v1 as "/v1/other", then every other route of the one route table
// (net/proxy/route_table.hpp) by its path, then "other" for paths no route serves.
constexpr std::array<std::string_view, 8> kV1Labels = {
    "/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models",
    "/v1/responses",        "/v1/rerank",      "/v1/tokenize",   "/v1/other"};
constexpr std::size_t kTableLabels = [] {
  std::size_t n = 0;
  for (const auto& e : kRouteTable) n += e.prefix ? 0 : 1;
  return n;
}();
constexpr auto kRoutes = [] {
  std::array<std::string_view, kV1Labels.size() + kTableLabels + 1> out{};
  std::size_t i = 0;
  for (auto l : kV1Labels) out[i++] = l;
  for (const auto& e : kRouteTable)
    if (!e.prefix) out[i++] = e.path;
  out[i] = "other";
  return out;
}();
constexpr std::size_t kV1Models = 3, kV1Other = kV1Labels.size() - 1, kOther = kRoutes.size() - 1;  // positions
static_assert(kRoutes[kOther] == "other" && kRoutes[kV1Other] == "/v1/other" && kRoutes[kV1Models] == "/v1/models");

/// The route label's position in kRoutes, from a request path (one pass over the set).
std::size_t route_index(std::string_view path) {
  path = path.substr(0, path.find('?'));
  for (std::size_t i = 0; i < kRoutes.size(); ++i)
    if (kRoutes[i] == path) return i;
  if (find_route(path) == route::proxy) return path.substr(0, 11) == "/v1/models/" ? kV1Models : kV1Other;
  return kOther;
}

}  // namespace

std::string_view route_label(std::string_view path) { return kRoutes[route_index(path)]; }

const std::vector<double>& latency_buckets() {
  static const std::vector<double> b = [] {
    std::vector<double> v;
    for (int k = 0; k <= 63; ++k) {
      // Rounded to 4 significant digits (through the decimal text, so 1e-4 is exactly "0.0001").
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%.4g", 1e-4 * std::pow(2.0, k / 3.0));
      v.push_back(std::strtod(buf, nullptr));
    }
    return v;
  }();
  return b;
}

namespace {

constexpr auto relaxed = std::memory_order_relaxed;

/// prometheus-cpp prints a double with 16 significant digits, so the bound 0.008063 came out as
/// le="0.008063000000000001". Every le="..." that is one of our bounds is printed as written
/// (its 4 significant digits); the value it names is the same double.
std::string bounds_as_written(std::string text) {
  const auto& b = latency_buckets();
  std::string out;
  out.reserve(text.size());
  std::size_t pos = 0;
  for (std::size_t at; (at = text.find("le=\"", pos)) != std::string::npos;) {
    std::size_t v = at + 4, end = text.find('"', v);
    if (end == std::string::npos) break;
    out.append(text, pos, v - pos);
    std::string value = text.substr(v, end - v);
    char* stop = nullptr;
    double d = std::strtod(value.c_str(), &stop);
    auto it = std::lower_bound(b.begin(), b.end(), d);
    if (stop && *stop == '\0' && it != b.end() && *it == d) {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%.4g", d);
      out += buf;
    } else {
      out += value;
    }
    pos = end;
  }
  out.append(text, pos, std::string::npos);
  return out;
}

/// A histogram as plain atomic counts, one per bucket (not cumulative), and its sum in whole
/// nanoseconds: an observation is a bucket search and two relaxed atomic adds, no lock.
/// (prometheus-cpp's Histogram takes a mutex and runs two compare-and-swap loops on doubles per
/// observation; with the counters that was a twentieth of the relay's instructions per request,
/// docs/benchmarks.md.) prometheus-cpp still defines what is exposed: collect() fills its
/// ClientMetric, and its TextSerializer writes the exposition.
struct histogram {
  std::array<std::atomic<std::uint64_t>, 65> counts{};  // one per upper bound, then +Inf
  std::atomic<std::uint64_t> sum_ns{0};

  void observe(double seconds) {
    const auto& b = latency_buckets();
    // The first bound >= the value: the bucket "le" names (as prometheus-cpp's own search).
    auto i = static_cast<std::size_t>(std::lower_bound(b.begin(), b.end(), seconds) - b.begin());
    counts[i].fetch_add(1, relaxed);
    if (seconds > 0) sum_ns.fetch_add(static_cast<std::uint64_t>(seconds * 1e9 + 0.5), relaxed);
  }
  /// The cumulative buckets; the count is their total (so the two always agree, even while
  /// other threads observe).
  prometheus::ClientMetric collect() const {
    prometheus::ClientMetric m;
    const auto& b = latency_buckets();
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i <= b.size(); ++i) {
      cumulative += counts[i].load(relaxed);
      prometheus::ClientMetric::Bucket bucket;
      bucket.cumulative_count = cumulative;
      bucket.upper_bound = i < b.size() ? b[i] : std::numeric_limits<double>::infinity();
      m.histogram.bucket.push_back(bucket);
    }
    m.histogram.sample_count = cumulative;
    m.histogram.sample_sum = static_cast<double>(sum_ns.load(relaxed)) / 1e9;
    return m;
  }
};

prometheus::MetricFamily family(std::string name, std::string help, prometheus::MetricType type) {
  prometheus::MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

prometheus::ClientMetric counter_metric(std::uint64_t v, std::vector<prometheus::ClientMetric::Label> labels = {}) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  m.counter.value = static_cast<double>(v);
  return m;
}

}  // namespace

struct proxy_metrics::impl {
  histogram ttft, itl, e2e;
  std::atomic<std::uint64_t> aborts{0}, uperr{0}, bytes_in{0}, bytes_out{0}, tokens{0};
  // Requests by (route, status), status 0..599 (0: no response was sent); exposed once non-zero.
  // A route's 600 counters are made when it is first seen (most runs see two or three routes).
  using status_counts = std::array<std::atomic<std::uint64_t>, 600>;
  std::array<std::atomic<status_counts*>, kRoutes.size()> by_status{};
  std::mutex add_mu;

  ~impl() {
    for (auto& r : by_status) delete r.load();
  }
  status_counts* route_counts(std::size_t route) const { return by_status[route].load(std::memory_order_acquire); }
  void request(std::size_t route, int status) {
    if (status < 0 || status >= 600) status = 0;
    status_counts* c = route_counts(route);
    if (c == nullptr) {
      std::lock_guard<std::mutex> g(add_mu);
      c = by_status[route].load(std::memory_order_relaxed);
      if (c == nullptr) {
        c = new status_counts{};
        by_status[route].store(c, std::memory_order_release);
      }
    }
    (*c)[static_cast<std::size_t>(status)].fetch_add(1, relaxed);
  }

  /// The families in the order they are exposed (as prometheus-cpp's Registry kept them).
  std::vector<prometheus::MetricFamily> collect() const {
    using prometheus::MetricType;
    std::vector<prometheus::MetricFamily> out;
    auto hist = [&](const char* name, const char* help, const histogram& h) {
      out.push_back(family(name, help, MetricType::Histogram));
      out.back().metric.push_back(h.collect());
    };
    auto count = [&](const char* name, const char* help, const std::atomic<std::uint64_t>& v) {
      out.push_back(family(name, help, MetricType::Counter));
      out.back().metric.push_back(counter_metric(v.load(relaxed)));
    };
    hist("bench_proxy_ttft_seconds",
         "Time to first content-bearing event (non-streamed: the whole body) after the request header, at the proxy",
         ttft);
    hist("bench_proxy_inter_token_latency_seconds",
         "Gap between consecutive content-bearing events of a streamed response, at the proxy", itl);
    hist("bench_proxy_e2e_seconds",
         "Request header to the last response byte written to the client, at the proxy (completed requests)", e2e);
    out.push_back(family("bench_proxy_requests_total", "Requests answered, by route and status (status 0: no response was sent)",
                         MetricType::Counter));
    // Sorted by route label, then status (as prometheus-cpp's family kept its label sets).
    std::array<std::size_t, kRoutes.size()> order{};
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [](std::size_t a, std::size_t b) { return kRoutes[a] < kRoutes[b]; });
    for (std::size_t r : order) {
      const status_counts* c = route_counts(r);
      if (c == nullptr) continue;
      for (std::size_t st = 0; st < 600; ++st)
        if (std::uint64_t v = (*c)[st].load(relaxed))
          out.back().metric.push_back(
              counter_metric(v, {{"route", std::string(kRoutes[r])}, {"status", std::to_string(st)}}));
    }
    count("bench_proxy_client_aborts_total", "Proxied requests whose client went away before the response was complete",
          aborts);
    count("bench_proxy_upstream_errors_total", "Proxied requests the engine could not be reached for, failed or timed out",
          uperr);
    count("bench_proxy_received_bytes_total", "Request bytes read from clients", bytes_in);
    count("bench_proxy_sent_bytes_total", "Response bytes written to clients", bytes_out);
    count("bench_proxy_output_tokens_total",
          "Output tokens of completed proxied requests (the engine's usage, else content events)", tokens);
    return out;
  }
};

proxy_metrics::proxy_metrics() : impl_(std::make_unique<impl>()) {}
proxy_metrics::~proxy_metrics() = default;

void proxy_metrics::observe(const request_record& r) {
  auto& m = *impl_;
  m.request(route_index(r.path), r.status);
  if (r.client_aborted) m.aborts.fetch_add(1, relaxed);
  if (r.upstream_error) m.uperr.fetch_add(1, relaxed);
  m.bytes_in.fetch_add(r.bytes_in, relaxed);
  m.bytes_out.fetch_add(r.bytes_out, relaxed);
  if (!r.complete() || r.local) return;
  if (r.first_content_ms >= 0) m.ttft.observe(r.first_content_ms / 1000.0);
  for (std::size_t i = 1; i < r.content_ms.size(); ++i) m.itl.observe((r.content_ms[i] - r.content_ms[i - 1]) / 1000.0);
  m.e2e.observe(r.last_byte_ms / 1000.0);
  if (int t = r.output_tokens(); t > 0) m.tokens.fetch_add(static_cast<std::uint64_t>(t), relaxed);
}

void proxy_metrics::count_local(std::string_view route, int status, std::uint64_t bytes_in, std::uint64_t bytes_out) {
  auto& m = *impl_;
  m.request(route_index(route), status);
  m.bytes_in.fetch_add(bytes_in, relaxed);
  m.bytes_out.fetch_add(bytes_out, relaxed);
}

std::string proxy_metrics::exposition(const run_status& st, const gauges& g) const {
  auto families = impl_->collect();
  auto gauge = [&](std::string name, std::string help, double v,
                   std::vector<prometheus::ClientMetric::Label> labels = {}) {
    prometheus::MetricFamily f;
    f.name = std::move(name);
    f.help = std::move(help);
    f.type = prometheus::MetricType::Gauge;
    prometheus::ClientMetric m;
    m.label = std::move(labels);
    m.gauge.value = v;
    f.metric.push_back(std::move(m));
    families.push_back(std::move(f));
  };
  auto doc = st.meta();
  gauge("bench_proxy_info", "bench-proxy's build and what it serves (value 1; labels name the snapshot)", 1,
        {{"version", BENCH_PROXY_VERSION},
         {"snapshot_id", doc ? doc->sha256 : std::string()},
         {"engine_kind", st.engine_kind()},
         {"config", st.config_description()},
         {"state", to_string(st.state())}});
  gauge("bench_proxy_in_flight_requests", "Requests read or being answered now", static_cast<double>(g.in_flight));
  gauge("bench_proxy_open_connections", "Client connections open now", static_cast<double>(g.open_connections));
  return bounds_as_written(prometheus::TextSerializer().Serialize(families));
}

}  // namespace bp::net
