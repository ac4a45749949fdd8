// bp-hash-bench ROOT [THREADS [BLOCK_KIB]] [--cache DIR] [--portable]: hashes ROOT/{bin,lib,lib64}
// as the venv collector does and prints files, bytes, seconds, MB/s, the CPU time it took (user and
// system: on a shared machine CPU seconds per byte say more than wall time) and the merkle root.
// With --cache, through the hash cache in DIR as a run does (saved after), and its counters. With
// --portable, without the SHA extensions' lanes (OpenSSL per lane, as on a CPU without them).
//
// bp-hash-bench --in-memory [MIB=64]: one thread's SHA-256 speed on data already in memory, one
// stream (OpenSSL's SHA256, what `openssl speed` measures) and four streams at once (the lanes
// hashing uses), in MB/s of user CPU time, best of 5 (perf/venv_hash.sh prints both beside the
// tree's speed).
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/sha256_lanes.hpp"
#include "snapshot/hash_cache.hpp"
#include "snapshot/merkle.hpp"

namespace {
double cpu_s(bool user) {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  const timeval& t = user ? ru.ru_utime : ru.ru_stime;
  return t.tv_sec + t.tv_usec / 1e6;
}

int in_memory(std::size_t mib) {
  std::vector<std::string> data(bp::sha256_file_lanes::kLanes);
  std::uint64_t x = 88172645463325252ull;
  for (auto& d : data) {
    d.resize(mib << 20);
    for (auto& c : d) {  // xorshift: bytes no compressor or cache trick could shortcut
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      c = static_cast<char>(x);
    }
  }
  double one = 0, four = 0;
  for (int r = 0; r < 5; ++r) {
    double u = cpu_s(true);
    std::string h = bp::sha256_hex(data[0]);
    double s1 = cpu_s(true) - u;
    u = cpu_s(true);
    std::vector<std::string_view> views(data.begin(), data.end());
    auto hs = bp::sha256_hex_lanes(views);
    double s4 = cpu_s(true) - u;
    if (hs[0] != h) {
      std::fprintf(stderr, "bp-hash-bench: the lanes' digest differs from SHA256's\n");
      return 1;
    }
    if (s1 > 0) one = std::max(one, (mib << 20) / s1 / 1e6);
    if (s4 > 0) four = std::max(four, data.size() * (mib << 20) / s4 / 1e6);
  }
  std::printf("one_stream_MBps %.0f four_lanes_MBps %.0f sha_extensions %s\n", one, four,
              bp::sha256_lanes_in_hardware() ? "yes" : "no");
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> pos;
  std::string cache_dir;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--cache") == 0 && i + 1 < argc) {
      cache_dir = argv[++i];
    } else if (std::strcmp(argv[i], "--portable") == 0) {
      bp::sha256_lanes_use_hardware(false);
    } else if (std::strcmp(argv[i], "--in-memory") == 0) {
      return in_memory(i + 1 < argc ? static_cast<std::size_t>(std::atol(argv[i + 1])) : 64);
    } else {
      pos.push_back(argv[i]);
    }
  }
  if (pos.empty()) {
    std::fprintf(stderr, "usage: bp-hash-bench ROOT [THREADS [BLOCK_KIB]] [--cache DIR] [--portable]\n"
                         "       bp-hash-bench --in-memory [MIB]\n");
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
