#pragma once
/// Everything bench-proxy knows about one kind of engine, in one table (docs/architecture.md,
/// "Adding an engine kind"): a new kind is one row here plus one shipped YAML under configs/.
#include <string>
#include <vector>

namespace bp {

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
};

/// Every known kind, in the order the docs list them.
const std::vector<engine_kind>& engine_kinds_table();

/// The row for `name`, or nullptr.
const engine_kind* find_engine_kind(const std::string& name);

}  // namespace bp
