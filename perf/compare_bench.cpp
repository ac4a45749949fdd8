// bp-compare-bench: how long `compare` takes on two results of N requests each with B bootstrap
// resamples, on one core (the target: 10,000 x 10,000 in under one second). Prints the median
// of R repetitions of the whole comparison (every default metric), and of the headline alone.
//   bp-compare-bench [N=10000] [B=10000] [R=5]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>

#include "analysis/compare.hpp"

using json = nlohmann::json;

namespace {

json synthetic(int n, double speed, std::uint64_t seed) {
  std::mt19937_64 g(seed);
  std::lognormal_distribution<double> pace(0, 0.05);
  json reqs = json::array();
  double t = 0;
  for (int i = 0; i < n; ++i) {
    double tps = speed * pace(g);
    double e2e = 64 / tps * 1000;
    json itl = json::array();
    for (int k = 0; k < 63; ++k) itl.push_back(e2e / 64 * pace(g));
    reqs.push_back({{"index", i}, {"query_line", i + 2}, {"ok", true}, {"start_ms", t}, {"e2e_ms", e2e},
                    {"ttft_ms", e2e / 64}, {"output_tokens", 64}, {"itl_ms", itl}});
    t += e2e;
  }
  return {{"kind", "bench-proxy bench result"},
          {"valid", true},
          {"model", "m"},
          {"workload", {{"sha256", "w"}}},
          {"options", {{"concurrency", 1}, {"requests", n}}},
          {"summary", {{"wall_s", t / 1000}, {"completed", n}, {"total_output_tps", 64.0 * n / (t / 1000)},
                       {"headline", {{"metric", "output_tps"}}}}},
          {"requests", reqs}};
}

double median_ms(int reps, const std::function<void()>& f) {
  std::vector<double> ms;
  for (int r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int n = argc > 1 ? std::atoi(argv[1]) : 10000;
  int b = argc > 2 ? std::atoi(argv[2]) : 10000;
  int reps = argc > 3 ? std::atoi(argv[3]) : 5;
  bp::bench::side base{"base", {synthetic(n, 100, 1)}, {"base"}, {}}, cand{"cand", {synthetic(n, 101, 2)}, {"cand"}, {}};
  bp::bench::compare_options o;
  o.resamples = b;
  std::string verdict;
  double all = median_ms(reps, [&] { verdict = bp::bench::compare_sides(base, cand, o).metrics[0].verdict; });
  o.metrics = {"output_tps"};
  double headline = median_ms(reps, [&] { bp::bench::compare_sides(base, cand, o); });
  std::printf("compare of two results of %d requests, %d resamples, one thread (median of %d):\n", n, b, reps);
  std::printf("  every default metric (6):  %.1f ms  (verdict on output_tps: %s)\n", all, verdict.c_str());
  std::printf("  the headline alone:        %.1f ms\n", headline);
  std::printf("  target: under 1000 ms -> %s\n", all < 1000 ? "met" : "NOT met");
  return 0;
}
