// The engine shim: the small process between bench-proxy and the engine (docs/architecture.md,
// "Process containment"). One source, built two ways:
//
//  - `bench-proxy-shim` (cmd/CMakeLists.txt): on x86-64 freestanding, with its own `_start` and
//    raw system calls, linked against nothing at all (no libc, no libstdc++), so the process that
//    lives beside every engine holds a few pages instead of a copy of bench-proxy's libraries
//    (BP_SHIM_FREESTANDING); elsewhere the same code over libc's POSIX calls (BP_SHIM_STANDALONE).
//  - inside bench-proxy (bp_process, libc), as `bench-proxy __engine-shim ...`: the fallback when
//    no bench-proxy-shim lies next to the running binary.
//
// Protocol (argv): SHIM __engine-shim PARENT_PID CWD EXE ARGV0 ARGS...; environment: exactly the
// engine's; fd 0 /dev/null, fds 1 and 2 the engine's output pipes, fd 3 the status pipe:
// "P <engine pid>\n" once the engine is forked, "X <wait status>\n" once the engine and every
// process of its tree are gone.
//
// Nothing here allocates, and nothing but the system calls below is used.

#if defined(BP_SHIM_FREESTANDING)
#include <asm/unistd.h>
#include <linux/errno.h>
#include <linux/prctl.h>
#else
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#endif

#include "base/process/engine_shim.hpp"

