#include "analysis/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <random>
#include <sstream>
#include <stdexcept>

#include "analysis/small_sample.hpp"
#include "base/numbers.hpp"

namespace bp::bench {

using json = nlohmann::json;

namespace {

const std::vector<metric_def> kMetrics = {
    {"output_tps", "median output tokens/s per request", "tok/s", true},
    {"total_output_tps", "output tokens of all requests / wall time", "tok/s", true},
    {"ttft_p50", "median time to first token", "ms", false},
    {"ttft_p99", "p99 time to first token", "ms", false},
    {"itl_p50", "median inter-token latency (all gaps)", "ms", false},
    {"itl_p99", "p99 inter-token latency (all gaps)", "ms", false},
    {"tpot_p50", "median time per output token after the first", "ms", false},
    {"e2e_p50", "median end-to-end latency", "ms", false},
    {"e2e_p99", "p99 end-to-end latency", "ms", false},
    {"goodput", "requests/s that met every --slo threshold", "req/s", true},
    {"capacity", "the highest load meeting every --slo objective (a curve: --load)", "load", true},
};

double num(const json& j, const char* k) {
  auto it = j.find(k);
  return it != j.end() && it->is_number() ? it->get<double>() : 0;
}

}  // namespace

slo_map parse_slo(const std::string& text) {
  slo_map out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    auto eq = item.find('=');
    std::string k = item.substr(0, eq);
    if (eq == std::string::npos || (k != "ttft_ms" && k != "itl_ms" && k != "tpot_ms" && k != "e2e_ms"))
      throw std::invalid_argument("'" + item + "': expected ttft_ms=MS, itl_ms=MS, tpot_ms=MS or e2e_ms=MS");
    auto v = base::parse_number(item.substr(eq + 1), 0.001, 1e9);
    if (!v) throw std::invalid_argument("'" + item + "': the threshold must be a finite number of ms > 0");
    out[k] = *v;
  }
  if (out.empty()) throw std::invalid_argument("no thresholds given");
  return out;
}

const std::vector<metric_def>& all_metrics() { return kMetrics; }

const metric_def* find_metric(const std::string& name) {
  for (const auto& m : kMetrics)
    if (m.name == name) return &m;
  return nullptr;
}

std::string metric_names() {
  std::string s;
  for (const auto& m : kMetrics) s += (s.empty() ? "" : ", ") + m.name;
  return s;
}

double trial_samples::value() const {
  switch (how) {
    case kind::run_level: return run_value;
    case kind::fraction: {
      if (sorted.empty()) return 0;
      double sum = 0;
      for (double x : sorted) sum += x;
      return sum / static_cast<double>(sorted.size()) * scale;
    }
    case kind::percentile: return percentile_sorted(sorted, p);
  }
  return 0;
}

double trial_samples::draw(rng& g) const {
  switch (how) {
    case kind::run_level: return run_value;
    case kind::fraction: {
      if (sorted.empty()) return 0;
      std::size_t n = sorted.size();
      double f = value() / scale;
      // A resample's count of good requests is Binomial(n, f).
      std::binomial_distribution<long> b(static_cast<long>(n), std::clamp(f, 0.0, 1.0));
      return static_cast<double>(b(g)) / static_cast<double>(n) * scale;
    }
    case kind::percentile: return resampled_percentile(sorted, p, g);
  }
  return 0;
}

