#pragma once
/// Helpers every collector uses (internal to snapshot/collectors/: never included from elsewhere).
#include <chrono>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "snapshot/collect.hpp"

namespace bp::snap::detail {

using json = nlohmann::json;

/// A file's contents, trimmed, or null when unreadable.
json file_value(const std::string& path);
/// "always [madvise] never" -> "madvise"
json bracketed(const std::string& path);
/// Names in a folder (no dot files), sorted.
std::vector<std::string> list_dir(const std::string& dir);
/// Milliseconds left before the collector's deadline (at least 1).
int remaining_ms(const collect_input& in);
/// Throws once the deadline passed, naming what was being done.
void check_deadline(const collect_input& in, const char* what);
/// The engine's root plus every descendant, including processes re-parented to the shim.
std::vector<int> engine_tree(const collect_input& in);
/// Trimmed copy (base::trim as a string).
std::string trim(const std::string& s);

}  // namespace bp::snap::detail
