// bench-proxy: entry point and wiring only (docs/cli.md). Everything else lives in libraries.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <iostream>
#include <thread>

#include <spdlog/spdlog.h>

#include "actors/process/engine_child.hpp"
#include "actors/engine_run.hpp"
#include "base/build_info.hpp"
#include "cmd/cli_common.hpp"
#include "cmd/commands.hpp"
#include "configs/engine_config.hpp"

namespace bp::cli {

namespace {

const char* kMainUsage = R"(bench-proxy: trustworthy LLM inference benchmarks.

usage: bench-proxy [serve] --listen ADDR --config CONFIG [options]
       bench-proxy validate CONFIG...
       bench-proxy meta diff A B [--json]
       bench-proxy meta show|summary FILE|URL
       bench-proxy bench --url URL --queries FILE [options]
       bench-proxy run --config CONFIG --queries FILE [options]
       bench-proxy sweep CONFIG... --queries FILE [options]
       bench-proxy --version | --help

Commands:
  serve      start the engine from CONFIG behind a streaming reverse proxy on ADDR; /meta
             publishes the provenance snapshot of exactly that process (the default command)
  validate   check configs and print them resolved, as JSON (secrets redacted)
  meta       compare or show /meta snapshots
  bench      benchmark an OpenAI-compatible server (normally a bench-proxy)
  run        serve + bench + tear down: one measurement of one configuration
  sweep      run several configs in turn from one process; a table at the end

Global options:
  --log-level LEVEL   trace, debug, info (default), warn, error, off
  --help, -h          help for bench-proxy or a command
  --version           print the version

Exit codes: 0 success; 1 failure; 2 usage or config error; 3 listen address unusable;
4 engine failed to start; 5 engine died after it was ready; 6 warmup failed; meta diff: 1 = differ.
See docs/cli.md.
)";

const char* kServeUsage = R"(usage: bench-proxy [serve] --listen ADDR --config CONFIG [options]

Starts the engine described by CONFIG as a supervised child on a kernel-assigned loopback port,
with exactly the environment the config lists, and serves on ADDR:
  /v1/*     reverse-proxied to the engine (streaming passes through unbuffered)
  /healthz  bench-proxy's own state: starting, warming, snapshotting, ready, stopping
  /meta     503 until the provenance snapshot is published after warmup, then the frozen JSON

Options:
  --listen ADDR          HOST:PORT, [IPv6]:PORT or :PORT (required)
  --config CONFIG        engine config YAML (required; see docs/config.md)
  --threads N            I/O threads (default: number of cores)
  --run-dir DIR          where engine.log and meta.json go
                         (default: runs/<UTC time>_<config name>_<pid>)
  --hash-threads N       threads for hashing the venv and libraries (default: cores)
  --max-body BYTES       largest request body accepted (default 33554432 = 32 MiB)
  --idle-timeout S       close idle keep-alive client connections after S seconds (default 75)
  --request-timeout S    a request must arrive completely within S seconds (default 60)
  --upstream-header-timeout S
                         the engine must start its response within S seconds of the request
                         (default 1800: minutes-long prefills pass); 504 otherwise
  --upstream-idle-timeout S
                         the engine may pause a response body at most S seconds (default 300)
  --max-connections N    client connections at once; 503 beyond (default: what the fd limit allows)
  --log-level LEVEL      trace, debug, info, warn, error, off

Every duration is a finite number of seconds greater than 0 and at most 86400.

SIGINT/SIGTERM: stop accepting, let in-flight requests finish (drain_timeout_s), stop the engine
(SIGTERM, SIGKILL after stop_grace_s), reap its whole process tree, exit 0.
)";

const char* kValidateUsage = R"(usage: bench-proxy validate CONFIG...

Loads each config, interpolates $VAR/${VAR} from this environment and prints it resolved as JSON
(one object, or an array for several configs) with secrets shown as {"redacted": true, "hmac_sha256", "key_id"}
(keyed with $BENCH_PROXY_SECRET_KEY_FILE, default ~/.config/bench-proxy/secret-key, made on first use).
Every error of every file is printed to stderr with file:line:column; exit status 2 if any.
)";


}  // namespace

int cmd_serve(const std::vector<std::string>& argv, const std::vector<std::string>& full_argv) {
  args a(argv,
         {"--listen", "--config", "--threads", "--run-dir", "--hash-threads", "--max-body", "--idle-timeout",
          "--request-timeout", "--upstream-header-timeout", "--upstream-idle-timeout", "--max-connections",
          "--log-level"},
         {"--help", "-h"});
  if (a.flag("--help") || a.flag("-h")) {
    std::cout << kServeUsage;
    return 0;
  }
  if (!a.positionals().empty()) throw usage_error("unexpected argument '" + a.positionals()[0] + "'");
  if (!a.get("--listen")) throw usage_error("--listen ADDR is required");
  if (!a.get("--config")) throw usage_error("--config CONFIG is required");
  setup_logging(a.get("--log-level").value_or("info"));
  run_options o;
  o.config_path = *a.get("--config");
  o.listen = *a.get("--listen");
  o.threads = static_cast<int>(a.integer("--threads", 0, 1, 256));
  o.run_dir = a.get("--run-dir").value_or("");
  o.hash_threads = static_cast<int>(a.integer("--hash-threads", 0, 1, 1024));
  o.server.max_request_body = static_cast<std::uint64_t>(a.integer("--max-body", 32l << 20, 1024, 1l << 40));
  o.server.idle_timeout_s = a.number("--idle-timeout", 75, 0.1, 86400);
  o.server.request_timeout_s = a.number("--request-timeout", 60, 0.1, 86400);
  o.server.upstream_header_timeout_s = a.number("--upstream-header-timeout", 1800, 0.1, 86400);
  o.server.upstream_idle_timeout_s = a.number("--upstream-idle-timeout", 300, 0.1, 86400);
  o.server.max_connections = static_cast<std::size_t>(a.integer("--max-connections", 0, 1, 1000000));
  o.argv = full_argv;

  become_subreaper();
  caf::actor_system_config cfg;
  configure_actor_system(cfg);
  caf::actor_system sys{cfg};
  std::string err;
  int code = 0;
  auto run = engine_run::start(sys, o, err, code);
  if (!run) {
    spdlog::error("{}", err);
    return code;
  }
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
        // A second Ctrl-C skips the grace period.
        run->kill_now();
      }
    }
  }
  auto r = run->wait();
  if (r.exit_code != 0) {
    spdlog::error("{}", r.message);
  } else {
    spdlog::info("done{}", r.snapshot_id.empty() ? "" : ": snapshot " + r.snapshot_id + " (" + r.meta_path + ")");
  }
  return r.exit_code;
}

int cmd_validate(const std::vector<std::string>& argv) {
  // Nothing to tear down here: SIGINT/SIGTERM end it at once.
  sigset_t stop = stop_signals();
  pthread_sigmask(SIG_UNBLOCK, &stop, nullptr);
  args a(argv, {"--log-level"}, {"--help", "-h"});
  if (a.flag("--help") || a.flag("-h")) {
    std::cout << kValidateUsage;
    return 0;
  }
  if (a.positionals().empty()) throw usage_error("validate needs at least one CONFIG");
  auto env = process_env();
  nlohmann::json all = nlohmann::json::array();
  bool bad = false;
  for (const auto& path : a.positionals()) {
    auto r = load_config(path, env);
    if (!r.config) {
      bad = true;
      for (const auto& e : r.errors) std::cerr << e.str() << "\n";
      continue;
    }
    auto j = to_json(*r.config);
    if (j["resolved_cmd"].is_null())
      std::cerr << "warning: " << path << ": cmd: " << j["resolved_cmd_error"].get<std::string>()
                << " (serve will refuse to start it here)\n";
    all.push_back(j);
  }
  if (bad) return exit_code::usage;
  std::cout << (all.size() == 1 ? all[0] : all).dump(2) << "\n";
  return 0;
}

}  // namespace bp::cli

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "__engine-shim") == 0) return bp::engine_shim_main(argc, argv);
  // Before any thread exists: SIGINT/SIGTERM are taken synchronously by the main thread only.
  sigset_t set = bp::cli::stop_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  std::vector<std::string> full(argv, argv + argc);
  std::vector<std::string> rest(argv + 1, argv + argc);
  std::string cmd = "serve";
  if (!rest.empty() && rest[0].size() > 0 && rest[0][0] != '-') {
    cmd = rest[0];
    rest.erase(rest.begin());
  }
  try {
    if (cmd == "serve") {
      if (rest.empty()) {
        std::cerr << bp::cli::kMainUsage;
        return 2;
      }
      if (rest.size() == 1 && (rest[0] == "--help" || rest[0] == "-h")) {
        if (argc >= 2 && std::strcmp(argv[1], "serve") == 0) return bp::cli::cmd_serve(rest, full);
        std::cout << bp::cli::kMainUsage;
        return 0;
      }
      if (rest.size() == 1 && rest[0] == "--version") {
        const auto& b = bp::base::this_build();
        std::cout << "bench-proxy " << b.version << "\ncommit " << b.git_commit
                  << (b.git_dirty ? " (built from a dirty tree)" : "") << "\nbinary " << b.binary_path
                  << " sha256 " << b.binary_sha256 << "\n";
        return 0;
      }
      return bp::cli::cmd_serve(rest, full);
    }
    if (cmd == "validate") return bp::cli::cmd_validate(rest);
    if (cmd == "meta") return bp::cli::cmd_meta(rest);
    if (cmd == "bench") return bp::cli::cmd_bench(rest);
    if (cmd == "run") return bp::cli::cmd_run(rest, full);
    if (cmd == "sweep") return bp::cli::cmd_sweep(rest, full);
    if (cmd == "help") {
      std::cout << bp::cli::kMainUsage;
      return 0;
    }
    throw bp::cli::usage_error("unknown command '" + cmd + "'");
  } catch (const bp::cli::usage_error& e) {
    static const char* known[] = {"serve", "validate", "meta", "bench", "run", "sweep"};
    bool is_known = std::any_of(std::begin(known), std::end(known), [&](const char* k) { return cmd == k; });
    std::cerr << "bench-proxy " << cmd << ": " << e.what() << "\n(see bench-proxy "
              << (cmd == "serve" || !is_known ? "" : cmd + " ") << "--help)\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "bench-proxy " << cmd << ": " << e.what() << "\n";
    return 1;
  }
}
