#include "base/sha256_lanes.hpp"

#include <dirent.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>

namespace fs = std::filesystem;
using bp::sha256_file_lanes;

namespace {

// Both ways the lanes can run on this machine: its SHA extensions (where it has them) and the
// portable path every other CPU takes. Each test runs under both and restores the first.
class Sha256LanesTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    bp::sha256_lanes_use_hardware(GetParam());
    if (!GetParam()) {
      ASSERT_FALSE(bp::sha256_lanes_in_hardware());
    }
    dir_ = fs::temp_directory_path() / ("bp_lanes_" + std::to_string(::getpid()) + "_" +
                                        std::to_string(GetParam()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    bp::sha256_lanes_use_hardware(true);
    fs::remove_all(dir_);
  }
  std::string write(const std::string& name, const std::string& bytes) {
    std::string p = (dir_ / name).string();
    std::ofstream(p, std::ios::binary) << bytes;
    return p;
  }
  fs::path dir_;
};

std::string random_bytes(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

int open_descriptors() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (::readdir(d)) ++n;
    ::closedir(d);
  }
  return n;
}

// Lengths around every edge: the padding's (55/56 bytes), a block's, a read's (4 KiB buffers
// below), and many blocks.
const std::vector<std::size_t> kLengths = {0,    1,    55,   56,   63,   64,   65,    119,    120,
                                           127,  128,  1000, 4095, 4096, 4097, 12345, 1 << 20, (1 << 20) + 13};

}  // namespace

