#include "analysis/conditions.hpp"

#include <algorithm>
#include <cmath>

#include "base/text.hpp"

namespace bp::analysis {

using json = nlohmann::json;

namespace {
std::string fmt(double v, int prec = 1) { return base::fixed(v, prec); }
}  // namespace

std::vector<std::string> condition_warnings(const json& c) {
  std::vector<std::string> out;
  if (!c.is_object() || !c.contains("sources")) return out;
  const json& s = c["sources"];
  for (auto it = s.begin(); it != s.end(); ++it) {
    const std::string& src = it.key();
    const json& j = it.value();
    if (j.contains("error")) {
      out.push_back(src + " telemetry failed: " + j["error"].get<std::string>());
      continue;
    }
    if (src.rfind("gpu", 0) == 0) {
      std::string name = "GPU " + src.substr(3);
      if (j.contains("clock_event_reasons"))
        for (auto r = j["clock_event_reasons"].begin(); r != j["clock_event_reasons"].end(); ++r) {
          double share = r.value().value("share", 0.0);
          double limit = r.key() == "sw_power_cap" ? 0.05 : 0.0;
          if (share > limit)
            out.push_back(name + " " + (r.key() == "sw_power_cap" ? std::string("power-capped") : r.key()) + " in " +
                          fmt(share * 100, 0) + "% of samples");
        }
      if (j.contains("sm_clock_mhz")) {
        double lo = j["sm_clock_mhz"]["min"], hi = j["sm_clock_mhz"]["max"];
        if (hi > 0 && (hi - lo) / hi > 0.05)
          out.push_back(name + " SM clock varied " + fmt(lo, 0) + "-" + fmt(hi, 0) + " MHz");
      }
    }
    if (src == "cpu" && j.contains("steal_pct") && j["steal_pct"]["mean"].get<double>() > 2)
      out.push_back("CPU steal " + fmt(j["steal_pct"]["mean"].get<double>()) + "% (a virtual machine's neighbours)");
    if (src == "cpu" && j.contains("iowait_pct") && j["iowait_pct"]["mean"].get<double>() > 10)
      out.push_back("CPU iowait " + fmt(j["iowait_pct"]["mean"].get<double>()) + "%");
    if (src == "others" && j.contains("cpu_cores") && j["cpu_cores"]["mean"].get<double>() > 0.5)
      out.push_back("other processes used " + fmt(j["cpu_cores"]["mean"].get<double>()) +
                    " cores on average (noisy neighbours)");
  }
  return out;
}

std::vector<std::string> conditions_differ(const json& a, const json& b) {
  std::vector<std::string> out;
  if (!a.is_object() || !b.is_object() || !a.contains("sources") || !b.contains("sources")) return out;
  auto mean = [](const json& c, const char* src, const char* series) -> double {
    const json& s = c["sources"];
    if (!s.contains(src) || !s[src].contains(series)) return -1;
    return s[src][series].value("mean", -1.0);
  };
  double oa = mean(a, "others", "cpu_cores"), ob = mean(b, "others", "cpu_cores");
  if (oa >= 0 && ob >= 0 && std::fabs(oa - ob) > 0.5)
    out.push_back("other processes used " + fmt(oa) + " cores in the baseline and " + fmt(ob) + " in the candidate");
  for (auto it = a["sources"].begin(); it != a["sources"].end(); ++it) {
    if (it.key().rfind("gpu", 0) != 0 || !b["sources"].contains(it.key())) continue;
    double ca = mean(a, it.key().c_str(), "sm_clock_mhz"), cb = mean(b, it.key().c_str(), "sm_clock_mhz");
    if (ca > 0 && cb > 0 && std::fabs(ca - cb) / std::max(ca, cb) > 0.05)
      out.push_back("GPU " + it.key().substr(3) + " SM clock averaged " + fmt(ca, 0) + " MHz in the baseline and " +
                    fmt(cb, 0) + " MHz in the candidate");
    auto share = [&](const json& c) {
      const json& g = c["sources"][it.key()];
      return g.contains("clock_event_reasons") && g["clock_event_reasons"].contains("sw_power_cap")
                 ? g["clock_event_reasons"]["sw_power_cap"].value("share", 0.0)
                 : 0.0;
    };
    if (std::fabs(share(a) - share(b)) > 0.05)
      out.push_back("GPU " + it.key().substr(3) + " was power-capped in " + fmt(share(a) * 100, 0) +
                    "% of the baseline's samples and " + fmt(share(b) * 100, 0) + "% of the candidate's");
  }
  return out;
}

}  // namespace bp::analysis
