#include "base/process/engine_child.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <future>
#include <queue>
#include <map>
#include <set>
#include <sstream>

#include <spdlog/spdlog.h>

#include "base/process/engine_shim.hpp"
#include "base/own_children.hpp"
#include "base/sha256.hpp"

extern char** environ;

namespace bp {

namespace {

/// Forks happen on one thread that lives as long as bench-proxy: the parent-death signal fires
/// when the *thread* that forked exits, not the process.
class launcher {
 public:
  static launcher& get() {
    static launcher* l = new launcher();  // never destroyed: its thread must outlive every child
    return *l;
  }
  template <class F>
  auto run(F f) -> decltype(f()) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto fut = task.get_future();
    {
      std::lock_guard<std::mutex> g(mu_);
      jobs_.push([&task] { task(); });
    }
    cv_.notify_one();
    return fut.get();
  }

 private:
  launcher() {
    std::thread([this] {
      for (;;) {
        std::function<void()> job;
        {
          std::unique_lock<std::mutex> g(mu_);
          cv_.wait(g, [this] { return !jobs_.empty(); });
          job = std::move(jobs_.front());
          jobs_.pop();
        }
        job();
      }
    }).detach();
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::queue<std::function<void()>> jobs_;
};

int move_high(int fd) {
  int n = ::fcntl(fd, F_DUPFD_CLOEXEC, 10);
  ::close(fd);
  return n;
}

void close_from(int lowfd) {
#ifdef SYS_close_range
  if (::syscall(SYS_close_range, static_cast<unsigned>(lowfd), ~0U, 0) == 0) return;
#endif
  for (int fd = lowfd; fd < 4096; ++fd) ::close(fd);
}

/// The shim's file, opened once per path and kept open for the life of the process: bench-proxy
/// execs that very file (execveat AT_EMPTY_PATH), so a bench-proxy-shim replaced or being
/// rewritten during a long sweep or try (a rebuild, an upgrade) is never missing, half-written or
/// of another version, as /proc/self/exe keeps bench-proxy's own binary. -1: not openable (then
/// the path is exec'd, and its error reported as before).
int pinned_executable(const std::string& path) {
  static std::mutex mu;
  static auto* fds = new std::map<std::string, int>();  // never destroyed: the fds live as long as the process
  std::lock_guard<std::mutex> g(mu);
  auto it = fds->find(path);
  if (it != fds->end()) return it->second;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  fd = move_high(fd);
  if (fd >= 0) (*fds)[path] = fd;
  return fd;
}

}  // namespace

std::string describe_wait_status(int status) {
  if (status < 0) return "ended without a status (its supervisor died)";
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    const char* name = sigabbrev_np(sig);
    return "killed by signal " + std::to_string(sig) + (name ? std::string(" (SIG") + name + ")" : "");
  }
  return "ended with wait status " + std::to_string(status);
}

void become_subreaper() { ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); }

