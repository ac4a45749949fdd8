#include "snapshot/merkle.hpp"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

using namespace bp::snap;
namespace fs = std::filesystem;

namespace {

class MerkleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("bp_merkle_" + std::to_string(::getpid()) + "_" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "bin");
    fs::create_directories(root_ / "lib/python3.11/site-packages/pkg");
    std::ofstream(root_ / "bin/python") << "#!/bin/sh\n";
    for (int i = 0; i < 40; ++i)
      std::ofstream(root_ / ("lib/python3.11/site-packages/pkg/m" + std::to_string(i) + ".py")) << "x = " << i << "\n";
    std::ofstream big(root_ / "lib/python3.11/site-packages/pkg/big.so", std::ios::binary);
    std::string block(1 << 20, 'b');
    for (int i = 0; i < 3; ++i) big << block;
    big.close();
    fs::create_symlink("lib", root_ / "lib64");
    fs::create_symlink("python", root_ / "bin/python3");
  }
  void TearDown() override { fs::remove_all(root_); }
  tree_hash hash(int threads) {
    return hash_tree(root_.string(), {"bin", "lib", "lib64"}, threads, std::chrono::steady_clock::time_point::max());
  }
  fs::path root_;
};

}  // namespace

TEST_F(MerkleTest, DeterministicAcrossRunsAndThreadCounts) {
  auto a = hash(1), b = hash(4), c = hash(1);
  EXPECT_EQ(a.merkle_sha256, b.merkle_sha256);
  EXPECT_EQ(a.merkle_sha256, c.merkle_sha256);
  EXPECT_EQ(a.file_count, 42u);
  EXPECT_EQ(a.link_count, 2u);
  EXPECT_EQ(a.total_bytes, b.total_bytes);
}

TEST_F(MerkleTest, SymlinksAreRecordedNotFollowed) {
  auto a = hash(2);
  bool saw = false;
  for (const auto& e : a.entries)
    if (e.path == "lib64") {
      saw = true;
      EXPECT_TRUE(e.link);
      EXPECT_EQ(e.target, "lib");
    }
  EXPECT_TRUE(saw);
  // Nothing under lib64/ was listed through the link.
  for (const auto& e : a.entries) EXPECT_NE(e.path.rfind("lib64/", 0), 0u) << e.path;
}

TEST_F(MerkleTest, ChangesWhenAByteChanges) {
  auto before = hash(2).merkle_sha256;
  std::ofstream(root_ / "lib/python3.11/site-packages/pkg/m7.py") << "x = 8\n";
  EXPECT_NE(hash(2).merkle_sha256, before);
}

TEST_F(MerkleTest, ChangesWhenANameChanges) {
  auto before = hash(2).merkle_sha256;
  fs::rename(root_ / "lib/python3.11/site-packages/pkg/m7.py", root_ / "lib/python3.11/site-packages/pkg/m7b.py");
  EXPECT_NE(hash(2).merkle_sha256, before);
}

TEST_F(MerkleTest, ChangesWhenAFileIsAddedOrALinkRetargeted) {
  auto before = hash(2).merkle_sha256;
  std::ofstream(root_ / "bin/new-tool") << "";
  auto added = hash(2).merkle_sha256;
  EXPECT_NE(added, before);
  fs::remove(root_ / "bin/python3");
  fs::create_symlink("new-tool", root_ / "bin/python3");
  EXPECT_NE(hash(2).merkle_sha256, added);
}

TEST_F(MerkleTest, DeadlineIsEnforced) {
  EXPECT_THROW(hash_tree(root_.string(), {"lib"}, 1, std::chrono::steady_clock::now() - std::chrono::seconds(1)),
               std::runtime_error);
}

TEST_F(MerkleTest, ATreeOfManyFoldersIsListedWholeOnAnyNumberOfThreads) {
  // More folders at one level than the listing queue holds (the finder lists the rest itself,
  // depth first) and a deep chain: every file is found once, whatever the thread count.
  fs::path sp = root_ / "lib/python3.11/site-packages";
  std::size_t made = 42;
  for (int d = 0; d < 150; ++d) {
    fs::path pkg = sp / ("p" + std::to_string(d)) / "sub";
    fs::create_directories(pkg);
    for (int f = 0; f < 3; ++f, ++made) std::ofstream(pkg / ("f" + std::to_string(f) + ".py")) << d << "," << f;
  }
  fs::path deep = sp / "deep";
  for (int k = 0; k < 40; ++k) deep /= "d" + std::to_string(k);
  fs::create_directories(deep);
  std::ofstream(deep / "leaf.py") << "leaf";
  ++made;
  auto one = hash(1), two = hash(2), eight = hash(8);
  EXPECT_EQ(one.file_count, made);
  EXPECT_EQ(two.file_count, made);
  EXPECT_EQ(eight.file_count, made);
  EXPECT_EQ(one.merkle_sha256, two.merkle_sha256);
  EXPECT_EQ(one.merkle_sha256, eight.merkle_sha256);
  for (std::size_t i = 1; i < eight.entries.size(); ++i) EXPECT_LT(eight.entries[i - 1].path, eight.entries[i].path);
}

namespace {
std::size_t open_descriptors() {
  std::size_t n = 0;
  for (const auto& e : fs::directory_iterator("/proc/self/fd")) {
    (void)e;
    ++n;
  }
  return n;
}
}  // namespace

TEST_F(MerkleTest, OutOfDescriptorsTheWalkFailsOnEveryThreadAndClosesWhatItOpened) {
  // A folder that cannot be opened for want of descriptors must not leave a subtree silently out
  // of the root: the collector fails, naming it, every thread stops, and nothing stays open.
  fs::path sp = root_ / "lib/python3.11/site-packages";
  for (int d = 0; d < 150; ++d) {
    fs::create_directories(sp / ("p" + std::to_string(d)) / "sub");
    std::ofstream(sp / ("p" + std::to_string(d)) / "sub/f.py") << d;
  }
  const std::size_t before = open_descriptors();
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &old), 0);
  rlimit tight = old;
  tight.rlim_cur = before + 8;  // a few folders, then EMFILE
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &tight), 0);
  std::string what;
  try {
    hash(2);
  } catch (const std::runtime_error& e) {
    what = e.what();
  }
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &old), 0);
  EXPECT_NE(what.find("cannot open folder"), std::string::npos) << what;
  EXPECT_NE(what.find("Too many open files"), std::string::npos) << what;
  EXPECT_EQ(open_descriptors(), before);
  EXPECT_EQ(hash(2).file_count, 42u + 150u);  // with descriptors again, the whole tree
}
