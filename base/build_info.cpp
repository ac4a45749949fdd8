#include "base/build_info.hpp"

#include <filesystem>

#include "base/files.hpp"
#include "base/sha256.hpp"
#include "bp_git_version.hpp"

namespace bp::base {

const build_info& this_build() {
  static const build_info b = [] {
    build_info i;
    i.version = BENCH_PROXY_VERSION;
    i.git_commit = BENCH_PROXY_GIT_COMMIT;
    i.git_dirty = BENCH_PROXY_GIT_DIRTY;
    i.binary_path = self_exe();
    std::string hex, err;
    std::uint64_t size = 0;
    if (sha256_file(i.binary_path, hex, size, err)) i.binary_sha256 = hex;
    return i;
  }();
  return b;
}

nlohmann::json to_json(const build_info& b) {
  return {{"version", b.version},
          {"git_commit", b.git_commit},
          {"git_dirty", b.git_dirty},
          {"binary", b.binary_path},
          {"binary_sha256", b.binary_sha256.empty() ? nlohmann::json(nullptr) : nlohmann::json(b.binary_sha256)}};
}

}  // namespace bp::base
