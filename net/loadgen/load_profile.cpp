#include "net/loadgen/load_profile.hpp"

#include <cmath>
#include <cstdio>
#include <random>
#include <sstream>
#include <stdexcept>

#include "base/numbers.hpp"
#include "base/text.hpp"

namespace bp::bench {

namespace {

std::string num_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, sep)) out.push_back(std::string(base::trim(item)));
  if (!s.empty() && s.back() == sep) out.push_back("");
  return out;
}

[[noreturn]] void bad(const std::string& text, const std::string& why) {
  throw std::invalid_argument("--load '" + text + "': " + why +
                              " (expected sync, concurrency=N[,N...], rate=R[,R...], throughput or sweep[:N])");
}

}  // namespace

std::string load_point::label() const {
  switch (how) {
    case kind::sync: return "sync";
    case kind::concurrency: return "concurrency=" + num_text(value);
    case kind::rate: return "rate=" + num_text(value);
    case kind::throughput: return "throughput";
    case kind::ramp: return "ramp " + ramp_shape + " " + num_text(value) + "->" + num_text(ramp_end) + "/s";
    case kind::trace: return "trace";
  }
  return "?";
}

std::string load_point::axis() const { return open_loop() ? "req/s" : "concurrency"; }

load_profile parse_load(const std::string& raw) {
  load_profile p;
  std::string text(base::trim(raw));
  p.text = text;
  if (text == "sync") {
    p.points.push_back({});
    return p;
  }
  if (text == "throughput") {
    load_point t;
    t.how = load_point::kind::throughput;
    t.value = 0;
    p.points.push_back(t);
    return p;
  }
  if (text.rfind("sweep", 0) == 0) {
    std::string rest = text.substr(5);
    p.sweep_rates = 4;
    if (!rest.empty()) {
      if (rest[0] != ':') bad(text, "after 'sweep' only ':N' may follow");
      auto n = base::parse_integer(rest.substr(1), 1, 100);
      if (!n) bad(text, "sweep:N needs a whole number of rates from 1 to 100, got '" + rest.substr(1) + "'");
      p.sweep_rates = static_cast<int>(*n);
    }
    return p;
  }
  auto eq = text.find('=');
  if (eq == std::string::npos) bad(text, "unknown profile");
  std::string key = text.substr(0, eq);
  if (key != "concurrency" && key != "rate") bad(text, "unknown profile '" + key + "'");
  double prev = 0;
  for (const auto& item : split(text.substr(eq + 1), ',')) {
    load_point pt;
    if (key == "concurrency") {
      auto n = base::parse_integer(item, 1, 100000);
      if (!n) bad(text, "'" + item + "' is not a whole number of workers from 1 to 100000");
      pt.how = load_point::kind::concurrency;
      pt.value = static_cast<double>(*n);
    } else {
      auto r = base::parse_number(item, 1e-6, 1e6);
      if (!r) bad(text, "'" + item + "' is not a rate in requests/s (a finite number > 0, at most 1e6)");
      pt.how = load_point::kind::rate;
      pt.value = *r;
    }
    if (pt.value <= prev) bad(text, "the loads must increase (" + item + " after " + num_text(prev) + ")");
    prev = pt.value;
    p.points.push_back(pt);
  }
  if (p.points.empty()) bad(text, "no load given");
  return p;
}

load_point ramp_point(const std::string& shape, double start, double end) {
  if (shape != "linear" && shape != "exponential")
    throw std::invalid_argument("--ramp-up '" + shape + "': expected linear or exponential");
  if (!(start > 0) || !(end > 0) || !std::isfinite(start) || !std::isfinite(end))
    throw std::invalid_argument("--ramp-start and --ramp-end must be rates > 0 (requests/s)");
  if (shape == "exponential" && start == end)
    throw std::invalid_argument("--ramp-up exponential needs --ramp-end different from --ramp-start");
  load_point p;
  p.how = load_point::kind::ramp;
  p.value = start;
  p.ramp_end = end;
  p.ramp_shape = shape;
  return p;
}

namespace {

/// Unit-rate arrival times in "operational time" (gaps gamma(shape k, scale 1/k): mean 1).
template <typename F>
std::vector<double> rescaled(double burstiness, std::size_t max_n, double horizon, std::uint64_t seed, F to_ms) {
  std::vector<double> out;
  out.reserve(std::min<std::size_t>(max_n, 1u << 20));
  std::mt19937_64 rng(seed);
  double k = burstiness > 0 ? burstiness : 1;
  std::gamma_distribution<double> gap(k, 1.0 / k);
  double u = 0;
  for (std::size_t i = 0; i < max_n; ++i) {
    if (horizon > 0 && u >= horizon) break;
    double t = to_ms(u);
    if (!std::isfinite(t)) break;
    out.push_back(t);
    u += gap(rng);
  }
  return out;
}

}  // namespace

std::vector<double> arrival_schedule(double rate, double burstiness, std::size_t max_n, double duration_s,
                                     std::uint64_t seed) {
  if (!(rate > 0)) return std::vector<double>(max_n, 0.0);  // throughput: all due at once
  // The first request is due at once; the expected count in [0, t] is rate * t.
  return rescaled(burstiness, max_n, duration_s > 0 ? rate * duration_s : 0, seed,
                  [rate](double u) { return u / rate * 1000.0; });
}

std::vector<double> ramp_schedule(const std::string& shape, double r0, double r1, double burstiness,
                                  std::size_t max_n, double duration_s, std::uint64_t seed) {
  double d = duration_s;
  if (shape == "linear") {
    // Lambda(t) = r0 t + (r1 - r0) t^2 / (2 D); t from Lambda by the quadratic's positive root.
    double a = (r1 - r0) / (2 * d), total = r0 * d + a * d * d;
    return rescaled(burstiness, max_n, total, seed, [=](double u) {
      double t = std::abs(a) < 1e-12 ? u / r0 : (-r0 + std::sqrt(r0 * r0 + 4 * a * u)) / (2 * a);
      return t * 1000.0;
    });
  }
  // exponential: r(t) = r0 k^(t/D); Lambda(t) = r0 D (k^(t/D) - 1) / ln k.
  double lk = std::log(r1 / r0), total = r0 * d * (r1 / r0 - 1) / lk;
  return rescaled(burstiness, max_n, total, seed,
                  [=](double u) { return d * std::log1p(u * lk / (r0 * d)) / lk * 1000.0; });
}

std::vector<double> sweep_rates(double sync_rate, double max_rate, int n) {
  std::vector<double> out;
  if (n <= 0 || !(max_rate > sync_rate)) return out;
  for (int i = 1; i <= n; ++i) out.push_back(sync_rate + (max_rate - sync_rate) * i / (n + 1));
  return out;
}

}  // namespace bp::bench
