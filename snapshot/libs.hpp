#pragma once
/// /proc/PID/maps parsing and shared-library naming.
#include <cstdint>
#include <optional>
#include <string>

namespace bp::snap {

struct map_entry {
  std::uint64_t start = 0, end = 0, offset = 0, inode = 0;
  std::string perms, dev, path;
  bool deleted = false;  ///< the mapped file was replaced or removed on disk
};

/// One line of /proc/PID/maps; nullopt when malformed.
std::optional<map_entry> parse_maps_line(const std::string& line);

/// True for file names like libx.so, libx.so.1, libx.so.1.2.3 (not .sock, .sol, ...).
bool is_shared_object(const std::string& path);

/// The version carried by a library file name: libcuda.so.570.172.08 -> 570.172.08,
/// libcudnn.so.9 -> 9, libLLVM-15.so -> 15; empty when the name carries none.
std::string version_from_filename(const std::string& path);

}  // namespace bp::snap
