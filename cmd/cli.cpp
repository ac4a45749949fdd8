#include "cmd/cli.hpp"

#include <optional>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "base/numbers.hpp"

namespace bp::cli {

CLI::Validator finite_in(double min, double max) {
  return CLI::Validator(
      [min, max](std::string& v) -> std::string {
        if (base::parse_number(v, min, max)) return {};
        return "expected a finite number " + base::range_text(min, max) + ", got '" + v + "'";
      },
      "");
}

CLI::Validator whole_in(long long min, long long max) {
  return CLI::Validator(
      [min, max](std::string& v) -> std::string {
        if (base::parse_integer(v, min, max)) return {};
        return "expected a whole number " +
               base::range_text(static_cast<double>(min), static_cast<double>(max)) + ", got '" + v + "'";
      },
      "");
}

namespace {
std::optional<double> parse_relative(const std::string& text) {
  std::string t = text;
  bool percent = !t.empty() && t.back() == '%';
  if (percent) t.pop_back();
  auto x = base::parse_number(t, 0, percent ? 50 : 0.5);
  if (!x) return std::nullopt;
  return percent ? *x / 100.0 : *x;
}
}  // namespace

CLI::Validator relative_threshold() {
  return CLI::Validator(
      [](std::string& v) -> std::string {
        if (parse_relative(v)) return {};
        return "expected a relative threshold such as 1% or 0.01 (at most 50%), got '" + v + "'";
      },
      "");
}

double relative_value(const std::string& text) { return parse_relative(text).value_or(0.01); }

CLI::Option* add_log_level(CLI::App& app, std::string& level) {
  return app
      .add_option("--log-level", level, "trace, debug, info (default), warn, error, off")
      ->type_name("LEVEL")
      ->check(CLI::Validator(
          [](std::string& v) -> std::string {
            for (const char* l : {"trace", "debug", "info", "warn", "error", "off"})
              if (v == l) return {};
            return "expected trace, debug, info, warn, error or off, got '" + v + "'";
          },
          ""));
}

void setup_logging(const std::string& level) {
  auto logger = spdlog::stderr_color_mt("bench-proxy");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ %v");
  spdlog::set_level(spdlog::level::from_str(level));
}

sigset_t stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

}  // namespace bp::cli
