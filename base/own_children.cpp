#include "base/own_children.hpp"

#include <dirent.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

namespace bp::base::own_children {

namespace {
std::mutex& mu() {
  static std::mutex m;
  return m;
}
std::set<pid_t>& pids() {
  static std::set<pid_t> s;
  return s;
}
}  // namespace

std::unique_lock<std::mutex> guard() { return std::unique_lock<std::mutex>(mu()); }
void add(pid_t pid) { pids().insert(pid); }
void remove(pid_t pid) {
  auto g = guard();
  pids().erase(pid);
}
bool contains(pid_t pid) { return pids().count(pid) != 0; }

std::vector<pid_t> strangers(pid_t parent, const std::string& proc_root) {
  std::vector<pid_t> out;
  DIR* d = ::opendir(proc_root.c_str());
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::ifstream f(proc_root + "/" + e->d_name + "/stat");
    std::string stat;
    if (!std::getline(f, stat)) continue;  // gone meanwhile
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so read after the last ')'.
    auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 1));
    std::string state;
    long ppid = 0;
    if (!(rest >> state >> ppid) || ppid != parent) continue;
    pid_t pid = static_cast<pid_t>(std::atol(e->d_name));
    if (!contains(pid)) out.push_back(pid);
  }
  ::closedir(d);
  return out;
}

}  // namespace bp::base::own_children
