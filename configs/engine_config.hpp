#pragma once
/// The engine config model: what one engine run is. Pure logic (no actors, no sockets).
///
/// A config is loaded from YAML, interpolated from bench-proxy's own environment, and validated
/// strictly: unknown keys are errors, and every error names the file, line and column.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/redact.hpp"

namespace bp {

/// A string that may be a secret. Secrets never leave bench-proxy in plaintext: wherever they are
/// shown they become {"redacted": true, "hmac_sha256": "<hex>", "key_id": "<hex>"} (base/redact.hpp).
struct config_value {
  std::string value;
  bool secret = false;
};

struct engine_config {
  std::string source_path;  ///< absolute path of the YAML file
  std::string repo_root;    ///< value of $REPO_ROOT used for this file
  std::string description;
  std::string engine;  ///< vllm | sglang | trt-llm | llama.cpp | mock
  std::string cmd;     ///< as written, after interpolation
  std::vector<config_value> args;
  std::string cwd;   ///< absolute; defaults to $REPO_ROOT
  std::string venv;  ///< absolute or empty
  int warmup = 3;
  std::vector<std::pair<std::string, config_value>> env;  ///< in file order
  std::string health_path;        ///< readiness endpoint; default per engine kind
  double ready_timeout_s = 900;   ///< model loads take minutes
  double stop_grace_s = 15;       ///< SIGTERM -> SIGKILL of the engine's process group
  double drain_timeout_s = 10;    ///< in-flight streams may finish within this on shutdown
  double snapshot_timeout_s = 120;  ///< deadline of each snapshot collector
  std::string model;              ///< model name for warmup requests; empty: first of /v1/models
  std::map<std::string, std::string> placement;  ///< `placement:` labels a fleet agent must have
  bool caches_fresh = false;      ///< `caches: fresh`: new empty cache directories under the run folder
  /// `hash_cache: off`: the venv and loaded_libs collectors read every file instead of trusting
  /// the verified hash cache (snapshot/hash_cache.hpp; on by default; --rehash does the same).
  bool hash_cache = true;
  /// Where the values of `cmd`, `cwd` and `venv` are written (1-based line, column; absent when
  /// the key is not in the file), so errors found later (check_launchable) name them too.
  std::map<std::string, std::pair<int, int>> value_at;

  /// Value of the YAML env's PATH, or empty when the env has none.
  std::string env_path() const;
  /// Every secret plaintext in this config (for scrubbing logs and /proc reads).
  std::vector<std::string> secret_values() const;
  /// The redaction policy for everything this config's run writes or prints.
  base::redactor redactor() const;
  /// argv[1..] as plain strings (secrets included: for the child only).
  std::vector<std::string> plain_args() const;
};

/// Why this config's engine cannot empty its prefix cache on request ("key: reason", as
/// config errors name their key), or "" when it can (--reset-prefix-cache; the engine-kind table).
std::string prefix_reset_problem(const engine_config& cfg);

struct config_error {
  std::string file;
  int line = 0;    ///< 1-based; 0 when unknown
  int column = 0;  ///< 1-based; 0 when unknown
  std::string key;
  std::string message;
  std::string str() const;  ///< "file:line:col: key: message"
};

struct load_result {
  std::optional<engine_config> config;
  std::vector<config_error> errors;  ///< every error of the file, not only the first
};

using env_map = std::map<std::string, std::string>;

/// The current process environment as a map.
env_map process_env();

/// The largest config file read (a config is a page of YAML; anything near this is a mistake).
inline constexpr std::uint64_t max_config_bytes = 1u << 20;

/// Loads and validates one config file. `env` is bench-proxy's own environment, the only source of
/// $VAR values. Never throws for bad input: problems come back as errors.
load_result load_config(const std::string& path, const env_map& env);

/// The same for text already read; `path` names it in errors and anchors relative paths.
load_result load_config_text(const std::string& text, const std::string& path, const env_map& env);

/// Checks that can only be made on the machine that launches the engine: cmd found on the
/// YAML env's PATH and executable, cwd and venv exist. Returns the resolved executable path.
std::optional<std::string> resolve_command(const engine_config& c, std::string& why);
std::vector<config_error> check_launchable(const engine_config& c);

/// Resolved config as JSON, secrets redacted. Adds "resolved_cmd" (path or null).
nlohmann::json to_json(const engine_config& c);

/// Interpolates $VAR, ${VAR} and $$ in `in`. On an unset variable or a stray '$', returns
/// nullopt and sets `error`.
std::optional<std::string> interpolate(const std::string& in, const env_map& env, std::string& error);

/// The engine kinds bench-proxy knows, and their readiness path.
bool known_engine(const std::string& kind);
std::string default_health_path(const std::string& kind);
std::vector<std::string> engine_kinds();

}  // namespace bp
