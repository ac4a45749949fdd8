// bench-proxy bench | run | sweep
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <future>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <thread>

#include <spdlog/spdlog.h>

#include "actors/child_process.hpp"
#include "actors/engine_run.hpp"
#include "cmd/cli_common.hpp"
#include "cmd/commands.hpp"
#include "net/bench.hpp"
#include "net/http_client.hpp"
#include "snapshot/diff.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace bp::cli {

namespace {

const char* kBenchOptions = R"(Workload and load:
  --queries FILE         CSV or JSONL workload (docs/workload.md); required
  --model NAME           model to ask for (default: the first of GET /v1/models)
  --concurrency N        requests in flight at once (default 1: batch size 1, sequential)
  --rate R               Poisson arrivals at R requests/s (default: as fast as concurrency allows)
  -n, --requests N       measured requests (default: every query once per repeat)
  --repeats N            passes over the workload (default 1)
  --warmup N             requests sent first and excluded from statistics (default 1)
  --max-tokens N         override max_tokens of every request
  --no-stream            plain responses (TTFT then equals end-to-end latency)
  --timeout S            per-request timeout (default 600)
  --seed N               seed of the Poisson arrivals (default 1)
  --keep-text            store each response's text in result.json
Output:
  --out DIR              folder for result.json (bench: bench-results/<UTC time>; run: the run folder)
  --results FILE         results TSV to append one row to (default results.tsv)
  --no-progress          no progress bar
  --log-level LEVEL      trace, debug, info, warn, error, off
The last line on stdout is the headline number: median output tokens/s per request.
)";

const char* kBenchUsage = R"(usage: bench-proxy bench --url http://HOST:PORT --queries FILE [options]

Benchmarks an OpenAI-compatible server (normally a bench-proxy). Fetches /meta before and after:
the result records the snapshot and is marked invalid if the snapshot id changed.
Exit status: 0 valid result, 1 invalid result or failure, 2 usage error.

  --url URL              the proxy (required)
  --allow-no-snapshot    accept a server without /meta (the result is marked invalid)
)";

const char* kRunUsage = R"(usage: bench-proxy run --config CONFIG --queries FILE [options]

Starts the engine under bench-proxy exactly as serve does (on a free loopback port unless --listen
is given), waits for /meta, benchmarks through the proxy, records, tears everything down and
prints the headline number last.

  --config CONFIG        engine config (required)
  --listen ADDR          proxy address (default 127.0.0.1:0: any free port)
  --run-dir DIR          run folder (engine.log, meta.json, result.json)
  --threads N            proxy I/O threads
)";

const char* kSweepUsage = R"(usage: bench-proxy sweep CONFIG... --queries FILE [options]

Runs every config in turn from one process: engine, proxy, warmup, snapshot and bench come up,
the row is recorded, everything is torn down and verified gone before the next config starts.
A config that fails to start, crashes or times out becomes a failed row and the sweep goes on.
At the end: a table sorted by the headline metric, each row's delta to the first config and what
its snapshot differs in from the first. Ctrl-C tears everything down cleanly.

  --sweep-dir DIR        folder for the runs and sweep.json (default sweeps/<UTC time>)
)";

std::vector<std::string> bench_value_opts() {
  return {"--queries", "--model", "--concurrency", "--rate", "-n", "--requests", "--repeats", "--warmup",
          "--max-tokens", "--timeout", "--seed", "--out", "--results", "--log-level"};
}
std::vector<std::string> bench_flag_opts() { return {"--no-stream", "--keep-text", "--no-progress", "--help", "-h"}; }

