#include "snapshot/proc.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <algorithm>
#include <map>
#include <set>

namespace bp::snap {

std::optional<std::string> read_file(const std::string& path, std::size_t limit) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    if (out.size() >= limit) break;
  }
  ::close(fd);
  return out;
}

std::vector<std::string> parse_cmdline(const std::string& raw) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : raw) {
    if (c == '\0') {
      out.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  if (!cur.empty()) out.push_back(cur);  // setproctitle may drop the final NUL
  return out;
}

env_list parse_environ(const std::string& raw) {
  env_list out;
  for (const auto& kv : parse_cmdline(raw)) {
    if (kv.empty()) continue;
    auto eq = kv.find('=');
    if (eq == std::string::npos)
      out.emplace_back(kv, "");
    else
      out.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
  }
  return out;
}

std::optional<stat_fields> parse_stat(const std::string& raw) {
  auto lp = raw.find('(');
  auto rp = raw.rfind(')');
  if (lp == std::string::npos || rp == std::string::npos || rp < lp) return std::nullopt;
  stat_fields s;
  s.pid = std::atoi(raw.c_str());
  s.comm = raw.substr(lp + 1, rp - lp - 1);
  std::vector<std::string> f;
  std::string cur;
  for (std::size_t i = rp + 1; i < raw.size(); ++i) {
    char c = raw[i];
    if (c == ' ' || c == '\n') {
      if (!cur.empty()) f.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  if (!cur.empty()) f.push_back(cur);
  // f[0] = state (field 3), f[1] = ppid (4), f[2] = pgrp (5), f[3] = session (6),
  // f[11] = utime (14), f[12] = stime (15), f[17] = num_threads (20), f[19] = starttime (22),
  // f[21] = rss (24)
  if (f.size() < 22) return std::nullopt;
  try {
    s.state = f[0][0];
    s.ppid = std::stoi(f[1]);
    s.pgrp = std::stoi(f[2]);
    s.session = std::stoi(f[3]);
    s.num_threads = std::stol(f[17]);
    s.starttime_ticks = std::stoull(f[19]);
    s.utime_ticks = std::stoull(f[11]);
    s.stime_ticks = std::stoull(f[12]);
    s.rss_pages = std::stol(f[21]);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  return s;
}

double boot_time(const std::string& proc_root) {
  auto s = read_file(proc_root + "/stat");
  if (!s) return 0;
  auto pos = s->find("\nbtime ");
  if (pos == std::string::npos) return 0;
  return std::atof(s->c_str() + pos + 7);
}

std::optional<proc_info> read_proc(const std::string& proc_root, int pid, std::string& err) {
  std::string base = proc_root + "/" + std::to_string(pid);
  auto stat = read_file(base + "/stat");
  if (!stat) {
    err = "PID " + std::to_string(pid) + ": cannot read " + base + "/stat: " + std::strerror(errno);
    return std::nullopt;
  }
  auto st = parse_stat(*stat);
  if (!st) {
    err = "PID " + std::to_string(pid) + ": unparsable " + base + "/stat";
    return std::nullopt;
  }
  proc_info p;
  p.pid = pid;
  p.ppid = st->ppid;
  p.pgrp = st->pgrp;
  p.session = st->session;
  p.comm = st->comm;
  if (auto c = read_file(base + "/comm")) {
    p.comm = *c;
    while (!p.comm.empty() && p.comm.back() == '\n') p.comm.pop_back();
  }
  p.threads = st->num_threads;
  p.start_ticks = st->starttime_ticks;
  long hz = ::sysconf(_SC_CLK_TCK);
  p.start_time_unix = boot_time(proc_root) + static_cast<double>(st->starttime_ticks) / static_cast<double>(hz > 0 ? hz : 100);
  if (auto c = read_file(base + "/cmdline")) p.argv = parse_cmdline(*c);
  if (auto e = read_file(base + "/environ"))
    p.env = parse_environ(*e);
  else
    p.env_readable = false;
  char buf[4096];
  ssize_t n = ::readlink((base + "/cwd").c_str(), buf, sizeof(buf) - 1);
  if (n > 0) p.cwd.assign(buf, static_cast<std::size_t>(n));
  n = ::readlink((base + "/exe").c_str(), buf, sizeof(buf) - 1);
  if (n > 0) p.exe.assign(buf, static_cast<std::size_t>(n));
  return p;
}

namespace {

/// ppid -> pid for every process in proc_root.
std::multimap<int, int> processes_by_parent(const std::string& proc_root) {
  std::multimap<int, int> by_parent;
  if (DIR* d = ::opendir(proc_root.c_str())) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
      auto s = read_file(proc_root + "/" + e->d_name + "/stat", 4096);
      if (!s) continue;
      if (auto st = parse_stat(*s)) by_parent.emplace(st->ppid, st->pid);
    }
    ::closedir(d);
  }
  return by_parent;
}

}  // namespace

std::vector<int> children(const std::string& proc_root, int pid) {
  auto by_parent = processes_by_parent(proc_root);
  std::vector<int> out;
  auto range = by_parent.equal_range(pid);
  for (auto it = range.first; it != range.second; ++it) out.push_back(it->second);
  return out;
}

std::vector<int> descendants(const std::string& proc_root, const std::vector<int>& roots) {
  auto by_parent = processes_by_parent(proc_root);
  std::vector<int> out;
  std::set<int> seen(roots.begin(), roots.end());
  std::vector<int> frontier = roots;
  while (!frontier.empty()) {
    int p = frontier.back();
    frontier.pop_back();
    auto range = by_parent.equal_range(p);
    for (auto it = range.first; it != range.second; ++it) {
      if (!seen.insert(it->second).second) continue;
      out.push_back(it->second);
      frontier.push_back(it->second);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

nlohmann::json to_json(const proc_info& p) {
  nlohmann::json env = nlohmann::json::object();
  for (const auto& [k, v] : p.env) env[k] = v;
  return {{"pid", p.pid},
          {"ppid", p.ppid},
          {"pgid", p.pgrp},
          {"sid", p.session},
          {"comm", p.comm},
          {"exe", p.exe},
          {"argv", p.argv},
          {"env", p.env_readable ? env : nlohmann::json(nullptr)},
          {"cwd", p.cwd},
          {"threads", p.threads},
          {"start_time_unix", p.start_time_unix}};
}

}  // namespace bp::snap