TEST_P(Sha256LanesTest, InMemoryDigestsAreSha256OfEachMessageWhateverItsNeighbours) {
  std::vector<std::string> store;
  for (std::size_t i = 0; i < kLengths.size(); ++i) store.push_back(random_bytes(kLengths[i], i));
  // Every count of messages from 1 to all (1..4 lanes busy, and more than one group of four),
  // in an order where lanes of very different lengths run side by side.
  for (std::size_t count = 1; count <= store.size(); ++count) {
    std::vector<std::string_view> msgs;
    for (std::size_t i = 0; i < count; ++i) msgs.push_back(store[(i * 7) % store.size()]);
    auto got = bp::sha256_hex_lanes(msgs);
    ASSERT_EQ(got.size(), msgs.size());
    for (std::size_t i = 0; i < count; ++i)
      EXPECT_EQ(got[i], bp::sha256_hex(msgs[i])) << "count " << count << ", message of " << msgs[i].size() << " bytes";
  }
  EXPECT_EQ(bp::sha256_hex_lanes({""})[0], "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(bp::sha256_hex_lanes({"abc"})[0], "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_P(Sha256LanesTest, FilesHashAsSha256FileDoesAndEachEndsOnce) {
  std::map<std::size_t, std::string> path_of;
  for (std::size_t i = 0; i < kLengths.size(); ++i)
    path_of[i] = write("f" + std::to_string(i), random_bytes(kLengths[i], 100 + i));
  std::map<std::size_t, sha256_file_lanes::result> got;
  {
    // 4 KiB per lane: files of more than one read, and a read that ends exactly at the file's end.
    sha256_file_lanes lanes([&](sha256_file_lanes::result&& r) {
      EXPECT_EQ(got.count(r.token), 0u) << "token " << r.token << " ended twice";
      got[r.token] = std::move(r);
    }, 4096);
    for (auto& [i, p] : path_of) lanes.add(p, i);
    lanes.finish();
    EXPECT_EQ(lanes.busy(), 0);
  }
  ASSERT_EQ(got.size(), path_of.size());
  for (auto& [i, p] : path_of) {
    const auto& r = got[i];
    std::string hex, err;
    std::uint64_t size = 0;
    ASSERT_TRUE(bp::sha256_file(p, hex, size, err)) << err;
    EXPECT_TRUE(r.ok) << r.err;
    EXPECT_EQ(r.hex, hex) << p;
    EXPECT_EQ(r.size, kLengths[i]);
    EXPECT_EQ(r.stamp.size, kLengths[i]);
    EXPECT_TRUE(r.stable) << p;
  }
}

TEST_P(Sha256LanesTest, AFileThatCannotBeReadEndsWithItsReasonAndTheOthersStillHash) {
  std::string good = write("good", random_bytes(100000, 7));
  std::string missing = (dir_ / "missing").string();
  std::string folder = (dir_ / "folder").string();
  fs::create_directories(folder);
  std::map<std::size_t, sha256_file_lanes::result> got;
  sha256_file_lanes lanes([&](sha256_file_lanes::result&& r) { got[r.token] = std::move(r); }, 4096);
  lanes.add(missing, 1);
  lanes.add(good, 2);
  lanes.add(folder, 3);  // opens, and its read fails (EISDIR)
  lanes.finish();
  ASSERT_EQ(got.size(), 3u);
  EXPECT_FALSE(got[1].ok);
  EXPECT_EQ(got[1].err, std::strerror(ENOENT));
  EXPECT_FALSE(got[3].ok);
  EXPECT_EQ(got[3].err, std::strerror(EISDIR));
  EXPECT_TRUE(got[2].ok) << got[2].err;
  EXPECT_EQ(got[2].hex, bp::sha256_hex(random_bytes(100000, 7)));
}

TEST_P(Sha256LanesTest, FilesLeftInTheLanesAreClosedWhenTheyAreDropped) {
  std::vector<std::string> paths;
  for (int i = 0; i < 4; ++i) paths.push_back(write("big" + std::to_string(i), random_bytes(1 << 16, 50 + i)));
  const int before = open_descriptors();
  int ended = 0;
  {
    sha256_file_lanes lanes([&](sha256_file_lanes::result&&) { ++ended; }, 4096);
    for (std::size_t i = 0; i < paths.size(); ++i) lanes.add(paths[i], i);
    EXPECT_EQ(lanes.busy(), 4);
    EXPECT_EQ(open_descriptors(), before + 4);
  }  // as when a deadline passes: dropped without finish()
  EXPECT_EQ(ended, 0);
  EXPECT_EQ(open_descriptors(), before);
}

TEST_P(Sha256LanesTest, AFileNamedInAFolderWithTheCallersStampIsStableOnlyWhileThatStampHolds) {
  const std::string bytes = random_bytes(300000, 9);
  write("a", bytes);
  write("b", bytes);
  int at = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(at, 0);
  struct stat st {};
  ASSERT_EQ(::fstatat(at, "a", &st, AT_SYMLINK_NOFOLLOW), 0);
  bp::file_stamp now = bp::stamp_of(st), earlier = now;
  earlier.mtime_ns -= 1000000000;  // what a walk saw before the file was written again
  ASSERT_EQ(::fstatat(at, "b", &st, AT_SYMLINK_NOFOLLOW), 0);
  bp::file_stamp b_now = bp::stamp_of(st);
  std::map<std::size_t, sha256_file_lanes::result> got;
  {
    sha256_file_lanes lanes([&](sha256_file_lanes::result&& r) { got[r.token] = std::move(r); }, 4096);
    lanes.add("a", 1, &now, at);
    lanes.add("a", 2, &earlier, at);
    lanes.add("b", 3, &b_now, at);
    lanes.finish();
  }
  ::close(at);
  ASSERT_EQ(got.size(), 3u);
  for (std::size_t t : {1, 2, 3}) {
    EXPECT_TRUE(got[t].ok) << got[t].err;
    EXPECT_EQ(got[t].hex, bp::sha256_hex(bytes));
    EXPECT_EQ(got[t].size, bytes.size());
  }
  EXPECT_TRUE(got[1].stable);
  EXPECT_EQ(got[1].stamp, now);
  EXPECT_FALSE(got[2].stable) << "the file is not what the caller's stamp said";
  EXPECT_EQ(got[2].stamp, earlier);
  EXPECT_TRUE(got[3].stable);
}

INSTANTIATE_TEST_SUITE_P(Paths, Sha256LanesTest, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& i) {
                           return std::string(i.param ? "ShaExtensionsWhereTheCpuHasThem" : "Portable");
                         });
