// The `caches` collector (docs/meta-schema.md, "caches"): the compile, JIT and autotuning caches
// the engine will use (the engine-kind table names them), resolved from the engine's environment,
// scanned before the engine starts and again at snapshot time. Registered in registry.cpp.
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "base/sha256.hpp"
#include "configs/engine_kinds.hpp"
#include "snapshot/collect.hpp"

namespace bp::snap {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string env_value(const std::vector<std::pair<std::string, std::string>>& env, const std::string& k, bool& found) {
  found = false;
  std::string v;
  for (const auto& [name, value] : env)
    if (name == k) {
      v = value;
      found = true;
    }
  return v;
}

/// Names, sizes and mtimes of every file below `dir` (bounded), hashed in sorted order.
json scan_dir(const std::string& dir, std::chrono::steady_clock::time_point deadline) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return {{"exists", false}, {"files", 0}, {"bytes", 0}};
  std::vector<std::string> lines;
  std::uint64_t bytes = 0;
  double newest = 0;
  bool truncated = false;
  for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    if (lines.size() >= 500000 || std::chrono::steady_clock::now() > deadline) {
      truncated = true;
      break;
    }
    struct stat st;
    if (::lstat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    bytes += static_cast<std::uint64_t>(st.st_size);
    double m = static_cast<double>(st.st_mtim.tv_sec) + static_cast<double>(st.st_mtim.tv_nsec) / 1e9;
    newest = std::max(newest, m);
    lines.push_back(fs::relative(it->path(), dir, ec).string() + "\t" + std::to_string(st.st_size) + "\t" +
                    std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec));
  }
  std::sort(lines.begin(), lines.end());
  std::string manifest;
  for (const auto& l : lines) manifest += l + "\n";
  json j = {{"exists", true}, {"files", lines.size()}, {"bytes", bytes},
            {"newest_mtime_unix", lines.empty() ? json(nullptr) : json(newest)},
            {"manifest_sha256", sha256_hex(manifest)}};
  if (truncated) j["truncated"] = true;
  return j;
}

}  // namespace

json scan_caches(const std::string& kind, const std::vector<std::pair<std::string, std::string>>& env,
                 std::chrono::steady_clock::time_point deadline) {
  json out = json::object();
  const engine_kind* k = find_engine_kind(kind);
  if (!k) return out;
  bool has_home = false;
  std::string home = env_value(env, "HOME", has_home);
  if (!has_home || home.empty()) {
    // No HOME in the engine's environment: Python's expanduser falls back to the password entry.
    if (const passwd* pw = ::getpwuid(::getuid())) home = pw->pw_dir;
  }
  for (const auto& c : k->caches) {
    bool set = false;
    std::string path = env_value(env, c.env_var, set);
    std::string source = "env";
    if (!set || path.empty()) {
      if (c.default_under_home.empty() || home.empty()) {
        out[c.name] = {{"var", c.env_var}, {"path", nullptr}, {"source", "unset: nothing persisted"}};
        continue;
      }
      path = (fs::path(home) / c.default_under_home).string();
      source = "default under HOME (" + home + ")";
    }
    json j = {{"var", c.env_var}, {"path", path}, {"source", source}};
    j.update(scan_dir(path, deadline));
    out[c.name] = j;
  }
  return out;
}

json collect_caches(const collect_input& in) {
  json now = scan_caches(in.engine_kind, in.engine_env, in.deadline);
  json out = json::object();
  for (auto it = now.begin(); it != now.end(); ++it) {
    json c = {{"var", it.value()["var"]}, {"path", it.value()["path"]}, {"source", it.value()["source"]}};
    if (in.caches_injected.contains(it.key())) c["injected"] = true;  // caches: fresh
    if (it.value()["path"].is_null()) {
      c["state"] = "none";
      out[it.key()] = c;
      continue;
    }
    json before = in.caches_before.contains(it.key()) ? in.caches_before[it.key()] : json();
    json after = it.value();
    for (const char* k : {"var", "path", "source"}) {
      after.erase(k);
      if (before.is_object()) before.erase(k);
    }
    bool was_cold = !before.is_object() || !before.value("exists", false) || before.value("files", 0) == 0;
    bool changed = !before.is_object() || before.value("manifest_sha256", "") != after.value("manifest_sha256", "");
    if (was_cold)
      c["state"] = after.value("files", 0) > 0 ? "written during this run (was cold)" : "cold";
    else
      c["state"] = changed ? "written during this run" : "warm";
    c["before_start"] = before;
    c["at_snapshot"] = after;
    out[it.key()] = c;
  }
  return out;
}

}  // namespace bp::snap