std::optional<trial_samples> samples_of(const json& result, const std::string& metric, const slo_map& slo,
                                        std::string& why) {
  if (!find_metric(metric)) {
    why = "unknown metric '" + metric + "' (one of " + metric_names() + ")";
    return std::nullopt;
  }
  trial_samples t;
  const json empty = json::array();
  const json& reqs = result.contains("requests") && result["requests"].is_array() ? result["requests"] : empty;
  const json summary = result.value("summary", json::object());
  double wall_s = num(summary, "wall_s");
  std::vector<double> v;
  // Requests outside a load point's measurement window ("window": why) are listed, not measured.
  auto measured = [](const json& r) { return !r.contains("window"); };
  auto per_request = [&](auto f) {
    for (const auto& r : reqs)
      if (r.value("ok", false) && measured(r)) f(r);
  };
  auto pct = [&](double p) {
    t.how = trial_samples::kind::percentile;
    t.p = p;
  };
  if (metric == "output_tps") {
    pct(50);
    per_request([&](const json& r) {
      double e2e = num(r, "e2e_ms");
      if (e2e > 0) v.push_back(num(r, "output_tokens") / (e2e / 1000.0));
    });
  } else if (metric == "ttft_p50" || metric == "ttft_p99") {
    pct(metric == "ttft_p50" ? 50 : 99);
    per_request([&](const json& r) { v.push_back(num(r, "ttft_ms")); });
  } else if (metric == "e2e_p50" || metric == "e2e_p99") {
    pct(metric == "e2e_p50" ? 50 : 99);
    per_request([&](const json& r) { v.push_back(num(r, "e2e_ms")); });
  } else if (metric == "itl_p50" || metric == "itl_p99") {
    pct(metric == "itl_p50" ? 50 : 99);
    per_request([&](const json& r) {
      if (r.contains("itl_ms") && r["itl_ms"].is_array())
        for (const auto& g : r["itl_ms"])
          if (g.is_number()) v.push_back(g.get<double>());
    });
  } else if (metric == "tpot_p50") {
    pct(50);
    per_request([&](const json& r) {
      double n = num(r, "output_tokens"), e2e = num(r, "e2e_ms"), ttft = num(r, "ttft_ms");
      if (n > 1 && e2e > ttft) v.push_back((e2e - ttft) / (n - 1));
    });
  } else if (metric == "total_output_tps") {
    t.how = trial_samples::kind::run_level;
    t.run_value = num(summary, "total_output_tps");
    if (num(summary, "completed") <= 0) {
      why = "no request completed";
      return std::nullopt;
    }
    return t;
  } else if (metric == "capacity") {
    // One number per lifecycle: the capacity its curve found (analysis/curves.hpp).
    t.how = trial_samples::kind::run_level;
    const json* cap = nullptr;
    if (result.contains("load") && result["load"].is_object() && result["load"].contains("capacity"))
      cap = &result["load"]["capacity"];
    if (!cap || !cap->is_object()) {
      why = "no capacity: the result has no load curve with --slo objectives (--load ... --slo METRIC_pNN_ms<=MS)";
      return std::nullopt;
    }
    if (!(*cap)["value"].is_number()) {
      why = "capacity " + cap->value("text", cap->value("error", std::string("unknown")));
      return std::nullopt;
    }
    t.run_value = (*cap)["value"].get<double>();
    return t;
  } else if (metric == "goodput") {
    if (slo.empty()) {
      why = "goodput needs SLO thresholds (--slo ttft_ms=MS,...)";
      return std::nullopt;
    }
    t.how = trial_samples::kind::fraction;
    for (const auto& r : reqs) {
      if (!measured(r)) continue;
      bool good = r.value("ok", false);
      if (good) {
        double n = num(r, "output_tokens"), e2e = num(r, "e2e_ms"), ttft = num(r, "ttft_ms");
        double worst_gap = 0;
        if (r.contains("itl_ms") && r["itl_ms"].is_array())
          for (const auto& g : r["itl_ms"])
            if (g.is_number()) worst_gap = std::max(worst_gap, g.get<double>());
        double tpot = n > 1 && e2e > ttft ? (e2e - ttft) / (n - 1) : 0;
        for (const auto& [k, limit] : slo) {
          double x = k == "ttft_ms" ? ttft : k == "e2e_ms" ? e2e : k == "itl_ms" ? worst_gap : tpot;
          if (x > limit) good = false;
        }
      }
      v.push_back(good ? 1 : 0);
    }
    if (v.empty() || wall_s <= 0) {
      why = "no requests";
      return std::nullopt;
    }
    t.scale = static_cast<double>(v.size()) / wall_s;
  }
  if (v.empty()) {
    why = "no completed request has " + metric;
    return std::nullopt;
  }
  std::sort(v.begin(), v.end());
  t.sorted = std::move(v);
  return t;
}

