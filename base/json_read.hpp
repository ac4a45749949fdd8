#pragma once
/// Reading untrusted JSON without crashing (docs/meta-schema.md, "Limits on JSON input").
///
/// nlohmann's parser is iterative, but copying, comparing, dumping and every walk over a parsed
/// value recurse once per nesting level: 30,000 nested arrays overflow the stack, and dumping a
/// deep value with an indent is quadratic in its depth. So every JSON text bench-proxy reads goes
/// through parse_json, which first scans the bytes for nesting depth (outside strings, O(n), no
/// recursion) and refuses anything deeper than a documented limit, naming where it came from with
/// line and column. Values that come from elsewhere (an engine's answer kept in a snapshot, a
/// workload row's metadata) are bounded in size and depth by bound_json, which records what it cut.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/files.hpp"

namespace bp::base {

/// Files bench-proxy writes and reads back (meta.json, result.json, trials.json, sweep.json),
/// snapshots fetched from /meta, results an agent sends, a proxy's request records, lshw -json.
inline constexpr std::size_t json_file_depth = 128;
/// A snapshot as the meta actor writes it (deeper parts are cut): nested in a result.json it
/// stays readable within json_file_depth.
inline constexpr std::size_t snapshot_depth = json_file_depth - 8;
/// One workload line (JSONL) or JSON cell (CSV): messages, tools, response_format, metadata.
inline constexpr std::size_t workload_json_depth = 64;
/// An engine's answer (engine_reported, /v1/models, /slots, a chat completion, an SSE event).
inline constexpr std::size_t engine_json_depth = 64;
/// What one engine answer may add to a snapshot: nested at most this deep ...
inline constexpr std::size_t engine_reported_depth = 32;
/// ... and at most this many bytes once serialised (compact); beyond either it is replaced.
inline constexpr std::size_t engine_reported_bytes = 1u << 20;
/// What one workload row's metadata (its columns that are not request fields) may add to a result.
inline constexpr std::size_t workload_metadata_depth = 16;
inline constexpr std::size_t workload_metadata_bytes = 64u << 10;

/// A JSON text that is malformed or nested too deep. what() is "ORIGIN:LINE:COLUMN: why".
class json_input_error : public std::runtime_error {
 public:
  json_input_error(const std::string& origin, std::size_t line, std::size_t column, const std::string& why);
  std::size_t line() const { return line_; }
  std::size_t column() const { return column_; }
  /// what() without "ORIGIN:LINE:COLUMN: ".
  const std::string& reason() const { return why_; }

 private:
  std::size_t line_, column_;
  std::string why_;
};

/// The deepest nesting of arrays and objects in `text` (brackets inside strings do not count),
/// scanning no further than the first bracket that goes deeper than `stop_above`; its byte offset
/// goes to `*where`. Malformed text is not diagnosed here (the parser does that).
std::size_t json_nesting_depth(std::string_view text, std::size_t stop_above = SIZE_MAX, std::size_t* where = nullptr);

/// Parses `text` (all of it, one JSON value). Throws json_input_error naming `origin` (a file, a
/// URL, "GET /props") with line and column: nested deeper than `max_depth`, malformed, ill-formed
/// UTF-8. `first_line` is the line `text` starts on in `origin` (one line of a JSONL file).
nlohmann::json parse_json(std::string_view text, const std::string& origin, std::size_t max_depth = json_file_depth,
                          std::size_t first_line = 1);

/// parse_json without exceptions: nullopt and the message in `err`.
std::optional<nlohmann::json> try_parse_json(std::string_view text, const std::string& origin, std::string& err,
                                             std::size_t max_depth = json_file_depth);

/// read_file_limited + parse_json; every error names `path`.
nlohmann::json read_json_file(const std::string& path, std::size_t max_depth = json_file_depth,
                              std::uint64_t max_bytes = default_read_limit);

/// Depth of a parsed value (a scalar is 0, [] and {} are 1), without recursion; stops counting
/// once it exceeds `stop_above`.
std::size_t json_value_depth(const nlohmann::json& j, std::size_t stop_above = SIZE_MAX);

/// `j` itself when it is at most `max_depth` deep and its compact serialisation at most
/// `max_bytes`; otherwise {"truncated": "<why>", "bytes": N} (N only when known) and `*why` set.
nlohmann::json bound_json(nlohmann::json j, std::size_t max_depth, std::size_t max_bytes, std::string* why = nullptr);

/// Replaces every array or object deeper than `max_depth` levels inside `j` by the string
/// "<truncated: nested deeper than N levels>", without recursion, so that a recursive walk over
/// `j` afterwards (redaction, dump, comparison) is bounded. Returns how many were replaced.
std::size_t cut_deeper_than(nlohmann::json& j, std::size_t max_depth);

/// `j[key]` by reference when `j` is an object that has `key`, else a null value (iterating it
/// gives nothing). What `j.value(key, json::object())` gives without its deep copy: a result's
/// snapshot is the whole of /meta, megabytes with a large venv, and its requests grow with the run.
const nlohmann::json& member(const nlohmann::json& j, const char* key);

/// `s` with every byte that is not part of well-formed UTF-8 written as \xNN: safe to put in a
/// JSON string or a message (nlohmann refuses to dump ill-formed UTF-8).
std::string printable_utf8(std::string_view s);

/// The first ill-formed UTF-8 sequence in `s`: its byte offset, or npos when `s` is well formed.
std::size_t first_bad_utf8(std::string_view s);

/// 1-based line and column (in bytes) of byte `offset` of `text`, lines counted from `first_line`.
std::pair<std::size_t, std::size_t> line_column(std::string_view text, std::size_t offset, std::size_t first_line = 1);

}  // namespace bp::base
