#include "snapshot/merkle.hpp"

#include "base/parallel.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <memory>
#include <thread>

#include "base/sha256.hpp"
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


// Lists the folder open as `dfd` (taken over) relative to it: fstatat/openat/readlinkat by name,
// so the kernel never walks the whole path again for each of tens of thousands of entries, and a
// folder replaced by a symlink meanwhile is not followed (O_NOFOLLOW).
void walk(int dfd, const std::string& rel, std::vector<tree_entry>& out,
          std::chrono::steady_clock::time_point deadline) {
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
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    std::string r = rel + "/" + e->d_name;
    if (e->d_type == DT_DIR) {
      int sub = ::openat(fd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub >= 0) walk(sub, r, out, deadline);
      continue;
    }
    struct stat st {};
    if (::fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (S_ISLNK(st.st_mode)) {
      tree_entry t;
      t.path = r;
      t.link = true;
      char buf[4096];
      ssize_t n = ::readlinkat(fd, e->d_name, buf, sizeof(buf));
      if (n > 0) t.target.assign(buf, static_cast<std::size_t>(n));
      out.push_back(std::move(t));
    } else if (S_ISDIR(st.st_mode)) {
      int sub = ::openat(fd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub >= 0) walk(sub, r, out, deadline);
    } else if (S_ISREG(st.st_mode)) {
      tree_entry t;
      t.path = r;
      t.size = static_cast<std::uint64_t>(st.st_size);
      t.stamp = stamp_of(st);
      out.push_back(std::move(t));
    }
  }
  if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("deadline passed while listing");
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
          walk(dfd, s, res.entries, deadline);
        } catch (const std::runtime_error&) {
          throw std::runtime_error("deadline passed while listing " + root);
        }
      }
    }
  }
  // Largest files first keeps every thread busy to the end.
  std::vector<std::size_t> order;
  for (std::size_t i = 0; i < res.entries.size(); ++i)
    if (!res.entries[i].link) order.push_back(i);
  std::sort(order.begin(), order.end(),
            [&](std::size_t a, std::size_t b) { return res.entries[a].size > res.entries[b].size; });
  int n = base::thread_count(threads);
  res.threads = n;
  std::atomic<std::size_t> next{0};
  std::atomic<std::uint64_t> done_bytes{0};
  std::atomic<bool> late{false}, no_buffer{false};
  auto work = [&] {
    // One read buffer per thread for the whole tree (mapped here, unmapped when this returns).
    std::unique_ptr<read_buffer> owned;
    try {
      owned = std::make_unique<read_buffer>(block);
    } catch (const std::exception&) {
      no_buffer = true;  // no memory for a buffer: the collector fails rather than half-hashing
      late = true;
      return;
    }
    read_buffer& buf = *owned;
    for (;;) {
      std::size_t k = next.fetch_add(1);
      if (k >= order.size() || late.load()) return;
      if (std::chrono::steady_clock::now() > deadline) {
        late = true;
        return;
      }
      tree_entry& e = res.entries[order[k]];
      std::uint64_t size = 0;
      std::string err;
      if (!hash_file(root + "/" + e.path, &e.stamp, cache, buf, e.sha256, size, err)) {
        e.error = err;
      } else {
        e.size = size;
      }
      done_bytes += size;
    }
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
  res.elapsed_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace bp::snap
