#include "analysis/variance.hpp"

#include <cmath>

namespace bp::analysis {

using json = nlohmann::json;

std::vector<double> pass_values(const json& result, const std::string& metric, const bench::slo_map& slo) {
  std::vector<double> out;
  const json o = result.is_object() ? result.value("options", json::object()) : json::object();
  // Any field may be null or missing (a --duration point has no request count): no passes then.
  auto whole = [](const json& j, const char* key, long fallback) {
    return j.is_object() && j.contains(key) && j[key].is_number_integer() ? j[key].get<long>() : fallback;
  };
  long requests = whole(o, "requests", 0), repeats = whole(o, "repeats", 1);
  if (repeats < 2 || requests < repeats || requests % repeats != 0) return out;
  long per_pass = requests / repeats;
  std::vector<json> passes(static_cast<std::size_t>(repeats), json::array());
  const json none = json::array();
  const json& reqs = result.contains("requests") && result["requests"].is_array() ? result["requests"] : none;
  for (const auto& r : reqs) {
    long i = whole(r, "index", -1);
    if (i < 0 || i >= requests) continue;
    passes[static_cast<std::size_t>(i / per_pass)].push_back(r);
  }
  for (auto& reqs : passes) {
    json one = result;
    one["requests"] = std::move(reqs);
    std::string why;
    auto s = bench::samples_of(one, metric, slo, why);
    if (!s) return {};  // a pass without the metric: no split
    out.push_back(s->value());
  }
  return out;
}

std::optional<variance_components> components(const std::vector<json>& lifecycle_results, const std::string& metric,
                                              const bench::slo_map& slo) {
  std::vector<std::vector<double>> lc;
  for (const auto& r : lifecycle_results) {
    auto p = pass_values(r, metric, slo);
    if (p.size() >= 2) lc.push_back(std::move(p));
  }
  if (lc.empty()) return std::nullopt;
  variance_components v;
  v.lifecycles = lc.size();
  v.passes = lc[0].size();
  double ss_within = 0, df_within = 0, grand = 0;
  std::vector<double> means;
  for (const auto& p : lc) {
    double m = 0;
    for (double x : p) m += x;
    m /= static_cast<double>(p.size());
    for (double x : p) ss_within += (x - m) * (x - m);
    df_within += static_cast<double>(p.size() - 1);
    means.push_back(m);
    grand += m;
  }
  grand /= static_cast<double>(means.size());
  v.mean = grand;
  double var_within = df_within > 0 ? ss_within / df_within : 0;
  double var_between = 0;
  if (means.size() >= 2) {
    double ss = 0;
    for (double m : means) ss += (m - grand) * (m - grand);
    double var_means = ss / static_cast<double>(means.size() - 1);
    var_between = std::max(0.0, var_means - var_within / static_cast<double>(v.passes));
  }
  if (grand != 0) {
    v.within_cv = std::sqrt(var_within) / std::fabs(grand);
    v.between_cv = std::sqrt(var_between) / std::fabs(grand);
  }
  v.covers = v.lifecycles >= 2
                 ? "one value per lifecycle (the statistic over all its requests): the interval covers the spread between "
                   "lifecycles, which includes the passes' own"
                 : "one lifecycle: its passes show the spread within a warm engine only, not between lifecycles "
                   "(measure two or more to see that)";
  return v;
}

json to_json(const variance_components& v) {
  return {{"lifecycles", v.lifecycles}, {"passes_per_lifecycle", v.passes}, {"mean", v.mean},
          {"within_lifecycle_cv", v.within_cv}, {"between_lifecycle_cv", v.between_cv}, {"covers", v.covers}};
}

}  // namespace bp::analysis