namespace bp::shim {
namespace {

// ---------------------------------------------------------------------------------------------
// The system calls the shim makes: results as the kernel gives them (>= 0, or -errno).

#if defined(BP_SHIM_FREESTANDING)

#if !defined(__x86_64__)
#error "the freestanding shim has system call stubs for x86-64 only (build it over libc elsewhere)"
#endif

constexpr int kSIGHUP = 1, kSIGINT = 2, kSIGQUIT = 3, kSIGKILL = 9, kSIGTERM = 15, kSIGCHLD = 17;
constexpr int kWNOHANG = 1;
constexpr int kO_RDONLY = 0, kO_RDWR = 2, kO_DIRECTORY = 0200000, kO_CLOEXEC = 02000000;
constexpr int kAT_FDCWD = -100;

long sc(long n, long a = 0, long b = 0, long c = 0, long d = 0, long e = 0, long f = 0) {
  long ret;
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  register long r9 __asm__("r9") = f;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return ret;
}

struct signal_set {
  unsigned long bits = 0;
  void add(int sig) { bits |= 1UL << (sig - 1); }
};
long block(const signal_set& m) { return sc(__NR_rt_sigprocmask, 0 /* SIG_BLOCK */, reinterpret_cast<long>(&m.bits), 0, 8); }
long unblock_all() {
  unsigned long none = 0;
  return sc(__NR_rt_sigprocmask, 2 /* SIG_SETMASK */, reinterpret_cast<long>(&none), 0, 8);
}
long wait_signal(const signal_set& m) {
  long info[16];  // siginfo_t: 128 bytes
  return sc(__NR_rt_sigtimedwait, reinterpret_cast<long>(&m.bits), reinterpret_cast<long>(info), 0, 8);
}
long sys_fork() { return sc(__NR_fork); }
long sys_getpid() { return sc(__NR_getpid); }
long sys_getppid() { return sc(__NR_getppid); }
long sys_prctl(int op, unsigned long a) { return sc(__NR_prctl, op, static_cast<long>(a)); }
long sys_setpgid(long p, long g) { return sc(__NR_setpgid, p, g); }
long sys_kill(long p, int sig) { return sc(__NR_kill, p, sig); }
long sys_dup2(int a, int b) { return sc(__NR_dup2, a, b); }
long sys_close(int fd) { return sc(__NR_close, fd); }
long sys_chdir(const char* d) { return sc(__NR_chdir, reinterpret_cast<long>(d)); }
long sys_execve(const char* exe, char** argv, char** envp) {
  return sc(__NR_execve, reinterpret_cast<long>(exe), reinterpret_cast<long>(argv), reinterpret_cast<long>(envp));
}
long sys_open(const char* path, int flags) { return sc(__NR_openat, kAT_FDCWD, reinterpret_cast<long>(path), flags); }
long sys_read(int fd, void* b, unsigned long n) { return sc(__NR_read, fd, reinterpret_cast<long>(b), static_cast<long>(n)); }
long sys_write(int fd, const void* b, unsigned long n) {
  return sc(__NR_write, fd, reinterpret_cast<long>(b), static_cast<long>(n));
}
long sys_getdents(int fd, void* b, unsigned long n) {
  return sc(__NR_getdents64, fd, reinterpret_cast<long>(b), static_cast<long>(n));
}
long sys_wait_nohang(long pid, int* status) { return sc(__NR_wait4, pid, reinterpret_cast<long>(status), kWNOHANG, 0); }
void sleep_5ms() {
  long ts[2] = {0, 5000000};
  sc(__NR_nanosleep, reinterpret_cast<long>(ts), 0);
}
[[noreturn]] void child_exit(int status) {
  for (;;) sc(__NR_exit_group, status);
}

#else  // over libc

constexpr int kSIGHUP = SIGHUP, kSIGINT = SIGINT, kSIGQUIT = SIGQUIT, kSIGKILL = SIGKILL, kSIGTERM = SIGTERM,
              kSIGCHLD = SIGCHLD;
constexpr int kO_RDONLY = O_RDONLY, kO_RDWR = O_RDWR, kO_DIRECTORY = O_DIRECTORY, kO_CLOEXEC = O_CLOEXEC;

long ret(long r) { return r < 0 ? -errno : r; }
struct signal_set {
  sigset_t set;
  signal_set() { sigemptyset(&set); }
  void add(int sig) { sigaddset(&set, sig); }
};
long block(const signal_set& m) { return ret(::sigprocmask(SIG_BLOCK, &m.set, nullptr)); }
long unblock_all() {
  sigset_t none;
  sigemptyset(&none);
  return ret(::sigprocmask(SIG_SETMASK, &none, nullptr));
}
long wait_signal(const signal_set& m) {
  siginfo_t si;
  return ret(::sigwaitinfo(&m.set, &si));
}
long sys_fork() { return ret(::fork()); }
long sys_getpid() { return ::getpid(); }
long sys_getppid() { return ::getppid(); }
long sys_prctl(int op, unsigned long a) { return ret(::prctl(op, a, 0, 0, 0)); }
long sys_setpgid(long p, long g) { return ret(::setpgid(static_cast<pid_t>(p), static_cast<pid_t>(g))); }
long sys_kill(long p, int sig) { return ret(::kill(static_cast<pid_t>(p), sig)); }
long sys_dup2(int a, int b) { return ret(::dup2(a, b)); }
long sys_close(int fd) { return ret(::close(fd)); }
long sys_chdir(const char* d) { return ret(::chdir(d)); }
long sys_execve(const char* exe, char** argv, char** envp) { return ret(::execve(exe, argv, envp)); }
long sys_open(const char* path, int flags) { return ret(::open(path, flags)); }
long sys_read(int fd, void* b, unsigned long n) { return ret(::read(fd, b, n)); }
long sys_write(int fd, const void* b, unsigned long n) { return ret(::write(fd, b, n)); }
long sys_getdents(int fd, void* b, unsigned long n) { return ret(::getdents64(fd, b, n)); }
long sys_wait_nohang(long pid, int* status) { return ret(::waitpid(static_cast<pid_t>(pid), status, WNOHANG)); }
void sleep_5ms() {
  timespec ts{0, 5000000};
  ::nanosleep(&ts, nullptr);
}
/// The forked engine side never returns into its caller (bench-proxy's main, in the fallback).
[[noreturn]] void child_exit(int status) { ::_exit(status); }

#endif

// ---------------------------------------------------------------------------------------------
// Text without stdio.

bool equal(const char* a, const char* b) {
  while (*a && *a == *b) ++a, ++b;
  return *a == *b;
}

/// Parses a decimal pid; -1 when `s` is not one.
long parse_pid(const char* s) {
  long v = 0;
  if (!*s) return -1;
  for (; *s; ++s) {
    if (*s < '0' || *s > '9' || v > 100000000) return -1;
    v = v * 10 + (*s - '0');
  }
  return v;
}

/// glibc's wording of the errors an exec or a chdir can meet (strerror without libc).
const char* error_text(long e) {
  switch (e) {
    case EPERM: return "Operation not permitted";
    case ENOENT: return "No such file or directory";
    case EIO: return "Input/output error";
    case E2BIG: return "Argument list too long";
    case ENOEXEC: return "Exec format error";
    case EAGAIN: return "Resource temporarily unavailable";
    case ENOMEM: return "Cannot allocate memory";
    case EACCES: return "Permission denied";
    case EFAULT: return "Bad address";
    case ENOTDIR: return "Not a directory";
    case EISDIR: return "Is a directory";
    case EINVAL: return "Invalid argument";
    case ENFILE: return "Too many open files in system";
    case EMFILE: return "Too many open files";
    case ETXTBSY: return "Text file busy";
    case ENAMETOOLONG: return "File name too long";
    case ELOOP: return "Too many levels of symbolic links";
    case ELIBBAD: return "Accessing a corrupted shared library";
    default: return nullptr;
  }
}

/// A line built in a fixed buffer and written with one write(2) (long texts are cut).
class line {
 public:
  line& s(const char* t) {
    while (*t && n_ < sizeof(b_) - 1) b_[n_++] = *t++;
    return *this;
  }
  line& i(long v) {
    char d[24];
    int k = 0;
    unsigned long u = v < 0 ? 0UL - static_cast<unsigned long>(v) : static_cast<unsigned long>(v);
    do d[k++] = static_cast<char>('0' + u % 10); while ((u /= 10) != 0);
    if (v < 0) d[k++] = '-';
    while (k > 0 && n_ < sizeof(b_) - 1) b_[n_++] = d[--k];
    return *this;
  }
  line& err(long e) {
    const char* t = error_text(e);
    return t ? s(t) : s("error ").i(e);
  }
  void to(int fd) {
    if (n_ == sizeof(b_) - 1) b_[n_ - 1] = '\n';
    unsigned long off = 0;
    while (off < n_) {
      long w = sys_write(fd, b_ + off, n_ - off);
      if (w == -EINTR) continue;
      if (w <= 0) return;
      off += static_cast<unsigned long>(w);
    }
  }

