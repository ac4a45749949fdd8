#pragma once
/// Small text helpers shared by every library (one copy each).
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace bp::base {

/// Without leading and trailing spaces, tabs, CR and LF.
std::string_view trim(std::string_view s);

/// `s` in at most `width` bytes (width >= 5): its head and its tail around "...", so names
/// that differ at their end (generated variants) still read apart in a table column.
std::string shorten_middle(const std::string& s, std::size_t width);

/// Calls `fn(line, line_no, complete)` for each line of `text` (JSONL records, TSV rows): 1-based
/// numbers, the line without its '\n'; `complete` is false for a last line without its newline
/// (one still being written). Lines that are blank (only spaces, tabs, CR) are skipped but counted.
/// `fn` returns false to stop.
void for_each_line(std::string_view text,
                   const std::function<bool(std::string_view line, std::size_t line_no, bool complete)>& fn);

/// Offset of the first byte that is not part of well-formed UTF-8 (RFC 3629: no overlongs, no
/// surrogates, nothing above U+10FFFF); nullopt when all of `s` is valid.
std::optional<std::size_t> first_invalid_utf8(std::string_view s);

/// 1-based line and column (in bytes) of `offset` in `s`.
struct text_position {
  std::size_t line = 1, column = 1;
};
text_position position_of(std::string_view s, std::size_t offset);

/// UTC time as ISO 8601 with milliseconds: 2026-12-01T07:39:04.123Z.
std::string utc_now_iso();
/// UTC time for folder names: 20261201T073904Z.
std::string utc_now_compact();
/// `v` with exactly `decimals` digits after the point ("%.*f"): the one number format of tables
/// and TSVs.
std::string fixed(double v, int decimals);

/// Seconds since the Unix epoch, with sub-second precision (telemetry timestamps).
double unix_now();

/// The engine's own error line in a failure's reason ("... Last output:\n  | ...\n  | x: fatal:
/// error: invalid argument: --flash-atn"): the last line of the output that says error (or fatal,
/// exception, panic), from its "error:" on where it has one; else the output's last line; "" when
/// the reason quotes no output. A ledger's reason may hold its newlines as "\n".
std::string engine_error_line(std::string reason);
/// A reason on one line: its first line, and the engine's error line when the first line stops at
/// "Last output:" (a table cell or a step line must say what the engine said).
std::string one_line_reason(const std::string& reason);

}  // namespace bp::base
