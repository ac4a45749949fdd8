#pragma once
/// Fleet: one sweep across many GPU hosts over CAF 0.17's own network layer (libcaf_io's
/// middleman, libcaf_openssl for TLS). An agent on each host publishes one actor; the coordinator
/// (`sweep --agents FILE`) dispatches configs to free agents that match their placement, and keeps
/// every file locally in the layout of a local sweep. Supervision across hosts:
/// docs/architecture.md, "Fleet". Message types are announced here (add_fleet_types) with their
/// `inspect` overloads, on both nodes.
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

namespace bp::fleet {

/// One config to run on an agent: named by its path under the agent's --config-root and the
/// sha256 of the content the coordinator expects; the workload travels as data.
struct job {
  std::string token;
  std::string config_path;    ///< relative, under the agent's --config-root
  std::string config_sha256;  ///< of the file's bytes, as the coordinator has them
  std::string workload_name;  ///< file name (its extension picks CSV or JSONL)
  std::string workload;       ///< the workload's bytes
  std::string workload_sha256;
  std::vector<std::string> bench_args;  ///< bench options, as on the command line (-n 20 ...)
  std::string row;                      ///< e.g. "2_vllm-fp8/trial-1": the agent's folder name
};

/// What an agent says of itself.
struct hello {
  std::string agent, host, version;
  std::vector<std::string> labels;  ///< k=v, from --label
  std::vector<std::string> gpus;    ///< "NAME" per GPU nvidia-smi lists (empty without one)
  std::int64_t clock_unix_us = 0;   ///< its wall clock when it answered
  bool insecure = false;            ///< --insecure-plaintext off loopback
};

/// A finished (or refused, or failed) job: the run folder's files travel back by name.
struct result {
  bool ok = false;      ///< the run produced a result (valid or not)
  std::string error;    ///< why not (refusal, engine failure...)
  std::string agent, host;
  bool insecure = false;
  std::vector<std::string> files;  ///< name, content, name, content, ...
  std::string agent_run_dir;       ///< where the agent keeps its own copy
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, job& x) {
  return f(caf::meta::type_name("bp_fleet_job"), x.token, x.config_path, x.config_sha256, x.workload_name, x.workload,
           x.workload_sha256, x.bench_args, x.row);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, hello& x) {
  return f(caf::meta::type_name("bp_fleet_hello"), x.agent, x.host, x.version, x.labels, x.gpus, x.clock_unix_us,
           x.insecure);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, result& x) {
  return f(caf::meta::type_name("bp_fleet_result"), x.ok, x.error, x.agent, x.host, x.insecure, x.files,
           x.agent_run_dir);
}

using hello_atom = caf::atom_constant<caf::atom("fhello")>;        // coordinator -> agent: (token)
using run_atom = caf::atom_constant<caf::atom("frun")>;            // (job, reply_to)
using progress_atom = caf::atom_constant<caf::atom("fprogress")>;  // agent -> reply_to: (row, text)
using result_atom = caf::atom_constant<caf::atom("fresult")>;      // agent -> reply_to: (row, result)
using stop_atom = caf::atom_constant<caf::atom("fstop")>;          // coordinator -> agent: (token)

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
