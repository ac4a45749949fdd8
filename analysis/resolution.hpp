#pragma once
/// What this machine can resolve (docs/statistics.md, "The machine's resolution"): the
/// between-lifecycle spread of a config's headline, measured by an A/A sweep in the ledger (the
/// same config twice in one sweep, K >= 3 trials each: two give one degree of freedom). `--noise auto` uses it as the noise
/// band, and a verdict finer than it is refused as below this machine's resolution.
#include <optional>
#include <string>
#include <vector>

#include "analysis/ledger.hpp"
#include "analysis/sequential.hpp"

namespace bp::analysis {

struct machine_spread {
  double cv = 0;            ///< between-lifecycle CV of the headline (the larger of the two rows')
  std::size_t line_a = 0, line_b = 0;  ///< the A/A rows in the ledger
  int trials = 0;
  std::string describe(const std::string& ledger) const;  ///< "1.8% (A/A at results.tsv:12-13, 3 trials each)"
};

/// The spread of `config`'s `metric`, from the latest A/A group of the ledger that holds it;
/// each row's CV is recovered from its t interval (half-width = t(K-1) · sd / sqrt(K)). Configs
/// are compared by their canonical path.
std::optional<machine_spread> measured_spread(const std::vector<bench::ledger_row>& rows, const std::string& config,
                                              const std::string& metric);

/// One earlier decision's spread (`try --campaign-spread`, docs/statistics.md, "The campaign's
/// spread"): a try row of the ledger and the round log ratios its try.json holds, as the sum of
/// squares around their own mean (a shift between configs does not enter) and its k-1 df.
struct spread_piece {
  std::size_t line = 0;
  std::string load_shape;
  double ss = 0;
  int df = 0;
};

/// The ledger's decided tries (faster, slower, no change, inconclusive) judged by `metric` on
/// the workload `workload` (its sha256; "" matches any), newest first. A try.json that cannot be
/// read is left out with a warning naming it. Once a load shape has max_prior_df degrees of
/// freedom, its older tries are not read (the pool would not reach them).
std::vector<spread_piece> campaign_pieces(const std::vector<bench::ledger_row>& rows, const std::string& metric,
                                          const std::string& workload, std::vector<std::string>* warnings);

/// The pooled variance of the pieces with this load shape, newest first until max_prior_df
/// degrees of freedom; `source` names the ledger lines used. Not usable when none match.
campaign_spread pool_pieces(const std::vector<spread_piece>& pieces, const std::string& load_shape,
                            std::string* source);

}  // namespace bp::analysis
