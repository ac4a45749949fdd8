// The `lshw` collector (docs/meta-schema.md). Registered in snapshot/collectors/registry.cpp.
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

#include "snapshot/gpu.hpp"
#include "base/json_read.hpp"
#include "snapshot/collectors/common.hpp"

namespace fs = std::filesystem;

namespace bp::snap {

using namespace detail;

json collect_lshw(const collect_input& in) {
  std::string out;
  try {
    out = run_program({in.lshw, "-json", "-quiet"}, std::chrono::milliseconds(std::min(remaining_ms(in), 120000)));
  } catch (const std::exception& e) {
    return {{"available", false}, {"reason", e.what()}};
  }
  try {
    return {{"available", true}, {"data", base::parse_json(out, "lshw -json")}};
  } catch (const std::exception& e) {
    return {{"available", false}, {"reason", std::string("unparsable lshw output: ") + e.what()}};
  }
}

}  // namespace bp::snap
