// --client -- COMMAND ARGS... (run, sweep, try, bisect): any client as the measurement (issue 31;
// actors/campaign/client_run.hpp, docs/clients.md).
#include <vector>

#include "cmd/bench_flags.hpp"
#include "cmd/cli.hpp"

namespace bp::cli {

std::vector<std::string>& client_tail() {
  static std::vector<std::string> tail;
  return tail;
}

bool split_client_command(std::vector<std::string>& args) {
  if (args.empty()) return false;
  const std::string& which = args[0];
  if (which != "run" && which != "sweep" && which != "try" && which != "bisect") return false;
  for (std::size_t i = 1; i < args.size(); ++i)
    if (args[i] == "--") {
      client_tail().assign(args.begin() + static_cast<long>(i) + 1, args.end());
      args.resize(i);
      return true;
    }
  return false;
}

void add_client_options(CLI::App& app, bench_flags& f) {
  const char* g = "Client";
  app.add_flag("--client", f.client,
               "the command after '--' is the measurement instead of bench: it gets {url} {model} {queries} {run_dir} "
               "in its arguments, BENCH_PROXY_URL and BENCH_PROXY_MODEL in its environment; the result comes from the "
               "proxy's records of its requests (docs/clients.md)")
      ->group(g);
  app.add_option("--client-timeout", f.client_timeout_s,
                 "seconds the client may run; then its process group is killed and the result is invalid (default 3600)")
      ->type_name("S")
      ->check(finite_in(0.001, 86400))
      ->group(g);
  // With --client the workload is optional (bench_options): the client sends what it sends;
  // --queries, when given, names the file it reads through {queries}, for comparability.
}

measure::client_options client_options_of(const bench_flags& f) {
  measure::client_options c;
  c.timeout_s = f.client_timeout_s;
  const auto& tail = client_tail();
  if (!f.client) {
    if (!tail.empty())
      throw usage_error("the arguments after '--' (" + tail[0] + " ...) are a client's command: add --client");
    return c;
  }
  if (!f.agents.empty()) throw usage_error("--client runs the client on this host: not with --agents");
  if (f.o.generated.any())
    throw usage_error("--client: generated workloads (--synthetic, --sharegpt, --prefix-groups, --sessions, --trace) "
                      "are bench's; give the client's workload file with --queries FILE (it reads {queries})");
  c.command = tail;
  if (auto why = measure::client_problem(c.command); !why.empty()) throw usage_error(why);
  return c;
}

}  // namespace bp::cli
