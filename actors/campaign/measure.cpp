#include "actors/campaign/measure.hpp"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <filesystem>
#include <future>
#include <iomanip>
#include <sstream>

#include <spdlog/spdlog.h>

#include "actors/engine_run.hpp"
#include "analysis/engine_metrics.hpp"
#include "analysis/conditions.hpp"
#include "analysis/variance.hpp"
#include "snapshot/telemetry/telemetry.hpp"
#include "actors/campaign/trials.hpp"
#include "base/files.hpp"
#include "base/text.hpp"
#include "configs/engine_config.hpp"
#include "configs/engine_kinds.hpp"
#include "net/client/http_client.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace bp::measure {

void run_interruptible(const std::function<void()>& work, interrupt_state& st, const std::function<void()>& first,
                       const std::function<void()>& again) {
  auto fut = std::async(std::launch::async, work);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  // Signals are counted in `st`, whoever took them: this loop, another run_interruptible further
  // out (try's and bisect's, around a whole campaign), or an `external` stop. Each one counted
  // and not yet acted on here is acted on at once: the first stops this work's run in order,
  // later ones kill it. So a Ctrl-C during an engine's startup stops it, whichever thread took it.
  int handled = 0;
  auto act = [&] {
    for (int now = st.signals.load(); handled < now; ++handled) {
      if (handled == 0) {
        st.cancel = true;
        first();
      } else {
        again();
      }
    }
  };
  while (fut.wait_for(std::chrono::milliseconds(0)) != std::future_status::ready) {
    act();
    int sig = 0;
    if (st.take_signals) {
      timespec ts{0, 50 * 1000 * 1000};
      sig = sigtimedwait(&set, nullptr, &ts);
    } else if (fut.wait_for(std::chrono::milliseconds(50)) == std::future_status::ready) {
      break;
    }
    if (sig != SIGINT && sig != SIGTERM) {
      if (st.external && st.external->load() && st.signals.load() == 0) {
        st.signals.fetch_add(1);
        spdlog::warn("asked to stop: tearing down");
      }
      continue;
    }
    const char* name = sig == SIGINT ? "SIGINT" : "SIGTERM";
    if (st.signals.fetch_add(1) == 0)
      spdlog::warn("received {}: tearing down (again to kill the engine at once)", name);
    else
      spdlog::warn("received {} again: killing the engine now", name);
  }
  fut.get();
}

std::vector<std::string> preflight(const std::vector<std::string>& configs, const std::string& workload) {
  std::vector<std::string> errors;
  try {
    if (!workload.empty()) bench::load_workload(workload);  // "": a generated workload, checked by bench::check_workload; a --client run may have none
  } catch (const std::exception& e) {
    errors.push_back(e.what());
  }
  auto env = process_env();
  for (const auto& c : configs) {
    auto r = load_config(c, env);
    for (const auto& e : r.errors) errors.push_back(e.str());
    if (r.config)
      for (const auto& e : check_launchable(*r.config)) errors.push_back(e.str());
  }
  return errors;
}

namespace {
std::string engine_metrics_file(const char* when) { return std::string("engine_metrics_") + when + ".txt"; }
}  // namespace

void strip_raw_engine_metrics(json& result) {
  if (!result.contains("engine_metrics") || !result["engine_metrics"].contains("raw")) return;
  result["engine_metrics"].erase("raw");
  for (const char* when : {"before", "after"}) result["engine_metrics"]["files"][when] = engine_metrics_file(when);
}

std::string write_result(json& result, const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  // The engine's two /metrics texts go beside result.json, which names them.
  if (result.contains("engine_metrics") && result["engine_metrics"].contains("raw")) {
    json& em = result["engine_metrics"];
    for (const char* when : {"before", "after"}) {
      std::string file = engine_metrics_file(when);
      base::write_file_atomic((fs::path(dir) / file).string(), em["raw"].value(when, std::string()), true);
      em["files"][when] = file;
    }
    em.erase("raw");
  }
  std::string path = (fs::path(dir) / "result.json").string();
  base::write_file_atomic(path, result.dump(2, ' ', false, json::error_handler_t::replace) + "\n", true);
  return fs::absolute(path).string();
}