bench::options bench_options(const args& a) {
  bench::options o;
  if (!a.get("--queries")) throw usage_error("--queries FILE is required");
  o.queries_path = *a.get("--queries");
  o.model = a.get("--model").value_or("");
  o.concurrency = static_cast<int>(a.integer("--concurrency", 1, 1, 4096));
  o.rate = a.number("--rate", 0, 0, 1e6);
  long n = a.integer("-n", 0, 1, 100000000);
  n = a.integer("--requests", n, 1, 100000000);
  o.num_requests = n;
  o.repeats = static_cast<int>(a.integer("--repeats", 1, 1, 100000));
  o.warmup = static_cast<int>(a.integer("--warmup", 1, 0, 100000));
  if (a.get("--max-tokens")) o.max_tokens = static_cast<int>(a.integer("--max-tokens", 0, 1, 10000000));
  o.stream = !a.flag("--no-stream");
  o.timeout_s = a.number("--timeout", 600, 0.001, 86400);
  o.seed = static_cast<std::uint64_t>(a.integer("--seed", 1, 0, 1l << 62));
  o.keep_text = a.flag("--keep-text");
  if (!a.flag("--no-progress") && ::isatty(2)) {
    o.progress = [](long done, long total, long errors) {
      int width = 30;
      int filled = static_cast<int>(width * done / std::max(1l, total));
      std::cerr << "\r[" << std::string(static_cast<std::size_t>(filled), '#')
                << std::string(static_cast<std::size_t>(width - filled), '.') << "] " << done << "/" << total
                << " errors " << errors << (done == total ? "\n" : "") << std::flush;
    };
  }
  return o;
}

void print_summary(const json& r, std::ostream& os) {
  const auto& s = r["summary"];
  auto line = [&](const char* name, const json& st, const char* unit) {
    if (!st.contains("median")) {
      os << "  " << std::left << std::setw(16) << name << "n=0\n";
      return;
    }
    os << "  " << std::left << std::setw(16) << name << std::fixed << std::setprecision(2) << "median "
       << st["median"].get<double>() << "  p90 " << st["p90"].get<double>() << "  p99 " << st["p99"].get<double>()
       << " " << unit << "\n";
  };
  os << "requests " << s["requests"] << ", completed " << s["completed"] << ", errors " << s["errors"];
  if (!s["error_kinds"].empty()) os << " " << s["error_kinds"].dump();
  os << ", wall " << std::fixed << std::setprecision(2) << s["wall_s"].get<double>() << " s\n";
  line("ttft", s["ttft_ms"], "ms");
  line("itl", s["itl_ms"], "ms");
  line("tpot", s["tpot_ms"], "ms");
  line("e2e", s["e2e_ms"], "ms");
  line("output_tps", s["output_tps"], "tok/s per request");
  os << "  request throughput " << s["request_throughput"].get<double>() << " req/s, total output "
     << s["total_output_tps"].get<double>() << " tok/s, usage from " << s["usage_source"].get<std::string>() << "\n";
  os << "snapshot " << (r["snapshot_id"].is_null() ? "none" : r["snapshot_id"].get<std::string>())
     << (r["valid"].get<bool>() ? " (valid)" : " INVALID: " + r.value("invalid_reason", std::string())) << "\n";
}

std::string write_result(const json& r, const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  std::string path = (fs::path(dir) / "result.json").string();
  std::ofstream f(path);
  f << r.dump(2) << "\n";
  if (!f) throw std::runtime_error(path + ": cannot write the result");
  return fs::absolute(path).string();
}

/// Polls SIGINT/SIGTERM while `busy` runs; on the first signal calls on_signal.
template <class F>
auto run_interruptible(F busy, const std::function<void()>& on_signal, bool& interrupted) {
  auto fut = std::async(std::launch::async, std::move(busy));
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  while (fut.wait_for(std::chrono::milliseconds(0)) != std::future_status::ready) {
    timespec ts{0, 50 * 1000 * 1000};
    int sig = sigtimedwait(&set, nullptr, &ts);
    if ((sig == SIGINT || sig == SIGTERM) && !interrupted) {
      interrupted = true;
      spdlog::warn("received {}: tearing down", sig == SIGINT ? "SIGINT" : "SIGTERM");
      on_signal();
    }
  }
  return fut.get();
}

struct one_run {
  bool started = false, published = false, ok = false;
  int exit_code = 0;
  std::string reason;
  json result;
  std::string result_path, run_dir, meta_path;
  double headline = 0;
  bool teardown_verified = false;
};

