// bench-proxy serve | validate
#include <signal.h>

#include <iostream>

#include <spdlog/spdlog.h>

#include "actors/engine_run.hpp"
#include "base/process/engine_child.hpp"
#include "base/numbers.hpp"
#include "cmd/cli.hpp"
#include "cmd/exit_status.hpp"
#include "configs/engine_config.hpp"
#include "configs/engine_kinds.hpp"

namespace bp::cli {

namespace {

const char* kServeAbout = R"(Starts the engine described by CONFIG as a supervised child on a kernel-assigned loopback port,
with exactly the environment the config lists, and serves on ADDR:
  /v1/*            reverse-proxied to the engine (streaming passes through unbuffered)
  /healthz         bench-proxy's own state: starting, warming, snapshotting, ready, stopping
  /meta            503 until the provenance snapshot is published after warmup, then the frozen JSON
  /metrics         bench-proxy's own Prometheus metrics: TTFT, ITL and E2E histograms, requests,
                   errors, bytes (docs/metrics.md)
  /proxy/requests  the proxy's record of each proxied /v1 request, JSON lines (?after=ID&limit=N);
                   every one also in RUN_DIR/requests.jsonl
  /engine/metrics  the engine's own Prometheus /metrics, passed through unchanged)";

const char* kServeFooter = R"(Every duration is a finite number of seconds greater than 0 and at most 86400.

SIGINT/SIGTERM: stop accepting, let in-flight requests finish (drain_timeout_s), stop the engine
(SIGTERM, SIGKILL after stop_grace_s), reap its whole process tree, exit 0.)";

const char* kValidateAbout = R"(Loads each config, interpolates $VAR/${VAR} from this environment and prints it resolved as JSON
(one object, or an array for several configs) with secrets shown as {"redacted": true, "hmac_sha256", "key_id"}
(keyed with $BENCH_PROXY_SECRET_KEY_FILE, default ~/.config/bench-proxy/secret-key, made on first use).
Every error of every file is printed to stderr with file:line:column; exit status 2 if any.)";

}  // namespace

runner define_serve(CLI::App& app, const std::vector<std::string>& argv) {
  struct flags {
    run_options o;
    std::string log_level = "info";
  };
  auto f = std::make_shared<flags>();
  auto& o = f->o;
  app.footer(std::string(kServeAbout) + "\n\n" + kServeFooter);
  const double max_s = base::max_duration_s;
  app.add_option("--listen", o.listen, "HOST:PORT, [IPv6]:PORT or :PORT")->type_name("ADDR")->required();
  app.add_option("--config", o.config_path, "engine config YAML (docs/config.md)")->type_name("CONFIG")->required();
  app.add_option("--threads", o.threads, "I/O threads (default: number of cores)")->type_name("N")->check(whole_in(1, 256));
  app.add_option("--run-dir", o.run_dir,
                 "where engine.log and meta.json go (default: runs/<UTC time>_<config name>_<pid>)")
      ->type_name("DIR");
  app.add_option("--hash-threads", o.hash_threads, "threads for hashing the venv and libraries (default: cores)")
      ->type_name("N")
      ->check(whole_in(1, 1024));
  app.add_flag("--rehash", o.rehash,
               "read every venv file and loaded library instead of taking unchanged ones from the verified hash cache "
               "(~/.cache/bench-proxy/hashes or $BENCH_PROXY_CACHE_DIR; as the config's hash_cache: off)");
  app.add_option("--max-body", o.server.max_request_body, "largest request body accepted (default 33554432 = 32 MiB)")
      ->type_name("BYTES")
      ->check(whole_in(1024, 1ll << 40));
  app.add_option("--idle-timeout", o.server.idle_timeout_s,
                 "close idle keep-alive client connections after S seconds (default 75)")
      ->type_name("S")
      ->check(finite_in(0.1, max_s));
  app.add_option("--request-timeout", o.server.request_timeout_s,
                 "a request must arrive completely within S seconds (default 60)")
      ->type_name("S")
      ->check(finite_in(0.1, max_s));
  app.add_option("--upstream-header-timeout", o.server.upstream_header_timeout_s,
                 "the engine must start its response within S seconds of the request (default 1800: "
                 "minutes-long prefills pass); 504 otherwise")
      ->type_name("S")
      ->check(finite_in(0.1, max_s));
  app.add_option("--upstream-idle-timeout", o.server.upstream_idle_timeout_s,
                 "the engine may pause a response body at most S seconds (default 300)")
      ->type_name("S")
      ->check(finite_in(0.1, max_s));
  app.add_option("--max-connections", o.server.max_connections,
                 "client connections at once; 503 beyond (default: what the fd limit allows)")
      ->type_name("N")
      ->check(whole_in(1, 1000000));
  app.add_option("--telemetry-interval-ms", o.telemetry_interval_ms,
                 "sample the host, the processes and the GPUs into <run-dir>/telemetry.csv every N ms from warmup "
                 "on (default 200; 0: off)")
      ->type_name("N")
      ->check(whole_in(0, 60000));
  add_log_level(app, f->log_level);
  return [f, argv]() -> int {
    setup_logging(f->log_level);
    run_options o = f->o;
    o.argv = argv;
    become_subreaper();
    caf::actor_system_config cfg;
    configure_actor_system(cfg);
    caf::actor_system sys{cfg};
    auto started = engine_run::start(sys, o);
    if (!started) {
      spdlog::error("{}", reason_of(started.error()));
      return exit_status(started.error());
    }
    auto run = std::move(*started);
    sigset_t set = stop_signals();
    int signals = 0;
    while (!run->finished()) {
      timespec ts{0, 100 * 1000 * 1000};
      int sig = sigtimedwait(&set, nullptr, &ts);
      if (sig == SIGINT || sig == SIGTERM) {
        if (++signals == 1) {
          spdlog::info("received {}: stopping (again to kill the engine at once)", sig == SIGINT ? "SIGINT" : "SIGTERM");
          run->stop();
        } else {
          run->kill_now();  // a second Ctrl-C skips the grace period
        }
      }
    }
    auto r = run->wait();
    if (r.error) {
      spdlog::error("{}", reason_of(r.error));
    } else {
      spdlog::info("done{}", r.snapshot_id.empty() ? "" : ": snapshot " + r.snapshot_id + " (" + r.meta_path + ")");
    }
    return exit_status(r.error);
  };
}

runner define_validate(CLI::App& app, const std::vector<std::string>&) {
  auto paths = std::make_shared<std::vector<std::string>>();
  auto level = std::make_shared<std::string>("info");
  auto reset = std::make_shared<bool>(false);
  app.footer(kValidateAbout);
  app.add_option("CONFIG", *paths, "engine config YAML files")->required();
  app.add_flag("--reset-prefix-cache", *reset,
               "also check that each config's engine can reset its prefix cache (vLLM needs VLLM_SERVER_DEV_MODE=1 in env:)");
  add_log_level(app, *level);
  return [paths, reset]() -> int {
    // Nothing to tear down here: SIGINT/SIGTERM end it at once.
    sigset_t stop = stop_signals();
    pthread_sigmask(SIG_UNBLOCK, &stop, nullptr);
    auto env = process_env();
    nlohmann::json all = nlohmann::json::array();
    bool bad = false;
    for (const auto& path : *paths) {
      auto r = load_config(path, env);
      if (!r.config) {
        bad = true;
        for (const auto& e : r.errors) std::cerr << e.str() << "\n";
        continue;
      }
      auto j = to_json(*r.config);
      if (*reset)
        if (std::string why = prefix_reset_problem(*r.config); !why.empty())
          std::cerr << "warning: " << path << ": " << why << "\n";
      // Some kinds count nothing bench-proxy can read unless asked to (docs/metrics.md, "Engine counters").
      if (const engine_kind* k = find_engine_kind(r.config->engine); k && !k->metrics_flag.empty()) {
        bool on = false;
        for (const auto& a : r.config->plain_args()) on = on || a == k->metrics_flag;
        if (!on)
          std::cerr << "warning: " << path << ": args: " << k->name << " without " << k->metrics_flag
                    << " exposes no /metrics (result.json's engine_metrics will be empty)\n";
      }
      for (const auto& e : check_launchable(*r.config))
        if (e.key == "cmd") std::cerr << "warning: " << e.str() << " (serve will refuse to start it here)\n";
      all.push_back(j);
    }
    if (bad) return exit_status(errc::usage);
    std::cout << (all.size() == 1 ? all[0] : all).dump(2) << "\n";
    return 0;
  };
}

}  // namespace bp::cli
