#include "base/sha256_lanes.hpp"

#include <dirent.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include <chrono>
#include <memory>

#include <csignal>
#include <functional>
#include <sys/resource.h>
#include <sys/mman.h>

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
    // No stamp is given, so none is mapped: every file goes through read(2).
    sha256_file_lanes lanes([&](sha256_file_lanes::result&& r) {
      EXPECT_EQ(got.count(r.token), 0u) << "token " << r.token << " ended twice";
      got[r.token] = std::move(r);
    }, 4 * 4096);
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
  sha256_file_lanes lanes([&](sha256_file_lanes::result&& r) { got[r.token] = std::move(r); }, 4 * 4096);
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
    sha256_file_lanes lanes([&](sha256_file_lanes::result&&) { ++ended; }, 4 * 4096);
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
    sha256_file_lanes lanes([&](sha256_file_lanes::result&& r) { got[r.token] = std::move(r); }, 4 * 4096);
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

namespace {
bp::file_stamp stamp_at(const std::string& p) {
  struct stat st {};
  EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
  return bp::stamp_of(st);
}
constexpr std::size_t kMap = sha256_file_lanes::kMapFrom, kWin = sha256_file_lanes::kWindow;
}  // namespace

TEST_P(Sha256LanesTest, LargeFilesWithAStampAreHashedFromWindowsOfAMappingToTheSameDigest) {
  const std::vector<std::size_t> sizes = {kMap - 1, kMap, kWin, kWin + 13, 2 * kWin + kMap + 1, 3 * kWin};
  std::map<std::size_t, std::string> bytes;
  std::map<std::size_t, sha256_file_lanes::result> got;
  {
    sha256_file_lanes lanes([&](sha256_file_lanes::result&& r) { got[r.token] = std::move(r); });
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      bytes[i] = random_bytes(sizes[i], 200 + i);
      std::string p = write("m" + std::to_string(i), bytes[i]);
      bp::file_stamp st = stamp_at(p);
      lanes.add(p, i, &st);
    }
    lanes.finish();
  }
  ASSERT_EQ(got.size(), sizes.size());
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    EXPECT_TRUE(got[i].ok) << got[i].err;
    EXPECT_EQ(got[i].hex, bp::sha256_hex(bytes[i])) << sizes[i] << " bytes";
    EXPECT_EQ(got[i].size, sizes[i]);
    EXPECT_TRUE(got[i].stable);
  }
}

bool sigbus_handler_installed() {
  struct sigaction now {};
  return ::sigaction(SIGBUS, nullptr, &now) == 0 && (now.sa_flags & SA_SIGINFO) != 0 && now.sa_sigaction != nullptr;
}

int mappings_of(const std::string& path) {
  std::ifstream maps("/proc/self/maps");
  int n = 0;
  for (std::string line; std::getline(maps, line);) n += line.find(path) != std::string::npos ? 1 : 0;
  return n;
}

