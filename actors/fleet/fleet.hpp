#pragma once
/// Fleet: one sweep across many GPU hosts over CAF 0.17's own network layer (libcaf_io's
/// middleman, libcaf_openssl for TLS). An agent on each host publishes one actor; the coordinator
/// (`sweep --agents FILE`) dispatches configs to free agents that match their placement, and keeps
/// every file locally in the layout of a local sweep. Supervision across hosts: docs/fleet.md.
/// The message types, atoms and typed interfaces are actors/actors.hpp's (the one protocol
/// header); configure_network announces the ones that travel, on both nodes.
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "actors/actors.hpp"

namespace bp::fleet {

struct tls_options {
  std::string cert, key, ca;
  bool enabled() const { return !cert.empty() || !key.empty() || !ca.empty(); }
};

/// Loads the middleman (and the OpenSSL manager with `tls`), announces the message types and
/// sets the heartbeat so a lost peer is seen in seconds (both nodes use the same settings).
void configure_network(caf::actor_system_config& cfg, const tls_options& tls);

/// Constant-time comparison (CRYPTO_memcmp) of a presented token with the expected one.
bool token_equal(const std::string& presented, const std::string& expected);

/// Checks a job against the agent's rules; "" when it may run (then `resolved` is the config
/// file's absolute path), else the reason: a wrong token, a path that is absolute or leaves the
/// root ("..", or a symlink out of it), a missing file, a sha256 that differs, a workload whose
/// bytes do not match their sha256.
std::string check_job(const job& j, const std::string& config_root, const std::string& token, std::string& resolved);

/// Test-only fault hooks (docs/fault-injection.md, "Fleet faults"): when BENCH_PROXY_FAULTS names
/// `fleet:HOOK=throw`, the first call with that hook in this process throws "injected fault
/// (fleet:HOOK)"; every later call does nothing. Unset, nothing happens.
void fault_point(const char* hook);

/// What is wrong with the shape of a result.json an agent sent back, "" when nothing: the fields
/// the sweep's aggregation reads (valid; summary and its headline, counts and medians; warnings)
/// must be there with the right types, so a malformed answer fails its row instead of the sweep.
std::string result_shape_problem(const nlohmann::json& r);

/// An agent as the coordinator's --agents file names it.
struct agent_entry {
  std::string name, host;
  std::uint16_t port = 0;
  std::map<std::string, std::string> labels;
};
/// Reads the agents file (YAML: `agents: [{name, address: HOST:PORT, labels: {k: v}}]`).
/// Throws std::runtime_error naming file:line and the key.
std::vector<agent_entry> load_agents(const std::string& path);

/// Do `labels` satisfy `placement` (every key present with the same value)?
bool matches(const std::map<std::string, std::string>& placement, const std::map<std::string, std::string>& labels);

}  // namespace bp::fleet
