// The `engine_version` collector (docs/meta-schema.md). Registered in snapshot/collectors/registry.cpp.
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
#include "snapshot/proc.hpp"
#include "snapshot/collectors/common.hpp"

namespace fs = std::filesystem;

namespace bp::snap {

using namespace detail;

namespace {

std::string normalize_dist(std::string s) {
  std::string out;
  bool sep = false;
  for (char c : s) {
    if (c == '-' || c == '_' || c == '.') {
      sep = true;
      continue;
    }
    if (sep && !out.empty()) out.push_back('_');
    sep = false;
    out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  return out;
}

}  // namespace

json collect_engine_version(const collect_input& in) {
  json j = {{"engine", in.engine_kind}};
  if (!in.venv.empty()) {
    // Python version from pyvenv.cfg, then the lib/pythonX.Y folder name.
    json py = nullptr;
    if (auto cfg = read_file(in.venv + "/pyvenv.cfg")) {
      std::istringstream is(*cfg);
      std::string line;
      while (std::getline(is, line)) {
        auto eq = line.find('=');
        if (eq == std::string::npos) continue;
        std::string k = trim(line.substr(0, eq));
        if (k == "version" || k == "version_info") py = trim(line.substr(eq + 1));
      }
    }
    std::string site;
    for (const auto& lib : {"lib", "lib64"})
      for (const auto& e : list_dir(in.venv + "/" + lib))
        if (e.rfind("python", 0) == 0 && site.empty()) {
          site = in.venv + "/" + lib + "/" + e + "/site-packages";
          if (py.is_null()) py = e.substr(6);
        }
    j["python"] = py;
    j["site_packages"] = site.empty() ? json(nullptr) : json(site);
    const auto* kind = find_engine_kind(in.engine_kind);
    json packages = json::object();
    std::string wanted = kind ? kind->python_package : "";
    // Every engine kind's own package (configs/engine_kinds.cpp) and the libraries they run on.
    static const std::set<std::string> interesting = [] {
      std::set<std::string> out = {"torch", "transformers", "flashinfer_python", "triton", "xformers",
                                   "flash_attn", "nvidia_cublas_cu12", "nvidia_nccl_cu12"};
      for (const auto& k : engine_kinds_table())
        if (!k.python_package.empty()) out.insert(k.python_package);
      return out;
    }();
    if (!site.empty()) {
      for (const auto& e : list_dir(site)) {
        const std::string suffix = ".dist-info";
        if (e.size() <= suffix.size() || e.compare(e.size() - suffix.size(), suffix.size(), suffix) != 0) continue;
        auto meta = read_file(site + "/" + e + "/METADATA", 1 << 20);
        if (!meta) continue;
        std::string name, version;
        std::istringstream is(*meta);
        std::string line;
        while (std::getline(is, line) && (name.empty() || version.empty())) {
          if (line.rfind("Name:", 0) == 0) name = trim(line.substr(5));
          if (line.rfind("Version:", 0) == 0) version = trim(line.substr(8));
          if (line.empty()) break;
        }
        std::string norm = normalize_dist(name);
        if (interesting.count(norm)) packages[norm] = {{"name", name}, {"version", version}, {"dist_info", e}};
        if (!wanted.empty() && norm == wanted) {
          j["package"] = name;
          j["version"] = version;
          j["source"] = site + "/" + e + "/METADATA";
        }
      }
    }
    j["packages"] = packages;
    if (!wanted.empty() && !j.contains("version")) {
      j["version"] = nullptr;
      j["reason"] = "no " + wanted + " *.dist-info in " + (site.empty() ? in.venv : site);
    }
  }
  if (const auto* kind = find_engine_kind(in.engine_kind); kind && kind->version_from_binary) {
    // Native engines: ask the binary itself (llama-server prints "version: N (commit)").
    try {
      int st = 0;
      // llama-server prints its version on stderr.
      std::string out = run_program({in.engine_exe, "--version"},
                                    std::chrono::milliseconds(std::min(remaining_ms(in), 20000)), &st, true);
      j["version_output"] = trim(out);
      auto pos = out.find("version: ");
      if (pos != std::string::npos) {
        auto end = out.find('\n', pos);
        j["version"] = trim(out.substr(pos + 9, end == std::string::npos ? std::string::npos : end - pos - 9));
      } else if (!j.contains("version")) {
        j["version"] = trim(out.substr(0, out.find('\n')));
      }
      j["source"] = in.engine_exe + " --version";
    } catch (const std::exception& e) {
      if (!j.contains("version")) j["version"] = nullptr;
      j["reason"] = e.what();
    }
  }
  return j;
}

}  // namespace bp::snap
