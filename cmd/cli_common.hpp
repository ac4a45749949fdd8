#pragma once
// Small helpers shared by bench-proxy's subcommands (argument parsing, logging setup).
#include <cstdlib>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace bp::cli {

/// Thrown for bad command lines; main prints it with the subcommand's usage and exits 2.
struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// A tiny getopt-long: --name VALUE, --name=VALUE, flags, and positionals.
class args {
 public:
  args(std::vector<std::string> argv, std::vector<std::string> value_opts, std::vector<std::string> flag_opts);
  std::optional<std::string> get(const std::string& name) const;
  std::vector<std::string> get_all(const std::string& name) const;
  bool flag(const std::string& name) const;
  const std::vector<std::string>& positionals() const { return positionals_; }
  double number(const std::string& name, double def, double min, double max) const;
  long integer(const std::string& name, long def, long min, long max) const;

 private:
  std::multimap<std::string, std::string> values_;
  std::vector<std::string> flags_;
  std::vector<std::string> positionals_;
};

void setup_logging(const std::string& level);

}  // namespace bp::cli
