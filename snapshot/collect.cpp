#include "snapshot/collect.hpp"

#include "base/own_children.hpp"
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

#include "net/client/http_client.hpp"
#include "snapshot/gpu.hpp"
#include "snapshot/libs.hpp"
#include "snapshot/merkle.hpp"
#include "snapshot/proc.hpp"
#include "base/sha256.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace bp::snap {

namespace {

std::string trim(std::string s) {
  s.erase(0, s.find_first_not_of(" \t\r\n"));
  s.erase(s.find_last_not_of(" \t\r\n") + 1);
  return s;
}

json file_value(const std::string& path) {
  auto s = read_file(path, 1 << 20);
  if (!s) return nullptr;
  return trim(*s);
}

/// "always [madvise] never" -> "madvise"
json bracketed(const std::string& path) {
  auto s = read_file(path, 4096);
  if (!s) return nullptr;
  auto l = s->find('['), r = s->find(']');
  if (l == std::string::npos || r == std::string::npos) return trim(*s);
  return s->substr(l + 1, r - l - 1);
}

std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') out.emplace_back(e->d_name);
    ::closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

int remaining_ms(const collect_input& in) {
  if (in.deadline == std::chrono::steady_clock::time_point::max()) return 60000;
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(in.deadline - std::chrono::steady_clock::now());
  return static_cast<int>(std::max<long long>(1, left.count()));
}

void check_deadline(const collect_input& in, const char* what) {
  if (std::chrono::steady_clock::now() > in.deadline) throw std::runtime_error(std::string("deadline passed: ") + what);
}

/// Engine's root plus every descendant, including processes re-parented to the shim.
std::vector<int> engine_tree(const collect_input& in) {
  std::vector<int> roots = {in.engine_pid};
  if (in.shim_pid > 0) roots.push_back(in.shim_pid);
  auto d = descendants(in.proc_root, roots);
  std::vector<int> out = {in.engine_pid};
  for (int p : d)
    if (p != in.engine_pid && p != in.shim_pid) out.push_back(p);
  return out;
}

}  // namespace

std::string run_program(const std::vector<std::string>& argv, std::chrono::milliseconds timeout, int* exit_status,
                        bool merge_stderr) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) < 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  std::vector<char*> av;
  for (const auto& a : argv) av.push_back(const_cast<char*>(a.c_str()));
  av.push_back(nullptr);
  auto own = base::own_children::guard();
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid > 0) base::own_children::add(pid);
  own.unlock();
  if (pid == 0) {
    ::dup2(out[1], 1);
    int devnull = ::open("/dev/null", O_RDWR);
    ::dup2(devnull, 0);
    ::dup2(merge_stderr ? out[1] : devnull, 2);
    ::setpgid(0, 0);
    ::execvp(av[0], av.data());
    _exit(127);
  }
  ::close(out[1]);
  std::string data;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  bool timed_out = false;
  char buf[65536];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{out[0], POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) {
      timed_out = true;
      break;
    }
    ssize_t n = ::read(out[0], buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    data.append(buf, static_cast<std::size_t>(n));
    if (data.size() > (64u << 20)) break;
  }
  ::close(out[0]);
  if (timed_out) ::kill(-pid, SIGKILL);
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  base::own_children::remove(pid);
  if (exit_status) *exit_status = st;
  if (timed_out)
    throw std::runtime_error(argv[0] + " did not finish within " + std::to_string(timeout.count()) + " ms (killed)");
  if (WIFEXITED(st) && WEXITSTATUS(st) == 127) throw std::runtime_error(argv[0] + ": not found");
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    throw std::runtime_error(argv[0] + " failed (" +
                             (WIFEXITED(st) ? "exit status " + std::to_string(WEXITSTATUS(st))
                                            : "signal " + std::to_string(WTERMSIG(st))) +
                             ")");
  return data;
}

json collect_command(const collect_input& in) {
  std::string err;
  auto p = read_proc(in.proc_root, in.engine_pid, err);
  if (!p) throw std::runtime_error(err);
  json j = to_json(*p);
  return j;
}

