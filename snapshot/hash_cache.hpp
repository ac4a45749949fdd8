#pragma once
/// The verified hash cache of the venv and loaded_libs collectors (docs/meta-schema.md, "The hash
/// cache").
///
/// A file whose stamp -- (device, inode, size, mtime ns, ctime ns), git's index rule -- is the
/// one it had when it was hashed is not read again, with two exceptions that keep the cache
/// honest:
///  - racily clean: an entry whose file was modified less than `racy_margin_ns` before it was
///    hashed is never trusted (a later change within the same timestamp tick would keep the
///    stamp); it is read again, and its new entry, hashed later, is trusted from then on;
///  - sampled re-reads: every run re-reads the files of one of `verify_buckets` buckets anyway
///    (bucket = FNV-1a of the path plus the cache's generation, mod `verify_buckets`), so over
///    `verify_buckets` consecutive runs every cached file is read once: content changed without
///    any change of its stamp (a disk image restored, a file system that keeps mtime and ctime)
///    is caught within that many lifecycles and reported.
///
/// One file per cache (e.g. one per venv, one for loaded libraries) under `dir` (default
/// $BENCH_PROXY_CACHE_DIR, else $XDG_CACHE_HOME/bench-proxy/hashes, else
/// ~/.cache/bench-proxy/hashes), never inside a run folder. Binary, with a SHA-256 trailer over
/// everything before it: a torn, truncated or corrupt file is ignored (every file is read) and
/// replaced at the next save, never trusted. Saves take an exclusive flock on NAME.lock, merge
/// with what another process saved meanwhile, and write a temporary file renamed into place.
#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/sha256.hpp"
#include "base/sha256_lanes.hpp"

namespace bp::snap {

struct hash_cache_options {
  std::string dir;   ///< empty: default_dir()
  std::string name;  ///< file name in dir, e.g. "venv-<16 hex of the venv's path>"
  /// 1/verify_buckets of the cached files are re-read each run; 0: never (tests only).
  std::uint32_t verify_buckets = 16;
  /// An entry is trusted only when its file's mtime and ctime are this much older than the moment
  /// it was hashed (2 s: file systems with one- or two-second timestamps).
  std::int64_t racy_margin_ns = 2'000'000'000;
  /// Wall clock in ns since the epoch (CLOCK_REALTIME); tests replace it.
  std::function<std::int64_t()> now_ns;
  /// Entries not seen for this many saves are dropped (a file that left the tree).
  std::uint64_t keep_generations = 64;
};

/// Counters for /meta ("hash_cache" in the venv and loaded_libs sections).
struct hash_cache_stats {
  bool enabled = false;
  std::string file;
  std::string note;  ///< why the cache file was not used (absent, ignored as corrupt, ...)
  std::uint64_t generation = 0;
  std::uint64_t from_cache = 0;  ///< files whose hash came from the cache, unread
  std::uint64_t read = 0;        ///< files read: not cached, changed, racy or sampled
  std::uint64_t verified = 0;    ///< of `read`: cached and trusted, re-read as this run's sample
  std::uint64_t verify_buckets = 0;
  std::vector<std::string> mismatched;  ///< sampled files whose content no longer matched the cache
  std::string save_error;
  nlohmann::json to_json() const;
};

class hash_cache {
 public:
  enum class decision { hit, miss, verify };

  /// $BENCH_PROXY_CACHE_DIR, else $XDG_CACHE_HOME/bench-proxy/hashes, else ~/.cache/bench-proxy/hashes.
  static std::string default_dir();
  /// Cache name for a tree: prefix + "-" + 16 hex of sha256(root).
  static std::string name_for(const std::string& prefix, const std::string& root);

  /// Loads dir/name; a missing, torn or corrupt file leaves the cache empty (stats().note says why).
  explicit hash_cache(hash_cache_options o);

  /// Whether `path` with this stamp may take its cached hash (hit, `hex` set), must be read
  /// (miss), or is trusted but sampled for a re-read this run (verify, `hex` = the cached hash
  /// to compare with). Read-only: safe from many threads.
  decision lookup(const std::string& path, const file_stamp& stamp, std::string& hex) const;

