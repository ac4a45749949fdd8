// The `process_tree` collector (docs/meta-schema.md). Registered in snapshot/collectors/registry.cpp.
#include "snapshot/collect.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "snapshot/proc.hpp"
#include "snapshot/collectors/common.hpp"

namespace fs = std::filesystem;

namespace bp::snap {

using namespace detail;

json collect_process_tree(const collect_input& in) {
  json procs = json::array();
  std::vector<std::string> errors;
  for (int pid : engine_tree(in)) {
    std::string err;
    if (auto p = read_proc(in.proc_root, pid, err))
      procs.push_back(to_json(*p));
    else
      errors.push_back(err);
  }
  json j = {{"root_pid", in.engine_pid}, {"supervisor_pid", in.shim_pid}, {"count", procs.size()}, {"processes", procs}};
  if (!errors.empty()) j["errors"] = errors;
  return j;
}

}  // namespace bp::snap
