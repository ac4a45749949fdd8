#include "snapshot/collectors/common.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "base/own_children.hpp"
#include "base/text.hpp"
#include "snapshot/proc.hpp"

namespace fs = std::filesystem;

namespace bp::snap {

namespace detail {

std::string trim(const std::string& s) { return std::string(base::trim(s)); }

json file_value(const std::string& path) {
  auto s = read_file(path, 1 << 20);
  if (!s) return nullptr;
  return trim(*s);
}

json bracketed(const std::string& path) {
  auto s = read_file(path, 4096);
  if (!s) return nullptr;
  auto l = s->find('['), r = s->find(']');
  if (l == std::string::npos || r == std::string::npos) return trim(*s);
  return s->substr(l + 1, r - l - 1);
}

std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') out.emplace_back(e->d_name);
    ::closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

int remaining_ms(const collect_input& in) {
  if (in.deadline == std::chrono::steady_clock::time_point::max()) return 60000;
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(in.deadline - std::chrono::steady_clock::now());
  return static_cast<int>(std::max<long long>(1, left.count()));
}

void check_deadline(const collect_input& in, const char* what) {
  if (std::chrono::steady_clock::now() > in.deadline) throw std::runtime_error(std::string("deadline passed: ") + what);
}

std::vector<int> engine_tree(const collect_input& in) {
  std::vector<int> roots = {in.engine_pid};
  if (in.shim_pid > 0) roots.push_back(in.shim_pid);
  auto d = descendants(in.proc_root, roots);
  std::vector<int> out = {in.engine_pid};
  for (int p : d)
    if (p != in.engine_pid && p != in.shim_pid) out.push_back(p);
  return out;
}

}  // namespace detail

std::string run_program(const std::vector<std::string>& argv, std::chrono::milliseconds timeout, int* exit_status,
                        bool merge_stderr) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) < 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  std::vector<char*> av;
  for (const auto& a : argv) av.push_back(const_cast<char*>(a.c_str()));
  av.push_back(nullptr);
  auto own = base::own_children::guard();
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid > 0) base::own_children::add(pid);
  own.unlock();
  if (pid == 0) {
    ::dup2(out[1], 1);
    int devnull = ::open("/dev/null", O_RDWR);
    ::dup2(devnull, 0);
    ::dup2(merge_stderr ? out[1] : devnull, 2);
    ::setpgid(0, 0);
    ::execvp(av[0], av.data());
    _exit(127);
  }
  ::close(out[1]);
  std::string data;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  bool timed_out = false;
  char buf[65536];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{out[0], POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) {
      timed_out = true;
      break;
    }
    ssize_t n = ::read(out[0], buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    data.append(buf, static_cast<std::size_t>(n));
    if (data.size() > (64u << 20)) break;
  }
  ::close(out[0]);
  if (timed_out) ::kill(-pid, SIGKILL);
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  base::own_children::remove(pid);
  if (exit_status) *exit_status = st;
  if (timed_out)
    throw std::runtime_error(argv[0] + " did not finish within " + std::to_string(timeout.count()) + " ms (killed)");
  if (WIFEXITED(st) && WEXITSTATUS(st) == 127) throw std::runtime_error(argv[0] + ": not found");
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    throw std::runtime_error(argv[0] + " failed (" +
                             (WIFEXITED(st) ? "exit status " + std::to_string(WEXITSTATUS(st))
                                            : "signal " + std::to_string(WTERMSIG(st))) +
                             ")");
  return data;
}

}  // namespace bp::snap