TEST_P(Sha256LanesTest, AMappedFileThatChangesGivesWhatRead2WouldGiveAndTheProcessGoesOn) {
  // Each changed after the caller's stat (add() is given the old stamp) and before its windows are
  // hashed: truncated to nothing, into its second window, to the end of its first window (its last
  // 13 bytes were a window of their own, touched only by the digest's last block), inside its last
  // page (no SIGBUS: the page's tail reads as zeros), and replaced by a longer file.
  const std::string whole = random_bytes(2 * kWin + 99, 300), other = random_bytes(3 * kMap + 5, 301);
  struct change {
    std::string name;
    std::size_t size;                   // written
    std::function<void(const std::string&)> act;
    std::string after;                  // what is there when it is hashed
  };
  const std::size_t cut = kWin + kWin / 2 + 7, in_page = 2 * kMap + 1000;
  std::vector<change> changes = {
      {"zero", whole.size(), [](const std::string& p) { ASSERT_EQ(::truncate(p.c_str(), 0), 0); }, ""},
      {"part", whole.size(), [&](const std::string& p) { ASSERT_EQ(::truncate(p.c_str(), cut), 0); },
       whole.substr(0, cut)},
      {"tail", kWin + 13, [&](const std::string& p) { ASSERT_EQ(::truncate(p.c_str(), kWin), 0); },
       whole.substr(0, kWin)},
      {"page", 2 * kMap + 3000, [&](const std::string& p) { ASSERT_EQ(::truncate(p.c_str(), in_page), 0); },
       whole.substr(0, in_page)},
      {"replaced", 2 * kMap,
       [&](const std::string& p) {
         std::ofstream(p + ".new", std::ios::binary) << other;
         ASSERT_EQ(::rename((p + ".new").c_str(), p.c_str()), 0);
       },
       other},
      {"kept", whole.size(), [](const std::string&) {}, whole},
  };
  for (bool check_after : {true, false}) {
    std::map<std::size_t, sha256_file_lanes::result> got;
    {
      sha256_file_lanes lanes([&](sha256_file_lanes::result&& r) { got[r.token] = std::move(r); },
                              bp::read_buffer::default_size, check_after);
      std::vector<std::string> paths;
      for (std::size_t i = 0; i < changes.size(); ++i) {
        std::string p = write(changes[i].name + std::to_string(check_after), whole.substr(0, changes[i].size));
        paths.push_back(p);
        bp::file_stamp st = stamp_at(p);
        if (i < 4) lanes.add(p, i, &st);  // four at once: changed below, before any is hashed
        if (i == 0) {
          ASSERT_TRUE(sigbus_handler_installed()) << "a file of " << changes[i].size << " bytes was not to be mapped";
        }
      }
      for (std::size_t i = 0; i < 4; ++i) changes[i].act(paths[i]);
      lanes.finish();
      for (std::size_t i = 4; i < changes.size(); ++i) {
        bp::file_stamp st = stamp_at(paths[i]);
        changes[i].act(paths[i]);
        lanes.add(paths[i], i, &st);
      }
      lanes.finish();
    }
    ASSERT_EQ(got.size(), changes.size());
    for (std::size_t i = 0; i < changes.size(); ++i) {
      const auto& r = got[i];
      EXPECT_TRUE(r.ok) << changes[i].name << ": " << r.err;
      EXPECT_EQ(r.hex, bp::sha256_hex(changes[i].after)) << changes[i].name;
      EXPECT_EQ(r.size, changes[i].after.size()) << changes[i].name;
      EXPECT_EQ(r.stable, check_after && changes[i].name == "kept") << changes[i].name;
    }
  }
}

TEST_P(Sha256LanesTest, LanesDroppedWithWindowsMappedCloseAndUnmapThem) {
  std::vector<std::string> paths;
  for (std::size_t size : {3 * kWin, 3 * kWin, 3 * kWin, kMap, kMap}) {
    paths.push_back(write("w" + std::to_string(paths.size()), random_bytes(size, 60 + paths.size())));
  }
  const int before = open_descriptors();
  int ended = 0;
  {
    sha256_file_lanes lanes([&](sha256_file_lanes::result&&) { ++ended; });
    for (std::size_t i = 0; i < paths.size(); ++i) {
      bp::file_stamp st = stamp_at(paths[i]);
      lanes.add(paths[i], i, &st);  // the fifth hashes until the small fourth is done
    }
    EXPECT_EQ(ended, 1);
    EXPECT_EQ(mappings_of(paths[0]), 1) << "the first file's window is mapped";
  }  // as when a deadline passes
  EXPECT_EQ(open_descriptors(), before);
  for (const auto& p : paths) EXPECT_EQ(mappings_of(p), 0) << p;
}

