#include "analysis/curves.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <sstream>
#include <stdexcept>

#include "analysis/small_sample.hpp"
#include "base/numbers.hpp"
#include "base/text.hpp"

namespace bp::bench {

using json = nlohmann::json;

namespace {

std::string num_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

bool known_metric(const std::string& m) { return m == "ttft_ms" || m == "itl_ms" || m == "tpot_ms" || m == "e2e_ms"; }

/// The metric whose samples an objective reads (analysis/metrics.cpp's samples_of).
std::string sample_metric(const std::string& m) {
  if (m == "ttft_ms") return "ttft_p50";
  if (m == "itl_ms") return "itl_p50";
  if (m == "tpot_ms") return "tpot_p50";
  return "e2e_p50";
}

double median_of(std::vector<double> v) {
  if (v.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::sort(v.begin(), v.end());
  std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::vector<double> ranks(const std::vector<double>& v) {
  std::vector<std::size_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (std::size_t i = 0; i < idx.size();) {
    std::size_t j = i;
    while (j + 1 < idx.size() && v[idx[j + 1]] == v[idx[i]]) ++j;
    double avg = (static_cast<double>(i) + static_cast<double>(j)) / 2 + 1;
    for (std::size_t k = i; k <= j; ++k) r[idx[k]] = avg;
    i = j + 1;
  }
  return r;
}

double pearson(const std::vector<double>& a, const std::vector<double>& b) {
  double n = static_cast<double>(a.size());
  double ma = std::accumulate(a.begin(), a.end(), 0.0) / n, mb = std::accumulate(b.begin(), b.end(), 0.0) / n;
  double sab = 0, saa = 0, sbb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) * (a[i] - ma);
    sbb += (b[i] - mb) * (b[i] - mb);
  }
  return saa > 0 && sbb > 0 ? sab / std::sqrt(saa * sbb) : 0;
}

/// Does point `pt` meet every objective? 2: surely (every "yes"), 1: by its estimates, 0: not by
/// its estimates, -1: surely not (some "no").
int meets(const json& pt, std::size_t n_objectives) {
  const json& objs = pt.contains("objectives") && pt["objectives"].is_array() ? pt["objectives"] : json::array();
  if (objs.size() < n_objectives) return -1;
  bool all_yes = true, all_within = true, any_no = false;
  for (const auto& o : objs) {
    std::string m = o.value("met", "no");
    if (m != "yes") all_yes = false;
    if (m == "no" || m == "unlikely") all_within = false;
    if (m == "no") any_no = true;
  }
  if (any_no) return -1;
  return all_yes ? 2 : all_within ? 1 : 0;
}

}  // namespace

void parse_slo_text(const std::string& text, slo_map& thresholds, std::vector<slo_objective>& objectives) {
  std::stringstream ss(text);
  std::string raw;
  slo_map from_objectives;
  while (std::getline(ss, raw, ',')) {
    std::string item(base::trim(raw));
    auto le = item.find("<=");
    if (le != std::string::npos) {
      // METRIC_pNN_ms<=MS
      std::string lhs(base::trim(item.substr(0, le))), rhs(base::trim(item.substr(le + 2)));
      auto p_at = lhs.find("_p");
      bool shape = p_at != std::string::npos && lhs.size() > 3 && lhs.substr(lhs.size() - 3) == "_ms";
      std::string metric = shape ? lhs.substr(0, p_at) + "_ms" : "";
      std::string pct = shape ? lhs.substr(p_at + 2, lhs.size() - 3 - (p_at + 2)) : "";
      auto p = base::parse_number(pct, 0.0001, 100);
      if (!shape || !known_metric(metric) || !p)
        throw std::invalid_argument("'" + item +
                                    "': expected METRIC_pNN_ms<=MS with METRIC ttft, itl, tpot or e2e and NN a "
                                    "percentile (e.g. ttft_p99_ms<=200)");
      auto limit = base::parse_number(rhs, 0.001, 1e9);
      if (!limit) throw std::invalid_argument("'" + item + "': the limit must be a finite number of ms > 0");
      slo_objective o;
      o.metric = metric;
      o.p = *p;
      o.limit = *limit;
      o.text = metric.substr(0, metric.size() - 3) + "_p" + num_text(*p) + "_ms<=" + num_text(*limit);
      objectives.push_back(o);
      auto& t = from_objectives[metric];
      t = t > 0 ? std::min(t, *limit) : *limit;
      continue;
    }
    auto one = parse_slo(item);  // METRIC_ms=MS, with its own errors
    for (const auto& [k, v] : one) thresholds[k] = v;
  }
  for (const auto& [k, v] : from_objectives)
    if (!thresholds.count(k)) thresholds[k] = v;
  if (thresholds.empty() && objectives.empty()) throw std::invalid_argument("no thresholds given");
}

json objective_at(const json& point_result, const slo_objective& o, int resamples, double confidence,
                  std::uint64_t seed) {
  json j = {{"objective", o.text}, {"metric", o.metric}, {"p", o.p}, {"limit", o.limit}};
  std::string why;
  auto s = samples_of(point_result, sample_metric(o.metric), {}, why);
  if (!s) {
    j["value"] = nullptr;
    j["met"] = "no";
    j["error"] = why;
    return j;
  }
  s->p = o.p;
  auto e = estimator({*s}).run(resamples, confidence, seed);
  j["value"] = e.value;
  j["n"] = s->sorted.size();
  if (e.has_ci) {
    j["ci"] = {e.ci_low, e.ci_high};
  } else {
    j["ci"] = nullptr;
  }
  double lo = e.has_ci ? e.ci_low : e.value, hi = e.has_ci ? e.ci_high : e.value;
  j["met"] = hi <= o.limit ? "yes" : lo > o.limit ? "no" : e.value <= o.limit ? "likely" : "unlikely";
  return j;
}

json saturation(const std::vector<double>& send_ms, const std::vector<double>& end_ms,
                const std::vector<double>& ttft_ms) {
  std::size_t n = send_ms.size();
  // In flight at each send: requests sent before it and not yet ended (those that never ended
  // count as in flight to the end).
  std::vector<double> ends;
  for (std::size_t i = 0; i < n; ++i) ends.push_back(std::isfinite(end_ms[i]) ? end_ms[i] : 1e300);
  std::vector<double> sorted_send = send_ms, sorted_end = ends;
  std::sort(sorted_send.begin(), sorted_send.end());
  std::sort(sorted_end.begin(), sorted_end.end());
  std::vector<double> inflight(n);
  for (std::size_t i = 0; i < n; ++i) {
    auto started = std::lower_bound(sorted_send.begin(), sorted_send.end(), send_ms[i]) - sorted_send.begin();
    auto ended = std::upper_bound(sorted_end.begin(), sorted_end.end(), send_ms[i]) - sorted_end.begin();
    inflight[i] = static_cast<double>(std::max<long>(0, started - ended));
  }
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return send_ms[a] < send_ms[b]; });
  std::vector<double> t, x;  // completed requests, in send order
  std::vector<double> first_ttft, last_ttft, first_in, last_in;
  for (std::size_t k = 0; k < n; ++k) {
    std::size_t i = order[k];
    if (k < n / 3) first_in.push_back(inflight[i]);
    if (k >= n - n / 3) last_in.push_back(inflight[i]);
    if (!std::isfinite(ttft_ms[i])) continue;
    t.push_back(send_ms[i]);
    x.push_back(ttft_ms[i]);
    if (k < n / 3) first_ttft.push_back(ttft_ms[i]);
    if (k >= n - n / 3) last_ttft.push_back(ttft_ms[i]);
  }
  json j;
  j["method"] =
      "Spearman's rank correlation of TTFT with send time (one-sided p from the t approximation), and the first "
      "and last thirds' medians of TTFT and of requests in flight at send; over-saturated when the correlation "
      "is at least 0.5 with p < 0.001 (a trend, not a few waits), the last third's median TTFT is at least 1.5x the first's and more requests "
      "are in flight";
  j["requests"] = n;
  if (x.size() < 9 || first_ttft.empty() || last_ttft.empty()) {
    j["over_saturated"] = nullptr;
    j["reason"] = "too few completed requests to tell (" + std::to_string(x.size()) + ", at least 9 needed)";
    return j;
  }
  double rho = pearson(ranks(t), ranks(x));
  double df = static_cast<double>(x.size()) - 2;
  double tstat = std::abs(rho) >= 1 ? 1e9 : rho * std::sqrt(df / (1 - rho * rho));
  double p = 1 - analysis::t_cdf(tstat, df);
  double m1 = median_of(first_ttft), m3 = median_of(last_ttft);
  double i1 = median_of(first_in), i3 = median_of(last_in);
  bool over = rho >= 0.5 && p < 0.001 && m3 >= 1.5 * m1 && i3 > i1;
  j["spearman_rho"] = rho;
  j["p_value"] = p;
  j["ttft_first_third_ms"] = m1;
  j["ttft_last_third_ms"] = m3;
  j["inflight_first_third"] = i1;
  j["inflight_last_third"] = i3;
  j["over_saturated"] = over;
  return j;
}