/// serve + bench + teardown for one config, inside `sys`.
one_run measure(caf::actor_system& sys, const std::string& config, const args& a, bench::options bo,
                const std::string& run_dir, const std::vector<std::string>& full_argv, bool& interrupted,
                std::atomic<bool>& cancel) {
  one_run out;
  run_options ro;
  ro.config_path = config;
  ro.listen = a.get("--listen").value_or("127.0.0.1:0");
  ro.threads = static_cast<int>(a.integer("--threads", 1, 1, 256));
  ro.run_dir = run_dir;
  ro.argv = full_argv;
  std::string err;
  int code = 0;
  auto run = engine_run::start(sys, ro, err, code);
  if (!run) {
    out.exit_code = code;
    out.reason = err;
    return out;
  }
  out.started = true;
  out.run_dir = run->run_dir();
  const auto& cfg = run->config();
  auto budget = std::chrono::milliseconds(
      static_cast<long>((cfg.ready_timeout_s + cfg.snapshot_timeout_s + 600.0 * cfg.warmup + 30) * 1000));
  bool published = run_interruptible([&] { return run->wait_published(budget); }, [&] { run->stop(); }, interrupted);
  if (!published || interrupted) {
    if (!run->finished()) run->stop();
    auto r = run->wait();
    out.exit_code = r.exit_code != 0 ? r.exit_code : exit_code::failure;
    out.reason = interrupted ? "interrupted" : (r.message.empty() ? "no snapshot was published" : r.message);
    return out;
  }
  out.published = true;
  bo.url = run->url();
  bo.cancel = &cancel;
  try {
    out.result = run_interruptible([&] { return bench::run(bo); },
                                   [&] {
                                     cancel = true;
                                     run->stop();
                                   },
                                   interrupted);
    out.result["run_dir"] = out.run_dir;
  } catch (const std::exception& e) {
    out.reason = std::string("bench failed: ") + e.what();
  }
  int engine_pid = run->status().engine_pid();
  int engine_port = run->status().engine_port();
  if (!run->finished()) run->stop();
  auto r = run->wait();
  // Verify the teardown: the engine's root and its whole process group are gone, and nothing
  // listens on its port any more.
  bool root_gone = engine_pid > 0 && ::kill(engine_pid, 0) != 0 && errno == ESRCH;
  bool group_gone = engine_pid > 0 && ::kill(-engine_pid, 0) != 0 && errno == ESRCH;
  std::string ignore;
  net::http_connection probe;
  bool port_free = engine_port > 0 &&
                   !probe.connect("127.0.0.1", static_cast<std::uint16_t>(engine_port), std::chrono::seconds(1), ignore);
  out.teardown_verified = root_gone && group_gone && port_free;
  if (!out.teardown_verified)
    spdlog::error("[sweep] teardown of {} not verified: root gone {}, group gone {}, port {} free {}", config,
                  root_gone, group_gone, engine_port, port_free);
  if (!out.result.is_null()) {
    std::string dir = a.get("--out").value_or(out.run_dir);
    out.result_path = write_result(out.result, dir);
    out.headline = bench::headline(out.result);
    bench::append_tsv(a.get("--results").value_or("results.tsv"), out.result, out.result_path);
  }
  out.meta_path = r.meta_path;
  if (r.exit_code != 0) {
    out.exit_code = r.exit_code;
    out.reason = r.message;
  } else if (interrupted) {
    out.exit_code = exit_code::interrupted;
    out.reason = "interrupted";
  } else if (out.result.is_null()) {
    out.exit_code = exit_code::failure;
  } else if (!out.result.value("valid", false)) {
    out.exit_code = exit_code::failure;
    out.reason = "invalid result: " + out.result.value("invalid_reason", std::string());
  } else {
    out.ok = true;
  }
  return out;
}

}  // namespace

