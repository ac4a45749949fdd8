// The collectors, in the order their sections appear in /meta. Adding a collector: one file in
// this folder defining collect_NAME (and, when `meta diff` must treat it specially, its diff
// rules), plus one line here (docs/architecture.md, "Adding a collector").
#include "snapshot/collect.hpp"

namespace bp::snap {

std::vector<collector_def> all_collectors() {
  // name, run, diff rules (compare; instance keys never compared; element keys of arrays)
  return {{"command", collect_command, {}},
          {"process_tree", collect_process_tree, {}},
          {"host", collect_host, {}},
          {"gpus", collect_gpus, {}},
          {"lshw", collect_lshw, {}},
          {"engine_version", collect_engine_version, {}},
          {"venv", collect_venv, {}},
          {"inputs", collect_inputs, {}},
          {"engine_reported", collect_engine_reported, {}},
          // Its bytes hold PIDs and times: recorded, never compared.
          {"engine_log", collect_engine_log, {false}},
          {"loaded_libs", collect_loaded_libs, {}}};
}

}  // namespace bp::snap