int free_loopback_port(std::string& err) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    err = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof(a);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) < 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) < 0) {
    err = std::string("cannot get a free loopback port: ") + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

// ---------------------------------------------------------------------------------------------
// output_capture

output_capture::output_capture() : hasher_(std::make_unique<sha256_hasher>()) {}
output_capture::~output_capture() = default;

void output_capture::append(const std::string& s) {
  std::lock_guard<std::mutex> g(mu_);
  hasher_->update(s);
  total_ += s.size();
  if (head_.size() < kWindow) head_.append(s, 0, std::min(s.size(), kWindow - head_.size()));
  tail_ += s;
  if (tail_.size() > 2 * kWindow) tail_.erase(0, tail_.size() - kWindow);
  partial_ += s;
  std::size_t pos;
  while ((pos = partial_.find('\n')) != std::string::npos) {
    lines_.push_back(partial_.substr(0, pos));
    partial_.erase(0, pos + 1);
    if (lines_.size() > 200) lines_.pop_front();
  }
}

std::vector<std::string> output_capture::tail_lines(std::size_t n) const {
  std::lock_guard<std::mutex> g(mu_);
  std::vector<std::string> out;
  std::size_t start = lines_.size() > n ? lines_.size() - n : 0;
  for (std::size_t i = start; i < lines_.size(); ++i) out.push_back(lines_[i]);
  if (!partial_.empty()) out.push_back(partial_);
  return out;
}

output_capture::view output_capture::snapshot() const {
  std::lock_guard<std::mutex> g(mu_);
  view v;
  v.total_bytes = total_;
  v.truncated = total_ > 2 * kWindow;
  v.head = head_;
  if (total_ > kWindow) v.tail = tail_.size() > kWindow ? tail_.substr(tail_.size() - kWindow) : tail_;
  v.sha256 = hasher_->peek_hex();
  return v;
}

// ---------------------------------------------------------------------------------------------
// engine_child

engine_child::~engine_child() {
  if (shim_ > 0 && !gone_.load()) {
    signal_group(SIGKILL);
    ::kill(shim_, SIGTERM);
    wait_gone(std::chrono::seconds(10));
  }
  if (reaper_.joinable()) reaper_.join();
  if (pump_.joinable()) pump_.join();
  if (log_fd_ >= 0) ::close(log_fd_);
  if (err_log_fd_ >= 0) ::close(err_log_fd_);
  if (pump_wake_fd_ >= 0) ::close(pump_wake_fd_);
}

void engine_child::signal_group(int sig) const {
  if (pid_ > 0 && !exited_.load()) ::kill(-pid_, sig);
}

bool engine_child::wait_gone(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> g(mu_);
  return cv_.wait_for(g, timeout, [this] { return gone_.load(); });
}

std::unique_ptr<engine_child> engine_child::launch(const launch_spec& spec, exit_fn on_exit, std::string& err) {
  std::unique_ptr<engine_child> c(new engine_child());
  if (!spec.log_path.empty()) {
    c->log_fd_ = ::open(spec.log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (c->log_fd_ < 0) {
      err = "cannot write engine log " + spec.log_path + ": " + std::strerror(errno);
      return nullptr;
    }
  }
  if (!spec.err_log_path.empty()) {
    c->err_log_fd_ = ::open(spec.err_log_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (c->err_log_fd_ < 0) {
      err = "cannot write " + spec.err_log_path + ": " + std::strerror(errno);
      return nullptr;
    }
  }
  int st[2], out[2], er[2];
  if (::pipe2(st, O_CLOEXEC) < 0 || ::pipe2(out, O_CLOEXEC) < 0 || ::pipe2(er, O_CLOEXEC) < 0) {
    err = std::string("pipe: ") + std::strerror(errno);
    return nullptr;
  }
  for (int* p : {st, out, er}) {
    p[0] = move_high(p[0]);
    p[1] = move_high(p[1]);
  }
  // Everything the child needs is built before fork(): after it only async-signal-safe calls.
  std::string parent = std::to_string(::getpid());
  std::vector<std::string> shim_args = {"bench-proxy-shim", "__engine-shim", parent, spec.cwd, spec.exe};
  shim_args.insert(shim_args.end(), spec.argv.begin(), spec.argv.end());
  std::vector<char*> argv, envp;
  for (auto& a : shim_args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (auto& e : spec.envp) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  std::string shim_exe = spec.shim_exe;
  int shim_fd = pinned_executable(shim_exe);
  int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (devnull >= 0) devnull = move_high(devnull);

  pid_t pid = launcher::get().run([&]() -> pid_t {
    auto own = base::own_children::guard();
    pid_t p = ::fork();
    if (p > 0) base::own_children::add(p);
    if (p == 0) {
      ::dup2(devnull, 0);
      ::dup2(out[1], 1);
      ::dup2(er[1], 2);
      ::dup2(st[1], 3);
      if (shim_fd >= 0) {
        ::dup2(shim_fd, 4);
        ::fcntl(4, F_SETFD, FD_CLOEXEC);  // gone once the shim runs
        close_from(5);
      } else {
        close_from(4);  // the listening socket and everything else of bench-proxy stays behind
      }
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != static_cast<pid_t>(std::atoi(parent.c_str()))) _exit(1);
      if (shim_fd >= 0) ::syscall(SYS_execveat, 4, "", argv.data(), envp.data(), AT_EMPTY_PATH);
      ::execve(shim_exe.c_str(), argv.data(), envp.data());
      const char msg[] = "bench-proxy: cannot execute the engine shim\n";
      ssize_t ignored = ::write(2, msg, sizeof(msg) - 1);
      (void)ignored;
      _exit(127);
    }
    return p;
  });
  int fork_errno = errno;
  ::close(st[1]);
  ::close(out[1]);
  ::close(er[1]);
  if (devnull >= 0) ::close(devnull);
  if (pid < 0) {
    err = std::string("fork: ") + std::strerror(fork_errno);
    ::close(st[0]);
    ::close(out[0]);
    ::close(er[0]);
    return nullptr;
  }
  c->shim_ = pid;
  c->pump_wake_fd_ = ::eventfd(0, EFD_CLOEXEC);
  c->status_fd_ = st[0];
  c->out_fd_ = out[0];
  c->err_fd_ = er[0];
  engine_child* raw = c.get();
  c->pump_ = std::thread([raw, redact = spec.redact, prefix = spec.log_prefix, at_info = spec.output_at_info] {
    raw->pump_loop(redact, prefix, at_info);
  });
  c->reaper_ = std::thread([raw, on_exit = std::move(on_exit)] { raw->reaper_loop(on_exit); });
  {
    std::unique_lock<std::mutex> g(c->mu_);
    c->cv_.wait_for(g, std::chrono::seconds(10), [raw] { return raw->pid_ > 0 || raw->gone_.load(); });
  }
  if (c->pid_ <= 0) {
    err = "the engine did not start: " + describe_wait_status(c->status_.load());
    auto tail = c->capture_->tail_lines(5);
    for (auto& l : tail) err += "\n  " + l;
    return nullptr;
  }
  return c;
}

void engine_child::reaper_loop(exit_fn on_exit) {
  std::string buf;
  char tmp[256];
  bool got_exit = false;
  for (;;) {
    ssize_t n = ::read(status_fd_, tmp, sizeof(tmp));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    buf.append(tmp, static_cast<std::size_t>(n));
    std::size_t pos;
    while ((pos = buf.find('\n')) != std::string::npos) {
      std::string line = buf.substr(0, pos);
      buf.erase(0, pos + 1);
      if (line.size() > 2 && line[0] == 'P') {
        std::lock_guard<std::mutex> g(mu_);
        pid_ = static_cast<pid_t>(std::atoi(line.c_str() + 2));
        cv_.notify_all();
      } else if (line.size() > 2 && line[0] == 'X') {
        status_ = std::atoi(line.c_str() + 2);
        got_exit = true;
      }
    }
  }
  ::close(status_fd_);
  int ws = 0;
  while (::waitpid(shim_, &ws, 0) < 0 && errno == EINTR) {
  }
  base::own_children::remove(shim_);
  if (!got_exit) {
    // The shim itself died (even SIGKILL): what it supervised is ours to end. Its engine dies by
    // its parent-death signal; every other process of the tree was re-parented to bench-proxy
    // (a subreaper) and is killed here, whatever its group or session.
    status_ = -1;
    spdlog::error("the engine shim (PID {}) died ({}): killing the engine tree of PID {}", shim_,
                  describe_wait_status(ws), pid_);
    if (pid_ > 0) ::kill(-pid_, SIGKILL);
    kill_orphans();
  }
  exited_ = true;
  // All output is in before anyone hears of the exit; a pipe still held open by a process that
  // escaped us must not hold the exit back forever.
  {
    std::unique_lock<std::mutex> g(mu_);
    if (!cv_.wait_for(g, std::chrono::seconds(5), [this] { return pump_done_.load(); })) {
      spdlog::warn("engine output pipes still open 5 s after the engine ended; no longer reading them");
      std::uint64_t one = 1;
      ssize_t ignored = ::write(pump_wake_fd_, &one, sizeof(one));
      (void)ignored;
    }
  }
  if (pump_.joinable()) pump_.join();
  {
    std::lock_guard<std::mutex> g(mu_);
    gone_ = true;
    cv_.notify_all();
  }
  if (on_exit) on_exit(status_.load());
}

void engine_child::pump_loop(base::redactor redact, std::string prefix, bool at_info) {
  pollfd fds[3] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}, {pump_wake_fd_, POLLIN, 0}};
  std::string partial[2];
  char buf[65536];
  int open = 2;
  auto emit = [&](std::string line, int which) {
    line = redact.scrub(std::move(line));
    std::string with_nl = line + "\n";
    if (int fd = which == 1 && err_log_fd_ >= 0 ? err_log_fd_ : log_fd_; fd >= 0) {
      ssize_t ignored = ::write(fd, with_nl.data(), with_nl.size());
      (void)ignored;
    }
    capture_->append(with_nl);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    spdlog::log(at_info ? spdlog::level::info : spdlog::level::debug, "[{} {}{}] {}", prefix, pid_,
                which == 1 ? " stderr" : "", line);
  };
  while (open > 0) {
    int r = ::poll(fds, 3, -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[2].revents & POLLIN) break;  // told to give up on pipes an escaped process holds
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = ::read(fds[i].fd, buf, sizeof(buf));
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open;
        continue;
      }
      partial[i].append(buf, static_cast<std::size_t>(n));
      std::size_t pos;
      while ((pos = partial[i].find('\n')) != std::string::npos) {
        emit(partial[i].substr(0, pos), i);
        partial[i].erase(0, pos + 1);
      }
      if (partial[i].size() > 64 * 1024) {  // no newline in sight: flush what we have
        emit(partial[i], i);
        partial[i].clear();
      }
    }
  }
  for (int i = 0; i < 2; ++i) {
    if (!partial[i].empty()) emit(partial[i], i);
    if (fds[i].fd >= 0) ::close(fds[i].fd);
  }
  std::lock_guard<std::mutex> g(mu_);
  pump_done_ = true;
  cv_.notify_all();
}

