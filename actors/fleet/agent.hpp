#pragma once
/// The agent side of a fleet: one published actor that checks every request (token, config
/// under --config-root with the expected sha256, workload digest) and hands accepted jobs to the
/// thread that runs them one at a time through the same pipeline as a local `run`.
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "actors/fleet/fleet.hpp"
#include "actors/fleet/guard.hpp"

namespace bp::fleet {

struct agent_options {
  std::string name;         ///< defaults to the host name
  std::string listen_host;  ///< numeric address to bind
  std::uint16_t port = 0;
  std::string config_root, run_root, token;
  std::vector<std::string> labels;  ///< k=v
  std::vector<std::string> gpus;
  bool insecure = false;  ///< plaintext off loopback (--insecure-plaintext): said in every log line and result
  tls_options tls;
  guard_limits limits;  ///< what a peer may cost before and after it proved the token
};

/// Runs one accepted job: `config_file` (checked), into `run_dir` (fresh); `stop` turns true when
/// the coordinator asks or is lost (tear down); `progress` sends a line to the coordinator.
using job_runner = std::function<result(const job& j, const std::string& config_file, const std::string& run_dir,
                                        const std::atomic<bool>& stop, const std::function<void(std::string)>& progress)>;

/// With `insecure`, every line logged in this process from now on says [INSECURE PLAINTEXT].
void set_agent_logging(bool insecure);

/// Publishes the agent and serves until SIGINT/SIGTERM (blocked in the caller's threads) or
/// `quit`. `on_listening` gets the bound port. Returns the exit status (0, or 3 when it cannot
/// listen, 2 when the TLS files cannot be loaded).
int run_agent(caf::actor_system& sys, const agent_options& o, const job_runner& runner,
              const std::function<void(std::uint16_t)>& on_listening);

}  // namespace bp::fleet
