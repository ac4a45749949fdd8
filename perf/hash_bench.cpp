// bp-hash-bench ROOT [THREADS]: hashes ROOT/{bin,lib,lib64} as the venv collector does and prints
// files, bytes, seconds, MB/s and the merkle root (perf/venv_hash.sh compares it with OpenSSL).
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "snapshot/merkle.hpp"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bp-hash-bench ROOT [THREADS]\n");
    return 2;
  }
  int threads = argc > 2 ? std::atoi(argv[2]) : 0;
  auto t0 = std::chrono::steady_clock::now();
  auto t = bp::snap::hash_tree(argv[1], {"bin", "lib", "lib64"}, threads, std::chrono::steady_clock::time_point::max());
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("files %llu bytes %llu seconds %.3f MBps %.1f threads %d merkle %s\n",
              static_cast<unsigned long long>(t.file_count), static_cast<unsigned long long>(t.total_bytes), s,
              t.total_bytes / s / 1e6, t.threads, t.merkle_sha256.c_str());
  return 0;
}