double estimator::value() const {
  if (trials_.empty()) return 0;
  double sum = 0;
  for (const auto& t : trials_) sum += t.value();
  return sum / static_cast<double>(trials_.size());
}

double estimator::draw(rng& g) const {
  std::size_t k = trials_.size();
  if (k == 1) return trials_[0].draw(g);
  double sum = 0;
  for (std::size_t i = 0; i < k; ++i) sum += trials_[static_cast<std::size_t>(g() % k)].draw(g);
  return sum / static_cast<double>(k);
}

bool estimator::resamplable() const {
  if (trials_.size() >= 2) return true;
  if (trials_.empty()) return false;
  const auto& t = trials_[0];
  return t.how != trial_samples::kind::run_level && t.sorted.size() >= 2;
}

std::size_t estimator::units() const {
  if (trials_.size() != 1) return trials_.size();
  return trials_[0].how == trial_samples::kind::run_level ? 1 : trials_[0].sorted.size();
}

estimate estimator::run(int resamples, double confidence, std::uint64_t seed) const {
  estimate e;
  e.value = value();
  e.confidence = confidence;
  e.trials = trials_.size();
  for (const auto& t : trials_) e.per_trial.push_back(t.value());
  if (e.per_trial.size() >= 2) {
    double mean = e.value, ss = 0;
    for (double x : e.per_trial) ss += (x - mean) * (x - mean);
    double sd = std::sqrt(ss / static_cast<double>(e.per_trial.size() - 1));
    e.between_trial_cv = mean != 0 ? sd / std::fabs(mean) : 0;
  }
  if (e.per_trial.size() >= 2) {
    // Lifecycles are the units: a t interval with K-1 degrees of freedom over the trials'
    // statistics (each already carries its own sampling error). A bootstrap over two or three
    // trials cannot reach beyond the values it resamples (docs/statistics.md, "Few units").
    auto s = analysis::summarize(e.per_trial);
    double c = analysis::t_quantile(0.5 + confidence / 2, static_cast<double>(s.n - 1));
    e.method = "t interval over " + std::to_string(s.n) + " lifecycles (" + std::to_string(s.n - 1) +
               " df): run-to-run noise included";
    e.has_ci = true;
    e.ci_low = s.mean - c * s.se;
    e.ci_high = s.mean + c * s.se;
    return e;
  }
  e.method = "bootstrap over requests (one trial: request-to-request noise only, not run-to-run noise)";
  if (!resamplable() || resamples <= 0) {
    e.method = trials_.size() == 1 ? "none: one trial of a run-level metric (run it with --trials 2 or more)"
                                   : "none";
    return e;
  }
  rng g(seed);
  std::vector<double> draws(static_cast<std::size_t>(resamples));
  for (auto& d : draws) d = draw(g);
  auto [lo, hi] = percentile_interval(draws, confidence);
  e.has_ci = true;
  e.ci_low = lo;
  e.ci_high = hi;
  return e;
}

json to_json(const estimate& e, const metric_def& m) {
  json j = {{"metric", m.name},
            {"description", m.description},
            {"unit", m.unit},
            {"higher_is_better", m.higher_is_better},
            {"value", e.value},
            {"ci", e.has_ci ? json::array({e.ci_low, e.ci_high}) : json(nullptr)},
            {"ci_level", e.confidence},
            {"ci_method", e.method},
            {"trials", e.trials}};
  if (e.trials >= 2) {
    j["per_trial"] = e.per_trial;
    j["between_trial_cv"] = e.between_trial_cv;
  }
  return j;
}

}  // namespace bp::bench
