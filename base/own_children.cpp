#include "base/own_children.hpp"

#include <set>

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

}  // namespace bp::base::own_children
