// The `inputs` collector (docs/meta-schema.md). Registered in snapshot/collectors/registry.cpp.
#include "snapshot/collect.hpp"
#include "configs/engine_kinds.hpp"

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

#include "base/sha256.hpp"
#include "snapshot/proc.hpp"
#include "snapshot/collectors/common.hpp"

namespace fs = std::filesystem;

namespace bp::snap {

using namespace detail;

namespace {

bool looks_like_repo_id(const std::string& a) {
  auto slash = a.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 >= a.size() || a.find('/', slash + 1) != std::string::npos)
    return false;
  for (char c : a)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' || c == '/')) return false;
  return a[0] != '.' && a.find("..") == std::string::npos;
}

}  // namespace

json hf_models(const collect_input& in, const proc_info& p) {
  // A model named by its Hugging Face repo id resolves through the hub cache the engine uses
  // (HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub, from the engine's own env).
  std::string hub, home;
  std::string hf_home, hf_hub_cache;
  for (const auto& [k, v] : p.env) {
    if (k == "HF_HUB_CACHE") hf_hub_cache = v;
    if (k == "HF_HOME") hf_home = v;
    if (k == "HOME") home = v;
  }
  hub = !hf_hub_cache.empty() ? hf_hub_cache
        : !hf_home.empty()    ? hf_home + "/hub"
        : !home.empty()       ? home + "/.cache/huggingface/hub"
                              : "";
  json models = json::array();
  std::set<std::string> seen;
  for (std::size_t i = 1; i < p.argv.size(); ++i) {
    std::string a = p.argv[i];
    if (auto eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string::npos) a = a.substr(eq + 1);
    if (!looks_like_repo_id(a) || !seen.insert(a).second) continue;
    std::error_code ec;
    if (fs::exists(fs::path(p.cwd) / a, ec)) continue;  // a real relative path: an input file or folder
    std::string repo_dir = hub + "/models--" + a.substr(0, a.find('/')) + "--" + a.substr(a.find('/') + 1);
    json m = {{"arg_index", i}, {"repo_id", a}, {"hub_cache", hub.empty() ? json(nullptr) : json(hub)}};
    if (hub.empty() || !fs::is_directory(repo_dir, ec)) {
      m["resolved"] = false;
      m["reason"] = hub.empty() ? "no HF_HUB_CACHE, HF_HOME or HOME in the engine's environment"
                                : "not in the hub cache (" + repo_dir + "): the engine may download it";
      models.push_back(m);
      continue;
    }
    auto ref = read_file(repo_dir + "/refs/main", 4096);
    std::string rev = ref ? trim(*ref) : "";
    m["revision"] = rev.empty() ? json(nullptr) : json(rev);
    std::string snap = repo_dir + "/snapshots/" + rev;
    if (rev.empty() || !fs::is_directory(snap, ec)) {
      m["resolved"] = false;
      m["reason"] = rev.empty() ? "no refs/main in " + repo_dir : "snapshot " + snap + " is missing";
      models.push_back(m);
      continue;
    }
    m["resolved"] = true;
    m["snapshot"] = snap;
    json files = json::array();
    std::uint64_t total = 0;
    for (auto it = fs::recursive_directory_iterator(snap, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      check_deadline(in, "hashing a model snapshot");
      if (!fs::is_regular_file(it->path(), ec)) continue;  // follows the links into blobs/
      std::string rel = it->path().lexically_relative(snap).string();  // the link's name, not its blob
      std::string target = fs::canonical(it->path(), ec).string();
      std::string blob = fs::path(target).filename().string();
      auto size = fs::file_size(it->path(), ec);
      total += size;
      json f = {{"path", rel}, {"size", size}};
      bool blob_is_sha256 = blob.size() == 64 && std::all_of(blob.begin(), blob.end(), [](char c) {
                              return std::isxdigit(static_cast<unsigned char>(c));
                            });
      if (blob_is_sha256 && size > (64u << 20)) {
        // The hub stores large (LFS) files under their sha256: trusted rather than re-reading GBs.
        f["sha256"] = blob;
        f["sha256_source"] = "hub blob name";
      } else {
        std::string hex, herr;
        std::uint64_t sz = 0;
        if (sha256_file(target, hex, sz, herr)) {
          f["sha256"] = hex;
          f["sha256_source"] = "hashed";
        } else {
          f["error"] = herr;
        }
      }
      files.push_back(f);
    }
    m["files"] = files;
    m["total_bytes"] = total;
    models.push_back(m);
  }
  return models;
}

namespace {

/// Per engine kind, the options whose value is a place the engine WRITES (slot saves, logs,
/// download and crash-dump folders): never an input, never walked (docs/meta-schema.md, inputs).
/// The engine-kind table says which (configs/engine_kinds.cpp).
const std::vector<std::string>& output_options(const std::string& kind) {
  static const std::vector<std::string> none;
  const engine_kind* k = find_engine_kind(kind);
  return k ? k->output_options : none;
}

/// What one inputs section may list of all its directories together (docs/meta-schema.md).
constexpr std::size_t kMaxListedEntries = 10000;
constexpr std::size_t kMaxListedNameBytes = 1u << 20;

/// A world-writable folder with the sticky bit (/tmp, /var/tmp, /dev/shm): everyone's scratch space.
bool shared_scratch(const fs::path& dir) {
  struct stat st{};
  if (::stat(dir.c_str(), &st) != 0) return false;
  return S_ISDIR(st.st_mode) && (st.st_mode & S_ISVTX) && (st.st_mode & S_IWOTH);
}

}  // namespace

json collect_inputs(const collect_input& in) {
  std::string err;
  auto p = read_proc(in.proc_root, in.engine_pid, err);
  if (!p) throw std::runtime_error(err);
  json files = json::array(), dirs = json::array(), not_walked = json::array();
  std::set<std::string> seen;
  const auto& outputs = output_options(in.engine_kind);
  auto is_output = [&](const std::string& opt) {
    return std::find(outputs.begin(), outputs.end(), opt) != outputs.end();
  };
  std::size_t entries_left = kMaxListedEntries, name_bytes_left = kMaxListedNameBytes;
  for (std::size_t i = 1; i < p->argv.size(); ++i) {
    std::string a = p->argv[i];
    std::string option;  // the option this value belongs to ("" : a positional argument)
    if (a.rfind("-", 0) == 0) {
      auto eq = a.find('=');
      if (eq == std::string::npos) continue;
      option = a.substr(0, eq);
      a = a.substr(eq + 1);
    } else if (i > 1 && p->argv[i - 1].rfind("-", 0) == 0 && p->argv[i - 1].find('=') == std::string::npos) {
      option = p->argv[i - 1];
    }
    if (a.empty() || a.size() > 4096) continue;
    fs::path path(a);
    if (path.is_relative()) path = fs::path(p->cwd) / path;
    std::error_code ec;
    auto canon = fs::weakly_canonical(path, ec);
    if (ec) continue;
    std::string cs = canon.string();
    if (cs == "/" || !seen.insert(cs).second) continue;
    if (!option.empty() && is_output(option)) {
      not_walked.push_back({{"arg_index", i}, {"arg", p->argv[i]}, {"option", option}, {"path", cs},
                            {"reason", in.engine_kind + "'s " + option + " names where the engine writes: an output, not an input"}});
      continue;
    }
    if (fs::is_regular_file(canon, ec)) {
      std::string hex;
      std::uint64_t size = 0;
      std::string herr;
      json f = {{"arg_index", i}, {"arg", p->argv[i]}, {"path", cs}};
      if (sha256_file(cs, hex, size, herr)) {
        f["size"] = size;
        f["sha256"] = hex;
        if (size <= 64 * 1024) {
          auto content = read_file(cs, 64 * 1024);
          bool text = content && std::none_of(content->begin(), content->end(), [](char c) { return c == '\0'; });
          if (text) {
            try {
              json probe = *content;
              (void)probe.dump();  // must be valid UTF-8 to live in JSON
              f["content"] = *content;
            } catch (const std::exception&) {
            }
          }
        }
      } else {
        f["error"] = herr;
      }
      files.push_back(f);
    } else if (fs::is_directory(canon, ec)) {
      if (shared_scratch(canon)) {
        not_walked.push_back({{"arg_index", i}, {"arg", p->argv[i]}, {"option", option}, {"path", cs},
                              {"reason", "a world-writable folder with the sticky bit (shared scratch space, e.g. /tmp): "
                                         "its files are other programs', not inputs"}});
        continue;
      }
      json d = {{"arg_index", i}, {"arg", p->argv[i]}, {"path", cs}};
      // Hugging Face cache snapshot: .../models--ORG--NAME/snapshots/REV
      std::string parent = canon.parent_path().filename().string();
      std::string grand = canon.parent_path().parent_path().filename().string();
      if (parent == "snapshots" && grand.rfind("models--", 0) == 0) {
        std::string repo = grand.substr(8);
        for (std::size_t pos; (pos = repo.find("--")) != std::string::npos;) repo.replace(pos, 2, "/");
        d["hf_repo"] = repo;
        d["hf_revision"] = canon.filename().string();
      }
      json list = json::array();
      std::uint64_t total = 0;
      for (auto it = fs::recursive_directory_iterator(canon, fs::directory_options::skip_permission_denied, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        check_deadline(in, "listing an input directory");
        const auto& ent = *it;
        std::string rel = fs::relative(ent.path(), canon, ec).string();
        if (entries_left == 0 || rel.size() > name_bytes_left) {
          d["truncated"] = true;
          d["truncated_reason"] = entries_left == 0
                                      ? "more than " + std::to_string(kMaxListedEntries) + " entries in the inputs' folders: the listing stops there"
                                      : "more than " + std::to_string(kMaxListedNameBytes) + " bytes of names in the inputs' folders: the listing stops there";
          break;
        }
        --entries_left;
        if (ent.is_symlink(ec)) {
          // HF snapshots hold links into blobs/ whose names are content hashes.
          std::string target = fs::read_symlink(ent.path(), ec).string();
          auto tsize = fs::is_regular_file(ent.path(), ec) ? fs::file_size(ent.path(), ec) : 0;
          total += tsize;
          name_bytes_left -= rel.size();
          list.push_back({{"path", rel}, {"link", target}, {"size", tsize}});
        } else if (ent.is_regular_file(ec)) {
          auto size = ent.file_size(ec);
          total += size;
          name_bytes_left -= rel.size();
          list.push_back({{"path", rel}, {"size", size}});
        }
      }
      d["files"] = list;
      d["total_bytes"] = total;
      dirs.push_back(d);
    }
  }
  return {{"files", files}, {"directories", dirs}, {"not_walked", not_walked}, {"models", hf_models(in, *p)}};
}

}  // namespace bp::snap
