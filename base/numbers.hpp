#pragma once
/// Numbers from users (command lines, YAML): parsed whole, finite, and inside a documented range.
/// NaN and infinity never pass: they would silently disable a timeout or overflow a conversion.
#include <optional>
#include <string>
#include <string_view>

namespace bp::base {

/// The longest duration any option or config key accepts: one day (docs/config.md, docs/cli.md).
inline constexpr double max_duration_s = 86400;

/// `text` as a finite number in [min, max]; std::nullopt for anything else (trailing bytes, NaN,
/// inf, out of range, empty).
std::optional<double> parse_number(std::string_view text, double min, double max);

/// The same, for whole numbers.
std::optional<long long> parse_integer(std::string_view text, long long min, long long max);

/// "from 0.1 to 86400" with the bounds printed the way a user would type them.
std::string range_text(double min, double max);

}  // namespace bp::base
