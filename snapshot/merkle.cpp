#include "snapshot/merkle.hpp"

#include "base/parallel.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <cerrno>
#include <cstring>
#include <exception>
#include <future>
#include <system_error>
#include <stdexcept>
#include <memory>
#include <thread>

#include "base/sha256.hpp"
#include "base/sha256_lanes.hpp"
#include "snapshot/hash_cache.hpp"

namespace bp::snap {

namespace {

tree_entry link_entry(const std::string& rel, const std::string& full) {
  tree_entry t;
  t.path = rel;
  t.link = true;
  char buf[4096];
  ssize_t n = ::readlink(full.c_str(), buf, sizeof(buf));
  if (n > 0) t.target.assign(buf, static_cast<std::size_t>(n));
  return t;
}


// The folders still to list, shared by the listing threads. A folder found while listing is
// queued (its descriptor open) for whichever thread is free, so a tree of many folders (a venv's
// site-packages) is listed on every core; past `kMaxQueued` open descriptors the finder lists it
// itself, depth first, so the descriptors a walk holds stay bounded whatever the tree.
struct walk_queue {
  static constexpr std::size_t kMaxQueued = 64;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::pair<int, std::string>> dirs;  ///< open folder, its path relative to the root
  int busy = 0;                                   ///< threads listing a folder now
  std::atomic<bool> late{false};                  ///< the deadline passed or a thread failed: all stop
  std::exception_ptr error;                       ///< the first failure (no memory, no descriptors)
  walk_queue() { dirs.reserve(kMaxQueued + 8); }
  ~walk_queue() {
    for (auto& d : dirs) ::close(d.first);
  }
};

void list_dir(int dfd, const std::string& rel, std::vector<tree_entry>& out, walk_queue& q,
              std::chrono::steady_clock::time_point deadline);

// A subfolder `name` of the folder open as `fd`, found while listing: opened (O_NOFOLLOW: a
// folder replaced by a symlink meanwhile is not followed), then queued for a free thread, or
// listed here when the queue is full. One that cannot be opened is skipped when it went away, is
// not a folder any more or may not be read (as before); out of descriptors or memory the walk
// fails rather than hash a tree with a subtree silently missing.
void found_dir(int fd, const char* name, std::string rel, std::vector<tree_entry>& out, walk_queue& q,
               std::chrono::steady_clock::time_point deadline) {
  int sub = ::openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (sub < 0) {
    int e = errno;
    if (e == EMFILE || e == ENFILE || e == ENOMEM)
      throw std::runtime_error("cannot open folder " + rel + ": " + std::strerror(e));
    return;
  }
  {
    std::lock_guard<std::mutex> lk(q.mu);
    if (q.dirs.size() < walk_queue::kMaxQueued) {
      try {
        q.dirs.emplace_back(sub, std::move(rel));
      } catch (...) {
        ::close(sub);
        throw;
      }
      q.cv.notify_one();
      return;
    }
  }
  list_dir(sub, rel, out, q, deadline);
}

// Lists the folder open as `dfd` (taken over) relative to it: fstatat/openat/readlinkat by name,
// so the kernel never walks the whole path again for each of tens of thousands of entries, and a
// folder replaced by a symlink meanwhile is not followed (O_NOFOLLOW).
void list_dir(int dfd, const std::string& rel, std::vector<tree_entry>& out, walk_queue& q,
              std::chrono::steady_clock::time_point deadline) {
  if (q.late.load()) {
    ::close(dfd);
    return;
  }
  DIR* d = ::fdopendir(dfd);
  if (!d) {
    ::close(dfd);
    return;
  }
  struct closer {
    DIR* d;
    ~closer() { ::closedir(d); }
  } close_after{d};
  const int fd = ::dirfd(d);
  while (dirent* e = ::readdir(d)) {
    if (q.late.load(std::memory_order_relaxed)) return;  // another thread failed, or the deadline passed
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    std::string r = rel + "/" + e->d_name;
    if (e->d_type == DT_DIR) {
      found_dir(fd, e->d_name, std::move(r), out, q, deadline);
      continue;
    }
    struct stat st {};
    if (::fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (S_ISLNK(st.st_mode)) {
      tree_entry t;
      t.path = std::move(r);
      t.link = true;
      char buf[4096];
      ssize_t n = ::readlinkat(fd, e->d_name, buf, sizeof(buf));
      if (n > 0) t.target.assign(buf, static_cast<std::size_t>(n));
      out.push_back(std::move(t));
    } else if (S_ISDIR(st.st_mode)) {  // a file system without d_type
      found_dir(fd, e->d_name, std::move(r), out, q, deadline);
    } else if (S_ISREG(st.st_mode)) {
      tree_entry t;
      t.path = std::move(r);
      t.size = static_cast<std::uint64_t>(st.st_size);
      t.stamp = stamp_of(st);
      out.push_back(std::move(t));
    }
  }
  if (std::chrono::steady_clock::now() > deadline) {
    std::lock_guard<std::mutex> lk(q.mu);
    q.late = true;
    q.cv.notify_all();
  }
}

// Lists every queued folder on `threads` threads (the queue holds the roots to start from) and
// returns the entries in no particular order; false when the deadline passed.
bool walk(walk_queue& q, int threads, std::vector<tree_entry>& out, std::chrono::steady_clock::time_point deadline) {
  std::vector<std::vector<tree_entry>> found(static_cast<std::size_t>(threads));
  std::atomic<int> slot{0};
  base::run_parallel(threads, [&] {
    auto& mine = found[static_cast<std::size_t>(slot.fetch_add(1))];
    std::unique_lock<std::mutex> lk(q.mu);
    for (;;) {
      q.cv.wait(lk, [&] { return q.late || !q.dirs.empty() || q.busy == 0; });
      if (q.late || q.dirs.empty()) break;  // late, or nothing queued and nobody listing: done
      auto [fd, rel] = std::move(q.dirs.back());
      q.dirs.pop_back();
      ++q.busy;
      lk.unlock();
      std::exception_ptr failed;
      try {
        list_dir(fd, rel, mine, q, deadline);
      } catch (...) {  // every thread stops; the walk rethrows it once all have
        failed = std::current_exception();
      }
      lk.lock();
      --q.busy;
      if (failed) {
        if (!q.error) q.error = failed;
        q.late = true;
        break;
      }
      if (q.busy == 0 && q.dirs.empty()) q.cv.notify_all();
    }
    q.cv.notify_all();
  });
  if (q.error) std::rethrow_exception(q.error);
  std::size_t n = out.size();
  for (const auto& f : found) n += f.size();
  out.reserve(n);
  for (auto& f : found)
    for (auto& e : f) out.push_back(std::move(e));
  return !q.late;
}

}  // namespace

std::string merkle_root(const std::vector<tree_entry>& entries) {
  sha256_hasher h;
  for (const auto& e : entries) {
    std::string leaf = e.link ? "L " + sha256_hex(e.target) + " 0 " + e.path + "\n"
                              : "F " + e.sha256 + " " + std::to_string(e.size) + " " + e.path + "\n";
    h.update(leaf);
  }
  return h.final_hex();
}

tree_hash hash_tree(const std::string& root, const std::vector<std::string>& subdirs, int threads,
                    std::chrono::steady_clock::time_point deadline,
                    const std::function<void(const std::string&)>& progress, hash_cache* cache,
                    std::size_t block) {
  auto t0 = std::chrono::steady_clock::now();
  tree_hash res;
  int n = base::thread_count(threads);
  res.threads = n;
  {
    walk_queue q;
    for (const auto& s : subdirs) {
      std::string full = root + "/" + s;
      struct stat st {};
      if (::lstat(full.c_str(), &st) != 0) continue;
      if (S_ISLNK(st.st_mode)) {  // e.g. lib64 -> lib: recorded, not followed
        res.entries.push_back(link_entry(s, full));
      } else if (S_ISDIR(st.st_mode)) {
        int dfd = ::open(full.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd >= 0) {
          try {
            q.dirs.emplace_back(dfd, s);
          } catch (...) {
            ::close(dfd);
            throw;
          }
        }
      }
    }
    if (!walk(q, n, res.entries, deadline)) throw std::runtime_error("deadline passed while listing " + root);
  }
  // Largest files first keeps every thread busy to the end.
  std::vector<std::size_t> order;
  for (std::size_t i = 0; i < res.entries.size(); ++i)
    if (!res.entries[i].link) order.push_back(i);
  std::sort(order.begin(), order.end(),
            [&](std::size_t a, std::size_t b) { return res.entries[a].size > res.entries[b].size; });
  std::atomic<std::size_t> next{0};
  std::atomic<std::uint64_t> done_bytes{0};
  std::atomic<bool> late{false}, no_buffer{false};
  const int root_fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  struct closer {
    int fd;
    ~closer() {
      if (fd >= 0) ::close(fd);
    }
  } close_root{root_fd};
  const int per_thread = sha256_lanes_per_thread(n);  // files open at once per thread (descriptors)
  auto work = [&] {
    // Files go four at a time through this thread's lanes (base/sha256_lanes.hpp: one buffer for
    // the whole tree, mapped here, unmapped when this returns), through the cache when there is one.
    std::unique_ptr<cached_file_lanes> lanes;
    try {
      lanes = std::make_unique<cached_file_lanes>(
          cache,
          [&](std::size_t index, std::string&& hex, std::uint64_t size, std::string&& err) {
            tree_entry& e = res.entries[index];
            if (!err.empty()) {
              e.error = std::move(err);
            } else {
              e.sha256 = std::move(hex);
              e.size = size;
            }
            done_bytes += size;
          },
          block, per_thread);
      lanes->set_deadline(deadline);
    } catch (const std::exception&) {
      no_buffer = true;  // no memory for a buffer: the collector fails rather than half-hashing
      late = true;
      return;
    }
    for (;;) {
      std::size_t k = next.fetch_add(1);
      if (k >= order.size()) break;
      if (late.load()) return;
      if (std::chrono::steady_clock::now() > deadline) {
        late = true;
        return;
      }
      const tree_entry& e = res.entries[order[k]];
      // Opened by its path under the root (not the whole path again), with the walk's stamp: it
      // is "stable" when the file still has it after the last read.
      lanes->add(root + "/" + e.path, order[k], e.stamp, root_fd, e.path);
      if (lanes->late()) break;
    }
    lanes->finish();
    if (lanes->late()) late = true;
  };
  if (progress) {
    // The calling thread reports progress while the pool works.
    auto last = std::chrono::steady_clock::now();
    base::run_parallel(n, work, [&] {
      if (std::chrono::steady_clock::now() - last > std::chrono::seconds(5)) {
        last = std::chrono::steady_clock::now();
        progress("hashed " + std::to_string(std::min(next.load(), order.size())) + " of " +
                 std::to_string(order.size()) + " files, " + std::to_string(done_bytes.load() >> 20) + " MiB");
      }
    });
  } else {
    base::run_parallel(n, work);
  }
  if (no_buffer.load()) throw std::runtime_error("no memory for a read buffer while hashing " + root);
  if (late.load()) throw std::runtime_error("deadline passed while hashing " + root);
  // Nothing looks the cache up any more: it is saved while the entries are sorted and rolled up.
  std::future<void> saved;
  if (cache) {
    try {
      saved = std::async(std::launch::async, [cache] { cache->save(); });
    } catch (const std::system_error&) {  // no thread to be had: saved here instead
      cache->save();
    }
  }
  std::sort(res.entries.begin(), res.entries.end(),
            [](const tree_entry& a, const tree_entry& b) { return a.path < b.path; });
  for (const auto& e : res.entries) {
    if (e.link) {
      res.link_count++;
    } else {
      res.file_count++;
      res.total_bytes += e.size;
      if (!e.error.empty()) res.error_count++;
    }
  }
  res.merkle_sha256 = merkle_root(res.entries);
  if (saved.valid()) saved.get();
  res.elapsed_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace bp::snap
