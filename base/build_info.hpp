#pragma once
/// What this bench-proxy binary is (`bench-proxy --version`, /meta's bench_proxy section).
#include <string>

#include <nlohmann/json.hpp>

namespace bp::base {

struct build_info {
  std::string version;
  std::string git_commit;  ///< of the source tree it was built from; "unknown" outside git
  bool git_dirty = false;  ///< the tree had uncommitted changes to tracked files
  std::string binary_path;
  std::string binary_sha256;  ///< of /proc/self/exe, computed once
};

const build_info& this_build();
nlohmann::json to_json(const build_info& b);

}  // namespace bp::base