int cmd_bench(const std::vector<std::string>& argv) {
  auto vo = bench_value_opts();
  vo.push_back("--url");
  auto fo = bench_flag_opts();
  fo.push_back("--allow-no-snapshot");
  args a(argv, vo, fo);
  if (a.flag("--help") || a.flag("-h")) {
    std::cout << kBenchUsage << kBenchOptions;
    return 0;
  }
  if (!a.positionals().empty()) throw usage_error("unexpected argument '" + a.positionals()[0] + "'");
  if (!a.get("--url")) throw usage_error("--url http://HOST:PORT is required");
  setup_logging(a.get("--log-level").value_or("info"));
  auto o = bench_options(a);
  o.url = *a.get("--url");
  o.require_snapshot = !a.flag("--allow-no-snapshot");
  std::atomic<bool> cancel{false};
  o.cancel = &cancel;
  bool interrupted = false;
  json r;
  try {
    r = run_interruptible([&] { return bench::run(o); }, [&] { cancel = true; }, interrupted);
  } catch (const std::exception& e) {
    std::cerr << "bench-proxy bench: " << e.what() << "\n";
    return exit_code::failure;
  }
  std::string path = write_result(r, a.get("--out").value_or("bench-results/" + utc_stamp()));
  bench::append_tsv(a.get("--results").value_or("results.tsv"), r, path);
  print_summary(r, std::cout);
  std::cout << "result: " << path << "\n";
  std::cout << std::fixed << std::setprecision(2) << bench::headline(r) << "\n";
  return r.value("valid", false) && !interrupted ? 0 : exit_code::failure;
}

int cmd_run(const std::vector<std::string>& argv, const std::vector<std::string>& full_argv) {
  auto vo = bench_value_opts();
  for (const char* o : {"--config", "--listen", "--run-dir", "--threads"}) vo.push_back(o);
  args a(argv, vo, bench_flag_opts());
  if (a.flag("--help") || a.flag("-h")) {
    std::cout << kRunUsage << kBenchOptions;
    return 0;
  }
  if (!a.positionals().empty()) throw usage_error("unexpected argument '" + a.positionals()[0] + "'");
  if (!a.get("--config")) throw usage_error("--config CONFIG is required");
  setup_logging(a.get("--log-level").value_or("info"));
  auto bo = bench_options(a);
  become_subreaper();
  caf::actor_system_config cfg;
  configure_actor_system(cfg);
  caf::actor_system sys{cfg};
  bool interrupted = false;
  std::atomic<bool> cancel{false};
  auto r = measure(sys, *a.get("--config"), a, bo, a.get("--run-dir").value_or(""), full_argv, interrupted, cancel);
  if (!r.result.is_null()) {
    print_summary(r.result, std::cout);
    std::cout << "result: " << r.result_path << "\n";
  }
  if (!r.ok) std::cerr << "bench-proxy run: " << r.reason << "\n";
  std::cout << std::fixed << std::setprecision(2) << r.headline << "\n";
  return r.ok ? 0 : (r.exit_code ? r.exit_code : exit_code::failure);
}

