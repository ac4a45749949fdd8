#pragma once
/// Everything bench-proxy knows about one kind of engine, in one table (docs/architecture.md,
/// "Adding an engine kind"): a new kind is one row here plus one shipped YAML under configs/.
#include <string>
#include <vector>

namespace bp {

/// A compile, JIT or autotuning cache an engine uses (docs/meta-schema.md, "caches").
struct cache_def {
  std::string name;     ///< short name in /meta's caches section
  std::string env_var;  ///< the variable that moves it
  std::string default_under_home;  ///< its place relative to HOME when the variable is unset ("": none)
};

/// How to empty an engine's prefix cache (--reset-prefix-cache).
struct prefix_reset {
  std::string method;  ///< "" : the kind has none
  std::string path;    ///< for llama.cpp: per slot, {id} replaced (slots listed by GET /slots)
  bool per_slot = false;
  bool retry_until_idle = false;  ///< SGLang refuses while requests run
  std::string needs_env;          ///< vLLM: served only with VLLM_SERVER_DEV_MODE=1
};

/// One series of the engine's own Prometheus /metrics that bench-proxy reads around a bench.
struct engine_series {
  engine_series(std::string k, std::string n, bool c = true, std::string l = "")
      : key(std::move(k)), name(std::move(n)), counter(c), by_label(std::move(l)) {}
  std::string key;     ///< our name in result.json's engine_metrics ("prompt_tokens")
  std::string name;    ///< the exposition name ("vllm:prompt_tokens_total")
  bool counter = true;  ///< counter: the delta between the scrapes; gauge: the value at the end
  std::string by_label;  ///< "" : summed over label sets; else one value per value of this label
};

struct engine_kind {
  std::string name;            ///< the config's `engine:` value
  std::string health_path;     ///< readiness: 200 when ready (default of the config's health_path)
  std::string python_package;  ///< normalised dist name whose version is the engine's ("" for native)
  bool version_from_binary = false;  ///< native engines: `EXE --version` (llama-server prints on stderr)
  /// The engine's own view of its resolved settings, fetched into /meta's engine_reported.
  std::vector<std::string> config_endpoints;
  /// Fields under engine_reported that differ on every start of the same config (random markers,
  /// timestamps): `meta diff` never reports them. "/props.body.media_marker" = endpoint, then keys.
  std::vector<std::string> volatile_fields;
  std::vector<cache_def> caches;  ///< recorded in /meta's caches section; `caches: fresh` moves them
  prefix_reset reset;
  std::string metrics_path;  ///< the engine's Prometheus endpoint ("" : none)
  std::string metrics_note;  ///< which versions the names hold for, and how to enable them
  std::vector<engine_series> metrics;
  /// The argument the engine needs before it exposes metrics_path ("" : always on); `validate`
  /// warns about a config of this kind without it.
  std::string metrics_flag;
  /// Options whose value is a place the engine WRITES (slot saves, logs, downloads, crash dumps):
  /// the inputs collector never walks them (docs/meta-schema.md, inputs).
  std::vector<std::string> output_options;
  /// The engine's tokenizer endpoint at its root ("" : none), which generated workloads count
  /// tokens with; llama-server's takes {"content"}, the others {"model", "prompt"}.
  std::string tokenize_path;
  bool tokenize_takes_content = false;
};

/// Every known kind, in the order the docs list them.
const std::vector<engine_kind>& engine_kinds_table();

/// The row for `name`, or nullptr.
const engine_kind* find_engine_kind(const std::string& name);

}  // namespace bp
