// bp-workload-gen: prints a generated workload as JSONL (one {"request", "metadata",
// "arrival_ms"?} a line, or one {"session", "turns", "think_ms"} a line), its fingerprint, its
// speed, or how late a replay of its schedule against the clock runs (docs/workloads.md).
//   bp-workload-gen --synthetic input=512,output=128 -n 100 --seed 1
//   bp-workload-gen --prefix-groups 4 --prefix-len 256 --synthetic input=64,output=16 -n 16
//   bp-workload-gen --sharegpt FILE | --sharegpt-sessions FILE [--think-ms X]
//   bp-workload-gen --sessions turns=3,think_ms=1000,input=128,output=32 -n 10
//   bp-workload-gen --trace FILE [--time-scale X] [--block-size 512]
//   ... [--rate R [--burstiness K]]   an open-loop schedule (the load profile's: gamma gaps of shape K)
//   ... [--tokenize-url http://127.0.0.1:PORT --engine-kind llama.cpp|vllm|sglang [--model M]]
//   ... --fingerprint                 print only the fingerprint
//   bp-workload-gen --bench [-n 100000] [--runs 5] [--synthetic SPEC]   generation speed (target < 1 s)
//   bp-workload-gen --replay (--trace FILE | --rate R -n N) [--tolerance-ms 2]   schedule lateness
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "base/numbers.hpp"
#include "net/loadgen/load_profile.hpp"
#include "net/loadgen/workloads.hpp"

using namespace bp::bench;
using namespace bp::bench::workloads;
using json = nlohmann::json;

