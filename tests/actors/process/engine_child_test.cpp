#include "actors/process/engine_child.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "snapshot/proc.hpp"

using namespace bp;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

launch_spec sh_spec(const std::string& script) {
  launch_spec s;
  s.shim_exe = std::string(BP_BIN_DIR) + "/bench-proxy";
  s.exe = "/bin/sh";
  s.argv = {"sh", "-c", script};
  s.envp = {"PATH=/usr/bin:/bin", "ONLY_THIS=1", "TOKEN=s3cr3t-value"};
  s.cwd = "/tmp";
  s.redact = bp::base::redactor({"s3cr3t-value"}, "test key");
  return s;
}

bool alive(pid_t p) { return ::kill(p, 0) == 0; }

}  // namespace

TEST(EngineChild, EnvironmentIsExactlyTheConfiguredOne) {
  std::promise<int> exited;
  std::string err;
  auto c = engine_child::launch(sh_spec("sleep 30"), [&](int st) { exited.set_value(st); }, err);
  ASSERT_TRUE(c) << err;
  std::string e;
  std::optional<snap::proc_info> p;
  for (int i = 0; i < 100 && (!p || p->argv.empty() || p->argv[0] != "sh"); ++i) {
    p = snap::read_proc("/proc", c->pid(), e);
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(p) << e;
  snap::env_list want = {{"PATH", "/usr/bin:/bin"}, {"ONLY_THIS", "1"}, {"TOKEN", "s3cr3t-value"}};
  EXPECT_EQ(p->env, want);
  EXPECT_EQ(p->cwd, "/tmp");
  EXPECT_EQ(p->pgrp, c->pid());  // its own process group
  c->signal_group(SIGTERM);
  EXPECT_EQ(exited.get_future().wait_for(5s), std::future_status::ready);
}

TEST(EngineChild, ExitStatusAndScrubbedOutputTail) {
  std::promise<int> exited;
  std::string err;
  auto c = engine_child::launch(sh_spec("echo starting; echo \"token is $TOKEN\" >&2; echo fatal: no GPU >&2; exit 3"),
                                [&](int st) { exited.set_value(st); }, err);
  ASSERT_TRUE(c) << err;
  auto f = exited.get_future();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  int st = f.get();
  EXPECT_EQ(describe_wait_status(st), "exited with status 3");
  auto tail = c->output().tail_lines(10);
  ASSERT_GE(tail.size(), 3u);
  EXPECT_EQ(tail.back(), "fatal: no GPU");
  for (const auto& l : tail) EXPECT_EQ(l.find("s3cr3t-value"), std::string::npos) << l;
  EXPECT_NE(tail[1].find("[REDACTED hmac:"), std::string::npos) << tail[1];
}

TEST(EngineChild, NothingOfTheTreeSurvivesItsRoot) {
  // The engine starts a child, and a new-session grandchild that ignores SIGTERM and SIGHUP.
  std::promise<int> exited;
  std::string err;
  std::string pidfile = (fs::temp_directory_path() / ("bp_gc_" + std::to_string(::getpid()))).string();
  auto c = engine_child::launch(
      sh_spec("sleep 60 & setsid sh -c 'trap \"\" TERM HUP; echo $$ > " + pidfile + "; sleep 120' & wait"),
      [&](int st) { exited.set_value(st); }, err);
  ASSERT_TRUE(c) << err;
  pid_t gc = 0;
  for (int i = 0; i < 200 && gc == 0; ++i) {
    std::ifstream f(pidfile);
    f >> gc;
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_GT(gc, 0);
  EXPECT_TRUE(alive(gc));
  c->signal_group(SIGTERM);  // the setsid'd grandchild is not in the group
  ASSERT_EQ(exited.get_future().wait_for(10s), std::future_status::ready);
  EXPECT_FALSE(alive(gc)) << "detached grandchild " << gc << " survived";
  EXPECT_FALSE(alive(c->pid()));
  EXPECT_FALSE(alive(c->shim_pid()));
  fs::remove(pidfile);
}

TEST(EngineChild, MissingExecutableReportsExit127) {
  std::promise<int> exited;
  std::string err;
  auto spec = sh_spec("");
  spec.exe = "/nonexistent/engine";
  auto c = engine_child::launch(spec, [&](int st) { exited.set_value(st); }, err);
  ASSERT_TRUE(c) << err;
  auto f = exited.get_future();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(describe_wait_status(f.get()), "exited with status 127");
  auto tail = c->output().tail_lines(5);
  ASSERT_FALSE(tail.empty());
  EXPECT_NE(tail.back().find("cannot execute /nonexistent/engine"), std::string::npos);
}