json collect_process_tree(const collect_input& in) {
  json procs = json::array();
  std::vector<std::string> errors;
  for (int pid : engine_tree(in)) {
    std::string err;
    if (auto p = read_proc(in.proc_root, pid, err))
      procs.push_back(to_json(*p));
    else
      errors.push_back(err);
  }
  json j = {{"root_pid", in.engine_pid}, {"supervisor_pid", in.shim_pid}, {"count", procs.size()}, {"processes", procs}};
  if (!errors.empty()) j["errors"] = errors;
  return j;
}

json collect_host(const collect_input& in) {
  json h;
  h["hostname"] = file_value(in.proc_root + "/sys/kernel/hostname");
  h["kernel"] = file_value(in.proc_root + "/sys/kernel/osrelease");
  h["kernel_version"] = file_value(in.proc_root + "/sys/kernel/version");
  h["kernel_cmdline"] = file_value(in.proc_root + "/cmdline");
  json os = nullptr;
  if (auto s = read_file(in.etc_root + "/os-release")) {
    std::istringstream is(*s);
    std::string line;
    os = json::object();
    while (std::getline(is, line)) {
      auto eq = line.find('=');
      if (eq == std::string::npos) continue;
      std::string v = line.substr(eq + 1);
      if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
      std::string k = line.substr(0, eq);
      if (k == "PRETTY_NAME" || k == "ID" || k == "VERSION_ID") os[k] = v;
    }
  }
  h["os_release"] = os;
  // CPU topology from /proc/cpuinfo.
  std::set<std::string> sockets;
  std::set<std::pair<std::string, std::string>> cores;
  int threads = 0;
  std::string model, flags_hint;
  if (auto s = read_file(in.proc_root + "/cpuinfo")) {
    std::istringstream is(*s);
    std::string line, phys = "0";
    while (std::getline(is, line)) {
      auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string k = trim(line.substr(0, colon)), v = trim(line.substr(colon + 1));
      if (k == "processor") threads++;
      else if (k == "model name" && model.empty()) model = v;
      else if (k == "physical id") {
        phys = v;
        sockets.insert(v);
      } else if (k == "core id") cores.insert({phys, v});
    }
  }
  h["cpu"] = {{"model", model},
              {"sockets", sockets.empty() ? 1 : sockets.size()},
              {"cores", cores.empty() ? threads : static_cast<int>(cores.size())},
              {"threads", threads}};
  if (auto s = read_file(in.proc_root + "/meminfo")) {
    std::istringstream is(*s);
    std::string k;
    long long v;
    std::string unit;
    while (is >> k >> v) {
      std::getline(is, unit);
      if (k == "MemTotal:") h["memory_total_kib"] = v;
      if (k == "Hugepagesize:") h["hugepage_size_kib"] = v;
      if (k == "HugePages_Total:") h["hugepages_total"] = v;
    }
  }
  h["transparent_hugepages"] = {{"enabled", bracketed(in.sys_root + "/kernel/mm/transparent_hugepage/enabled")},
                                {"defrag", bracketed(in.sys_root + "/kernel/mm/transparent_hugepage/defrag")}};
  // cpufreq: summarized across CPUs as {value: count}.
  json governors = json::object(), drivers = json::object();
  std::string cpu_dir = in.sys_root + "/devices/system/cpu";
  for (const auto& e : list_dir(cpu_dir)) {
    if (e.rfind("cpu", 0) != 0 || e.size() < 4 || !std::isdigit(static_cast<unsigned char>(e[3]))) continue;
    auto g = file_value(cpu_dir + "/" + e + "/cpufreq/scaling_governor");
    if (g.is_string()) governors[g.get<std::string>()] = governors.value(g.get<std::string>(), 0) + 1;
    auto d = file_value(cpu_dir + "/" + e + "/cpufreq/scaling_driver");
    if (d.is_string()) drivers[d.get<std::string>()] = drivers.value(d.get<std::string>(), 0) + 1;
  }
  json boost = nullptr;
  auto b = file_value(cpu_dir + "/cpufreq/boost");
  auto nt = file_value(cpu_dir + "/intel_pstate/no_turbo");
  if (b.is_string()) boost = b == "1";
  else if (nt.is_string()) boost = nt == "0";
  h["cpufreq"] = {{"governors", governors.empty() ? json(nullptr) : governors},
                  {"drivers", drivers.empty() ? json(nullptr) : drivers},
                  {"boost", boost},
                  {"intel_pstate_status", file_value(cpu_dir + "/intel_pstate/status")}};
  h["isolated_cpus"] = file_value(cpu_dir + "/isolated");
  h["online_cpus"] = file_value(cpu_dir + "/online");
  json nodes = json::array();
  std::string node_dir = in.sys_root + "/devices/system/node";
  for (const auto& e : list_dir(node_dir)) {
    if (e.rfind("node", 0) != 0 || e.size() < 5 || !std::isdigit(static_cast<unsigned char>(e[4]))) continue;
    json n = {{"node", std::atoi(e.c_str() + 4)}, {"cpus", file_value(node_dir + "/" + e + "/cpulist")}};
    if (auto m = read_file(node_dir + "/" + e + "/meminfo")) {
      auto pos = m->find("MemTotal:");
      if (pos != std::string::npos) n["memory_total_kib"] = std::atoll(m->c_str() + pos + 9);
    }
    nodes.push_back(n);
  }
  h["numa_nodes"] = nodes;
  h["numa_balancing"] = file_value(in.proc_root + "/sys/kernel/numa_balancing");
  h["swappiness"] = file_value(in.proc_root + "/sys/vm/swappiness");
  h["overcommit_memory"] = file_value(in.proc_root + "/sys/vm/overcommit_memory");
  h["clocksource"] = file_value(in.sys_root + "/devices/system/clocksource/clocksource0/current_clocksource");
  return h;
}