namespace {

struct args {
  std::string synthetic_text, sharegpt, sharegpt_sessions, sessions_text, trace_path, tokenize_url, engine_kind,
      model;
  int prefix_groups = 0, prefix_len = 0, runs = 5, block_size = 512;
  long n = -1;
  std::uint64_t seed = 1;
  double time_scale = 1, rate = 0, burstiness = -1, think_ms = 0, tolerance_ms = 2;
  bool fingerprint_only = false, bench = false, replay = false;
};

[[noreturn]] void usage_error(const std::string& why) {
  throw std::invalid_argument(why + " (see the head of perf/workload_gen.cpp)");
}

double number(const std::string& opt, const char* v, double lo, double hi) {
  auto x = bp::base::parse_number(v, lo, hi);
  if (!x) usage_error(opt + " must be a number " + bp::base::range_text(lo, hi) + ", got '" + v + "'");
  return *x;
}

args parse(int argc, char** argv) {
  args a;
  for (int i = 1; i < argc; ++i) {
    std::string o = argv[i];
    auto val = [&]() -> const char* {
      if (i + 1 >= argc) usage_error(o + " needs a value");
      return argv[++i];
    };
    if (o == "--synthetic") a.synthetic_text = val();
    else if (o == "--sharegpt") a.sharegpt = val();
    else if (o == "--sharegpt-sessions") a.sharegpt_sessions = val();
    else if (o == "--sessions") a.sessions_text = val();
    else if (o == "--trace") a.trace_path = val();
    else if (o == "--tokenize-url") a.tokenize_url = val();
    else if (o == "--engine-kind") a.engine_kind = val();
    else if (o == "--model") a.model = val();
    else if (o == "--prefix-groups") a.prefix_groups = static_cast<int>(number(o, val(), 1, 1e6));
    else if (o == "--prefix-len") a.prefix_len = static_cast<int>(number(o, val(), 1, 1e6));
    else if (o == "--block-size") a.block_size = static_cast<int>(number(o, val(), 1, 1e6));
    else if (o == "--runs") a.runs = static_cast<int>(number(o, val(), 1, 1000));
    else if (o == "-n") a.n = static_cast<long>(number(o, val(), 0, 1e9));
    else if (o == "--seed") a.seed = static_cast<std::uint64_t>(number(o, val(), 0, 9007199254740992.0));
    else if (o == "--time-scale") a.time_scale = number(o, val(), 1e-9, 1e9);
    else if (o == "--rate") a.rate = number(o, val(), 1e-9, 1e9);
    else if (o == "--burstiness") a.burstiness = number(o, val(), 1e-3, 1e3);
    else if (o == "--think-ms") a.think_ms = number(o, val(), 0, 86400000);
    else if (o == "--tolerance-ms") a.tolerance_ms = number(o, val(), 0, 1e6);
    else if (o == "--fingerprint") a.fingerprint_only = true;
    else if (o == "--bench") a.bench = true;
    else if (o == "--replay") a.replay = true;
    else usage_error("unknown option '" + o + "'");
  }
  if (a.prefix_groups > 0 && a.prefix_len <= 0) usage_error("--prefix-groups needs --prefix-len");
  if (a.prefix_len > 0 && a.prefix_groups <= 0) usage_error("--prefix-len needs --prefix-groups");
  if (!a.engine_kind.empty() && a.tokenize_url.empty()) usage_error("--engine-kind needs --tokenize-url");
  if (!a.tokenize_url.empty() && a.engine_kind.empty()) usage_error("--tokenize-url needs --engine-kind");
  return a;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double pct(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(p / 100 * static_cast<double>(v.size() - 1) + 0.5)];
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

int run_bench(const args& a) {
  long n = a.n < 0 ? 100000 : a.n;
  auto spec = parse_synthetic(a.synthetic_text.empty() ? "input=512,output=128,spread=0.2" : a.synthetic_text);
  double rate = a.rate > 0 ? a.rate : 100;
  double burstiness = a.burstiness > 0 ? a.burstiness : 0.25;  // gamma shape 0.25: gaps with CV 2
  std::vector<double> gen, sched, dump, fp, total;
  std::string last;
  std::size_t bytes = 0;
  for (int r = 0; r < a.runs; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    auto qs = synthetic(spec, static_cast<std::size_t>(n), a.seed);
    double g = ms_since(t0);
    auto t1 = std::chrono::steady_clock::now();
    auto s = bp::bench::arrival_schedule(rate, burstiness, static_cast<std::size_t>(n), 0, a.seed);
    double sc = ms_since(t1);
    auto t2 = std::chrono::steady_clock::now();
    std::vector<std::string> bodies;
    bodies.reserve(qs.size());
    for (const auto& q : qs) bodies.push_back(q.request.dump());
    dump.push_back(ms_since(t2));
    auto t3 = std::chrono::steady_clock::now();
    auto f = fingerprint(bodies, s);
    double fpm = ms_since(t3);
    gen.push_back(g);
    sched.push_back(sc);
    fp.push_back(fpm);
    total.push_back(g + sc);
    last = f.sha256;
    bytes = 0;
    for (const auto& b : bodies) bytes += b.size();
  }
  std::printf("workload: %ld synthetic requests (%s, seed %llu), %.1f MB of request bodies; schedule: %ld arrivals, "
              "gamma gaps of shape %g\n",
              n, to_string(spec).c_str(), static_cast<unsigned long long>(a.seed), static_cast<double>(bytes) / 1e6, n,
              burstiness);
  std::printf("median of %d runs: requests %.1f ms, schedule %.1f ms, requests+schedule %.1f ms (target < 1000 ms: %s)\n",
              a.runs, median(gen), median(sched), median(total), median(total) < 1000 ? "met" : "NOT met");
  std::printf("serialising every body (json dump, as the load generator does anyway): %.1f ms; fingerprint of those bytes: %.1f ms (%.0f MB/s); sha256 %s\n",
              median(dump), median(fp), static_cast<double>(bytes) / 1e3 / median(fp), last.c_str());
  return median(total) < 1000 ? 0 : 1;
}

int run_replay(const args& a, const std::vector<double>& arrivals) {
  // What the load generator's open loop does: sleep until each arrival on the steady clock, note
  // how late it woke. No requests: the lateness of the clock and the scheduler alone.
  std::vector<double> late;
  late.reserve(arrivals.size());
  auto t0 = std::chrono::steady_clock::now();
  for (double at : arrivals) {
    auto due = t0 + std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double, std::milli>(at));
    std::this_thread::sleep_until(due);
    late.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - due).count());
  }
  double p50 = pct(late, 50), p99 = pct(late, 99), mx = pct(late, 100);
  std::printf("replayed %zu arrivals over %.1f s: lateness p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, max %.3f ms\n",
              arrivals.size(), arrivals.empty() ? 0 : arrivals.back() / 1000, p50, pct(late, 90), p99, mx);
  bool ok = p99 <= a.tolerance_ms;
  std::printf("tolerance: p99 lateness <= %.3f ms: %s\n", a.tolerance_ms, ok ? "met" : "NOT met");
  return ok ? 0 : 1;
}

