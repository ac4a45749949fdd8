#include "analysis/resolution.hpp"

#include <cmath>
#include <filesystem>
#include <map>

#include "analysis/small_sample.hpp"
#include "base/json_read.hpp"
#include "base/text.hpp"

namespace bp::analysis {

namespace fs = std::filesystem;

namespace {

std::string canonical(const std::string& p) {
  std::error_code ec;
  auto c = fs::weakly_canonical(fs::absolute(p, ec), ec);
  return ec ? p : c.string();
}

/// A row's between-lifecycle CV: as its result file (trials.json) records it, else recovered from
/// the row's interval at the level that file names (95% when it cannot be read: the default
/// --confidence); nothing when neither can be had.
std::optional<double> row_cv(const bench::ledger_row& r) {
  // Two trials leave one degree of freedom: their spread is too uncertain to set a band from.
  if (r.trials < 3 || !r.value || !r.ci_low || !r.ci_high || *r.value <= 0) return std::nullopt;
  double level = 0.95;
  if (!r.result.empty()) {
    try {
      nlohmann::json doc = base::read_json_file(r.result, base::json_file_depth, 256u << 20);
      const nlohmann::json h = doc.contains("summary") && doc["summary"].is_object()
                                   ? doc["summary"].value("headline", nlohmann::json::object())
                                   : nlohmann::json::object();
      if (h.is_object()) {
        if (h.contains("between_trial_cv") && h["between_trial_cv"].is_number() &&
            h["between_trial_cv"].get<double>() >= 0)
          return h["between_trial_cv"].get<double>();
        if (h.contains("ci_level") && h["ci_level"].is_number()) level = h["ci_level"].get<double>();
      }
    } catch (const std::exception&) {
      // the interval at the default level below
    }
  }
  if (!(level > 0 && level < 1)) level = 0.95;
  double half = (*r.ci_high - *r.ci_low) / 2;
  if (!(half >= 0) || !std::isfinite(half)) return std::nullopt;
  double t = t_quantile((1 + level) / 2, r.trials - 1);
  double sd = half * std::sqrt(static_cast<double>(r.trials)) / t;
  return sd / *r.value;
}

}  // namespace

std::string machine_spread::describe(const std::string& ledger) const {
  return base::fixed(cv * 100, 2) + "% (A/A at " + ledger + ":" + std::to_string(line_a) + "-" +
         std::to_string(line_b) + ", " + std::to_string(trials) + " trials each)";
}

std::optional<machine_spread> measured_spread(const std::vector<bench::ledger_row>& rows, const std::string& config,
                                              const std::string& metric) {
  std::string want = canonical(config);
  // group -> the rows of this config in it, in ledger order.
  std::map<std::string, std::vector<const bench::ledger_row*>> groups;
  std::vector<std::string> order;
  for (const auto& r : rows) {
    if (r.group.empty() || !r.decision.empty() || r.status != "valid") continue;
    if (!r.metric.empty() && r.metric != metric) continue;
    if (canonical(r.config) != want) continue;
    if (!groups.count(r.group)) order.push_back(r.group);
    groups[r.group].push_back(&r);
  }
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    const auto& g = groups[*it];
    if (g.size() < 2) continue;
    const auto* a = g[g.size() - 2];
    const auto* b = g[g.size() - 1];
    auto ca = row_cv(*a), cb = row_cv(*b);
    if (!ca || !cb) continue;
    machine_spread s;
    s.cv = std::max(*ca, *cb);
    s.line_a = a->line;
    s.line_b = b->line;
    s.trials = std::min(a->trials, b->trials);
    return s;
  }
  return std::nullopt;
}

std::vector<spread_piece> campaign_pieces(const std::vector<bench::ledger_row>& rows, const std::string& metric,
                                          const std::string& workload, std::vector<std::string>* warnings) {
  std::vector<spread_piece> out;
  // Degrees of freedom found so far per load shape: once a shape has the most a design takes, its
  // older tries are not read (pool_pieces, newest first, would stop before reaching them), so a
  // long campaign costs a bounded number of file reads.
  std::map<std::string, int> df_of_shape;
  for (auto it = rows.rbegin(); it != rows.rend(); ++it) {
    const auto& r = *it;
    if (r.decision != "faster" && r.decision != "slower" && r.decision != "no change" && r.decision != "inconclusive")
      continue;
    if (!r.metric.empty() && r.metric != metric) continue;
    if (!workload.empty() && !r.workload.empty() && r.workload != workload) continue;
    if (r.result.empty()) continue;
    if (df_of_shape[r.load_shape] >= max_prior_df) continue;
    nlohmann::json doc;
    try {
      doc = base::read_json_file(r.result, base::json_file_depth, 64u << 20);
    } catch (const std::exception& e) {
      if (warnings) warnings->push_back("--campaign-spread: ledger line " + std::to_string(r.line) + ": " + e.what());
      continue;
    }
    std::vector<double> x;
    if (doc.contains("rounds") && doc["rounds"].is_array())
      for (const auto& round : doc["rounds"])
        if (round.is_object() && round.contains("ratio") && round["ratio"].is_number() && round["ratio"].get<double>() > 0)
          x.push_back(std::log(round["ratio"].get<double>()));
    if (x.size() < 2) continue;
    mean_summary m = summarize(x);
    spread_piece p;
    p.line = r.line;
    p.load_shape = r.load_shape;
    p.df = static_cast<int>(x.size()) - 1;
    p.ss = m.sd * m.sd * p.df;
    df_of_shape[r.load_shape] += p.df;
    out.push_back(p);
  }
  return out;
}

campaign_spread pool_pieces(const std::vector<spread_piece>& pieces, const std::string& load_shape,
                            std::string* source) {
  campaign_spread s;
  double ss = 0;
  std::string lines;
  for (const auto& p : pieces) {
    if (s.df >= max_prior_df) break;
    if (!load_shape.empty() && !p.load_shape.empty() && p.load_shape != load_shape) continue;
    ss += p.ss;
    s.df += p.df;
    lines += (lines.empty() ? "" : ",") + std::to_string(p.line);
  }
  if (s.df > 0) s.var = ss / s.df;
  if (source) *source = lines;
  return s;
}

}  // namespace bp::analysis
