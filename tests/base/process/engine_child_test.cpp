#include "base/process/engine_child.hpp"

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

// Each test runs with both shims: bench-proxy-shim (the one bench-proxy uses) and bench-proxy's
// own `__engine-shim` (the fallback when bench-proxy-shim is missing). The same code, two builds.
std::string g_shim = "bench-proxy-shim";

launch_spec sh_spec(const std::string& script) {
  launch_spec s;
  s.shim_exe = std::string(BP_BIN_DIR) + "/" + g_shim;
  s.exe = "/bin/sh";
  s.argv = {"sh", "-c", script};
  s.envp = {"PATH=/usr/bin:/bin", "ONLY_THIS=1", "TOKEN=s3cr3t-value"};
  s.cwd = "/tmp";
  s.redact = bp::base::redactor({"s3cr3t-value"}, "test key");
  return s;
}

bool alive(pid_t p) { return ::kill(p, 0) == 0; }

class EngineChild : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { g_shim = GetParam(); }
};

}  // namespace

INSTANTIATE_TEST_SUITE_P(Shims, EngineChild, ::testing::Values("bench-proxy-shim", "bench-proxy"),
                         [](const auto& info) { return info.param == "bench-proxy" ? std::string("BenchProxyItself")
                                                                                    : std::string("OwnExecutable"); });