void print_query(const query& q, const double* arrival) {
  json line = {{"request", q.request}, {"metadata", q.metadata}};
  if (arrival) line["arrival_ms"] = *arrival;
  std::fputs(line.dump().c_str(), stdout);
  std::fputc('\n', stdout);
}

int run(const args& a) {
  if (a.bench) return run_bench(a);
  std::optional<token_counter> tok;
  if (!a.tokenize_url.empty()) {
    std::string why;
    tok = engine_token_counter(a.tokenize_url, a.engine_kind, a.model, &why);
    if (!tok) throw std::runtime_error(why);
  }
  const token_counter* t = tok ? &*tok : nullptr;
  std::size_t n = static_cast<std::size_t>(a.n < 0 ? 10 : a.n);
  std::vector<query> qs;
  std::vector<double> arrivals;
  std::vector<session> sessions;
  bool is_sessions = false;
  if (!a.trace_path.empty()) {
    auto tr = load_trace(a.trace_path, a.time_scale, a.seed, t, nullptr, a.block_size);
    qs = std::move(tr.queries);
    arrivals = std::move(tr.arrival_ms);
  } else if (!a.sharegpt.empty()) {
    qs = load_sharegpt(a.sharegpt, nullptr, t);
  } else if (!a.sharegpt_sessions.empty()) {
    sessions = load_sharegpt_sessions(a.sharegpt_sessions, a.think_ms, nullptr, t);
    is_sessions = true;
  } else if (!a.sessions_text.empty()) {
    sessions = synthetic_sessions(parse_sessions(a.sessions_text), n, a.seed, t);
    is_sessions = true;
  } else if (a.prefix_groups > 0) {
    qs = prefix_workload(a.prefix_groups, a.prefix_len,
                         parse_synthetic(a.synthetic_text.empty() ? "input=64,output=16" : a.synthetic_text), n, a.seed, t);
  } else if (!a.synthetic_text.empty() || a.replay) {
    if (!a.replay || !a.synthetic_text.empty())
      qs = synthetic(parse_synthetic(a.synthetic_text.empty() ? "input=8,output=8" : a.synthetic_text), n, a.seed, t);
  } else {
    usage_error("choose a workload: --synthetic, --prefix-groups, --sharegpt, --sharegpt-sessions, --sessions or --trace");
  }
  if (a.rate > 0 && a.trace_path.empty())
    arrivals = bp::bench::arrival_schedule(a.rate, a.burstiness > 0 ? a.burstiness : 1,
                                           a.replay && qs.empty() ? n : qs.size(), 0, a.seed);
  if (a.replay) return run_replay(a, arrivals);
  if (a.fingerprint_only) {
    auto f = is_sessions ? fingerprint(sessions) : [&] {
      std::vector<std::string> bodies;
      for (const auto& q : qs) bodies.push_back(q.request.dump());
      return fingerprint(bodies, arrivals);
    }();
    std::puts(f.to_json().dump().c_str());
    return 0;
  }
  if (is_sessions) {
    for (const auto& s : sessions) {
      json turns = json::array();
      for (const auto& q : s.turns) turns.push_back({{"request", q.request}, {"metadata", q.metadata}});
      std::puts(json{{"session", s.id}, {"turns", turns}, {"think_ms", s.think_ms}}.dump().c_str());
    }
    return 0;
  }
  for (std::size_t i = 0; i < qs.size(); ++i) print_query(qs[i], arrivals.empty() ? nullptr : &arrivals[i]);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bp-workload-gen: %s\n", e.what());
    return 2;
  }
}
