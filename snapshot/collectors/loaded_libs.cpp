// The `loaded_libs` collector (docs/meta-schema.md). Registered in snapshot/collectors/registry.cpp.
#include <cctype>
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

#include "base/parallel.hpp"
#include "base/sha256.hpp"
#include "snapshot/hash_cache.hpp"
#include "snapshot/libs.hpp"
#include "snapshot/proc.hpp"
#include "snapshot/collectors/common.hpp"

namespace fs = std::filesystem;

namespace bp::snap {

using namespace detail;

json collect_loaded_libs(const collect_input& in) {
  struct lib {
    std::set<int> pids;
    bool deleted = false;
  };
  std::map<std::string, lib> libs;
  std::vector<std::string> errors;
  for (int pid : engine_tree(in)) {
    auto maps = read_file(in.proc_root + "/" + std::to_string(pid) + "/maps", 64u << 20);
    if (!maps) {
      errors.push_back("PID " + std::to_string(pid) + ": cannot read maps: " + std::strerror(errno));
      continue;
    }
    std::istringstream is(*maps);
    std::string line;
    while (std::getline(is, line)) {
      auto m = parse_maps_line(line);
      if (!m || m->inode == 0 || m->path.empty() || m->path[0] != '/') continue;
      if (!is_shared_object(m->path)) continue;
      auto& l = libs[m->path];
      l.pids.insert(pid);
      l.deleted = l.deleted || m->deleted;
    }
  }
  std::string venv_real;
  if (!in.venv.empty()) {
    std::error_code ec;
    venv_real = fs::weakly_canonical(in.venv, ec).string();
  }
  std::vector<std::string> paths;
  for (const auto& [p, l] : libs) paths.push_back(p);
  std::vector<json> rows(paths.size());
  std::unique_ptr<hash_cache> cache;
  if (in.hash_cache) {
    hash_cache_options o;
    o.dir = in.hash_cache_dir;
    o.name = "loaded_libs";
    cache = std::make_unique<hash_cache>(std::move(o));
  }
  std::atomic<std::size_t> next{0};
  std::atomic<bool> no_buffer{false};
  const int threads = base::thread_count(in.threads);
  const int per_thread = sha256_lanes_per_thread(threads);  // files open at once per thread (descriptors)
  auto work = [&] {
    // Four libraries at a time per thread (base/sha256_lanes.hpp), through the cache.
    auto done = [&](std::size_t k, std::string&& hex, std::uint64_t size, std::string&& err) {
      json& r = rows[k];
      if (!err.empty()) {
        r["error"] = std::move(err);
      } else {
        r["size"] = size;
        r["sha256"] = std::move(hex);
      }
    };
    std::unique_ptr<cached_file_lanes> lanes;
    try {
      lanes = std::make_unique<cached_file_lanes>(cache.get(), done, read_buffer::default_size, per_thread);
      lanes->set_deadline(in.deadline);
    } catch (const std::exception&) {
      no_buffer = true;
      return;
    }
    for (std::size_t k; (k = next.fetch_add(1)) < paths.size();) {
      const std::string& p = paths[k];
      const lib& l = libs[p];
      json r = {{"path", p}, {"pids", std::vector<int>(l.pids.begin(), l.pids.end())}};
      std::string v = version_from_filename(p);
      r["version"] = v.empty() ? json(nullptr) : json(v);
      bool in_venv = !in.venv.empty() && (p.rfind(in.venv + "/", 0) == 0 || (!venv_real.empty() && p.rfind(venv_real + "/", 0) == 0));
      r["in_venv"] = in_venv;
      if (l.deleted) {
        r["deleted"] = true;
        // The file on disk is not the one mapped: hash what the process maps instead.
        r["note"] = "mapped file was replaced or deleted on disk";
      }
      rows[k] = std::move(r);
      struct stat st {};
      if (::stat(p.c_str(), &st) != 0) {
        done(k, {}, 0, p + ": " + std::strerror(errno));
        continue;
      }
      lanes->add(p, k, stamp_of(st));
      if (lanes->late()) break;
    }
    lanes->finish();
  };
  base::run_parallel(threads, work);
  if (no_buffer) throw std::runtime_error("no memory for a read buffer while hashing loaded libraries");
  check_deadline(in, "hashing loaded libraries");
  if (cache) cache->save();
  json j = {{"count", rows.size()}, {"hash_cache", cache ? cache->stats().to_json() : json{{"enabled", false}}},
            {"libraries", rows}};
  if (!errors.empty()) j["errors"] = errors;
  return j;
}

std::string library_stem(const std::string& path) {
  auto slash = path.rfind('/');
  std::string b = slash == std::string::npos ? path : path.substr(slash + 1);
  auto so = b.find(".so");
  std::string stem = so == std::string::npos ? b : b.substr(0, so + 3);
  // libLLVM-15.so -> libLLVM.so
  auto dash = stem.rfind('-');
  if (dash != std::string::npos && dash + 1 < stem.size() && std::isdigit(static_cast<unsigned char>(stem[dash + 1])))
    stem = stem.substr(0, dash) + ".so";
  return stem;
}

}  // namespace bp::snap
