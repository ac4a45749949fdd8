#include "analysis/disturbance.hpp"

#include "base/text.hpp"
#include "analysis/conditions.hpp"

namespace bp::analysis {

std::vector<std::string> disturbances(const nlohmann::json& conditions, const disturbance_rule& rule) {
  std::vector<std::string> out;
  if (!conditions.is_object() || !conditions.contains("sources") || !conditions["sources"].is_object()) return out;
  const auto& others = conditions["sources"].value("others", nlohmann::json::object());
  if (others.is_object() && others.contains("cpu_cores") && others["cpu_cores"].is_object()) {
    double peak = others["cpu_cores"].value("max", 0.0);
    if (peak >= rule.others_burst_cores)
      out.push_back("other processes used " + base::fixed(peak, 2) + " cores in a sample (at least " +
                    base::fixed(rule.others_burst_cores, 2) + " counts as a burst)");
  }
  for (auto& w : analysis::condition_warnings(conditions)) out.push_back(std::move(w));
  return out;
}

}  // namespace bp::analysis
