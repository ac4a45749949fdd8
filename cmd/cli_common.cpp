#include "cmd/cli_common.hpp"
#include "cmd/commands.hpp"

#include <algorithm>

#include "base/numbers.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace bp::cli {

args::args(std::vector<std::string> argv, std::vector<std::string> value_opts, std::vector<std::string> flag_opts) {
  auto has = [](const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
  };
  bool only_positionals = false;
  for (std::size_t i = 0; i < argv.size(); ++i) {
    std::string a = argv[i];
    if (only_positionals || a.size() < 2 || a[0] != '-' || a == "-") {
      positionals_.push_back(a);
      continue;
    }
    if (a == "--") {
      only_positionals = true;
      continue;
    }
    std::string name = a, value;
    bool inline_value = false;
    if (auto eq = a.find('='); eq != std::string::npos && a.rfind("--", 0) == 0) {
      name = a.substr(0, eq);
      value = a.substr(eq + 1);
      inline_value = true;
    }
    if (has(value_opts, name)) {
      if (!inline_value) {
        if (i + 1 >= argv.size()) throw usage_error(name + " needs a value");
        value = argv[++i];
      }
      values_.emplace(name, value);
    } else if (has(flag_opts, name)) {
      if (inline_value) throw usage_error(name + " takes no value");
      flags_.push_back(name);
    } else {
      throw usage_error("unknown option '" + name + "'");
    }
  }
}

std::optional<std::string> args::get(const std::string& name) const {
  auto range = values_.equal_range(name);
  std::optional<std::string> last;
  for (auto it = range.first; it != range.second; ++it) last = it->second;
  return last;
}

std::vector<std::string> args::get_all(const std::string& name) const {
  std::vector<std::string> out;
  auto range = values_.equal_range(name);
  for (auto it = range.first; it != range.second; ++it) out.push_back(it->second);
  return out;
}

bool args::flag(const std::string& name) const {
  return std::find(flags_.begin(), flags_.end(), name) != flags_.end();
}

double args::number(const std::string& name, double def, double min, double max) const {
  auto v = get(name);
  if (!v) return def;
  if (auto d = base::parse_number(*v, min, max)) return *d;
  throw usage_error(name + ": expected a finite number " + base::range_text(min, max) + ", got '" + *v + "'");
}

long args::integer(const std::string& name, long def, long min, long max) const {
  auto v = get(name);
  if (!v) return def;
  if (auto d = base::parse_integer(*v, min, max)) return static_cast<long>(*d);
  throw usage_error(name + ": expected a whole number " + base::range_text(static_cast<double>(min), static_cast<double>(max)) +
                    ", got '" + *v + "'");
}

sigset_t stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

void setup_logging(const std::string& level) {
  auto logger = spdlog::stderr_color_mt("bench-proxy");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ %v");
  auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off")
    throw usage_error("--log-level: expected trace, debug, info, warn, error or off, got '" + level + "'");
  spdlog::set_level(lvl);
}

}  // namespace bp::cli
