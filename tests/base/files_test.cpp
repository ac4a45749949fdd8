#include "base/files.hpp"
#include "base/own_children.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>

namespace fs = std::filesystem;
using namespace bp::base;

namespace {
class FilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("bp_files_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "<no error>";
}
}  // namespace

TEST_F(FilesTest, ReadsRegularFilesAndRefusesEverythingElseByName) {
  std::ofstream(dir_ / "a.json") << "{}";
  EXPECT_EQ(read_file_limited((dir_ / "a.json").string()), "{}");
  EXPECT_NE(message_of([&] { read_file_limited((dir_ / "nope").string()); }).find("nope: cannot open"), std::string::npos);
  EXPECT_NE(message_of([&] { read_file_limited(dir_.string()); }).find("not a regular file (a directory)"),
            std::string::npos);
  EXPECT_NE(message_of([] { read_file_limited("/dev/zero"); }).find("/dev/zero: not a regular file (a device)"),
            std::string::npos);
  EXPECT_NE(message_of([] { read_file_limited("/proc/self/mem"); }).find("/proc/self/mem: not a regular file"),
            std::string::npos);
  ASSERT_EQ(::mkfifo((dir_ / "fifo").c_str(), 0600), 0);
  // A FIFO nobody writes to would block forever: refused at once instead.
  EXPECT_NE(message_of([&] { read_file_limited((dir_ / "fifo").string()); }).find("a FIFO"), std::string::npos);
}

TEST_F(FilesTest, ReadsAreCapped) {
  std::ofstream(dir_ / "big") << std::string(5000, 'x');
  EXPECT_NE(message_of([&] { read_file_limited((dir_ / "big").string(), 4096); }).find("more than the limit of 4096"),
            std::string::npos);
  EXPECT_EQ(read_file_limited((dir_ / "big").string(), 5000).size(), 5000u);
}

TEST_F(FilesTest, AtomicWritesNeverReplaceAnExistingFileAndLeaveNoTemporaries) {
  auto p = (dir_ / "result.json").string();
  write_file_atomic(p, "first");
  EXPECT_NE(message_of([&] { write_file_atomic(p, "second"); }).find("already exists"), std::string::npos);
  std::ifstream f(p);
  std::string s((std::istreambuf_iterator<char>(f)), {});
  EXPECT_EQ(s, "first");
  write_file_atomic(p, "replaced", false);
  std::ifstream g(p);
  EXPECT_EQ(std::string((std::istreambuf_iterator<char>(g)), {}), "replaced");
  int files = 0;
  for (auto& e : fs::directory_iterator(dir_)) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
}

TEST_F(FilesTest, UniqueDirsNeverReuseAnExistingFolder) {
  auto base = (dir_ / "runs" / "20261201T000000Z_demo").string();
  auto a = make_unique_dir(base), b = make_unique_dir(base), c = make_unique_dir(base);
  EXPECT_EQ(a, base);
  EXPECT_EQ(b, base + "-2");
  EXPECT_EQ(c, base + "-3");
}

// The orphan scan's question (base/process/engine_child.cpp): which children of this process did
// it not fork itself? A registered child is not a stranger; an unregistered one is, until reaped.
TEST(OwnChildren, StrangersAreTheChildrenNotInTheRegistry) {
  pid_t registered, stranger;
  {
    auto g = bp::base::own_children::guard();
    registered = ::fork();
    if (registered == 0) {
      ::pause();
      ::_exit(0);
    }
    bp::base::own_children::add(registered);
  }
  stranger = ::fork();
  if (stranger == 0) {
    ::pause();
    ::_exit(0);
  }
  std::vector<pid_t> found;
  {
    auto g = bp::base::own_children::guard();
    found = bp::base::own_children::strangers(::getpid());
  }
  EXPECT_NE(std::find(found.begin(), found.end(), stranger), found.end());
  EXPECT_EQ(std::find(found.begin(), found.end(), registered), found.end());
  for (pid_t p : {registered, stranger}) {
    ::kill(p, SIGKILL);
    ::waitpid(p, nullptr, 0);
  }
  bp::base::own_children::remove(registered);
  auto g = bp::base::own_children::guard();
  found = bp::base::own_children::strangers(::getpid());
  EXPECT_EQ(std::find(found.begin(), found.end(), stranger), found.end());  // reaped: gone
}