TEST_P(EngineChild, EnvironmentIsExactlyTheConfiguredOne) {
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

TEST_P(EngineChild, ExitStatusAndScrubbedOutputTail) {
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

TEST_P(EngineChild, NothingOfTheTreeSurvivesItsRoot) {
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

TEST_P(EngineChild, MissingExecutableReportsExit127) {
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


TEST_P(EngineChild, TheShimIsTheExecutableAskedForAndNamedBpEngineShim) {
  std::promise<int> exited;
  std::string err;
  auto c = engine_child::launch(sh_spec("sleep 30"), [&](int st) { exited.set_value(st); }, err);
  ASSERT_TRUE(c) << err;
  std::error_code ec;
  EXPECT_EQ(fs::read_symlink("/proc/" + std::to_string(c->shim_pid()) + "/exe", ec).filename().string(), GetParam());
  std::ifstream comm("/proc/" + std::to_string(c->shim_pid()) + "/comm");
  std::string name;
  std::getline(comm, name);
  EXPECT_EQ(name, "bp-engine-shim");
  // bench-proxy-shim is linked against nothing: not one shared library in its address space.
  std::ifstream maps("/proc/" + std::to_string(c->shim_pid()) + "/maps");
  std::string line, libs;
  while (std::getline(maps, line))
    if (line.find(".so") != std::string::npos) libs += line + "\n";
  if (GetParam() == "bench-proxy-shim")
    EXPECT_EQ(libs, "");
  else
    EXPECT_NE(libs, "");
  c->signal_group(SIGTERM);
  EXPECT_EQ(exited.get_future().wait_for(5s), std::future_status::ready);
}

TEST_P(EngineChild, ABadWorkingDirectoryReportsExit126) {
  std::promise<int> exited;
  std::string err;
  auto spec = sh_spec("exit 0");
  spec.cwd = "/nonexistent/dir";
  auto c = engine_child::launch(spec, [&](int st) { exited.set_value(st); }, err);
  ASSERT_TRUE(c) << err;
  auto f = exited.get_future();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(describe_wait_status(f.get()), "exited with status 126");
  auto tail = c->output().tail_lines(5);
  ASSERT_FALSE(tail.empty());
  EXPECT_EQ(tail.back(), "bench-proxy: cannot change to directory /nonexistent/dir: No such file or directory");
}

TEST_P(EngineChild, AKilledShimEndsTheEngineTree) {
  // The shim's death (even SIGKILL) is the engine's: its root dies by its parent-death signal, the
  // rest (here a new-session grandchild) was re-parented to this process, a subreaper, and is
  // killed by kill_orphans as bench-proxy's reaper thread does.
  become_subreaper();
  std::promise<int> exited;
  std::string err;
  std::string pidfile = (fs::temp_directory_path() / ("bp_ks_" + std::to_string(::getpid()))).string();
  auto c = engine_child::launch(
      sh_spec("setsid sh -c 'trap \"\" TERM HUP; echo $$ > " + pidfile + "; sleep 120' & wait"),
      [&](int st) { exited.set_value(st); }, err);
  ASSERT_TRUE(c) << err;
  pid_t gc = 0;
  for (int i = 0; i < 500 && gc == 0; ++i) {
    std::ifstream f(pidfile);
    f >> gc;
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_GT(gc, 0);
  pid_t root = c->pid();
  ::kill(c->shim_pid(), SIGKILL);
  auto f = exited.get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(f.get(), -1);  // "ended without a status (its supervisor died)"
  EXPECT_FALSE(alive(root));
  EXPECT_FALSE(alive(gc)) << "detached grandchild " << gc << " survived its shim";
  fs::remove(pidfile);
}

TEST(EngineShim, FoundNextToTheBinaryElseTheBinaryItself) {
  fs::path dir = fs::temp_directory_path() / ("bp_find_shim_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::string self = (dir / "bench-proxy").string();
  bool standalone = true;
  EXPECT_EQ(find_engine_shim(self, standalone), self);
  EXPECT_FALSE(standalone);
  { std::ofstream(dir / "bench-proxy-shim") << "#!/bin/sh\n"; }
  fs::permissions(dir / "bench-proxy-shim", fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(find_engine_shim(self, standalone), self);  // not executable: not used
  EXPECT_FALSE(standalone);
  fs::permissions(dir / "bench-proxy-shim", fs::perms::owner_all);
  EXPECT_EQ(find_engine_shim(self, standalone), (dir / "bench-proxy-shim").string());
  EXPECT_TRUE(standalone);
  // bench-proxy's own file replaced while it runs: /proc/self/exe says " (deleted)".
  EXPECT_EQ(find_engine_shim(self + " (deleted)", standalone), (dir / "bench-proxy-shim").string());
  EXPECT_TRUE(standalone);
  fs::remove_all(dir);
}

TEST(EngineShim, RunByHandItSaysWhatItIsAndExits2) {
  std::string out = (fs::temp_directory_path() / ("bp_shim_hand_" + std::to_string(::getpid()))).string();
  std::string cmd = std::string(BP_BIN_DIR) + "/bench-proxy-shim 2>" + out;
  int st = std::system(cmd.c_str());
  EXPECT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 2);
  std::ifstream f(out);
  std::string line;
  std::getline(f, line);
  EXPECT_NE(line.find("not for direct use"), std::string::npos) << line;
  fs::remove(out);
}

TEST(EngineShim, AShimReplacedOnDiskAfterItsFirstUseIsNotTheOneExeced) {
  // A rebuild or an upgrade during a long sweep: bench-proxy keeps exec'ing the shim it first
  // found (held open), never a half-written, missing or different file at the same path.
  fs::path dir = fs::temp_directory_path() / ("bp_pin_shim_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  fs::path shim = dir / "bench-proxy-shim";
  fs::copy_file(std::string(BP_BIN_DIR) + "/bench-proxy-shim", shim, fs::copy_options::overwrite_existing);
  auto run = [&](int& status) {
    std::promise<int> exited;
    std::string err;
    auto spec = sh_spec("exit 3");
    spec.shim_exe = shim.string();
    auto c = engine_child::launch(spec, [&](int st) { exited.set_value(st); }, err);
    if (!c) return err;
    auto f = exited.get_future();
    if (f.wait_for(10s) != std::future_status::ready) return std::string("no exit");
    status = f.get();
    return std::string();
  };
  int st = 0;
  ASSERT_EQ(run(st), "");
  EXPECT_EQ(describe_wait_status(st), "exited with status 3");
  {
    std::ofstream f(dir / "new");
    f << "#!/bin/false\n";
  }
  fs::permissions(dir / "new", fs::perms::owner_all);
  fs::rename(dir / "new", shim);  // the path now names a script that would fail at once
  st = 0;
  ASSERT_EQ(run(st), "");
  EXPECT_EQ(describe_wait_status(st), "exited with status 3");
  fs::remove_all(dir);
}
