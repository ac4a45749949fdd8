// The `venv` collector (docs/meta-schema.md). Registered in snapshot/collectors/registry.cpp.
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

#include "snapshot/hash_cache.hpp"
#include "snapshot/merkle.hpp"
#include "snapshot/collectors/common.hpp"

namespace fs = std::filesystem;

namespace bp::snap {

using namespace detail;

json collect_venv(const collect_input& in) {
  if (in.venv.empty()) return {{"configured", false}};
  struct stat st {};
  if (::stat(in.venv.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw std::runtime_error("venv " + in.venv + " is not a directory");
  std::unique_ptr<hash_cache> cache;
  if (in.hash_cache) {
    hash_cache_options o;
    o.dir = in.hash_cache_dir;
    o.name = hash_cache::name_for("venv", in.venv);
    cache = std::make_unique<hash_cache>(std::move(o));
  }
  auto t = hash_tree(in.venv, {"bin", "lib", "lib64"}, in.threads, in.deadline, in.progress, cache.get());  // saves it
  // Built in place, the strings moved out of `t` (tens of thousands of entries: initializer
  // lists copied every string twice).
  json files = json::array();
  auto& arr = files.get_ref<json::array_t&>();
  arr.reserve(t.entries.size());
  for (auto& e : t.entries) {
    json o(json::value_t::object);
    auto& m = o.get_ref<json::object_t&>();
    m.emplace("path", std::move(e.path));
    if (e.link) {
      m.emplace("link", std::move(e.target));
    } else {
      m.emplace("size", e.size);
      if (!e.error.empty())
        m.emplace("error", std::move(e.error));
      else
        m.emplace("sha256", std::move(e.sha256));
    }
    arr.push_back(std::move(o));
  }
  json out = {{"configured", true},      {"path", in.venv},         {"merkle_sha256", t.merkle_sha256},
              {"file_count", t.file_count}, {"link_count", t.link_count}, {"total_bytes", t.total_bytes},
              {"error_count", t.error_count}, {"threads", t.threads}, {"elapsed_ms", t.elapsed_ms},
              {"hash_cache", cache ? cache->stats().to_json() : json{{"enabled", false}}}};
  out["files"] = std::move(files);  // not in the list above: an initializer list copies it whole
  return out;
}

}  // namespace bp::snap
