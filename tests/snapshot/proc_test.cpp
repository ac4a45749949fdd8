#include "snapshot/proc.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

using namespace bp::snap;
namespace fs = std::filesystem;

TEST(ProcParse, CmdlineSplitsOnNul) {
  std::string raw("vllm\0serve\0Qwen/Qwen2.5\0--port\0" "8000\0", 36);
  auto v = parse_cmdline(raw);
  ASSERT_EQ(v.size(), 5u);
  EXPECT_EQ(v[0], "vllm");
  EXPECT_EQ(v[4], "8000");
}

TEST(ProcParse, CmdlineWithoutFinalNulFromSetproctitle) {
  std::string raw = "VLLM::EngineCore";
  auto v = parse_cmdline(raw);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0], "VLLM::EngineCore");
}

TEST(ProcParse, EnvironKeepsValuesWithEquals) {
  std::string raw("A=1\0OPTS=--x=y\0EMPTY=\0", 22);
  auto e = parse_environ(raw);
  ASSERT_EQ(e.size(), 3u);
  EXPECT_EQ(e[1].first, "OPTS");
  EXPECT_EQ(e[1].second, "--x=y");
  EXPECT_EQ(e[2].second, "");
}

TEST(ProcParse, StatWithSpacesAndParensInComm) {
  std::string raw =
      "4242 (VLLM::Worker (TP0)) S 4200 4200 4200 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 17 0 123456 1000 200 "
      "18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
  auto s = parse_stat(raw);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->pid, 4242);
  EXPECT_EQ(s->comm, "VLLM::Worker (TP0)");
  EXPECT_EQ(s->state, 'S');
  EXPECT_EQ(s->ppid, 4200);
  EXPECT_EQ(s->num_threads, 17);
  EXPECT_EQ(s->starttime_ticks, 123456u);
}

TEST(ProcParse, TruncatedStatIsRejected) {
  EXPECT_FALSE(parse_stat("12 (x) S 1 2"));
  EXPECT_FALSE(parse_stat("garbage"));
}

TEST(ProcTree, DescendantsFromAFixtureProcRoot) {
  fs::path root = fs::temp_directory_path() / ("bp_proc_" + std::to_string(::getpid()));
  fs::remove_all(root);
  auto mk = [&](int pid, int ppid, const std::string& comm) {
    fs::create_directories(root / std::to_string(pid));
    std::ofstream(root / std::to_string(pid) / "stat")
        << pid << " (" << comm << ") S " << ppid << " 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 3 0 100 0 0\n";
  };
  mk(10, 1, "engine");
  mk(11, 10, "VLLM::EngineCor");
  mk(12, 11, "VLLM::Worker_TP");
  mk(13, 1, "unrelated");
  mk(20, 5, "shim-child");
  auto d = descendants(root.string(), {10});
  EXPECT_EQ(d, (std::vector<int>{11, 12}));
  d = descendants(root.string(), {10, 5});
  EXPECT_EQ(d, (std::vector<int>{11, 12, 20}));
  fs::remove_all(root);
}

TEST(ProcRead, ReadsThisProcess) {
  std::string err;
  auto p = read_proc("/proc", ::getpid(), err);
  ASSERT_TRUE(p) << err;
  EXPECT_EQ(p->pid, ::getpid());
  EXPECT_FALSE(p->argv.empty());
  EXPECT_GT(p->threads, 0);
  EXPECT_GT(p->start_time_unix, 1.6e9);
}

TEST(ProcRead, GoneProcessNamesThePid) {
  std::string err;
  EXPECT_FALSE(read_proc("/proc", 999999999, err));
  EXPECT_NE(err.find("PID 999999999"), std::string::npos) << err;
}
