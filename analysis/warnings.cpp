#include "analysis/warnings.hpp"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <map>
#include <sstream>

namespace bp::bench {

using json = nlohmann::json;

namespace {

std::string pct(double x, int prec = 1) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(prec) << x * 100.0 << "%";
  return os.str();
}

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return percentile_sorted(v, 50);
}

}  // namespace

std::vector<std::string> result_warnings(const json& result, const std::vector<double>& percentiles) {
  std::vector<std::string> out;
  // Completed requests in the order they were sent.
  std::vector<std::pair<double, const json*>> order;
  static const json none = json::array();
  const json& reqs = result.contains("requests") && result["requests"].is_array() ? result["requests"] : none;
  for (const auto& r : reqs)
    if (r.value("ok", false) && r.value("e2e_ms", 0.0) > 0) order.emplace_back(r.value("start_ms", 0.0), &r);
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<double> e2e, tps;
  for (const auto& [t, r] : order) {
    e2e.push_back(r->value("e2e_ms", 0.0));
    tps.push_back(r->value("output_tokens", 0.0) / (r->value("e2e_ms", 1.0) / 1000.0));
  }
  std::size_t n = e2e.size();
  // A slow start: the first tenth (at least 3) against the rest (hyperfine warns of a slow first run).
  if (n >= 10) {
    std::size_t k = std::max<std::size_t>(3, n / 10);
    double first = median_of({e2e.begin(), e2e.begin() + static_cast<long>(k)});
    double rest = median_of({e2e.begin() + static_cast<long>(k), e2e.end()});
    if (rest > 0 && first > 1.5 * rest)
      out.push_back("the first " + std::to_string(k) + " requests took " + pct(first / rest - 1.0, 0) +
                    " longer than the rest (median end-to-end latency): warmup too short?");
  }
  // Drift: first half against second half of the per-request throughput.
  if (n >= 20) {
    std::vector<double> a(tps.begin(), tps.begin() + static_cast<long>(n / 2)), b(tps.begin() + static_cast<long>(n / 2), tps.end());
    double p = mann_whitney_p(a, b);
    double ma = median_of(a), mb = median_of(b);
    if (p < 0.01 && ma > 0 && std::fabs(mb / ma - 1.0) > 0.02) {
      std::ostringstream os;
      os << "drift within the run: the second half's median output tok/s per request is " << pct(std::fabs(mb / ma - 1.0))
         << (mb < ma ? " lower" : " higher") << " than the first half's (Mann-Whitney p = " << std::setprecision(2)
         << p << ")";
      out.push_back(os.str());
    }
  }
  // Outliers: more than 10 MADs from the median (as hyperfine counts them).
  for (const auto& [name, values] : {std::pair<const char*, const std::vector<double>*>{"end-to-end latency", &e2e},
                                     {"output tok/s per request", &tps}}) {
    std::vector<double> s = *values;
    std::sort(s.begin(), s.end());
    double med = percentile_sorted(s, 50), mad = mad_sorted(s);
    if (mad <= 0) continue;
    std::size_t outliers = 0;
    for (double x : s)
      if (std::fabs(x - med) > 10 * mad) ++outliers;
    if (outliers > 0)
      out.push_back(std::to_string(outliers) + " of " + std::to_string(n) + " requests are outliers in " + name +
                    " (more than 10 MADs from the median)");
  }
  // High variation (pyperf warns when the standard deviation exceeds 10% of the mean).
  if (n >= 2) {
    double mean = 0;
    for (double x : tps) mean += x;
    mean /= static_cast<double>(n);
    double ss = 0;
    for (double x : tps) ss += (x - mean) * (x - mean);
    double cv = mean > 0 ? std::sqrt(ss / static_cast<double>(n - 1)) / mean : 0;
    if (cv > 0.10)
      out.push_back("output tok/s per request varies a lot: CV " + pct(cv) +
                    " (above 10%, pyperf's threshold); medians need more requests to be stable");
  }
  // Too few requests for a percentile: fewer than 5 samples beyond it.
  for (double p : percentiles) {
    if (p <= 50) continue;
    double beyond = static_cast<double>(n) * (1.0 - p / 100.0);
    if (beyond < 5) {
      std::ostringstream os;
      os << percentile_key(p) << " rests on " << n << " requests: fewer than 5 lie beyond it (at least "
         << static_cast<long>(std::ceil(5.0 / (1.0 - p / 100.0))) << " requests make it more than a maximum)";
      out.push_back(os.str());
    }
  }
  return out;
}

std::vector<trial_warning> merge_trial_warnings(const std::vector<const json*>& results) {
  std::vector<std::string> order;
  std::map<std::string, std::vector<std::size_t>> from;
  for (std::size_t i = 0; i < results.size(); ++i) {
    if (!results[i]) continue;
    for (const auto& w : results[i]->value("warnings", json::array())) {
      std::string text = w.get<std::string>();
      if (!from.count(text)) order.push_back(text);
      from[text].push_back(i + 1);
    }
  }
  std::vector<trial_warning> out;
  for (const auto& text : order) {
    std::string who;
    if (results.size() > 1) {
      if (from[text].size() == results.size()) {
        who = "every trial";
      } else {
        for (std::size_t t : from[text]) who += (who.empty() ? "trial " : ", ") + std::to_string(t);
      }
    }
    out.push_back({text, who});
  }
  return out;
}

std::vector<std::string> trial_warnings(const estimate& e, const metric_def& metric, double noise) {
  std::vector<std::string> out;
  if (e.per_trial.size() < 3) return out;
  std::vector<double> rest(e.per_trial.begin() + 1, e.per_trial.end());
  std::sort(rest.begin(), rest.end());
  double med = percentile_sorted(rest, 50), mad = mad_sorted(rest);
  double first = e.per_trial[0];
  double worse = metric.higher_is_better ? med - first : first - med;
  if (med != 0 && worse > std::max(noise * std::fabs(med), 3 * mad))
    out.push_back("the first trial's " + metric.name + " is " + pct(worse / std::fabs(med)) +
                  " worse than the median of the others: the machine or the engine was not warm yet?");
  return out;
}

}  // namespace bp::bench
