#pragma once
/// The snapshot collectors' pure work: each takes a collect_input and returns its JSON section,
/// or throws with a reason. Actors (actors/meta_actor.cpp) only sequence, time out and report.
#include <chrono>
#include <functional>
#include <optional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "snapshot/proc.hpp"

namespace bp::snap {

struct collect_input {
  int engine_pid = 0;
  int shim_pid = 0;  ///< re-parented descendants of the engine end up under the shim
  std::string proc_root = "/proc";
  std::string sys_root = "/sys";
  std::string etc_root = "/etc";
  std::string engine_kind;
  std::string engine_exe;
  /// The engine's environment as launched (the YAML env, and what `caches: fresh` injected).
  std::vector<std::pair<std::string, std::string>> engine_env;
  nlohmann::json caches_before = nlohmann::json::object();    ///< scan_caches before the engine started
  nlohmann::json caches_injected = nlohmann::json::object();  ///< name -> directory made for this run
  std::string venv;
  std::uint16_t engine_port = 0;
  int threads = 0;  ///< hashing threads; 0 = every core
  /// The verified hash cache of venv and loaded_libs (snapshot/hash_cache.hpp): on for runs
  /// (config `hash_cache: on`, the default; off with `hash_cache: off` or --rehash), off here so
  /// that a collector called directly reads every file. Empty dir: hash_cache::default_dir().
  bool hash_cache = false;
  std::string hash_cache_dir;
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  std::function<nlohmann::json()> engine_log;  ///< provided by the engine owner
  /// One GET of the engine's private port (engine_reported's endpoints), provided by the owner
  /// (the meta actor wires net/client's http_fetch): the answer, or nullopt with `err`. The
  /// snapshot library itself opens no sockets; absent, engine_reported says so per endpoint.
  struct engine_answer {
    int status = 0;
    std::string body;
  };
  std::function<std::optional<engine_answer>(const std::string& path, std::chrono::milliseconds timeout,
                                             std::uint64_t max_bytes, std::string& err)>
      engine_get;
  std::string nvidia_smi = "nvidia-smi";  ///< empty: none was found (snap::find_nvidia_smi)
  std::string lshw = "lshw";
  std::function<void(const std::string&)> progress;  ///< log line for long collectors
};

/// How `meta diff` treats a collector's section (it reads these from the registry, so a new
/// collector is compared without touching diff.cpp).
struct diff_rules {
  bool compare = true;  ///< false: recorded in /meta, never compared (e.g. raw log bytes)
  /// Arrays of objects in this section, by the array's own name (the last component of its
  /// path, so "files" covers every files array in the section), whose elements `meta diff`
  /// pairs up by this key instead of by position: a reordering is then no difference. Equal
  /// keys are told apart as KEY#2, KEY#3. An empty key means "by position" for that element.
  std::map<std::string, std::function<std::string(const nlohmann::json& element)>> element_keys;
};

/// An element key: the string value of `field` (empty when absent).
std::function<std::string(const nlohmann::json&)> key_by(std::string field);

/// "libLLVM-15.so.1" -> "libLLVM.so": a library's name without version (loaded_libs' key).
std::string library_stem(const std::string& path);

struct collector_def {
  std::string name;
  std::function<nlohmann::json(const collect_input&)> run;
  diff_rules diff;
};

/// Every collector, in the order they appear in /meta (snapshot/collectors/registry.cpp).
std::vector<collector_def> all_collectors();

nlohmann::json collect_command(const collect_input& in);
nlohmann::json collect_process_tree(const collect_input& in);
nlohmann::json collect_host(const collect_input& in);
nlohmann::json collect_gpus(const collect_input& in);
nlohmann::json collect_lshw(const collect_input& in);
nlohmann::json collect_engine_version(const collect_input& in);
nlohmann::json collect_venv(const collect_input& in);
nlohmann::json collect_inputs(const collect_input& in);
nlohmann::json collect_engine_reported(const collect_input& in);
nlohmann::json collect_engine_log(const collect_input& in);
nlohmann::json collect_loaded_libs(const collect_input& in);
nlohmann::json collect_caches(const collect_input& in);
/// Where each of the engine kind's caches lives for `env`, and its state (exists, files, bytes,
/// newest mtime, manifest hash of names, sizes and mtimes).
nlohmann::json scan_caches(const std::string& kind, const std::vector<std::pair<std::string, std::string>>& env,
                           std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max());

/// Models named by a Hugging Face repo id in the engine's argv, resolved through the hub cache of
/// the engine's environment: revision (refs/main), snapshot folder, and every file with its sha256.
nlohmann::json hf_models(const collect_input& in, const proc_info& p);

/// Runs a program with a deadline; returns its stdout. Throws with a reason when it cannot run,
/// times out (it is killed) or exits non-zero.
std::string run_program(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                        int* exit_status = nullptr, bool merge_stderr = false);


}  // namespace bp::snap