TEST_P(Sha256LanesTest, OutOfDescriptorsALaneIsFinishedAndTheFileOpenedAgain) {
  const std::string style = GTEST_FLAG_GET(death_test_style);
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  std::vector<std::string> paths, bytes;
  for (int i = 0; i < 6; ++i) {
    bytes.push_back(random_bytes(20000 + i, 70 + i));
    paths.push_back(write("d" + std::to_string(i), bytes.back()));
  }
  EXPECT_EXIT(
      {
        struct rlimit lim {};
        ::getrlimit(RLIMIT_NOFILE, &lim);
        lim.rlim_cur = 64;
        if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) std::_Exit(2);
        // Every descriptor taken, then two given back: room for two files in the lanes, not four.
        std::vector<int> taken;
        for (int fd; (fd = ::open("/dev/null", O_RDONLY)) >= 0;) taken.push_back(fd);
        if (errno != EMFILE || taken.size() < 2) std::_Exit(2);
        ::close(taken.back());
        taken.pop_back();
        ::close(taken.back());
        taken.pop_back();
        int good = 0;
        sha256_file_lanes lanes([&](sha256_file_lanes::result&& r) {
          good += r.ok && r.hex == bp::sha256_hex(bytes[r.token]) ? 1 : 0;
        });
        for (std::size_t i = 0; i < paths.size(); ++i) lanes.add(paths[i], i);
        lanes.finish();
        std::_Exit(good == 6 ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
  GTEST_FLAG_SET(death_test_style, style);
}

TEST_P(Sha256LanesTest, PastTheDeadlineNothingMoreIsHashedAndEveryFileIsClosed) {
  std::vector<std::string> paths;
  for (int i = 0; i < 6; ++i) paths.push_back(write("late" + std::to_string(i), random_bytes(50000, 80 + i)));
  const int before = open_descriptors();
  int ended = 0;
  {
    sha256_file_lanes lanes([&](sha256_file_lanes::result&&) { ++ended; });
    lanes.set_deadline(std::chrono::steady_clock::now() - std::chrono::seconds(1));
    for (std::size_t i = 0; i < paths.size(); ++i) lanes.add(paths[i], i);
    lanes.finish();
    EXPECT_TRUE(lanes.late());
    EXPECT_EQ(lanes.busy(), 4) << "the first four were opened before anything was hashed";
  }
  EXPECT_EQ(ended, 0);
  EXPECT_EQ(open_descriptors(), before);
}

TEST_P(Sha256LanesTest, SomethingThatIsNoLongerARegularFileEndsWithThatReason) {
  // /dev/zero given with the stamp of a regular file (as if one had been replaced by a device
  // after the walk): read(2) would never end, and a mapping of it reads zeros without a fault.
  for (std::uint64_t size : {std::uint64_t{1000}, std::uint64_t{2 * kMap}}) {
    bp::file_stamp fake;
    fake.size = size;
    sha256_file_lanes::result got;
    sha256_file_lanes lanes([&](sha256_file_lanes::result&& r) { got = std::move(r); });
    lanes.add("/dev/zero", 1, &fake);
    lanes.finish();
    EXPECT_FALSE(got.ok) << size;
    EXPECT_EQ(got.err, "not a regular file any more") << size;
  }
}

TEST_P(Sha256LanesTest, WithNoWindowToBeHadAFileIsReadInstead) {
  // Three lane objects on one thread, each holding three files part-way through their first
  // window: the thread's eight window slots run out and the third object's files are read.
  std::vector<std::unique_ptr<sha256_file_lanes>> all;
  std::map<std::size_t, sha256_file_lanes::result> got;
  std::map<std::size_t, std::string> want;
  std::size_t token = 0;
  for (int o = 0; o < 3; ++o) {
    all.push_back(std::make_unique<sha256_file_lanes>(
        [&](sha256_file_lanes::result&& r) { got[r.token] = std::move(r); }));
    for (std::size_t size : {3 * kWin, 3 * kWin, 3 * kWin, kMap, kMap}) {
      want[token] = random_bytes(size, 500 + token);
      std::string p = write("slot" + std::to_string(token), want[token]);
      bp::file_stamp st = stamp_at(p);
      all.back()->add(p, token++, &st);
    }
  }
  for (auto& l : all) l->finish();
  ASSERT_EQ(got.size(), want.size());
  for (auto& [t, bytes] : want) {
    EXPECT_TRUE(got[t].ok) << t << ": " << got[t].err;
    EXPECT_EQ(got[t].hex, bp::sha256_hex(bytes)) << t;
    EXPECT_TRUE(got[t].stable) << t;
  }
}

TEST(Sha256LanesPerThread, TheDescriptorLimitLeavesFewerLanesPerThread) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        int open = 0;
        for (const auto& e : fs::directory_iterator("/proc/self/fd")) open += e.path().empty() ? 0 : 1;
        struct rlimit lim {};
        ::getrlimit(RLIMIT_NOFILE, &lim);
        lim.rlim_cur = static_cast<rlim_t>(open + 64 + 8);  // 8 to spare beyond the 64 set aside
        if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) std::_Exit(2);
        const int one = bp::sha256_lanes_per_thread(1);
        const int four = bp::sha256_lanes_per_thread(4);
        const int many = bp::sha256_lanes_per_thread(100);
        std::_Exit(one == 4 && four == 2 && many == 1 ? 0 : 10 + one * 100 + four * 10 + many);
      },
      ::testing::ExitedWithCode(0), "");
}

