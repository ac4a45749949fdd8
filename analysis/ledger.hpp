#pragma once
/// The experiment ledger: the results TSV as the log of a tuning campaign (docs/cli.md,
/// "The ledger"). One row per measurement, valid or not, failed ones too; rows are only ever
/// appended. Older ledgers keep their columns and still load.
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace bp::bench {

/// A ledger field as it is stored: backslash, tab, newline and carriage return become \\, \t,
/// \n and \r, so a field is always one field of one line.
std::string escape_field(const std::string& s);
/// The inverse of escape_field; a backslash before any other character is kept as it is.
std::string unescape_field(const std::string& s);

/// Appends one row for `result` (a result.json, a trials aggregate, a try document or a
/// failed_result) to the TSV at `path`, creating it with the current header. The existing header
/// decides the columns: an older ledger keeps its columns (values it has no column for are not
/// written), a newer one gets empty fields for the columns this version does not know. A last
/// line without its line end (a torn write) is ended first, so the new row is always a row of its
/// own. Appends under an exclusive lock, in one write. Returns the row (without its line end).
std::string append_tsv(const std::string& path, const nlohmann::json& result, const std::string& result_path);

/// Why a row could not be appended to `path`, found before anything runs ("" when it can: the
/// file is missing, empty, or a ledger we may write): not a regular file, not writable, or a first
/// line that is not a ledger header ("path:1: not a bench-proxy results TSV ..."). For preflights.
std::string ledger_problem(const std::string& path);

/// The load_shape column of a result (concurrency, rate, max_tokens, requests), "" without options.
std::string load_shape_of(const nlohmann::json& result);

/// One ledger row, by column name (missing columns: empty).
struct ledger_row {
  std::size_t line = 0;  ///< 1-based line in the TSV
  std::string time, label, status, description, config, result, reasons;
  std::string metric;  ///< headline metric ("output_tps" for ledgers older than headlines)
  std::optional<double> value, ci_low, ci_high;
  std::string workload, load_shape;  ///< comparability keys ("" when the ledger predates them)
  std::string repo_commit, repo_dirty;
  int trials = 1;
  /// Rows with the same non-empty group were measured interleaved (one sweep, one try);
  /// "" (single runs, ledgers older than the column) is interleaved with nothing.
  std::string group;
  /// A try's own decision (faster, slower, no change, inconclusive, not comparable); "" for a
  /// row that is not a try. Its ratio is candidate / baseline with its interval.
  std::string decision;
  std::optional<double> ratio, ratio_low, ratio_high, engine_seconds;
  std::optional<int> rounds;
  std::string procedure, baseline;
};

/// Reads a ledger of any version. A row that cannot be read (wrong number of fields: a torn or
/// glued line) is left out with a warning naming path:line; the other rows are kept. Warnings
/// go to `warnings`, or to stderr when it is null. Throws std::runtime_error naming the path when
/// the file cannot be opened or its first line is not a ledger header.
std::vector<ledger_row> load_ledger(const std::string& path, std::vector<std::string>* warnings = nullptr);

/// One row's place in the campaign.
struct campaign_entry {
  ledger_row row;
  /// keep (better than the best beyond noise: the new best), discard (worse beyond noise),
  /// within noise, inconclusive (its interval straddles the noise band), invalid, failed, not
  /// comparable (another headline metric, workload or load shape than the best), "not
  /// interleaved: drift cannot be separated" (no measurement of the best in its group), and
  /// "baseline (the best, re-measured)". A try row's verdict is its own decision.
  std::string verdict;
  double change = 0;  ///< against the row it was judged against, or the best (ratio - 1)
  std::optional<double> change_low, change_high;  ///< a try's interval of the change
  std::optional<std::size_t> against_line;  ///< the row the verdict was made against
  /// A try's baseline was the running best's config (same path); unset when there was no best or
  /// the try names no baseline. A kept try is the new best either way.
  std::optional<bool> baseline_is_best;
  std::optional<std::size_t> best_line;     ///< the running best after this row
  std::optional<double> best_value;
  /// The highest (or lowest, by the metric) value measured among valid rows comparable with the
  /// best: information only, never a verdict.
  std::optional<std::size_t> best_measured_line;
  std::optional<double> best_measured_value;
};

extern const char* const kNotInterleaved;  ///< "not interleaved: drift cannot be separated"
extern const char* const kRemeasured;      ///< "baseline (the best, re-measured)"
/// "inconclusive: one lifecycle on a side ...": a row or its reference measured one lifecycle
/// (trials < 2); its interval covers request-to-request noise only.
extern const char* const kOneLifecycle;

/// Each row's verdict against the running best, and the running best. The first valid row is
/// kept as the baseline. A row gets keep / discard / within noise / inconclusive only against a
/// measurement of the best interleaved with it: the best itself when it is in the row's group,
/// or a row of the row's group that re-measured the best's config (then that row becomes the
/// best's current measurement). A try row's verdict is its own decision (faster = keep, slower =
/// discard, no change = within noise); a kept try is the new best.
std::vector<campaign_entry> campaign(const std::vector<ledger_row>& rows, double noise);

std::string render_campaign(const std::vector<campaign_entry>& c, double noise);
nlohmann::json to_json(const std::vector<campaign_entry>& c);

}  // namespace bp::bench
