#include "snapshot/hash_cache.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <random>
#include <stdexcept>

#include "base/files.hpp"

namespace bp::snap {

namespace {

constexpr char kMagic[8] = {'B', 'P', 'H', 'A', 'S', 'H', 'C', '1'};
constexpr std::uint32_t kEndian = 0x01020304;
constexpr std::size_t kMaxPath = 4096;
constexpr std::uint64_t kMaxFile = 1ull << 30;

std::uint64_t fnv1a(const std::string& s) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::int64_t realtime_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

template <class T>
void put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof(v));
}

template <class T>
bool get(const std::string& in, std::size_t& pos, std::size_t end, T& v) {
  if (end - pos < sizeof(v)) return false;
  std::memcpy(&v, in.data() + pos, sizeof(v));
  pos += sizeof(v);
  return true;
}

bool unhex(const std::string& hex, unsigned char* out) {
  if (hex.size() != 64) return false;
  auto nib = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  for (int i = 0; i < 32; ++i) {
    int a = nib(hex[2 * i]), b = nib(hex[2 * i + 1]);
    if (a < 0 || b < 0) return false;
    out[i] = static_cast<unsigned char>(a << 4 | b);
  }
  return true;
}

}  // namespace

nlohmann::json hash_cache_stats::to_json() const {
  nlohmann::json j = {{"enabled", enabled}};
  if (!enabled) return j;
  j["file"] = file;
  j["generation"] = generation;
  j["from_cache"] = from_cache;
  j["read"] = read;
  j["verified"] = verified;
  j["verify_fraction"] = verify_buckets ? "1/" + std::to_string(verify_buckets) : "0";
  j["mismatched"] = mismatched;
  if (!note.empty()) j["note"] = note;
  if (!save_error.empty()) j["save_error"] = save_error;
  return j;
}

std::string hash_cache::default_dir() {
  if (const char* d = std::getenv("BENCH_PROXY_CACHE_DIR"); d && *d) return d;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/bench-proxy/hashes";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/bench-proxy/hashes";
  return "/tmp/bench-proxy-" + std::to_string(::getuid()) + "/hashes";
}

std::string hash_cache::name_for(const std::string& prefix, const std::string& root) {
  std::error_code ec;
  auto canon = std::filesystem::weakly_canonical(root, ec);
  return prefix + "-" + sha256_hex(ec ? root : canon.string()).substr(0, 16);
}

std::string hash_cache::serialize(std::uint64_t generation, const std::unordered_map<std::string, entry>& entries) {
  std::string out;
  out.reserve(32 + entries.size() * 120);
  out.append(kMagic, sizeof(kMagic));
  put(out, kEndian);
  put(out, std::uint32_t{0});
  put(out, generation);
  put(out, static_cast<std::uint64_t>(entries.size()));
  for (const auto& [path, e] : entries) {
    put(out, e.stamp.dev);
    put(out, e.stamp.ino);
    put(out, e.stamp.size);
    put(out, e.stamp.mtime_ns);
    put(out, e.stamp.ctime_ns);
    put(out, e.hashed_at_ns);
    put(out, e.seen_generation);
    out.append(reinterpret_cast<const char*>(e.digest), 32);
    put(out, static_cast<std::uint32_t>(path.size()));
    out.append(path);
  }
  sha256_hasher h;
  h.update(out);
  std::string hex = h.final_hex();
  unsigned char d[32];
  unhex(hex, d);
  out.append(reinterpret_cast<const char*>(d), 32);
  return out;
}

bool hash_cache::parse(const std::string& in, std::uint64_t& generation, std::unordered_map<std::string, entry>& entries,
                       std::string& why) {
  entries.clear();
  const std::size_t header = sizeof(kMagic) + 4 + 4 + 8 + 8;
  if (in.size() < header + 32) {
    why = "torn or truncated (" + std::to_string(in.size()) + " bytes)";
    return false;
  }
  if (std::memcmp(in.data(), kMagic, sizeof(kMagic)) != 0) {
    why = "not a bench-proxy hash cache (or another version)";
    return false;
  }
  const std::size_t end = in.size() - 32;
  sha256_hasher h;
  h.update(in.data(), end);
  unsigned char d[32];
  unhex(h.final_hex(), d);
  if (std::memcmp(d, in.data() + end, 32) != 0) {
    why = "checksum mismatch (torn, truncated or corrupt)";
    return false;
  }
  std::size_t pos = sizeof(kMagic);
  std::uint32_t endian = 0, reserved = 0;
  std::uint64_t count = 0;
  get(in, pos, end, endian);
  get(in, pos, end, reserved);
  get(in, pos, end, generation);
  get(in, pos, end, count);
  if (endian != kEndian) {
    why = "written on a machine of another byte order";
    return false;
  }
  for (std::uint64_t i = 0; i < count; ++i) {
    entry e;
    std::uint32_t len = 0;
    bool ok = get(in, pos, end, e.stamp.dev) && get(in, pos, end, e.stamp.ino) && get(in, pos, end, e.stamp.size) &&
              get(in, pos, end, e.stamp.mtime_ns) && get(in, pos, end, e.stamp.ctime_ns) &&
              get(in, pos, end, e.hashed_at_ns) && get(in, pos, end, e.seen_generation) && end - pos >= 32;
    if (ok) {
      std::memcpy(e.digest, in.data() + pos, 32);
      pos += 32;
      ok = get(in, pos, end, len) && len <= kMaxPath && end - pos >= len;
    }
    if (!ok) {
      entries.clear();
      why = "entry " + std::to_string(i) + " of " + std::to_string(count) + " is cut or malformed";
      return false;
    }
    entries.emplace(in.substr(pos, len), e);
    pos += len;
  }
  if (pos != end) {
    entries.clear();
    why = "bytes after the last entry";
    return false;
  }
  return true;
}

