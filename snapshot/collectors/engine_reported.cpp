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
#include "base/json_read.hpp"
#include "snapshot/collectors/common.hpp"

namespace fs = std::filesystem;

namespace bp::snap {

using namespace detail;

/// What one endpoint's answer may cost: read at most this much (an endless answer is an error),
/// keep at most base::engine_reported_bytes of it, nested at most base::engine_reported_depth
/// (docs/meta-schema.md, "Limits on JSON input"). Beyond that the section says what was cut.
constexpr std::uint64_t kMaxAnswerBytes = 16u << 20;

json collect_engine_reported(const collect_input& in) {
  json out = json::object();
  const auto* kind = find_engine_kind(in.engine_kind);
  if (!kind) return out;
  for (const auto& path : kind->config_endpoints) {
    std::string err = "no way to ask the engine (collect_input.engine_get is not set)";
    std::optional<collect_input::engine_answer> r;
    if (in.engine_get) r = in.engine_get(path, std::chrono::milliseconds(std::min(remaining_ms(in), 30000)), kMaxAnswerBytes, err);
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
      std::string origin = "GET " + path;
      if (r->body.size() > base::engine_reported_bytes) {
        e["truncated"] = "the answer of " + std::to_string(r->body.size()) + " bytes is more than the " +
                         std::to_string(base::engine_reported_bytes) + " kept: not recorded";
        e["bytes"] = r->body.size();
      } else {
        std::size_t where = 0;
        if (base::json_nesting_depth(r->body, base::engine_reported_depth, &where) > base::engine_reported_depth) {
          auto [line, column] = base::line_column(r->body, where);
          e["truncated"] = "the answer is nested deeper than " + std::to_string(base::engine_reported_depth) +
                           " levels (at line " + std::to_string(line) + ", column " + std::to_string(column) +
                           "): not recorded";
          e["bytes"] = r->body.size();
        } else {
          std::string perr;
          if (auto j = base::try_parse_json(r->body, origin, perr, base::engine_reported_depth))
            e["body"] = std::move(*j);
          else
            e["body_text"] = base::printable_utf8(r->body.substr(0, 64 * 1024));
        }
      }
    }
    out[path] = e;
  }
  return out;
}

}  // namespace bp::snap
