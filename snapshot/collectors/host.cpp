// The `host` collector (docs/meta-schema.md). Registered in snapshot/collectors/registry.cpp.
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

#include "snapshot/proc.hpp"
#include "snapshot/collectors/common.hpp"

namespace fs = std::filesystem;

namespace bp::snap {

using namespace detail;

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

}  // namespace bp::snap
