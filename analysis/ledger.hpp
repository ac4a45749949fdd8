#pragma once
/// The experiment ledger: the results TSV as the log of a tuning campaign (docs/cli.md,
/// "The ledger"). One row per measurement, valid or not, failed ones too; rows are only ever
/// appended. Older ledgers keep their columns and still load.
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace bp::bench {

/// Appends one row for `result` (a result.json, a trials aggregate or a failed_result) to the
/// TSV at `path`, creating it with the current header. A ledger started by an older bench-proxy
/// keeps its header and columns. Returns the row.
std::string append_tsv(const std::string& path, const nlohmann::json& result, const std::string& result_path);

/// One ledger row, by column name (missing columns: empty).
struct ledger_row {
  std::size_t line = 0;  ///< 1-based line in the TSV
  std::string time, label, status, description, config, result, reasons;
  std::string metric;  ///< headline metric ("output_tps" for ledgers older than headlines)
  std::optional<double> value, ci_low, ci_high;
  std::string workload, load_shape;  ///< comparability keys ("" when the ledger predates them)
  std::string repo_commit, repo_dirty;
  int trials = 1;
};

/// Reads a ledger of any version. Throws std::runtime_error naming path:line for a row with
/// the wrong number of fields.
std::vector<ledger_row> load_ledger(const std::string& path);

/// One row's place in the campaign.
struct campaign_entry {
  ledger_row row;
  /// keep (better than the best so far beyond noise: the new best), discard (worse beyond
  /// noise), within noise, inconclusive (its interval straddles the noise band), invalid, failed,
  /// not comparable (another headline metric, workload or load shape than the best).
  std::string verdict;
  double change = 0;  ///< against the best before it (ratio - 1)
  std::optional<std::size_t> best_line;  ///< the running best after this row
  std::optional<double> best_value;
};

/// Each row's verdict against the best valid row before it, and the running best. The first
/// valid row is kept as the baseline. `higher_is_better` follows the campaign's metric.
std::vector<campaign_entry> campaign(const std::vector<ledger_row>& rows, double noise);

std::string render_campaign(const std::vector<campaign_entry>& c, double noise);
nlohmann::json to_json(const std::vector<campaign_entry>& c);

}  // namespace bp::bench