int cmd_sweep(const std::vector<std::string>& argv, const std::vector<std::string>& full_argv) {
  auto vo = bench_value_opts();
  for (const char* o : {"--sweep-dir", "--threads"}) vo.push_back(o);
  args a(argv, vo, bench_flag_opts());
  if (a.flag("--help") || a.flag("-h")) {
    std::cout << kSweepUsage << kBenchOptions;
    return 0;
  }
  const auto& configs = a.positionals();
  if (configs.empty()) throw usage_error("sweep needs at least one CONFIG");
  setup_logging(a.get("--log-level").value_or("info"));
  auto bo = bench_options(a);
  std::string sweep_dir = a.get("--sweep-dir").value_or("sweeps/" + utc_stamp());
  std::error_code ec;
  fs::create_directories(sweep_dir, ec);
  if (ec) throw std::runtime_error(sweep_dir + ": " + ec.message());
  become_subreaper();
  caf::actor_system_config cfg;
  configure_actor_system(cfg);
  caf::actor_system sys{cfg};
  bool interrupted = false;
  std::atomic<bool> cancel{false};
  std::vector<std::pair<std::string, one_run>> rows;
  for (std::size_t i = 0; i < configs.size() && !interrupted; ++i) {
    std::string dir = (fs::path(sweep_dir) / (std::to_string(i + 1) + "_" + fs::path(configs[i]).stem().string())).string();
    spdlog::info("[sweep] {}/{}: {}", i + 1, configs.size(), configs[i]);
    auto r = measure(sys, configs[i], a, bo, dir, full_argv, interrupted, cancel);
    if (r.ok)
      spdlog::info("[sweep] {}: {:.2f} tok/s (teardown verified: {})", configs[i], r.headline, r.teardown_verified);
    else
      spdlog::warn("[sweep] {} failed: {}", configs[i], r.reason);
    rows.emplace_back(configs[i], std::move(r));
  }
  // The table: successful rows by headline, each compared with the first config.
  const json* first_snap = nullptr;
  double first_headline = 0;
  if (!rows.empty() && rows[0].second.ok) {
    first_snap = &rows[0].second.result["snapshot"];
    first_headline = rows[0].second.headline;
  }
  std::vector<std::size_t> order(rows.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) {
    if (rows[x].second.ok != rows[y].second.ok) return rows[x].second.ok;
    return rows[x].second.headline > rows[y].second.headline;
  });
  json sweep = {{"sweep_dir", fs::absolute(sweep_dir).string()}, {"interrupted", interrupted}, {"rows", json::array()}};
  std::ostringstream table;
  table << std::left << std::setw(4) << "#" << std::setw(34) << "config" << std::right << std::setw(12) << "tok/s"
        << std::setw(10) << "delta" << std::setw(11) << "ttft ms" << "  differs from first in\n";
  int rank = 0;
  for (std::size_t idx : order) {
    auto& [cfg, r] = rows[idx];
    json row = {{"config", cfg}, {"ok", r.ok}, {"run_dir", r.run_dir}, {"teardown_verified", r.teardown_verified}};
    std::string name = fs::path(cfg).filename().string();
    if (name.size() > 32) name = name.substr(0, 29) + "...";
    table << std::left << std::setw(4) << (r.ok ? std::to_string(++rank) : "-") << std::setw(34) << name;
    if (r.ok) {
      double delta = first_headline > 0 ? (r.headline / first_headline - 1.0) * 100.0 : 0;
      std::string differs;
      if (first_snap && idx != 0) {
        auto d = snap::diff_snapshots(*first_snap, r.result["snapshot"]);
        for (auto it = d["sections"].begin(); it != d["sections"].end(); ++it)
          differs += (differs.empty() ? "" : ", ") + it.key() + " (" + std::to_string(it.value().size()) + ")";
        row["differs_from_first"] = d;
        if (differs.empty()) differs = "nothing";
      } else if (idx == 0) {
        differs = "(first)";
      }
      std::ostringstream d;
      d << std::showpos << std::fixed << std::setprecision(1) << delta << "%";
      table << std::right << std::fixed << std::setprecision(2) << std::setw(12) << r.headline << std::setw(10)
            << (first_headline > 0 ? d.str() : "n/a") << std::setw(11)
            << r.result["summary"]["ttft_ms"].value("median", 0.0) << "  " << differs << "\n";
      row["headline"] = r.headline;
      row["delta_pct"] = delta;
      row["result"] = r.result_path;
      row["snapshot_id"] = r.result["snapshot_id"];
    } else {
      table << "  FAILED: " << r.reason.substr(0, r.reason.find('\n')) << "\n";
      row["error"] = r.reason;
      row["exit_code"] = r.exit_code;
    }
    sweep["rows"].push_back(row);
  }
  std::ofstream(fs::path(sweep_dir) / "sweep.json") << sweep.dump(2) << "\n";
  std::cout << table.str();
  std::cout << "sweep: " << fs::absolute(sweep_dir / fs::path("sweep.json")).string() << "\n";
  bool best = false;
  for (std::size_t idx : order)
    if (rows[idx].second.ok) {
      std::cout << std::fixed << std::setprecision(2) << rows[idx].second.headline << "\n";
      best = true;
      break;
    }
  if (!best) std::cout << "0.00\n";
  if (interrupted) return exit_code::interrupted;
  bool any_failed = std::any_of(rows.begin(), rows.end(), [](const auto& r) { return !r.second.ok; });
  return any_failed ? exit_code::failure : 0;
}

}  // namespace bp::cli