namespace {

bool load_file(const std::string& path, std::uint64_t& generation, std::unordered_map<std::string, hash_cache::entry>& entries,
               std::string& note, file_stamp* stamp = nullptr) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    note = errno == ENOENT ? "no cache file yet" : path + ": " + std::strerror(errno);
    return false;
  }
  if (stamp) *stamp = stamp_of(st);
  // Its checksum finds a torn file, not a forged one: only a file this user owns and no one else
  // may write is trusted.
  if (st.st_uid != ::geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    note = "ignored " + path + ": not owned by this user or writable by others; every file read";
    return false;
  }
  std::string bytes;
  try {
    bytes = base::read_file_limited(path, kMaxFile);
  } catch (const std::exception& e) {
    note = std::string("ignored: ") + e.what();
    return false;
  }
  std::string why;
  if (!hash_cache::parse(bytes, generation, entries, why)) {
    note = "ignored " + path + ": " + why + "; every file read";
    generation = 0;
    return false;
  }
  return true;
}
}  // namespace

hash_cache::hash_cache(hash_cache_options o) : opt_(std::move(o)) {
  if (opt_.dir.empty()) opt_.dir = default_dir();
  if (!opt_.now_ns) opt_.now_ns = realtime_ns;
  stats_.enabled = true;
  stats_.file = path();
  stats_.verify_buckets = opt_.verify_buckets;
  std::uint64_t g = 0;
  loaded_ok_ = load_file(path(), g, loaded_, stats_.note, &loaded_stamp_);
  generation_ = g + 1;
  stats_.generation = generation_;
}

hash_cache::decision hash_cache::lookup(const std::string& path, const file_stamp& stamp, std::string& hex) const {
  auto it = loaded_.find(path);
  if (it == loaded_.end()) return decision::miss;
  const entry& e = it->second;
  if (e.stamp != stamp) return decision::miss;
  // Racily clean: modified too shortly before it was hashed to tell a later change apart.
  if (e.stamp.mtime_ns + opt_.racy_margin_ns >= e.hashed_at_ns || e.stamp.ctime_ns + opt_.racy_margin_ns >= e.hashed_at_ns)
    return decision::miss;
  hex = to_hex(e.digest, 32);
  if (opt_.verify_buckets > 0 && (fnv1a(path) + generation_) % opt_.verify_buckets == 0) return decision::verify;
  return decision::hit;
}

void hash_cache::hit(const std::string& path) {
  hits_.fetch_add(1, std::memory_order_relaxed);
  auto it = loaded_.find(path);  // find() does not modify the table; each path's entry is its caller's
  if (it != loaded_.end()) it->second.seen_generation = generation_;
}

hash_cache_stats hash_cache::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  hash_cache_stats s = stats_;
  s.from_cache = hits_.load(std::memory_order_relaxed);
  return s;
}

void hash_cache::read(const std::string& path, const file_stamp& stamp, const std::string& hex, std::int64_t read_at_ns,
                      bool stable, decision was, const std::string& cached_hex) {
  entry e;
  e.stamp = stamp;
  e.hashed_at_ns = read_at_ns;
  e.seen_generation = generation_;
  bool ok = unhex(hex, e.digest);
  std::lock_guard<std::mutex> lock(mu_);
  stats_.read++;
  if (was == decision::verify) {
    stats_.verified++;
    // Only a file that held still while it was read says the remembered hash was wrong.
    if (hex != cached_hex && stable) stats_.mismatched.push_back(path);
  }
  if (stable && ok)
    touched_[path] = e;
  else
    touched_.erase(path);
}

