#pragma once
/// The processes bench-proxy forked itself (engine shims, collector tools), as opposed to orphans
/// of an engine tree that the kernel re-parented to it (bench-proxy is a child subreaper).
///
/// Fork under `guard()` and `add()` the pid before releasing it: a scan for orphans that holds
/// the same guard then never mistakes a just-forked tool for an orphan.
#include <sys/types.h>

#include <mutex>
#include <string>
#include <vector>

namespace bp::base::own_children {

std::unique_lock<std::mutex> guard();
void add(pid_t pid);     ///< with guard() held
void remove(pid_t pid);  ///< once waited for
bool contains(pid_t pid);  ///< with guard() held

/// The children of `parent` (the ppid field of every `proc_root`/N/stat, zombies included) that
/// are not in the registry: with `parent` bench-proxy itself, the orphans of a dead engine tree.
/// With guard() held.
std::vector<pid_t> strangers(pid_t parent, const std::string& proc_root = "/proc");

}  // namespace bp::base::own_children