json knee(const std::vector<double>& load, const std::vector<double>& tput) {
  std::size_t n = std::min(load.size(), tput.size());
  if (n < 3) return nullptr;
  double x0 = load.front(), x1 = load[n - 1];
  double y0 = *std::min_element(tput.begin(), tput.begin() + static_cast<long>(n));
  double y1 = *std::max_element(tput.begin(), tput.begin() + static_cast<long>(n));
  if (!(x1 > x0) || !(y1 > y0)) return nullptr;
  double best = 0;
  std::size_t at = 0;
  for (std::size_t i = 0; i < n; ++i) {
    double xn = (load[i] - x0) / (x1 - x0), yn = (tput[i] - y0) / (y1 - y0);
    if (yn - xn > best) {
      best = yn - xn;
      at = i;
    }
  }
  // A straight (or convex) curve has no knee; 0.1 of the normalised range is the least bend that counts.
  if (best < 0.1 || at == n - 1) return nullptr;
  return {{"index", at}, {"load", load[at]}, {"throughput", tput[at]}, {"bend", best},
          {"method", "Kneedle: the point farthest above the chord of the curve normalised to [0,1] (at least 0.1)"}};
}

json capacity(const json& points, const std::vector<slo_objective>& objectives) {
  json c;
  json texts = json::array();
  for (const auto& o : objectives) texts.push_back(o.text);
  c["objectives"] = texts;
  c["method"] =
      "the highest load whose point (and every lower one) meets every objective by its estimate; the interval "
      "runs from the highest load up to which every point surely meets them (even the percentile's interval "
      "is within) to the highest load below the first point that surely fails (even the interval is over)";
  if (!points.is_array() || points.empty() || objectives.empty()) {
    c["value"] = nullptr;
    c["error"] = objectives.empty() ? "no objectives (--slo METRIC_pNN_ms<=MS)" : "no load points";
    return c;
  }
  std::string axis = points[0].value("axis", "concurrency");
  c["axis"] = axis;
  std::optional<double> est, lo, hi;
  bool est_open = true, lo_open = true, hi_open = true;
  for (const auto& pt : points) {
    double load = pt.value("load", 0.0);
    int m = meets(pt, objectives.size());
    if (est_open) {
      if (m >= 1) est = load;
      else est_open = false;
    }
    if (lo_open) {
      if (m == 2) lo = load;
      else lo_open = false;
    }
    if (hi_open) {
      if (m >= 0) hi = load;
      else hi_open = false;
    }
  }
  double lowest = points[0].value("load", 0.0), highest = points[points.size() - 1].value("load", 0.0);
  if (!est) {
    c["value"] = nullptr;
    c["below_lowest"] = true;
    c["text"] = "below the lowest load measured (" + num_text(lowest) + " " + axis + ")";
    c["ci"] = {nullptr, hi ? json(*hi) : json(nullptr)};
    return c;
  }
  c["value"] = *est;
  c["below_lowest"] = false;
  c["at_least"] = est_open;  // every point met: the capacity is the highest measured load or more
  c["ci"] = {lo ? json(*lo) : json(nullptr), hi_open ? json(nullptr) : json(*hi)};
  std::string text = num_text(*est) + " " + axis + " [" + (lo ? num_text(*lo) : std::string("below ") + num_text(lowest)) +
                     ", " + (hi_open ? ">= " + num_text(highest) : num_text(*hi)) + "]";
  if (est_open) text = ">= " + text + " (every load measured met the objectives)";
  std::string at;
  for (const auto& o : objectives) at += (at.empty() ? "" : ", ") + o.text;
  c["text"] = text + " at " + at;
  return c;
}