void hash_cache::save() {
  if (saved_) return;
  saved_ = true;
  try {
    std::error_code ec;
    std::filesystem::create_directories(opt_.dir, ec);
    ::chmod(opt_.dir.c_str(), 0700);
    std::string lock_path = path() + ".lock";
    int lfd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lfd < 0) throw std::runtime_error(lock_path + ": " + std::strerror(errno));
    struct closer {
      int fd;
      ~closer() { ::close(fd); }  // closing releases the flock
    } close_lock{lfd};
    while (::flock(lfd, LOCK_EX) != 0)
      if (errno != EINTR) throw std::runtime_error(lock_path + ": flock: " + std::strerror(errno));
    // What is there now: another process may have saved since this one loaded. When the file is
    // still the one loaded (same inode, size and times: a save renames a new file in), what was
    // loaded is it; otherwise it is read again and this run's hits are laid over it.
    std::uint64_t disk_gen = generation_ - 1;
    std::unordered_map<std::string, entry> merged;
    struct stat now {};
    bool unchanged = ::stat(path().c_str(), &now) == 0 ? loaded_ok_ && stamp_of(now) == loaded_stamp_ : !loaded_ok_;
    if (unchanged) {
      merged = std::move(loaded_);
    } else {
      std::string note;
      disk_gen = 0;
      load_file(path(), disk_gen, merged, note);
      for (auto& [p, e] : loaded_)
        if (e.seen_generation == generation_) merged[p] = e;
      loaded_.clear();
    }
    std::uint64_t gen = std::max(disk_gen + 1, generation_);
    for (auto it = merged.begin(); it != merged.end();) {
      if (it->second.seen_generation + opt_.keep_generations < gen)
        it = merged.erase(it);
      else
        ++it;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& [p, e] : touched_) {
        entry x = e;
        x.seen_generation = gen;
        merged[p] = x;
      }
      // A sampled file that no longer matched: whatever another process saved for it goes too
      // unless this run re-read it (then touched_ holds the new hash).
      for (const auto& p : stats_.mismatched)
        if (!touched_.count(p)) merged.erase(p);
    }
    std::string bytes = serialize(gen, merged);
    // Temporary file + rename: a reader sees the old file or the new one, never a mix. No fsync:
    // after a power cut a torn file fails its checksum and is ignored, which costs one full read.
    std::string tmp = opt_.dir + "/." + opt_.name + ".tmp-XXXXXX";
    int fd = ::mkstemp(tmp.data());
    if (fd < 0) throw std::runtime_error(tmp + ": " + std::strerror(errno));
    const char* b = bytes.data();
    std::size_t left = bytes.size();
    while (left > 0) {
      ssize_t n = ::write(fd, b, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        std::string e = std::strerror(errno);
        ::close(fd);
        ::unlink(tmp.c_str());
        throw std::runtime_error(tmp + ": write failed: " + e);
      }
      b += n;
      left -= static_cast<std::size_t>(n);
    }
    ::fchmod(fd, 0600);
    ::close(fd);
    if (::rename(tmp.c_str(), path().c_str()) != 0) {
      std::string e = std::strerror(errno);
      ::unlink(tmp.c_str());
      throw std::runtime_error(path() + ": rename: " + e);
    }
  } catch (const std::exception& e) {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.save_error = e.what();
  }
}

namespace {
// True (and `hex`, `size` set, the hit counted) when the cache answers for a file of stamp
// `known`; otherwise `ask` is what hash_cache::read needs once the file is read.
bool from_cache(hash_cache& cache, const std::string& path, const file_stamp& known, std::string& hex,
                std::uint64_t& size, cache_ask& ask) {
  ask.decision = cache.lookup(path, known, ask.cached);
  if (ask.decision == hash_cache::decision::hit) {
    hex = ask.cached;
    size = known.size;
    cache.hit(path);
    return true;
  }
  ask.read_at_ns = cache.now_ns();
  return false;
}
}  // namespace

cached_file_lanes::cached_file_lanes(hash_cache* cache, done_fn done, std::size_t buffer, int lanes)
    : cache_(cache), done_(std::move(done)) {
  // Without a cache nothing is remembered, so no file needs its fstat after the last read.
  lanes_ = std::make_unique<sha256_file_lanes>(
      [this](sha256_file_lanes::result&& r) {
        auto it = std::find_if(asked_.begin(), asked_.end(), [&](const pending& p) { return p.index == r.token; });
        if (it == asked_.end()) return;  // not one of ours: cannot happen
        pending p = std::move(*it);
        asked_.erase(it);
        if (!r.ok) return done_(p.index, {}, 0, p.path + ": " + r.err);
        if (cache_) cache_->read(p.path, r.stamp, r.hex, p.ask.read_at_ns, r.stable, p.ask.decision, p.ask.cached);
        done_(p.index, std::move(r.hex), r.size, {});
      },
      buffer, cache != nullptr, lanes);
}

void cached_file_lanes::add(const std::string& path, std::size_t index, const file_stamp& known, int at,
                            const std::string& rel) {
  pending p{index, path, {}};
  if (cache_) {
    std::string hex;
    std::uint64_t size = 0;
    if (from_cache(*cache_, path, known, hex, size, p.ask)) return done_(index, std::move(hex), size, {});
  }
  asked_.push_back(std::move(p));
  if (at >= 0)
    lanes_->add(rel, index, &known, at);
  else
    lanes_->add(path, index, &known);
}

}  // namespace bp::snap
