#pragma once
/// The HTML report (docs/report.md): one self-contained file per run, sweep, set of results or
/// ledger, with Chart.js (Debian's libjs-chart.js, embedded at build time) and no request to
/// anything outside the file. The numbers come from the same result records and statistics as
/// the text outputs.
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace bp::measure {

/// Results the caller holds in memory, by the run folder given in PATHs, exactly as its
/// result.json was written from them; they are moved into the report (`run` passes the one it
/// has just written: a result with a large venv holds megabytes of snapshot, neither read back
/// from the file nor copied).
using results_in_memory = std::map<std::string, nlohmann::json*>;

/// What the page shows, built from PATHs (run folders, result.json files, trials.json folders,
/// sweep folders, results TSVs). Throws std::runtime_error naming a path that cannot be read.
nlohmann::json report_data(const std::vector<std::string>& paths, const results_in_memory& known = {});

/// The whole page for `data`.
std::string render_report(const nlohmann::json& data);

/// report_data + render_report, written to `out` (never over an existing file). Returns the
/// absolute path.
std::string write_report(const std::vector<std::string>& paths, const std::string& out,
                         const results_in_memory& known = {});

}  // namespace bp::measure
