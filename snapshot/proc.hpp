#pragma once
/// Parsers for /proc. Every function takes file contents or a proc_root path (tests pass a
/// fixture folder), never a hard-coded /proc.
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace bp::snap {

using env_list = std::vector<std::pair<std::string, std::string>>;

std::vector<std::string> parse_cmdline(const std::string& raw);  ///< NUL-separated
env_list parse_environ(const std::string& raw);                  ///< NUL-separated NAME=value

struct stat_fields {
  int pid = 0;
  std::string comm;
  char state = '?';
  int ppid = 0;
  int pgrp = 0;
  int session = 0;
  long num_threads = 0;
  std::uint64_t starttime_ticks = 0;
  std::uint64_t utime_ticks = 0, stime_ticks = 0;  ///< CPU time so far (telemetry's per-process deltas)
  long rss_pages = 0;
};
/// /proc/PID/stat; comm may hold spaces and parentheses, so parse around the last ')'.
std::optional<stat_fields> parse_stat(const std::string& raw);

struct proc_info {
  int pid = 0, ppid = 0, pgrp = 0, session = 0;
  std::string comm;
  std::vector<std::string> argv;
  env_list env;
  bool env_readable = true;
  std::string cwd;
  long threads = 0;
  std::uint64_t start_ticks = 0;
  double start_time_unix = 0;
  std::string exe;
};

/// Reads one process. Returns nullopt (and `err`) when it is gone or unreadable.
std::optional<proc_info> read_proc(const std::string& proc_root, int pid, std::string& err);

/// The direct children of `pid` (ppid field of every /proc/*/stat), zombies included.
std::vector<int> children(const std::string& proc_root, int pid);

/// Every live descendant of the given roots (children via the ppid field), roots excluded.
std::vector<int> descendants(const std::string& proc_root, const std::vector<int>& roots);

/// System boot time (seconds since the epoch) from /proc/stat btime.
double boot_time(const std::string& proc_root);

nlohmann::json to_json(const proc_info& p);

/// Reads a whole small file; nullopt when unreadable.
std::optional<std::string> read_file(const std::string& path, std::size_t limit = 16u << 20);

}  // namespace bp::snap