 private:
  char b_[1024];
  unsigned long n_ = 0;
};

// ---------------------------------------------------------------------------------------------
// The children of this process, from /proc/N/stat (the fourth field is the parent's pid).

long parent_of(const char* pid_name) {
  char path[64];
  unsigned long n = 0;
  for (const char* p = "/proc/"; *p;) path[n++] = *p++;
  for (const char* p = pid_name; *p && n < 50;) path[n++] = *p++;
  for (const char* p = "/stat"; *p;) path[n++] = *p++;
  path[n] = 0;
  long fd = sys_open(path, kO_RDONLY | kO_CLOEXEC);
  if (fd < 0) return -1;
  char buf[512];
  long got = sys_read(static_cast<int>(fd), buf, sizeof(buf) - 1);
  sys_close(static_cast<int>(fd));
  if (got <= 0) return -1;
  // "pid (comm) S ppid ...": comm may hold anything, ')' included; nothing after it does.
  long close = -1;
  for (long k = 0; k < got; ++k)
    if (buf[k] == ')') close = k;
  if (close < 0 || close + 4 >= got) return -1;
  long k = close + 4;  // past ") S "
  long v = 0;
  bool any = false;
  for (; k < got && buf[k] >= '0' && buf[k] <= '9'; ++k, any = true) v = v * 10 + (buf[k] - '0');
  return any ? v : -1;
}

/// SIGKILLs every child of `me` (and its process group). Returns how many it found.
int kill_children(long me) {
  long dir = sys_open("/proc", kO_RDONLY | kO_DIRECTORY | kO_CLOEXEC);
  if (dir < 0) return 0;
  int found = 0;
  alignas(8) char buf[4096];
  for (;;) {
    long n = sys_getdents(static_cast<int>(dir), buf, sizeof(buf));
    if (n <= 0) break;
    for (long off = 0; off < n;) {
      // struct linux_dirent64: u64 ino, s64 off, u16 reclen, u8 type, char name[]
      unsigned short reclen;
      __builtin_memcpy(&reclen, buf + off + 16, sizeof(reclen));
      const char* name = buf + off + 19;
      off += reclen;
      if (name[0] < '0' || name[0] > '9') continue;
      if (parent_of(name) != me) continue;
      long k = parse_pid(name);
      if (k <= 0) continue;
      ++found;
      sys_kill(-k, kSIGKILL);
      sys_kill(k, kSIGKILL);
    }
  }
  sys_close(static_cast<int>(dir));
  return found;
}

}  // namespace

int run(int argc, char** argv, char** envp) {
  if (argc < 6 || !equal(argv[1], "__engine-shim")) {
    line().s("bench-proxy-shim: the engine's supervisor, started by bench-proxy; not for direct use\n").to(2);
    return 2;
  }
  long parent = parse_pid(argv[2]);
  const char* cwd = argv[3];
  const char* exe = argv[4];
  char** engine_argv = argv + 5;
  sys_prctl(PR_SET_NAME, reinterpret_cast<unsigned long>("bp-engine-shim"));
  sys_prctl(PR_SET_PDEATHSIG, kSIGTERM);
  if (sys_getppid() != parent) return 1;  // bench-proxy is already gone
  sys_prctl(PR_SET_CHILD_SUBREAPER, 1);
  signal_set set;
  set.add(kSIGCHLD);
  set.add(kSIGTERM);
  set.add(kSIGINT);
  set.add(kSIGHUP);
  set.add(kSIGQUIT);
  block(set);

  long me = sys_getpid();
  long child = sys_fork();
  if (child < 0) {
    line().s("bench-proxy: fork: ").err(-child).s("\n").to(2);
    line().s("X ").i(127 << 8).s("\n").to(3);
    return 1;
  }
  if (child == 0) {
    unblock_all();
    sys_setpgid(0, 0);
    sys_prctl(PR_SET_PDEATHSIG, kSIGKILL);
    if (sys_getppid() != me) child_exit(1);
    sys_close(3);
    if (long e = sys_chdir(cwd); e < 0) {
      line().s("bench-proxy: cannot change to directory ").s(cwd).s(": ").err(-e).s("\n").to(2);
      child_exit(126);
    }
    long e = sys_execve(exe, engine_argv, envp);
    line().s("bench-proxy: cannot execute ").s(exe).s(": ").err(-e).s("\n").to(2);
    child_exit(127);
  }
  sys_setpgid(child, child);
  line().s("P ").i(child).s("\n").to(3);
  // The engine's output pipes must close when the engine's tree is gone, not when the shim is.
  long devnull = sys_open("/dev/null", kO_RDWR);
  if (devnull >= 0) {
    sys_dup2(static_cast<int>(devnull), 1);
    sys_dup2(static_cast<int>(devnull), 2);
    sys_dup2(static_cast<int>(devnull), 0);
    if (devnull > 3) sys_close(static_cast<int>(devnull));
  }

  int engine_status = -1;
  bool engine_done = false;
  while (!engine_done) {
    long sig = wait_signal(set);
    if (sig < 0) continue;
    if (sig == kSIGCHLD) {
      int ws = 0;
      long p;
      while ((p = sys_wait_nohang(-1, &ws)) > 0)
        if (p == child) {
          engine_status = ws;
          engine_done = true;
        }
    } else {
      // bench-proxy died (parent-death signal) or we were told to stop: end the tree now.
      sys_kill(-child, kSIGKILL);
      sys_kill(child, kSIGKILL);
    }
  }
  // The engine is gone: nothing it started may stay. Kill its group, then every process that was
  // re-parented to us (new sessions and double-forked daemons included), until none is left.
  sys_kill(-child, kSIGKILL);
  for (int round = 0; round < 10000; ++round) {
    int kids = kill_children(me);
    int ws;
    while (sys_wait_nohang(-1, &ws) > 0) {
    }
    if (kids == 0 && sys_wait_nohang(-1, &ws) == -ECHILD) break;
    sleep_5ms();
  }
  line().s("X ").i(engine_status).s("\n").to(3);
  return 0;
}

}  // namespace bp::shim

