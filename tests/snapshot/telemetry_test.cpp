// Telemetry samplers and summaries: a scripted fake nvidia-smi (an older driver that rejects the
// clocks_event_reasons names, a power-cap episode, a sampler that dies), and the host sampler on
// this machine.
#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include <signal.h>
#include <sys/wait.h>

#include "analysis/conditions.hpp"
#include "snapshot/telemetry/telemetry.hpp"

using namespace bp::telemetry;

namespace {

const std::string kFake = std::string(BP_TEST_DATA) + "/telemetry/nvidia-smi";

/// Drains `g` until `done` holds (a deadline guards against a hang; nothing waits for time).
std::vector<sample> drain_until(gpu_stream& g, const std::function<bool(const std::vector<sample>&)>& done) {
  std::vector<sample> all;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!done(all) && std::chrono::steady_clock::now() < deadline) {
    for (auto& s : g.drain()) all.push_back(std::move(s));
    std::this_thread::yield();
  }
  return all;
}

std::size_t count(const std::vector<sample>& v, const std::string& series) {
  std::size_t n = 0;
  for (const auto& s : v)
    if (s.series == series) ++n;
  return n;
}

}  // namespace

TEST(Telemetry, GpuLinesParseAndUnavailableValuesAreLeftOutNotZero) {
  std::string err;
  auto s = parse_gpu_line("1, GPU-x, 1755, 2619, [N/A], 700.00, 44, 0, 3, P0, Active, Not Active, Not Active, Not Active, Not Active",
                          10.0, err);
  ASSERT_FALSE(s.empty()) << err;
  bool power = false, cap = false;
  for (const auto& x : s) {
    EXPECT_EQ(x.source, "gpu1");
    if (x.series == "power_w") power = true;
    if (x.series == "sw_power_cap") cap = x.value == 1.0;
  }
  EXPECT_FALSE(power);
  EXPECT_TRUE(cap);
  EXPECT_TRUE(parse_gpu_line("0, GPU-x, 1755", 1, err).empty());
  EXPECT_NE(err.find("expected 15 fields"), std::string::npos);
}

TEST(Telemetry, AnOlderDriverFallsBackToThrottleReasonNamesAndAPowerCapEpisodeIsCounted) {
  ::setenv("FAKE_SMI_LINES", "9", 1);
  ::setenv("FAKE_SMI_CAP_EVERY", "3", 1);
  std::vector<sample> all;
  {
    gpu_stream g(kFake, 20);
    all = drain_until(g, [](const std::vector<sample>& v) { return count(v, "sm_clock_mhz") >= 9; });
  }
  ::unsetenv("FAKE_SMI_LINES");
  ASSERT_EQ(count(all, "sm_clock_mhz"), 9u);
  EXPECT_EQ(count(all, "error"), 0u);
  auto c = summarize(all, 0, 1e12);
  const auto& g = c["sources"]["gpu0"];
  EXPECT_NEAR(g["clock_event_reasons"]["sw_power_cap"]["share"].get<double>(), 3.0 / 9.0, 1e-9);
  EXPECT_EQ(g["sm_clock_mhz"]["min"].get<double>(), 1410);
  EXPECT_EQ(g["sm_clock_mhz"]["max"].get<double>(), 1980);
  auto w = bp::analysis::condition_warnings(c);
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[0], "GPU 0 power-capped in 33% of samples");
  EXPECT_EQ(w[1], "GPU 0 SM clock varied 1410-1980 MHz");
}

TEST(Telemetry, ASamplerThatDiesMakesItsSectionAnErrorAndNothingElse) {
  ::setenv("FAKE_SMI_EXIT_AFTER", "3", 1);
  std::vector<sample> all;
  {
    gpu_stream g(kFake, 20);
    all = drain_until(g, [](const std::vector<sample>& v) { return count(v, "error") >= 1; });
  }
  ::unsetenv("FAKE_SMI_EXIT_AFTER");
  ASSERT_EQ(count(all, "error"), 1u);
  all.push_back({1, "cpu", "steal_pct", 0.5, ""});
  auto c = summarize(all, 0, 1e12);
  ASSERT_TRUE(c["sources"]["gpu"].contains("error"));
  EXPECT_NE(c["sources"]["gpu"]["error"].get<std::string>().find("GPU is lost"), std::string::npos)
      << c["sources"]["gpu"]["error"];
  EXPECT_TRUE(c["sources"].contains("cpu"));
  auto w = bp::analysis::condition_warnings(c);
  ASSERT_FALSE(w.empty());
  EXPECT_EQ(w[0].rfind("gpu telemetry failed: ", 0), 0u) << w[0];
}

TEST(Telemetry, TheHostSamplerSeesABusyProcessOutsideTheEngineTree) {
  pid_t busy = ::fork();
  if (busy == 0) {
    for (volatile unsigned long i = 0;; ++i) {
    }
  }
  host_sampler h("/proc", "/sys", {}, ::getpid());  // no engine tree; this process is "bench-proxy"
  auto t0 = std::chrono::steady_clock::now();
  h.take(0);
  // Let the busy child run for a while, measured by the CPU time it gets, not by a sleep.
  std::vector<sample> s;
  double t = 0;
  while (std::chrono::steady_clock::now() - t0 < std::chrono::seconds(60)) {
    std::ifstream st("/proc/" + std::to_string(busy) + "/stat");
    std::string text((std::istreambuf_iterator<char>(st)), {});
    auto close = text.rfind(')');
    std::istringstream is(text.substr(close + 2));
    std::string f;
    long long ticks = 0;
    for (int i = 3; i <= 15 && is >> f; ++i)
      if (i >= 14) ticks += std::atoll(f.c_str());
    if (ticks >= ::sysconf(_SC_CLK_TCK) / 2) break;  // half a second of CPU
    std::this_thread::yield();
  }
  t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  s = h.take(t);
  ::kill(busy, SIGKILL);
  ::waitpid(busy, nullptr, 0);
  double others = -1, steal = -1;
  for (const auto& x : s) {
    if (x.source == "others" && x.series == "cpu_cores") others = x.value;
    if (x.source == "cpu" && x.series == "steal_pct") steal = x.value;
  }
  EXPECT_GE(steal, 0);
  // Half a second of CPU over the interval: whatever else the machine did, at least 0.3 cores of
  // it were this process outside the engine tree and outside bench-proxy.
  EXPECT_GT(others, 0.3) << "others " << others << " cores over " << t << " s";
}

TEST(Telemetry, TheCsvRoundTripsAndATornLastLineIsSkipped) {
  auto p = std::filesystem::temp_directory_path() / ("bp_tel_" + std::to_string(::getpid()) + ".csv");
  {
    std::ofstream f(p);
    f << csv_header() << "\n"
      << csv_row({1.5, "gpu0", "sm_clock_mhz", 1980, ""}) << "\n"
      << csv_row({1.6, "gpu", "error", 0, "died, badly"}) << "\n"
      << "1.7,gpu0,sm_clo";
  }
  auto v = read_csv(p.string());
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0].value, 1980);
  EXPECT_EQ(v[1].text, "died  badly");
  std::filesystem::remove(p);
}
