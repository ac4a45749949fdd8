#pragma once
/// The processes bench-proxy forked itself (engine shims, collector tools), as opposed to orphans
/// of an engine tree that the kernel re-parented to it (bench-proxy is a child subreaper).
///
/// Fork under `guard()` and `add()` the pid before releasing it: a scan for orphans that holds
/// the same guard then never mistakes a just-forked tool for an orphan.
#include <sys/types.h>

#include <mutex>

namespace bp::base::own_children {

std::unique_lock<std::mutex> guard();
void add(pid_t pid);     ///< with guard() held
void remove(pid_t pid);  ///< once waited for
bool contains(pid_t pid);  ///< with guard() held

}  // namespace bp::base::own_children