namespace {
void exit_9(int) { std::_Exit(9); }
}  // namespace

TEST_P(Sha256LanesTest, ASigbusThatIsNotAHashedWindowsGoesWhereItWentBefore) {
  const std::string style = GTEST_FLAG_GET(death_test_style);
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // the child is this binary again: no forked threads
  const std::string whole = random_bytes(kWin + 1, 400);
  std::string hashed = write("hashed", whole), other = write("other", whole);
  auto hash_one_mapped = [&] {  // installs the handler
    bp::file_stamp st = stamp_at(hashed);
    sha256_file_lanes lanes([](sha256_file_lanes::result&& r) {
      if (!r.ok) std::_Exit(3);
    });
    lanes.add(hashed, 1, &st);
    lanes.finish();
    if (!sigbus_handler_installed()) std::_Exit(4);
  };
  auto fault_elsewhere = [&] {  // a fault in a mapping of the process's own, not a lane's window
    int fd = ::open(other.c_str(), O_RDONLY);
    auto* p = static_cast<volatile const unsigned char*>(::mmap(nullptr, kWin, PROT_READ, MAP_PRIVATE, fd, 0));
    if (::truncate(other.c_str(), 0) != 0) std::_Exit(5);
    unsigned char c = p[100];
    std::_Exit(c == 255 ? 6 : 7);
  };
  // With the default before: the process ends, for a fault or a SIGBUS sent to it.
  EXPECT_EXIT(
      {
        hash_one_mapped();
        fault_elsewhere();
      },
      ::testing::KilledBySignal(SIGBUS), "");
  EXPECT_EXIT(
      {
        hash_one_mapped();
        std::raise(SIGBUS);
        std::_Exit(8);
      },
      ::testing::KilledBySignal(SIGBUS), "");
  // Ignored before: a sent one is still ignored.
  EXPECT_EXIT(
      {
        std::signal(SIGBUS, SIG_IGN);
        hash_one_mapped();
        std::raise(SIGBUS);
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(0), "");
  // A handler of the program's before: it gets both.
  EXPECT_EXIT(
      {
        std::signal(SIGBUS, exit_9);
        hash_one_mapped();
        std::raise(SIGBUS);
        std::_Exit(8);
      },
      ::testing::ExitedWithCode(9), "");
  EXPECT_EXIT(
      {
        std::signal(SIGBUS, exit_9);
        hash_one_mapped();
        fault_elsewhere();
      },
      ::testing::ExitedWithCode(9), "");
  GTEST_FLAG_SET(death_test_style, style);
}

INSTANTIATE_TEST_SUITE_P(Paths, Sha256LanesTest, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& i) {
                           return std::string(i.param ? "ShaExtensionsWhereTheCpuHasThem" : "Portable");
                         });
