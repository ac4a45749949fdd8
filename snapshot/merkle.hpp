#pragma once
/// The venv tree hash (definition in docs/meta-schema.md, "venv").
///
/// Entries under <root>/{bin,lib,lib64} are listed without following symlinks, regular files are
/// hashed in parallel (four per thread at once) in fixed-size blocks (bounded memory), and the
/// rollup is computed over the entries sorted by path, so it is independent of traversal order
/// and thread count:
///   leaf(file) = "F " + sha256 + " " + size + " " + path + "\n"
///   leaf(link) = "L " + sha256(target) + " 0 " + path + "\n"
///   merkle_sha256 = sha256(concatenation of the leaves in byte order of path)
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/sha256.hpp"

namespace bp::snap {

struct tree_entry {
  std::string path;  ///< relative to the root, '/'-separated
  bool link = false;
  std::string target;  ///< for links
  std::uint64_t size = 0;
  std::string sha256;  ///< for files
  std::string error;   ///< unreadable file
  file_stamp stamp;    ///< from the walk's lstat (the hash cache's key)
};

struct tree_hash {
  std::vector<tree_entry> entries;  ///< sorted by path
  std::uint64_t file_count = 0, link_count = 0, total_bytes = 0, error_count = 0;
  std::string merkle_sha256;
  int threads = 0;
  double elapsed_ms = 0;
};

class hash_cache;

/// Hashes `subdirs` of `root`. Throws std::runtime_error when the deadline passes. With `cache`,
/// files whose stamp is unchanged take their cached hash (snapshot/hash_cache.hpp), and the cache
/// is saved once the files are hashed, while the entries are sorted and rolled up (not when the
/// deadline passes: nothing half-done is remembered). Each thread hashes the files it must read
/// four at a time (base/sha256_lanes.hpp) through one buffer of `block` bytes for the whole tree
/// (large files through windows of a mapping).
tree_hash hash_tree(const std::string& root, const std::vector<std::string>& subdirs, int threads,
                    std::chrono::steady_clock::time_point deadline,
                    const std::function<void(const std::string&)>& progress = nullptr, hash_cache* cache = nullptr,
                    std::size_t block = read_buffer::default_size);

/// The rollup of already-hashed entries (sorted by path).
std::string merkle_root(const std::vector<tree_entry>& sorted_entries);

}  // namespace bp::snap
