#pragma once
/// Reading what users point us at, bounded; writing results so that nothing is ever half-written
/// or overwritten.
#include <cstdint>
#include <string>

namespace bp::base {

/// The default cap for a file or response read whole (snapshots, results, configs, workloads).
inline constexpr std::uint64_t default_read_limit = 256ull << 20;

/// Reads a regular file (or standard input for "-") whole, refusing more than `limit` bytes.
/// Throws std::runtime_error naming the file: no such file, not a regular file (FIFOs, devices,
/// /proc files), too large, unreadable.
std::string read_file_limited(const std::string& path, std::uint64_t limit = default_read_limit);

/// Writes `data` to `path` atomically (a temporary file in the same folder, fsync, rename).
/// With `exclusive`, an existing `path` is never replaced: throws instead.
void write_file_atomic(const std::string& path, const std::string& data, bool exclusive = true);

/// Path of the running executable (/proc/self/exe), or empty.
std::string self_exe();

/// Creates a new folder `base`, or `base-2`, `base-3`, ... when it exists: never an existing one.
/// Returns the path made. Throws std::runtime_error naming the folder on failure.
std::string make_unique_dir(const std::string& base);

}  // namespace bp::base
