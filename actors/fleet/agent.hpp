#pragma once
/// The agent side of a fleet: one published actor (fleet_agent_actor, actors/actors.hpp) that
/// checks every request (token, config under --config-root with the expected sha256, workload
/// digest) and hands each accepted job, one at a time, to its runner (a detached actor: the run
/// blocks its thread) that runs it through the same pipeline as a local `run`. The main thread
/// only waits for the agent actor to end; a signal thread turns SIGINT/SIGTERM into a message.
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
/// the coordinator asks or is lost, or the agent is stopped (tear down); `progress` sends a line to
/// the coordinator (from any thread). Called in the runner actor's own thread.
using job_runner = std::function<result(const job& j, const std::string& config_file, const std::string& run_dir,
                                        const std::atomic<bool>& stop, const std::function<void(std::string)>& progress)>;

/// With `insecure`, every line logged in this process from now on says [INSECURE PLAINTEXT].
void set_agent_logging(bool insecure);

/// How the agent spawns its runner, handed the flag it sets to tear the running row down.
using runner_spawner =
    std::function<fleet_runner_actor(caf::local_actor* parent, std::shared_ptr<const std::atomic<bool>> stop)>;

/// Spawns the agent actor (not published: run_agent does that). `runner` empty: the real runner,
/// detached, calling `run`; tests on CAF's test coordinator put a stand-in there.
fleet_agent_local spawn_agent(caf::actor_system& sys, agent_options o, job_runner run, runner_spawner runner = {});

/// Publishes the agent and serves until SIGINT/SIGTERM (blocked in the caller's threads: a
/// thread of its own waits for them and tells the agent, which tears a running row down, sends
/// its result back and ends). `on_listening` gets the bound port. Returns the exit status (0, or
/// 3 when it cannot listen, 2 when the TLS files cannot be loaded).
int run_agent(caf::actor_system& sys, const agent_options& o, const job_runner& runner,
              const std::function<void(std::uint16_t)>& on_listening);

}  // namespace bp::fleet
