// The collectors, in the order their sections appear in /meta. Adding a collector: one file in
// this folder defining collect_NAME (and, when `meta diff` must treat it specially, its diff
// rules), plus one line here (docs/architecture.md, "Adding a collector").
#include "snapshot/collect.hpp"

namespace bp::snap {

std::function<std::string(const nlohmann::json&)> key_by(std::string field) {
  return [field](const nlohmann::json& e) -> std::string {
    auto it = e.find(field);
    if (it == e.end()) return {};
    return it->is_string() ? it->get<std::string>() : it->dump();
  };
}

std::vector<collector_def> all_collectors() {
  // name, run, diff rules: {compare, {array name -> element key}}
  return {{"command", collect_command, {}},
          // Processes by name: PIDs differ between runs, the set of processes should not.
          {"process_tree", collect_process_tree, {true, {{"processes", key_by("comm")}}}},
          {"host", collect_host, {}},
          {"gpus", collect_gpus,
           {true, {{"gpus", [](const nlohmann::json& g) { return g.contains("uuid") ? key_by("uuid")(g) : key_by("index")(g); }}}}},
          {"lshw", collect_lshw, {}},
          {"engine_version", collect_engine_version, {}},
          {"venv", collect_venv, {true, {{"files", key_by("path")}}}},
          {"inputs", collect_inputs, {true, {{"files", key_by("path")}, {"directories", key_by("path")}}}},
          {"engine_reported", collect_engine_reported, {}},
          // Compile/JIT/autotuning caches: cold, warm or written during this run.
          {"caches", collect_caches, {}},
          // Its bytes hold PIDs and times: recorded, never compared.
          {"engine_log", collect_engine_log, {false, {}}},
          // Libraries by name without version: an upgrade is one change, not a removal and an addition.
          {"loaded_libs", collect_loaded_libs,
           {true, {{"libraries", [](const nlohmann::json& l) { return library_stem(key_by("path")(l)); }}}}}};
}

}  // namespace bp::snap