json collect_gpus(const collect_input& in) {
  std::string xml;
  try {
    xml = run_program({in.nvidia_smi, "-q", "-x"}, std::chrono::milliseconds(std::min(remaining_ms(in), 60000)));
  } catch (const std::exception& e) {
    return {{"available", false}, {"reason", e.what()}};
  }
  json j;
  try {
    j = summarize_nvidia_smi_xml(xml);
    j["source"] = "nvidia-smi -q -x";
  } catch (const std::exception& e) {
    // An XML this parser does not understand: fall back to the stable --query-gpu interface.
    std::string csv = run_program({in.nvidia_smi, std::string("--query-gpu=") + query_gpu_fields(), "--format=csv"},
                                  std::chrono::milliseconds(std::min(remaining_ms(in), 60000)));
    j = summarize_query_gpu_csv(csv);
    j["source"] = "nvidia-smi --query-gpu";
    j["xml_error"] = e.what();
    j["raw_csv"] = csv;
  }
  j["available"] = true;
  j["raw_xml"] = xml;
  return j;
}

json collect_lshw(const collect_input& in) {
  std::string out;
  try {
    out = run_program({in.lshw, "-json", "-quiet"}, std::chrono::milliseconds(std::min(remaining_ms(in), 120000)));
  } catch (const std::exception& e) {
    return {{"available", false}, {"reason", e.what()}};
  }
  try {
    return {{"available", true}, {"data", json::parse(out)}};
  } catch (const std::exception& e) {
    return {{"available", false}, {"reason", std::string("unparsable lshw output: ") + e.what()}};
  }
}

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
    static const std::set<std::string> interesting = {"vllm",         "sglang", "tensorrt_llm", "torch",
                                                      "transformers", "flashinfer_python", "triton", "xformers",
                                                      "flash_attn",   "nvidia_cublas_cu12", "nvidia_nccl_cu12"};
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

