// bp-telemetry-bench: what one host sample costs (the /proc and /sys reads of the telemetry
// actor), as CPU time per sample and as the share of one core at a sampling interval.
//   bp-telemetry-bench [SAMPLES=200] [INTERVAL_MS=200]
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "snapshot/telemetry/telemetry.hpp"

int main(int argc, char** argv) {
  int n = argc > 1 ? std::atoi(argv[1]) : 200;
  int interval = argc > 2 ? std::atoi(argv[2]) : 200;
  bp::telemetry::host_sampler h("/proc", "/sys", {1}, ::getpid());
  h.take(0);
  std::vector<double> cpu_ms;
  std::size_t samples = 0;
  for (int i = 1; i <= n; ++i) {
    rusage a, b;
    ::getrusage(RUSAGE_SELF, &a);
    samples += h.take(i * interval / 1000.0).size();
    ::getrusage(RUSAGE_SELF, &b);
    auto ms = [](const rusage& r) {
      return (r.ru_utime.tv_sec + r.ru_stime.tv_sec) * 1e3 + (r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e3;
    };
    cpu_ms.push_back(ms(b) - ms(a));
  }
  std::sort(cpu_ms.begin(), cpu_ms.end());
  double sum = 0;
  for (double x : cpu_ms) sum += x;
  int procs = 0;
  for (const auto& s : h.take((n + 1) * interval / 1000.0))
    if (s.source == "engine" && s.series == "processes") procs = static_cast<int>(s.value);
  std::printf("host sample: %.3f ms CPU mean, %.3f ms median over %d samples (%zu series each)\n", sum / n,
              cpu_ms[cpu_ms.size() / 2], n, samples / static_cast<std::size_t>(n));
  std::printf("at one sample every %d ms: %.2f%% of one core\n", interval, 100.0 * (sum / n) / interval);
  (void)procs;
  return 0;
}
