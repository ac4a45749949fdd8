#pragma once
/// `meta diff`: what differs between two /meta snapshots, grouped by section. Pure logic.
#include <string>

#include <nlohmann/json.hpp>

namespace bp::snap {

/// {"equal": bool, "sections": {section: [{"path", "change": added|removed|changed, "a", "b",
/// "seen_in": [paths]}]}}. Values that describe one process instance rather than its
/// configuration (PIDs, ports, timestamps, durations, the engine kind's volatile fields) are
/// ignored. An argv is compared as flag units ("--flag value" keyed by the flag, positionals by
/// their place), so an inserted flag shifts nothing. A change seen in several places (config,
/// command, process_tree) is reported once, in the first, with every place in "seen_in". Paths
/// sort naturally (argv[#2] before argv[#10]). Throws std::runtime_error when either side is
/// nested deeper than base::json_file_depth (the walk recurses once per level).
nlohmann::json diff_snapshots(const nlohmann::json& a, const nlohmann::json& b);

/// Human-readable rendering of diff_snapshots' result.
std::string render_diff(const nlohmann::json& d);

/// A short human summary of one snapshot (`meta summary`).
std::string render_summary(const nlohmann::json& snapshot, const std::string& id);

}  // namespace bp::snap
