#include "base/numbers.hpp"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>

namespace bp::base {

std::optional<double> parse_number(std::string_view text, double min, double max) {
  std::string s(text);
  if (s.empty() || std::isspace(static_cast<unsigned char>(s.front()))) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  double d = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || errno == ERANGE || !std::isfinite(d)) return std::nullopt;
  if (!(d >= min && d <= max)) return std::nullopt;
  return d;
}

std::optional<long long> parse_integer(std::string_view text, long long min, long long max) {
  std::string s(text);
  if (s.empty() || std::isspace(static_cast<unsigned char>(s.front()))) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (end != s.c_str() + s.size() || errno == ERANGE || v < min || v > max) return std::nullopt;
  return v;
}

std::string range_text(double min, double max) {
  std::ostringstream o;
  o.precision(15);
  o << "from " << min << " to " << max;
  return o.str();
}

}  // namespace bp::base
