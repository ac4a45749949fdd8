// bench-proxy's side of the fleet commands: `agent` and `sweep --agents` are handed over, whole
// command line and same process (execv keeps the PID, so whoever started it can still stop it),
// to bench-proxy-fleet beside this binary. bench-proxy itself then never loads CAF's network
// layer and TLS (libcaf_io, libcaf_openssl, libssl: 1.8 MiB of every serving process's memory,
// and code a proxy on a GPU host has no use for; docs/benchmarks.md, "Memory").
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "base/files.hpp"
#include "cmd/bench_flags.hpp"
#include "cmd/cli.hpp"

namespace bp::cli {

namespace {

[[noreturn]] void exec_fleet(const std::vector<std::string>& argv) {
  auto exe = (std::filesystem::path(base::self_exe()).parent_path() / "bench-proxy-fleet").string();
  std::vector<std::string> args = argv;
  if (args.empty()) args.emplace_back();
  args[0] = exe;
  std::vector<char*> cargv;
  for (auto& a : args) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  ::execv(exe.c_str(), cargv.data());
  throw std::runtime_error("cannot start " + exe + " (the fleet's commands run in bench-proxy-fleet, built and "
                           "installed beside bench-proxy): " + std::strerror(errno));
}

}  // namespace

int fleet_sweep_main(const bench_flags&, const std::vector<std::string>& full_argv) { exec_fleet(full_argv); }

runner define_agent(CLI::App& app, const std::vector<std::string>& argv) {
  // Everything after `agent`, --help included, is bench-proxy-fleet's to parse.
  app.prefix_command();
  app.allow_extras();
  app.set_help_flag();
  app.footer("Runs in bench-proxy-fleet (beside this binary): see bench-proxy agent --help there, and docs/fleet.md.");
  return [argv]() -> int { exec_fleet(argv); };
}

}  // namespace bp::cli