std::optional<double> refine_load(const json& points, const std::vector<slo_objective>& objectives, bool whole) {
  if (!points.is_array() || points.size() < 2) return std::nullopt;
  for (std::size_t i = 0; i + 1 < points.size(); ++i) {
    int here = meets(points[i], objectives.size()), next = meets(points[i + 1], objectives.size());
    if (here >= 1 && next <= 0) {
      double a = points[i].value("load", 0.0), b = points[i + 1].value("load", 0.0);
      double mid = whole ? std::floor((a + b) / 2) : (a + b) / 2;
      if (mid <= a || mid >= b || (!whole && (b - a) / b < 0.02)) return std::nullopt;
      return mid;
    }
    if (here <= 0) return std::nullopt;  // the first point already fails: nothing to split below it
  }
  return std::nullopt;
}

json point_result(const json& result, const std::string& label) {
  if (!result.contains("load") || !result["load"].is_object() || !result["load"].contains("points")) return nullptr;
  for (const auto& p : result["load"]["points"]) {
    if (p.value("label", std::string()) != label) continue;
    json doc = json::object();
    for (auto it = result.begin(); it != result.end(); ++it)
      if (it.key() != "requests" && it.key() != "load" && it.key() != "summary" && it.key() != "snapshot")
        doc[it.key()] = it.value();
    doc["summary"] = p.value("summary", json::object());
    long index = p.value("index", 0L);
    json reqs = json::array();
    if (result.contains("requests") && result["requests"].is_array())
      for (const auto& r : result["requests"])
        if (r.value("point", 0L) == index) reqs.push_back(r);
    doc["requests"] = reqs;
    return doc;
  }
  return nullptr;
}

std::vector<std::string> asked_points(const json& result) {
  std::vector<std::string> out;
  if (!result.contains("load") || !result["load"].is_object() || !result["load"].contains("points")) return out;
  for (const auto& p : result["load"]["points"])
    if (!p.value("refined", false)) out.push_back(p.value("label", std::string()));
  return out;
}

std::string capacity_short(const json& c) {
  if (!c.is_object()) return "-";
  if (c.contains("below_lowest") && c["below_lowest"].is_boolean() && c["below_lowest"].get<bool>()) return "below lowest";
  if (!c.contains("value") || !c["value"].is_number()) return "-";
  bool at_least = c.contains("at_least") && c["at_least"].is_boolean() && c["at_least"].get<bool>();
  std::string lo = "below lowest", hi = ">= " + num_text(c["value"].get<double>());
  if (c.contains("ci") && c["ci"].is_array() && c["ci"].size() == 2) {
    if (c["ci"][0].is_number()) lo = num_text(c["ci"][0].get<double>());
    if (c["ci"][1].is_number()) hi = num_text(c["ci"][1].get<double>());
  }
  return (at_least ? ">= " : "") + num_text(c["value"].get<double>()) + " [" + lo + ", " + hi + "]";
}

}  // namespace bp::bench
