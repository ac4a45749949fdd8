// The `engine_reported` collector (docs/meta-schema.md). Registered in snapshot/collectors/registry.cpp.
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

#include "configs/engine_kinds.hpp"
#include "net/client/http_client.hpp"
#include "snapshot/collectors/common.hpp"

namespace fs = std::filesystem;

namespace bp::snap {

using namespace detail;

json collect_engine_reported(const collect_input& in) {
  json out = json::object();
  const auto* kind = find_engine_kind(in.engine_kind);
  if (!kind) return out;
  for (const auto& path : kind->config_endpoints) {
    std::string err;
    auto r = net::http_fetch("GET", "http://127.0.0.1:" + std::to_string(in.engine_port) + path, "",
                             std::chrono::milliseconds(std::min(remaining_ms(in), 30000)), err);
    if (!r) {
      out[path] = {{"ok", false}, {"error", err}};
      continue;
    }
    json e = {{"status", r->status}};
    if (r->status == 404 || r->status == 405) {
      e["ok"] = false;
      e["missing"] = true;
    } else {
      e["ok"] = r->status / 100 == 2;
      try {
        e["body"] = json::parse(r->body);
      } catch (const std::exception&) {
        e["body_text"] = r->body.substr(0, 64 * 1024);
      }
    }
    out[path] = e;
  }
  return out;
}

}  // namespace bp::snap
