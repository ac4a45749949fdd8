// The sequential verdict of `try` by simulation with known truth (docs/benchmarks.md,
// "Sequential verdicts by simulation"): for each scenario, how often each verdict comes out over
// N seeded decisions, the average rounds used, and the fixed number of rounds that reaches the
// same rate of the right verdict with the same per-claim error (the fixed design), with the ratio
// of the two; then the same with the campaign's spread pooled in (PRIOR_DF degrees of freedom from
// earlier decisions), with rows where that pool is too optimistic for the pair at hand.
// `bp-sequential-sim [DECISIONS (default 4000)] [MAX_ROUNDS (10)] [SEED (1)] [RHO (1)] [FIRST_LOOK (3)] [PRIOR_DF (20)]`.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "analysis/sequential.hpp"

using namespace bp::analysis;

int main(int argc, char** argv) {
  int n = argc > 1 ? std::atoi(argv[1]) : 4000;
  int max_rounds = argc > 2 ? std::atoi(argv[2]) : 10;
  std::uint64_t seed = argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 1;
  if (n < 100 || max_rounds < 2) {
    std::fprintf(stderr, "usage: bp-sequential-sim [DECISIONS >= 100] [MAX_ROUNDS >= 2] [SEED]\n");
    return 2;
  }
  double rho = argc > 4 ? std::atof(argv[4]) : 1.0;
  int first = argc > 5 ? std::atoi(argv[5]) : 3;
  int prior_df = argc > 6 ? std::atoi(argv[6]) : 20;
  struct row {
    scenario s;
    std::string right;  // the verdict that is right, "" when any non-directional answer is fine
    std::string goal;
  };
  auto sc = [](const char* name, double ratio, double cv, double drift = 0.002, bool higher = true) {
    scenario s;
    s.name = name;
    s.true_ratio = ratio;
    s.lifecycle_cv = cv;
    s.drift = drift;
    s.higher_is_better = higher;
    return s;
  };
  std::vector<row> rows = {
      {sc("A/A, lifecycle CV 0.5%", 1.0, 0.005), "no change", "faster+slower <= 5%; no change >= 80%"},
      {sc("A/A, lifecycle CV 1%", 1.0, 0.01), "no change", "faster+slower <= 5%"},
      {sc("A/A, lifecycle CV 2%", 1.0, 0.02), "", "faster+slower <= 5%"},
      {sc("A/A, lifecycle CV 3%", 1.0, 0.03), "", "faster+slower <= 5%"},
      {sc("A/A, CV 1%, drift 1%/lifecycle", 1.0, 0.01, 0.01), "", "faster+slower <= 5%"},
      {sc("+0.5% (half the noise), CV 1%", 1.005, 0.01), "", "faster+slower <= 5%"},
      {sc("-0.5% (half the noise), CV 3%", 0.995, 0.03), "", "faster+slower <= 5%"},
      {sc("+1% (the band's edge), CV 1%", 1.01, 0.01), "", "faster <= 5%, no change <= 5%"},
      {sc("+3%, noise 1%, CV 1%", 1.03, 0.01), "faster", "faster >= 90% within 10 rounds"},
      {sc("+3%, CV 1%, drift 1%/lifecycle", 1.03, 0.01, 0.01), "faster", ""},
      {sc("-10%, CV 2%", 0.90, 0.02), "slower", ""},
      {sc("latency +10%, CV 2%", 1.10, 0.02, 0.002, false), "slower", ""},
  };
  // One table: every scenario with the design `d`, the campaign's spread of `nu` df in each.
  auto table = [&](const sequential_design& d, int nu, const std::vector<row>& extra) {
    std::printf("%s\n", describe(d).c_str());
    std::printf("nominal one-sided level per look:");
    for (int k = d.first_look; k <= d.max_rounds; ++k) std::printf(" %d:%.4f", k, d.nominal[static_cast<std::size_t>(k)]);
    std::printf("\n\n");
    std::printf("%-44s %8s %8s %9s %12s %7s %7s %6s  %s\n", "scenario", "faster", "slower", "no change",
                "inconclusive", "rounds", "fixed", "ratio", "goal");
    double seq_sum = 0, fixed_sum = 0;
    std::vector<row> all = rows;
    all.insert(all.end(), extra.begin(), extra.end());
    for (std::size_t i = 0; i < all.size(); ++i) {
      row r = all[i];
      if (r.s.prior_df == 0) r.s.prior_df = nu;
      auto s = simulate(d, r.s, n, seed + i * 1000);
      std::string fixed = "-", ratio = "-";
      if (!r.right.empty()) {
        int hits = r.right == "faster" ? s.faster : r.right == "slower" ? s.slower : s.no_change;
        int f = fixed_rounds_for(r.right, s.share(hits), d.alpha, r.s, n, seed + i * 1000 + 7, 60);
        if (f > 0) {
          fixed = std::to_string(f);
          char b[32];
          std::snprintf(b, sizeof b, "%.2f", s.mean_rounds / f);
          ratio = b;
          seq_sum += s.mean_rounds;
          fixed_sum += f;
        }
      }
      std::printf("%-44s %7.2f%% %7.2f%% %8.2f%% %11.2f%% %7.2f %7s %6s  %s\n", r.s.name.c_str(),
                  100 * s.share(s.faster), 100 * s.share(s.slower), 100 * s.share(s.no_change),
                  100 * s.share(s.inconclusive), s.mean_rounds, fixed.c_str(), ratio.c_str(), r.goal.c_str());
    }
    if (fixed_sum > 0)
      std::printf("\nover the scenarios with a right verdict: %.2f rounds on average against %.2f for fixed designs "
                  "with the same power and the same information (%.0f%%)\n\n",
                  seq_sum, fixed_sum, 100 * seq_sum / fixed_sum);
  };
  std::printf("== each decision on its own ==\n");
  table(make_design(max_rounds, 0.95, rho, first), 0, {});
  if (prior_df > 0) {
    std::printf("== with the campaign's spread: %d df pooled from earlier decisions ==\n", prior_df);
    auto off = [&](const char* name, double ratio, double cv, double sd_ratio) {
      row r{sc(name, ratio, cv), "", "faster+slower <= 5% (the assumption fails: the guard's case)"};
      r.s.prior_df = prior_df;
      r.s.prior_sd_ratio = sd_ratio;
      return r;
    };
    table(make_design(max_rounds, 0.95, rho, first, prior_df), prior_df,
          {off("A/A CV 1%, spreads 1.4x the pool", 1.0, 0.01, 1 / 1.4),
           off("A/A CV 1%, spreads 2x the pool", 1.0, 0.01, 0.5),
           off("+0.5% CV 1%, spreads 2x the pool", 1.005, 0.01, 0.5),
           off("+1% (edge) CV 1%, spreads 1.4x the pool", 1.01, 0.01, 1 / 1.4),
           off("+1% (edge) CV 1%, spreads 2x the pool", 1.01, 0.01, 0.5),
           off("+1% (edge) CV 1%, spreads 3x the pool", 1.01, 0.01, 1 / 3.0)});
  }
  std::printf("(simulation's own sampling error at %d decisions: +-%.2f points at 5%%)\n", n,
              100 * 1.96 * std::sqrt(0.05 * 0.95 / n));
  return 0;
}
