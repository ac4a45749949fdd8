// bp-hash-bench ROOT [THREADS [BLOCK_KIB]] [--cache DIR]: hashes ROOT/{bin,lib,lib64} as the venv
// collector does and prints files, bytes, seconds, MB/s, the CPU time it took (user and system:
// on a shared machine CPU seconds per byte say more than wall time) and the merkle root
// (perf/venv_hash.sh compares it with OpenSSL). With --cache, through the hash cache in DIR as a
// run does (saved after), and its counters.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "snapshot/hash_cache.hpp"
#include "snapshot/merkle.hpp"

namespace {
double cpu_s(bool user) {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  const timeval& t = user ? ru.ru_utime : ru.ru_stime;
  return t.tv_sec + t.tv_usec / 1e6;
}
}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> pos;
  std::string cache_dir;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--cache") == 0 && i + 1 < argc)
      cache_dir = argv[++i];
    else
      pos.push_back(argv[i]);
  }
  if (pos.empty()) {
    std::fprintf(stderr, "usage: bp-hash-bench ROOT [THREADS [BLOCK_KIB]] [--cache DIR]\n");
    return 2;
  }
  int threads = pos.size() > 1 ? std::atoi(pos[1].c_str()) : 0;
  std::size_t block = pos.size() > 2 ? static_cast<std::size_t>(std::atol(pos[2].c_str())) << 10 : bp::read_buffer::default_size;
  double u0 = cpu_s(true), s0 = cpu_s(false);
  auto t0 = std::chrono::steady_clock::now();
  std::unique_ptr<bp::snap::hash_cache> cache;
  if (!cache_dir.empty()) {
    bp::snap::hash_cache_options o;
    o.dir = cache_dir;
    o.name = bp::snap::hash_cache::name_for("venv", pos[0]);
    cache = std::make_unique<bp::snap::hash_cache>(std::move(o));
  }
  auto t = bp::snap::hash_tree(pos[0], {"bin", "lib", "lib64"}, threads, std::chrono::steady_clock::time_point::max(),
                               nullptr, cache.get(), block);
  // hash_tree has saved the cache (while it rolled up), as in a run.
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("files %llu bytes %llu seconds %.3f MBps %.1f threads %d block_kib %zu user_s %.3f sys_s %.3f merkle %s",
              static_cast<unsigned long long>(t.file_count), static_cast<unsigned long long>(t.total_bytes), s,
              t.total_bytes / s / 1e6, t.threads, block >> 10, cpu_s(true) - u0, cpu_s(false) - s0,
              t.merkle_sha256.c_str());
  if (cache)
    std::printf(" from_cache %llu read %llu verified %llu", static_cast<unsigned long long>(cache->stats().from_cache),
                static_cast<unsigned long long>(cache->stats().read),
                static_cast<unsigned long long>(cache->stats().verified));
  std::printf("\n");
  return 0;
}
