// The fleet's command-line options, parsed by both binaries: bench-proxy checks a
// `sweep --agents` command line before handing it to bench-proxy-fleet (fleet_exec.cpp), which
// parses it again and runs it (fleet_cmd.cpp).
#include "cmd/bench_flags.hpp"
#include "cmd/cli.hpp"

namespace bp::cli {

void add_tls_options(CLI::App& app, bench_flags& f) {
  const char* g = "Fleet";
  app.add_option("--tls-cert", f.tls_cert, "this node's certificate (PEM)")->type_name("FILE")->group(g);
  app.add_option("--tls-key", f.tls_key, "its private key (PEM)")->type_name("FILE")->group(g);
  app.add_option("--tls-ca", f.tls_ca, "the CA that signed every node's certificate (verifies the peer)")
      ->type_name("FILE")
      ->group(g);
}

void add_fleet_options(CLI::App& app, bench_flags& f) {
  const char* g = "Fleet";
  app.add_option("--agents", f.agents,
                 "run the sweep on these agents (YAML: agents: [{name, address: HOST:PORT, labels: {k: v}}]); "
                 "configs are named by their path, relative to each agent's --config-root")
      ->type_name("FILE")
      ->group(g);
  app.add_option("--token-file", f.token_file, "the fleet's shared token (mode 600)")->type_name("FILE")->group(g);
  app.add_flag("--retry-elsewhere", f.retry_elsewhere, "a row whose agent is lost runs again on another matching agent")
      ->group(g);
  add_tls_options(app, f);
}

}  // namespace bp::cli