  /// What this run knows about `path`: a hit (kept as it was), or a fresh hash read with the
  /// stamp from before the read and the wall time the read began. `stable` false (the file changed
  /// while it was read): nothing is remembered. Counts into stats(). Thread-safe (hits of
  /// distinct paths touch distinct entries; reads take a lock).
  void hit(const std::string& path);
  void read(const std::string& path, const file_stamp& stamp, const std::string& hex, std::int64_t read_at_ns,
            bool stable, decision was, const std::string& cached_hex);

  std::int64_t now_ns() const { return opt_.now_ns(); }

  /// Merges this run's entries into the cache file under its lock. Never throws: a failure is
  /// recorded in stats().save_error (the snapshot does not depend on the cache being written).
  /// Call it last: lookups after it find nothing; a second call does nothing.
  void save();

  hash_cache_stats stats() const;
  std::string path() const { return opt_.dir + "/" + opt_.name; }

  struct entry {
    file_stamp stamp;
    std::int64_t hashed_at_ns = 0;
    std::uint64_t seen_generation = 0;
    unsigned char digest[32] = {};
  };
  /// The file format (exposed for tests that write a cache of their own, e.g. one that lies).
  static std::string serialize(std::uint64_t generation, const std::unordered_map<std::string, entry>& entries);
  /// False (and `why`) when `bytes` is not a whole, intact cache file.
  static bool parse(const std::string& bytes, std::uint64_t& generation, std::unordered_map<std::string, entry>& entries,
                    std::string& why);

 private:
  hash_cache_options opt_;
  std::unordered_map<std::string, entry> loaded_;  ///< hits mark theirs seen this generation
  file_stamp loaded_stamp_;  ///< the cache file's own stamp when it was loaded (unchanged at save: no re-read)
  bool loaded_ok_ = false;
  bool saved_ = false;
  std::uint64_t generation_ = 0;  ///< this run's: the loaded one + 1
  mutable std::mutex mu_;
  std::atomic<std::uint64_t> hits_{0};
  std::unordered_map<std::string, entry> touched_;  ///< this run's reads
  hash_cache_stats stats_;
};

/// What asking the cache about a file decided, for hash_cache::read once the file is read.
struct cache_ask {
  hash_cache::decision decision = hash_cache::decision::miss;
  std::string cached;           ///< the remembered hash (verify: compared with the one read)
  std::int64_t read_at_ns = 0;  ///< taken before the read (a change after it is not trusted away)
};

/// Files hashed four at a time (base/sha256_lanes.hpp) through `cache` (may be null: every file
/// read): a file whose stamp the cache answers for is done at once, the others go through the
/// lanes and what was read is told to the cache. `done(index, hex, size, err)` for each file, in
/// the order they end: `err` empty on success, else "PATH: reason". One per thread.
class cached_file_lanes {
 public:
  using done_fn = std::function<void(std::size_t index, std::string&& hex, std::uint64_t size, std::string&& err)>;
  /// Throws std::runtime_error when there is no memory for the lanes' buffer. `lanes`: at most so
  /// many files open at once (sha256_lanes_per_thread).
  cached_file_lanes(hash_cache* cache, done_fn done, std::size_t buffer = read_buffer::default_size,
                    int lanes = sha256_file_lanes::kLanes);
  /// `path` is the file's whole path (the cache's key, and the name in errors); `known` the stamp
  /// the caller's stat found. With `at` (a folder's descriptor) it is opened as `rel` under it.
  void add(const std::string& path, std::size_t index, const file_stamp& known, int at = -1,
           const std::string& rel = {});
  void finish() { lanes_->finish(); }
  /// Past it nothing more is hashed and late() is true (sha256_file_lanes::set_deadline).
  void set_deadline(std::chrono::steady_clock::time_point t) { lanes_->set_deadline(t); }
  bool late() const { return lanes_->late(); }

 private:
  struct pending {
    std::size_t index;
    std::string path;
    cache_ask ask;
  };
  hash_cache* cache_;
  done_fn done_;
  std::vector<pending> asked_;  ///< the files in the lanes, by index (at most a few)
  std::unique_ptr<sha256_file_lanes> lanes_;
};

}  // namespace bp::snap
