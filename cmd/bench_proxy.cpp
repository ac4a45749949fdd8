// bench-proxy: entry point. The subcommand table and the one place command-line errors become
// exit status 2; each subcommand lives in its own file (docs/architecture.md, "Adding a subcommand").
#include <signal.h>

#include <cstring>
#include <iostream>

#include "base/process/engine_child.hpp"
#include "base/build_info.hpp"
#include "analysis/compare.hpp"
#include "cmd/bench_flags.hpp"
#include "cmd/cli.hpp"
#include "net/loadgen/proxy_result.hpp"

namespace bp::cli {
namespace {

/// Every subcommand: name, one line of help, its definition. `serve` is also the default.
const command kCommands[] = {
    {"serve", "start the engine from CONFIG behind a streaming reverse proxy on ADDR; /meta publishes the "
              "provenance snapshot of exactly that process (the default command)",
     define_serve},
    {"validate", "check configs and print them resolved, as JSON (secrets redacted)", define_validate},
    {"meta", "compare or show /meta snapshots", define_meta},
    {"bench", "benchmark an OpenAI-compatible server (normally a bench-proxy)", define_bench},
    {"run", "serve + bench + tear down: one measurement of one configuration", define_run},
    {"sweep", "run several configs in turn from one process, K trials each, interleaved; a table with "
              "intervals and verdicts at the end",
     define_sweep},
    {"try", "one campaign step: baseline and candidate lifecycles in alternating rounds until a sequential "
            "verdict (faster, slower, no change) is settled or the budget ends",
     define_try},
    {"bisect", "which change did it: the differences between GOOD and BAD as units, delta debugging with a "
               "sequential verdict at each step; the smallest set that reproduces the difference",
     define_bisect},
    {"compare", "is the difference real? ratios with confidence intervals and verdicts (faster, slower, no change, "
                "inconclusive), after checking the inputs are comparable",
     define_compare},
    {"results", "the results TSV as a tuning campaign: each row's keep/discard verdict and the running best",
     define_results},
    {"report", "one self-contained HTML page with charts for runs, sweeps or a results TSV", define_report},
    {"agent", "run configs for a fleet coordinator (sweep --agents) on this host, over CAF's network layer",
     define_agent},
};

const char* kFooter = R"(With no command, the options are serve's: bench-proxy --listen ADDR --config CONFIG.
serve, validate, bench, run, sweep, try, bisect and agent take --log-level LEVEL (trace, debug, info
(default), warn, error, off); COMMAND --help lists a command's options.

Exit codes: 0 success; 1 failure; 2 usage or config error; 3 listen address unusable;
4 engine failed to start; 5 engine died after it was ready; 6 warmup failed; 130 interrupted;
meta diff: 1 = differ; compare: 1 = slower beyond noise, 3 = not comparable;
try: 0 keep, 1 discard, 3 not comparable, 4 inconclusive, 5 a lifecycle failed;
bisect: 0 found, 1 no difference, 4 inconclusive. See docs/cli.md.)";

std::string version_text() {
  const auto& b = base::this_build();
  return "bench-proxy " + b.version + "\ncommit " + b.git_commit + (b.git_dirty ? " (built from a dirty tree)" : "") +
         "\nbinary " + b.binary_path + " sha256 " + b.binary_sha256 + "\n";
}

bool is_command(const std::string& s) {
  for (const auto& c : kCommands)
    if (s == c.name) return true;
  return false;
}

}  // namespace

int main_cli(int argc, char** argv) {
  std::vector<std::string> full(argv, argv + argc);
  std::vector<std::string> args(argv + 1, argv + argc);
  // serve is the default command: options without a command name are serve's.
  if (!args.empty() && !is_command(args[0]) && args[0] != "help" && args[0].rfind("-", 0) == 0 && args[0] != "--help" &&
      args[0] != "-h" && args[0] != "--version")
    args.insert(args.begin(), "serve");
  if (!args.empty() && args[0] == "help") args[0] = "--help";
  // run/sweep/try/bisect --client -- COMMAND ARGS...: the client's words never reach CLI11.
  split_client_command(args);
  // A plain serve's folder (meta.json + requests.jsonl) is an input wherever a result is.
  bench::set_serve_folder_reader(bench::results_from_serve_folder);

  CLI::App app{"bench-proxy: trustworthy LLM inference benchmarks.", "bench-proxy"};
  app.get_formatter()->column_width(28);
  app.footer(kFooter);
  app.require_subcommand(1);
  bool version = false;
  app.add_flag("--version", version, "print the version, the commit it was built from and the binary's sha256");
  std::map<const CLI::App*, runner> runners;
  for (const auto& c : kCommands) {
    CLI::App* sub = app.add_subcommand(c.name, c.summary);
    sub->get_formatter()->column_width(28);
    runners[sub] = c.define(*sub, full);
  }
  if (args.empty()) {
    std::cerr << app.help();
    return 2;
  }
  std::string which = is_command(args[0]) ? args[0] : "";
  if (which.empty() && args[0].rfind("-", 0) != 0) {
    std::cerr << "bench-proxy: unknown command '" << args[0] << "'\n(see bench-proxy --help)\n";
    return 2;
  }
  try {
    if (args.size() == 1 && args[0] == "--version") {
      std::cout << version_text();
      return 0;
    }
    std::vector<const char*> cargv{argv[0]};
    for (const auto& a : args) cargv.push_back(a.c_str());
    app.parse(static_cast<int>(cargv.size()), const_cast<char**>(cargv.data()));
    for (const CLI::App* sub : app.get_subcommands()) return runners.at(sub)();
    return 2;  // require_subcommand(1) makes this unreachable
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {
      std::cout << app.help();
      return 0;
    }
    std::cerr << "bench-proxy" << (which.empty() ? "" : " " + which) << ": " << e.what() << "\n(see bench-proxy "
              << (which.empty() ? "" : which + " ") << "--help)\n";
    return 2;
  } catch (const usage_error& e) {
    std::cerr << "bench-proxy " << which << ": " << e.what() << "\n(see bench-proxy " << which << " --help)\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "bench-proxy " << which << ": " << e.what() << "\n";
    return 1;
  }
}

}  // namespace bp::cli

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "__engine-shim") == 0) return bp::engine_shim_main(argc, argv);
  // Before any thread exists: SIGINT/SIGTERM are taken synchronously by the main thread only.
  sigset_t set = bp::cli::stop_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return bp::cli::main_cli(argc, argv);
}