#if defined(BP_SHIM_FREESTANDING)
// No C runtime: the kernel enters at _start with argc, argv, NULL, envp, NULL on the stack.
extern "C" {
[[noreturn]] __attribute__((used)) void bp_shim_start(long* sp) {
  int argc = static_cast<int>(sp[0]);
  char** argv = reinterpret_cast<char**>(sp + 1);
  char** envp = argv + argc + 1;
  bp::shim::child_exit(bp::shim::run(argc, argv, envp));
}
// What the compiler may call on its own for copies and zeroing.
void* memcpy(void* d, const void* s, unsigned long n) {
  auto* dd = static_cast<volatile char*>(d);
  auto* ss = static_cast<const char*>(s);
  for (unsigned long k = 0; k < n; ++k) dd[k] = ss[k];
  return d;
}
void* memset(void* d, int c, unsigned long n) {
  auto* dd = static_cast<volatile char*>(d);
  for (unsigned long k = 0; k < n; ++k) dd[k] = static_cast<char>(c);
  return d;
}
}
__asm__(
    ".text\n"
    ".global _start\n"
    ".type _start,@function\n"
    "_start:\n"
    "  xor %ebp, %ebp\n"
    "  mov %rsp, %rdi\n"
    "  and $-16, %rsp\n"
    "  call bp_shim_start\n"
    "  hlt\n");
#elif defined(BP_SHIM_STANDALONE)
extern char** environ;
int main(int argc, char** argv) { return bp::shim::run(argc, argv, environ); }
#endif
