#pragma once
/// Load profiles (docs/cli.md, "Load profiles"): which load points a bench measures and the
/// planned send times of an open-loop point. Pure: parsing and seeded schedules, no sockets.
///
///   --load sync                   one request at a time (the default)
///   --load concurrency=1,2,4,8    closed loop: N workers, each sends its next request when the last ended
///   --load rate=1,2,4             open loop: arrivals at R requests/s (Poisson; --burstiness K: gamma gaps)
///   --load throughput             open loop: every request due at once (bounded by --max-inflight)
///   --load sweep[:N]              sync, then throughput, then N rates evenly between the two measured rates
///   --ramp-up linear|exponential --ramp-start R0 --ramp-end R1 --duration S
///                                 one open-loop point whose rate goes from R0 to R1 over S seconds
#include <cstdint>
#include <string>
#include <vector>

namespace bp::bench {

struct load_point {
  enum class kind { sync, concurrency, rate, throughput, ramp, trace };
  kind how = kind::sync;
  double value = 1;  ///< concurrency (workers) or rate (requests/s); ramp: the start rate
  double ramp_end = 0;            ///< ramp: the end rate
  std::string ramp_shape;         ///< ramp: "linear" or "exponential"
  bool refined = false;           ///< added by the capacity search (not asked for by --load)
  bool open_loop() const { return how == kind::rate || how == kind::throughput || how == kind::ramp || how == kind::trace; }
  /// The load as one number on a curve's x axis: workers for sync/concurrency, requests/s for rates.
  double load() const { return how == kind::sync ? 1 : value; }
  /// "sync", "concurrency=4", "rate=2.5", "throughput", "ramp linear 1->8/s", "trace".
  std::string label() const;
  /// The unit of load(): "concurrency" or "req/s".
  std::string axis() const;
};

struct load_profile {
  std::string text = "sync";  ///< as given to --load
  std::vector<load_point> points;
  int sweep_rates = -1;       ///< --load sweep[:N]: N (the rate points are chosen once sync and throughput ran)
  double burstiness = 1;      ///< gamma shape of open-loop gaps (1: Poisson; < 1 burstier; > 1 more regular)
  double duration_s = 0;      ///< per point: send for this long (0: by request count)
  long requests = 0;          ///< per point: this many requests (0: the bench's request count)
  double warmup_window_s = 0;   ///< per point: requests sent before this are left out of its statistics
  double cooldown_window_s = 0; ///< per point: requests that end in the last S seconds are left out
  int max_inflight = 512;     ///< open loop: the most requests in flight (one client thread each)
  bool is_curve() const { return points.size() > 1 || sweep_rates >= 0; }
  bool is_sweep() const { return sweep_rates >= 0; }
};

/// Parses --load's text; throws std::invalid_argument naming the option and the bad item.
load_profile parse_load(const std::string& text);

/// A ramp point (--ramp-up SHAPE with start and end rates); throws std::invalid_argument.
load_point ramp_point(const std::string& shape, double start, double end);

/// Planned send offsets (ms from the point's start) of an open-loop point: gaps drawn from a
/// gamma distribution with shape `burstiness` and mean 1/rate (burstiness 1: exponential). At
/// most `max_n` arrivals, and none at or after `duration_s` when that is > 0. Seeded: the same
/// arguments give the same schedule.
std::vector<double> arrival_schedule(double rate, double burstiness, std::size_t max_n, double duration_s,
                                     std::uint64_t seed);

/// The same for a ramp from `start` to `end` requests/s over `duration_s` (time-rescaled
/// arrivals: the expected count in [0, t] is the integral of the rate up to t).
std::vector<double> ramp_schedule(const std::string& shape, double start, double end, double burstiness,
                                  std::size_t max_n, double duration_s, std::uint64_t seed);

/// sweep[:N]: the N rates evenly spaced strictly between the synchronous and the saturation
/// request rates (both measured).
std::vector<double> sweep_rates(double sync_rate, double max_rate, int n);

}  // namespace bp::bench
