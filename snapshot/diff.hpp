#pragma once
/// `meta diff`: what differs between two /meta snapshots, grouped by section. Pure logic.
#include <string>

#include <nlohmann/json.hpp>

namespace bp::snap {

/// {"equal": bool, "sections": {section: [{"path", "change": added|removed|changed, "a", "b"}]}}
/// Values that describe one process instance rather than its configuration (PIDs, ports,
/// timestamps, durations) are ignored.
nlohmann::json diff_snapshots(const nlohmann::json& a, const nlohmann::json& b);

/// Human-readable rendering of diff_snapshots' result.
std::string render_diff(const nlohmann::json& d);

/// A short human summary of one snapshot (`meta summary`).
std::string render_summary(const nlohmann::json& snapshot, const std::string& id);

}  // namespace bp::snap