json failed_result(const std::string& config_path, const std::string& reason, const std::string& run_dir,
                   const std::string& label) {
  json r;
  if (!label.empty()) r["label"] = label;
  if (!config_path.empty()) r["repo"] = repo_state(config_path);
  r["schema_version"] = 1;
  r["kind"] = "bench-proxy failed run";
  r["finished_at"] = base::utc_now_iso();
  r["config_path"] = config_path;
  r["run_dir"] = run_dir.empty() ? json(nullptr) : json(run_dir);
  r["failed"] = true;
  r["valid"] = false;
  r["invalid_reasons"] = json::array({reason});
  r["invalid_reason"] = reason;
  return r;
}

std::string summary_text(const json& r) {
  std::ostringstream os;
  const auto& s = r["summary"];
  auto line = [&](const char* name, const json& st, const char* unit) {
    if (!st.contains("median")) {
      os << "  " << std::left << std::setw(16) << name << "n=0\n";
      return;
    }
    os << "  " << std::left << std::setw(16) << name << std::fixed << std::setprecision(2) << "median "
       << st["median"].get<double>();
    if (st.contains("median_ci") && st["median_ci"].is_array())
      os << " [" << st["median_ci"][0].get<double>() << ", " << st["median_ci"][1].get<double>() << "]";
    // Percentiles in numeric order (p1 p10 p90 p99 p99.9), the median already shown.
    std::vector<std::pair<double, double>> ps;
    for (auto it = st.begin(); it != st.end(); ++it)
      if (it.key().size() > 1 && it.key()[0] == 'p' && std::isdigit(static_cast<unsigned char>(it.key()[1])) &&
          it.key() != "p50")
        ps.emplace_back(std::stod(it.key().substr(1)), it.value().get<double>());
    std::sort(ps.begin(), ps.end());
    for (const auto& [p, v] : ps) os << "  " << bench::percentile_key(p) << " " << v;
    os << " " << unit << "\n";
  };
  if (r.contains("load") && r["load"].is_object() && r["load"].contains("points")) {
    // A curve: one line per load point, then its knee and capacity.
    const json& L = r["load"];
    os << "load profile " << L.value("profile", std::string()) << ": " << L["points"].size() << " points\n";
    os << "  " << std::left << std::setw(22) << "point" << std::right << std::setw(9) << "ok/sent" << std::setw(11)
       << "ttft p50" << std::setw(11) << "ttft p99" << std::setw(11) << "e2e p50" << std::setw(12) << "req/s"
       << std::setw(12) << "tok/s" << "  objectives / notes\n";
    for (const auto& p : L["points"]) {
      const json& ps = p["summary"];
      auto v = [&](const char* m, const char* k) {
        return ps.contains(m) && ps[m].contains(k) ? ps[m][k].get<double>() : 0.0;
      };
      std::string label = p.value("label", std::string()) + (p.value("refined", false) ? " *" : "");
      os << "  " << std::left << std::setw(22) << label << std::right << std::setw(9)
         << (std::to_string(ps.value("completed", 0L)) + "/" + std::to_string(ps.value("requests", 0L)))
         << std::fixed << std::setprecision(2) << std::setw(11) << v("ttft_ms", "median") << std::setw(11)
         << v("ttft_ms", "p99") << std::setw(11) << v("e2e_ms", "median") << std::setw(12)
         << ps.value("request_throughput", 0.0) << std::setw(12) << ps.value("total_output_tps", 0.0) << " ";
      for (const auto& o : p.value("objectives", json::array()))
        os << " " << o.value("objective", std::string()) << ": " << o.value("met", std::string());
      if (p.contains("schedule")) {
        const json& sc = p["schedule"];
        os << "  lateness p50 " << std::setprecision(2)
           << (sc["lateness_ms"].contains("median") ? sc["lateness_ms"]["median"].get<double>() : 0.0) << " ms";
        if (!sc.value("kept", true)) os << " (fell behind)";
      }
      if (p.contains("saturation") && p["saturation"]["over_saturated"] == true) os << "  over-saturated";
      os << "\n";
    }
    bool refined = false;
    for (const auto& p : L["points"]) refined = refined || p.value("refined", false);
    if (refined) os << "  (* a point added by the capacity search)\n";
    if (L.contains("knee") && L["knee"].is_object())
      os << "knee at " << L["knee"].value("load", 0.0) << " (" << L["points"][0].value("axis", std::string())
         << "): throughput " << L["knee"].value("throughput", 0.0) << " tok/s\n";
    else
      os << "no knee: throughput still grows about linearly up to the highest load measured\n";
    if (L.contains("capacity")) os << "capacity " << L["capacity"].value("text", L["capacity"].value("error", std::string("?"))) << "\n";
    os << "pooled over every point:\n";
  }
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
  if (s.contains("statistics")) {
    os << "  [..] " << static_cast<int>(s["statistics"].value("confidence", 0.95) * 100)
       << "% bootstrap interval of each median over requests: request-to-request noise only\n";
  }
  if (s.contains("headline") && s["headline"].contains("metric")) {
    const auto& h = s["headline"];
    os << "headline " << h.value("metric", std::string()) << " " << std::fixed << std::setprecision(2)
       << h.value("value", 0.0);
    if (h.contains("ci") && h["ci"].is_array())
      os << " [" << h["ci"][0].get<double>() << ", " << h["ci"][1].get<double>() << "]";
    os << " " << h.value("unit", std::string()) << " (" << h.value("description", std::string()) << ")\n";
  }
  if (r.contains("conditions") && r["conditions"].contains("sources")) {
    // One line of conditions: what the machine did during the measured requests.
    const json& src = r["conditions"]["sources"];
    std::ostringstream c;
    auto mean = [&](const char* s, const char* k) -> double {
      return src.contains(s) && src[s].contains(k) ? src[s][k].value("mean", -1.0) : -1.0;
    };
    if (mean("others", "cpu_cores") >= 0) c << " other processes " << std::setprecision(2) << mean("others", "cpu_cores") << " cores;";
    if (mean("engine", "cpu_cores") >= 0) c << " engine " << std::setprecision(2) << mean("engine", "cpu_cores") << " cores;";
    if (mean("cpu", "steal_pct") >= 0) c << " steal " << std::setprecision(1) << mean("cpu", "steal_pct") << "%;";
    for (auto it = src.begin(); it != src.end(); ++it)
      if (it.key().rfind("gpu", 0) == 0 && it.value().contains("sm_clock_mhz"))
        c << " " << it.key() << " SM " << std::setprecision(0) << it.value()["sm_clock_mhz"]["min"].get<double>() << "-"
          << it.value()["sm_clock_mhz"]["max"].get<double>() << " MHz;";
    if (src.contains("gpu") && src["gpu"].contains("absent")) c << " no GPU telemetry;";
    os << "conditions:" << c.str() << " (" << r["conditions"].value("sample_times", 0) << " samples, telemetry.csv)\n";
  }
  if (r.contains("engine_metrics") && !r["engine_metrics"].contains("error")) {
    std::string line = bench::engine_metric_line(r["engine_metrics"]);
    std::string check;
    for (auto it = r["engine_metrics"]["cross_check"].begin(); it != r["engine_metrics"]["cross_check"].end(); ++it)
      check += (check.empty() ? "" : ", ") + it.key() + (it.value().value("equal", false) ? " match" : " DIFFER");
    os << "engine counters: " << (line.empty() ? "no speculative decoding or prefix-cache figures" : line)
       << (check.empty() ? "" : " (against the bench's counts: " + check + ")") << "\n";
  }
  if (r.contains("client_overhead_ms") && r["client_overhead_ms"].value("matched", 0) > 0) {
    // The client against the proxy's stopwatch (docs/metrics.md, "Client overhead").
    const json& co = r["client_overhead_ms"];
    auto part = [&](const char* k) {
      if (!co[k].is_object()) return std::string("n/a");
      return "+" + base::fixed(co[k]["median"].get<double>(), 2) + " ms (p99 +" + base::fixed(co[k]["p99"].get<double>(), 2) +
             ")";
    };
    os << "client overhead against the proxy's stopwatch: TTFT " << part("ttft") << ", E2E " << part("e2e") << " ("
       << co.value("matched", 0) << " of " << co.value("requests", 0) << " requests joined by x-bench-proxy-request-id)\n";
  }
  if (r.contains("client") && r["client"].is_object()) {
    // A --client run (docs/clients.md): who sent the requests, how it ended, its windows.
    const json& c = r["client"];
    os << "client: " << c.value("command_line", std::string()) << " " << c.value("exit", std::string()) << " after "
       << base::fixed(c.value("duration_s", 0.0), 2) << " s (its output: client.stdout, client.stderr)\n";
    for (const auto& w : r.value("windows", json::array()))
      os << "  window " << w.value("name", std::string()) << ": " << w.value("requests", 0) << " requests, "
         << w.value("completed", 0) << " completed, headline " << base::fixed(w.value("headline", 0.0), 2)
         << (w.value("left_open", false) ? " (left open: closed at the client's exit)" : "")
         << (w.value("valid", false) ? "" : " INVALID") << " -> " << w.value("result", std::string()) << "\n";
  }
  for (const auto& w : r.value("warnings", json::array())) os << "warning: " << w.get<std::string>() << "\n";
  // --repeats R on one lifecycle: the spread between its passes, and what it cannot show.
  const json h = s.is_object() ? s.value("headline", json::object()) : json::object();
  const std::string hm = h.is_object() && h.contains("metric") && h["metric"].is_string() ? h["metric"].get<std::string>() : "";
  if (!hm.empty() && hm != "goodput" && hm != "capacity")  // those need the run's objectives or curve
    if (auto v = analysis::components({r}, hm, {}))
      os << "passes: " << hm << " within this lifecycle CV " << base::fixed(v->within_cv * 100, 2)
         << "% over " << v->passes << " passes; between lifecycles: not seen (one lifecycle: run --trials 2 or more)\n";
  os << "snapshot " << (r["snapshot_id"].is_null() ? "none" : r["snapshot_id"].get<std::string>());
  if (r.value("valid", false)) {
    os << " (valid)\n";
  } else {
    os << " INVALID:\n";
    for (const auto& why : r.value("invalid_reasons", json::array())) os << "  - " << why.get<std::string>() << "\n";
  }
  return os.str();
}

