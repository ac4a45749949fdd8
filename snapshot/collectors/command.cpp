// The `command` collector (docs/meta-schema.md). Registered in snapshot/collectors/registry.cpp.
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

json collect_command(const collect_input& in) {
  std::string err;
  auto p = read_proc(in.proc_root, in.engine_pid, err);
  if (!p) throw std::runtime_error(err);
  json j = to_json(*p);
  return j;
}

}  // namespace bp::snap