void kill_orphans() {
  // Children of bench-proxy that it did not fork itself are orphans of a dead shim's tree (a
  // live shim is the subreaper of its own tree, so nothing of a live engine comes here).
  pid_t me = ::getpid();
  std::set<pid_t> killed;
  for (int round = 0; round < 2000; ++round) {
    std::vector<pid_t> orphans;
    {
      auto own = base::own_children::guard();
      orphans = base::own_children::strangers(me);
    }
    for (pid_t k : orphans) {
      if (killed.insert(k).second) spdlog::warn("killing PID {}, left behind by a dead engine shim", k);
      ::kill(-k, SIGKILL);
      ::kill(k, SIGKILL);
    }
    // Reap only these: the statuses of our own tools belong to whoever waits for them.
    for (pid_t k : orphans) ::waitpid(k, nullptr, WNOHANG);
    if (orphans.empty()) return;
    ::usleep(5000);
  }
  spdlog::error("processes left behind by the engine shim would not die");
}

// ---------------------------------------------------------------------------------------------
// The shim

std::string find_engine_shim(const std::string& self_exe, bool& standalone) {
  std::string path = self_exe;
  const std::string deleted = " (deleted)";
  if (path.size() > deleted.size() && path.compare(path.size() - deleted.size(), deleted.size(), deleted) == 0)
    path.resize(path.size() - deleted.size());
  auto slash = path.rfind('/');
  if (slash != std::string::npos) {
    std::string shim = path.substr(0, slash + 1) + "bench-proxy-shim";
    struct stat st {};
    if (::stat(shim.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(shim.c_str(), X_OK) == 0) {
      standalone = true;
      return shim;
    }
  }
  standalone = false;
  return self_exe;
}

int engine_shim_main(int argc, char** argv) { return shim::run(argc, argv, environ); }

}  // namespace bp
