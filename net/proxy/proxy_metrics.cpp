#include "net/proxy/proxy_metrics.hpp"

#include <array>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

namespace bp::net {

namespace {

// Route labels: a closed set (index = position here).
constexpr std::array<std::string_view, 14> kRoutes = {
    "/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models",   "/v1/responses",
    "/v1/other",            "/engine/metrics", "/healthz",       "/meta",        "/metrics",
    "/proxy/requests",      "other",           "/v1/rerank",     "/v1/tokenize"};

constexpr std::size_t kOther = 11, kV1Other = 5, kV1Models = 3;  // positions in kRoutes
static_assert(kRoutes[kOther] == "other" && kRoutes[kV1Other] == "/v1/other" && kRoutes[kV1Models] == "/v1/models");

/// The route label's position in kRoutes, from a request path (one pass over the set).
std::size_t route_index(std::string_view path) {
  path = path.substr(0, path.find('?'));
  for (std::size_t i = 0; i < kRoutes.size(); ++i)
    if (kRoutes[i] == path) return i;
  if (path == "/v1" || path.substr(0, 4) == "/v1/") return path.substr(0, 11) == "/v1/models/" ? kV1Models : kV1Other;
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

struct proxy_metrics::impl {
  std::shared_ptr<prometheus::Registry> reg = std::make_shared<prometheus::Registry>();
  prometheus::Family<prometheus::Histogram>& ttft_f =
      prometheus::BuildHistogram()
          .Name("bench_proxy_ttft_seconds")
          .Help("Time to first content-bearing event (non-streamed: the whole body) after the request header, at the proxy")
          .Register(*reg);
  prometheus::Family<prometheus::Histogram>& itl_f =
      prometheus::BuildHistogram()
          .Name("bench_proxy_inter_token_latency_seconds")
          .Help("Gap between consecutive content-bearing events of a streamed response, at the proxy")
          .Register(*reg);
  prometheus::Family<prometheus::Histogram>& e2e_f =
      prometheus::BuildHistogram()
          .Name("bench_proxy_e2e_seconds")
          .Help("Request header to the last response byte written to the client, at the proxy (completed requests)")
          .Register(*reg);
  prometheus::Family<prometheus::Counter>& req_f =
      prometheus::BuildCounter()
          .Name("bench_proxy_requests_total")
          .Help("Requests answered, by route and status (status 0: no response was sent)")
          .Register(*reg);
  prometheus::Family<prometheus::Counter>& abort_f =
      prometheus::BuildCounter()
          .Name("bench_proxy_client_aborts_total")
          .Help("Proxied requests whose client went away before the response was complete")
          .Register(*reg);
  prometheus::Family<prometheus::Counter>& uperr_f =
      prometheus::BuildCounter()
          .Name("bench_proxy_upstream_errors_total")
          .Help("Proxied requests the engine could not be reached for, failed or timed out")
          .Register(*reg);
  prometheus::Family<prometheus::Counter>& in_f = prometheus::BuildCounter()
                                                      .Name("bench_proxy_received_bytes_total")
                                                      .Help("Request bytes read from clients")
                                                      .Register(*reg);
  prometheus::Family<prometheus::Counter>& out_f = prometheus::BuildCounter()
                                                       .Name("bench_proxy_sent_bytes_total")
                                                       .Help("Response bytes written to clients")
                                                       .Register(*reg);
  prometheus::Family<prometheus::Counter>& tok_f =
      prometheus::BuildCounter()
          .Name("bench_proxy_output_tokens_total")
          .Help("Output tokens of completed proxied requests (the engine's usage, else content events)")
          .Register(*reg);
  prometheus::Histogram& ttft = ttft_f.Add({}, latency_buckets());
  prometheus::Histogram& itl = itl_f.Add({}, latency_buckets());
  prometheus::Histogram& e2e = e2e_f.Add({}, latency_buckets());
  prometheus::Counter& aborts = abort_f.Add({});
  prometheus::Counter& uperr = uperr_f.Add({});
  prometheus::Counter& bytes_in = in_f.Add({});
  prometheus::Counter& bytes_out = out_f.Add({});
  prometheus::Counter& tokens = tok_f.Add({});
  // Counters by (route, status), created on first use; status 0..599.
  std::array<std::array<std::atomic<prometheus::Counter*>, 600>, kRoutes.size()> by_status{};
  std::mutex add_mu;

  prometheus::Counter& requests(std::size_t route, int status) {
    if (status < 0 || status >= 600) status = 0;
    auto& slot = by_status[route][static_cast<std::size_t>(status)];
    if (auto* c = slot.load(std::memory_order_acquire)) return *c;
    std::lock_guard<std::mutex> g(add_mu);
    if (auto* c = slot.load(std::memory_order_relaxed)) return *c;
    auto* c = &req_f.Add({{"route", std::string(kRoutes[route])}, {"status", std::to_string(status)}});
    slot.store(c, std::memory_order_release);
    return *c;
  }
};

proxy_metrics::proxy_metrics() : impl_(std::make_unique<impl>()) {}
proxy_metrics::~proxy_metrics() = default;

void proxy_metrics::observe(const request_record& r) {
  auto& m = *impl_;
  m.requests(route_index(r.path), r.status).Increment();
  if (r.client_aborted) m.aborts.Increment();
  if (r.upstream_error) m.uperr.Increment();
  m.bytes_in.Increment(static_cast<double>(r.bytes_in));
  m.bytes_out.Increment(static_cast<double>(r.bytes_out));
  if (!r.complete() || r.local) return;
  if (r.first_content_ms >= 0) m.ttft.Observe(r.first_content_ms / 1000.0);
  for (std::size_t i = 1; i < r.content_ms.size(); ++i) m.itl.Observe((r.content_ms[i] - r.content_ms[i - 1]) / 1000.0);
  m.e2e.Observe(r.last_byte_ms / 1000.0);
  m.tokens.Increment(r.output_tokens());
}

void proxy_metrics::count_local(std::string_view route, int status, std::uint64_t bytes_in, std::uint64_t bytes_out) {
  auto& m = *impl_;
  m.requests(route_index(route), status).Increment();
  m.bytes_in.Increment(static_cast<double>(bytes_in));
  m.bytes_out.Increment(static_cast<double>(bytes_out));
}

std::string proxy_metrics::exposition(const run_status& st, const gauges& g) const {
  auto families = impl_->reg->Collect();
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
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace bp::net