json collect_venv(const collect_input& in) {
  if (in.venv.empty()) return {{"configured", false}};
  struct stat st {};
  if (::stat(in.venv.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw std::runtime_error("venv " + in.venv + " is not a directory");
  auto t = hash_tree(in.venv, {"bin", "lib", "lib64"}, in.threads, in.deadline, in.progress);
  json files = json::array();
  for (const auto& e : t.entries) {
    if (e.link)
      files.push_back({{"path", e.path}, {"link", e.target}});
    else if (!e.error.empty())
      files.push_back({{"path", e.path}, {"size", e.size}, {"error", e.error}});
    else
      files.push_back({{"path", e.path}, {"size", e.size}, {"sha256", e.sha256}});
  }
  return {{"configured", true},      {"path", in.venv},         {"merkle_sha256", t.merkle_sha256},
          {"file_count", t.file_count}, {"link_count", t.link_count}, {"total_bytes", t.total_bytes},
          {"error_count", t.error_count}, {"threads", t.threads}, {"elapsed_ms", t.elapsed_ms},
          {"files", files}};
}

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

json collect_inputs(const collect_input& in) {
  std::string err;
  auto p = read_proc(in.proc_root, in.engine_pid, err);
  if (!p) throw std::runtime_error(err);
  json files = json::array(), dirs = json::array();
  std::set<std::string> seen;
  for (std::size_t i = 1; i < p->argv.size(); ++i) {
    std::string a = p->argv[i];
    if (a.rfind("--", 0) == 0) {
      auto eq = a.find('=');
      if (eq == std::string::npos) continue;
      a = a.substr(eq + 1);
    }
    if (a.empty() || a.size() > 4096) continue;
    fs::path path(a);
    if (path.is_relative()) path = fs::path(p->cwd) / path;
    std::error_code ec;
    auto canon = fs::weakly_canonical(path, ec);
    if (ec) continue;
    std::string cs = canon.string();
    if (cs == "/" || !seen.insert(cs).second) continue;
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
      std::size_t count = 0;
      for (auto it = fs::recursive_directory_iterator(canon, fs::directory_options::skip_permission_denied, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        check_deadline(in, "listing an input directory");
        if (++count > 10000) {
          d["truncated"] = true;
          break;
        }
        const auto& ent = *it;
        std::string rel = fs::relative(ent.path(), canon, ec).string();
        if (ent.is_symlink(ec)) {
          // HF snapshots hold links into blobs/ whose names are content hashes.
          std::string target = fs::read_symlink(ent.path(), ec).string();
          auto tsize = fs::is_regular_file(ent.path(), ec) ? fs::file_size(ent.path(), ec) : 0;
          total += tsize;
          list.push_back({{"path", rel}, {"link", target}, {"size", tsize}});
        } else if (ent.is_regular_file(ec)) {
          auto size = ent.file_size(ec);
          total += size;
          list.push_back({{"path", rel}, {"size", size}});
        }
      }
      d["files"] = list;
      d["total_bytes"] = total;
      dirs.push_back(d);
    }
  }
  return {{"files", files}, {"directories", dirs}, {"models", hf_models(in, *p)}};
}

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

json collect_engine_log(const collect_input& in) {
  if (!in.engine_log) throw std::runtime_error("no engine output capture");
  return in.engine_log();
}

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
  std::atomic<std::size_t> next{0};
  auto work = [&] {
    for (std::size_t k; (k = next.fetch_add(1)) < paths.size();) {
      const std::string& p = paths[k];
      const lib& l = libs[p];
      json r = {{"path", p}, {"pids", std::vector<int>(l.pids.begin(), l.pids.end())}};
      std::string v = version_from_filename(p);
      r["version"] = v.empty() ? json(nullptr) : json(v);
      bool in_venv = !in.venv.empty() && (p.rfind(in.venv + "/", 0) == 0 || (!venv_real.empty() && p.rfind(venv_real + "/", 0) == 0));
      r["in_venv"] = in_venv;
      std::string hex, err;
      std::uint64_t size = 0;
      if (l.deleted) {
        r["deleted"] = true;
        // The file on disk is not the one mapped: hash what the process maps instead.
        r["note"] = "mapped file was replaced or deleted on disk";
      }
      if (sha256_file(p, hex, size, err)) {
        r["size"] = size;
        r["sha256"] = hex;
      } else {
        r["error"] = err;
      }
      rows[k] = std::move(r);
    }
  };
  int n = in.threads > 0 ? in.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<std::thread> pool;
  for (int i = 1; i < n; ++i) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  check_deadline(in, "hashing loaded libraries");
  json j = {{"count", rows.size()}, {"libraries", rows}};
  if (!errors.empty()) j["errors"] = errors;
  return j;
}

std::vector<collector_def> all_collectors() {
  return {{"command", collect_command},
          {"process_tree", collect_process_tree},
          {"host", collect_host},
          {"gpus", collect_gpus},
          {"lshw", collect_lshw},
          {"engine_version", collect_engine_version},
          {"venv", collect_venv},
          {"inputs", collect_inputs},
          {"engine_reported", collect_engine_reported},
          {"engine_log", collect_engine_log},
          {"loaded_libs", collect_loaded_libs}};
}

}  // namespace bp::snap