outcome measure(caf::actor_system& sys, const options& o, interrupt_state& st) {
  outcome out;
  run_options ro;
  ro.config_path = o.config_path;
  ro.listen = o.listen;
  ro.threads = o.threads;
  ro.run_dir = o.run_dir;
  ro.argv = o.argv;
  ro.telemetry_interval_ms = o.telemetry_interval_ms;
  ro.rehash = o.rehash;
  ro.keep_published = true;  // the bench below takes /meta's document from memory (fetch_snapshot)
  ro.engine_output_at_info = false;  // engine.log has it; the console shows progress (issue 27 item 7)
  auto record_failure = [&](const std::string& reason) {
    out.reason = reason;
    if (!o.results_tsv.empty()) {
      try {
        bench::append_tsv(o.results_tsv, failed_result(o.config_path, reason, out.run_dir, o.label), "");
      } catch (const std::exception& e) {
        spdlog::error("{}", e.what());
      }
    }
  };
  auto started = engine_run::start(sys, ro);
  if (!started) {
    out.error = started.error();
    record_failure(reason_of(out.error));
    return out;
  }
  auto run = std::move(*started);
  out.started = true;
  out.run_dir = run->run_dir();
  const auto& cfg = run->config();
  if (o.bench.reset_prefix_cache)
    if (std::string why = prefix_reset_problem(cfg); !why.empty())
      spdlog::warn("--reset-prefix-cache: {}: {}", cfg.source_path, why);
  auto first = [&] { run->stop("interrupted"); };
  auto again = [&] { run->kill_now(); };
  // The teardown waits through the engine's grace period: a Ctrl-C during it is still heard (a
  // second one kills the engine's process group at once, as at any other moment).
  auto wait_run = [&] {
    run_result r;
    // Stopping already (the caller asked): a first signal adds nothing, a later one kills.
    run_interruptible([&] { r = run->wait(); }, st, [] {}, again);
    return r;
  };
  auto budget = std::chrono::milliseconds(
      static_cast<long>((cfg.ready_timeout_s + cfg.snapshot_timeout_s + 600.0 * cfg.warmup + 30) * 1000));
  bool published = false;
  run_interruptible([&] { published = run->wait_published(budget); }, st, first, again);
  if (!published || st.interrupted()) {
    if (!run->finished()) run->stop(st.interrupted() ? "interrupted" : "no snapshot in time");
    auto r = wait_run();
    out.meta_path = r.meta_path;
    if (st.interrupted()) {
      out.error = make_error(errc::interrupted, "interrupted");
      record_failure("interrupted");
    } else {
      out.error = r.error ? r.error : make_error(errc::failure, "no snapshot was published");
      record_failure(reason_of(out.error));
    }
    return out;
  }
  out.published = true;
  bench::options bo = o.bench;
  bo.url = run->url();
  bo.cancel = &st.cancel;
  if (auto [id, doc] = run->take_published(); doc)
    bo.known_snapshot = std::make_shared<bench::snapshot_ref>(bench::snapshot_ref{id, std::move(*doc)});
  int engine_pid = run->status().engine_pid();
  int engine_port = run->status().engine_port();
  std::string bench_error;
  double bench_start = base::unix_now();
  // With --client, the client is the measurement (actors/campaign/client_run.hpp); Ctrl-C reaches
  // its process group first.
  std::unique_ptr<client_session> client;
  if (!o.client.command.empty()) client = std::make_unique<client_session>(o.client, out.run_dir, cfg.redactor());
  run_interruptible(
      [&] {
        try {
          out.result = client ? client->measure(bo) : bench::run(bo);
        } catch (const std::exception& e) {
          bench_error = std::string(client ? "client run failed: " : "bench failed: ") + e.what();
        }
      },
      st, [&] { client ? client->interrupt() : run->stop("interrupted"); },
      [&] {
        if (client) client->kill();
        again();
      });
  double bench_end = base::unix_now();
  // Ctrl-C after the last measured request ended cuts nothing short: the result stays valid and
  // only the exit status says the run was interrupted (a finished lifecycle keeps its validity).
  const bool cut_short = st.interrupted();
  // Did the engine live through the measurement as the same process?
  bool died = run->finished();
  int pid_after = run->status().engine_pid();
  if (!run->finished()) run->stop(st.interrupted() ? "interrupted" : "measurement done");
  auto r = wait_run();
  out.meta_path = r.meta_path;
  if (died && !st.interrupted()) out.engine_exit = r.error ? reason_of(r.error) : "the run ended early";
  // Verify the teardown: the engine's root and its whole process group are gone, and nothing
  // listens on its port any more.
  bool root_gone = engine_pid > 0 && ::kill(engine_pid, 0) != 0 && errno == ESRCH;
  bool group_gone = engine_pid > 0 && ::kill(-engine_pid, 0) != 0 && errno == ESRCH;
  std::string ignore;
  net::http_connection probe;
  bool port_free = engine_port > 0 && !probe.connect("127.0.0.1", static_cast<std::uint16_t>(engine_port),
                                                     std::chrono::seconds(1), ignore);
  out.teardown_verified = root_gone && group_gone && port_free;
  if (!out.teardown_verified)
    spdlog::error("teardown of {} not verified: root gone {}, group gone {}, port {} free {}", o.config_path,
                  root_gone, group_gone, engine_port, port_free);
  if (out.result.is_null()) {
    std::string why = st.interrupted() ? "interrupted" : !out.engine_exit.empty() ? out.engine_exit : bench_error;
    out.error = st.interrupted() ? make_error(errc::interrupted, why)
                                 : r.error ? r.error : make_error(errc::failure, why);
    record_failure(why);
    return out;
  }
  out.result["run_dir"] = out.run_dir;
  // The conditions of the measured window (docs/telemetry.md).
  if (o.telemetry_interval_ms > 0) {
    std::string csv = out.run_dir + "/telemetry.csv";
    auto cond = telemetry::summarize(telemetry::read_csv(csv), bench_start, bench_end);
    cond["interval_ms"] = o.telemetry_interval_ms;
    cond["file"] = csv;
    out.result["conditions"] = cond;
    for (const auto& w : analysis::condition_warnings(cond)) out.result["warnings"].push_back(w);
  }
  out.result["config_path"] = o.config_path;
  if (!o.label.empty()) out.result["label"] = o.label;
  out.result["repo"] = repo_state(o.config_path, cfg.repo_root);
  std::vector<std::string> lifecycle;  // what makes every result of this lifecycle invalid
  if (cut_short) lifecycle.push_back("interrupted");
  if (!out.engine_exit.empty()) lifecycle.push_back("the engine exited during the measurement: " + out.engine_exit);
  if (pid_after != engine_pid)
    lifecycle.push_back("the engine's PID changed from " + std::to_string(engine_pid) + " to " + std::to_string(pid_after));
  if (!out.teardown_verified) lifecycle.push_back("the engine's teardown was not verified");
  for (const auto& why : lifecycle) bench::add_invalid_reason(out.result, why);
  // What the bench never saw, the config knows: its secrets are redacted from the result too.
  cfg.redactor().redact(out.result);
  out.result_path = write_result(out.result, out.run_dir);
  strip_raw_engine_metrics(out.result);
  if (!o.results_tsv.empty()) bench::append_tsv(o.results_tsv, out.result, out.result_path);
  if (client && !client->window_results().empty()) {
    // One result per measurement window, completed as the run's own (docs/clients.md).
    std::vector<json> windows = client->window_results();
    for (auto& w : windows) {
      w["config_path"] = o.config_path;
      w["label"] = (o.label.empty() ? "" : o.label + " ") + "window " + w.value("window", std::string());
      w["repo"] = out.result["repo"];
      for (const auto& why : lifecycle) bench::add_invalid_reason(w, why);
      cfg.redactor().redact(w);
    }
    for (const auto& p : write_window_results(std::move(windows), out.run_dir, o.results_tsv))
      spdlog::info("[client] window result: {}", p);
  }
  out.valid = out.result.value("valid", false);
  if (st.interrupted()) {
    out.error = make_error(errc::interrupted, "interrupted");
    out.reason = cut_short ? "interrupted" : "interrupted after the measurement (its result is complete)";
    if (!cut_short && !out.valid) out.reason += "; invalid result: " + out.result.value("invalid_reason", std::string());
  } else if (!out.valid) {
    out.reason = "invalid result: " + out.result.value("invalid_reason", std::string());
    out.error = r.error ? r.error : make_error(errc::failure, out.reason);
  }
  return out;
}

}  // namespace bp::measure
