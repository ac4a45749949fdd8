#pragma once
/// Conditions during a run (docs/telemetry.md): samplers for the host (CPU time split, steal,
/// load, pressure, CPU frequency, the engine tree's CPU and RSS, and the CPU used by everything
/// else: noisy neighbours) and for NVIDIA GPUs (one long-running `nvidia-smi --query-gpu ... -lms`
/// child), the telemetry.csv they write, and the summary and warnings made of a time window of
/// it. No CAF here: the telemetry actor (actors/telemetry_actor.cpp) drives these.
#include <sys/types.h>

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace bp::telemetry {

/// One row of telemetry.csv: a series' value from one source at one time. `text` instead of a
/// value for series "error" (the source failed) and "info".
struct sample {
  double t = 0;        ///< unix seconds
  std::string source;  ///< host, cpu, cpu<N>, engine, others, gpu<index>, gpu
  std::string series;  ///< e.g. steal_pct, cpu_cores, sm_clock_mhz, sw_power_cap
  double value = 0;
  std::string text;
};

/// "time_unix_s,source,series,value" and one line per sample.
std::string csv_header();
std::string csv_row(const sample& s);
/// Every well-formed row of a telemetry.csv (a torn last line is skipped).
std::vector<sample> read_csv(const std::string& path);

/// The host's CPU and the processes on it, sampled by deltas between calls.
class host_sampler {
 public:
  /// `roots`: the engine tree's roots (engine and its shim); `self`: bench-proxy's own pid.
  host_sampler(std::string proc_root, std::string sys_root, std::vector<pid_t> roots, pid_t self);
  /// The samples at time `t`; the first call only primes the deltas (host and frequency series
  /// are returned, rates are not).
  std::vector<sample> take(double t);

 private:
  std::string proc_, sys_;
  std::vector<pid_t> roots_;
  pid_t self_;
  bool primed_ = false;
  double last_t_ = 0;
  std::vector<unsigned long long> last_cpu_;
  std::map<pid_t, unsigned long long> last_proc_;  ///< utime + stime (ticks) per pid
};

/// The --query-gpu fields streamed, with the newer clocks_event_reasons names or the older
/// clocks_throttle_reasons ones.
std::vector<std::string> gpu_query_fields(bool legacy_reason_names);
/// One line of `nvidia-smi --query-gpu=<fields> --format=csv,noheader,nounits`: samples of
/// source gpu<index>. Empty with `err` for a line that does not parse.
std::vector<sample> parse_gpu_line(const std::string& line, double t, std::string& err);

/// A long-running nvidia-smi streaming one line per GPU every interval; restarts once with the
/// older reason names when the driver rejects the newer ones. Thread-safe drain().
class gpu_stream {
 public:
  gpu_stream(std::string nvidia_smi, int interval_ms);
  ~gpu_stream();  ///< kills and reaps the child
  /// Samples since the last call; an "error" sample when the stream failed.
  std::vector<sample> drain();

 private:
  void run();
  bool spawn(bool legacy);
  std::string exe_;
  int interval_ms_;
  std::atomic<bool> stop_{false};
  std::atomic<pid_t> pid_{-1};
  int fd_ = -1;
  std::mutex mu_;
  std::vector<sample> pending_;
  std::thread reader_;
};

/// per source and series: {"min", "median", "max", "mean", "n"} over samples with t in [t0, t1];
/// GPU clock-event reasons as {"share": fraction of samples active}; errors per source.
nlohmann::json summarize(const std::vector<sample>& samples, double t0, double t1);

// What conditions mean for a comparison (warnings, differences) is analysis/conditions.hpp.

}  // namespace bp::telemetry
