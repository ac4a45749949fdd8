#include "base/files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace bp::base {

namespace {
std::string errno_text() { return std::strerror(errno); }
}  // namespace

std::string read_file_limited(const std::string& path, std::uint64_t limit) {
  int fd = path == "-" ? ::dup(0) : ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw std::runtime_error(path + ": cannot open: " + errno_text());
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw std::runtime_error(path + ": cannot stat: " + errno_text());
  }
  if (path != "-") {
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      throw std::runtime_error(path + ": not a regular file" +
                               std::string(S_ISDIR(st.st_mode)    ? " (a directory)"
                                           : S_ISFIFO(st.st_mode) ? " (a FIFO; use - for standard input)"
                                           : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? " (a device)"
                                                                                         : ""));
    }
    // /proc and /sys files report size 0 and may be endless: only real file systems pass.
    if (std::strncmp(path.c_str(), "/proc/", 6) == 0 || std::strncmp(path.c_str(), "/sys/", 5) == 0) {
      ::close(fd);
      throw std::runtime_error(path + ": not a regular file (a kernel interface)");
    }
    if (static_cast<std::uint64_t>(st.st_size) > limit) {
      ::close(fd);
      throw std::runtime_error(path + ": " + std::to_string(st.st_size) + " bytes, more than the limit of " +
                               std::to_string(limit));
    }
    int flags = ::fcntl(fd, F_GETFL);
    ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  }
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      std::string e = errno_text();
      ::close(fd);
      throw std::runtime_error(path + ": read failed: " + e);
    }
    if (n == 0) break;
    if (out.size() + static_cast<std::size_t>(n) > limit) {
      ::close(fd);
      throw std::runtime_error(path + ": more than the limit of " + std::to_string(limit) + " bytes");
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

void write_file_atomic(const std::string& path, const std::string& data, bool exclusive) {
  namespace fs = std::filesystem;
  fs::path p(path);
  std::string dir = p.parent_path().empty() ? "." : p.parent_path().string();
  std::string tmpl = dir + "/." + p.filename().string() + ".tmp-XXXXXX";
  std::string tmp = tmpl;
  int fd = ::mkstemp(tmp.data());
  if (fd < 0) throw std::runtime_error(path + ": cannot create a temporary file in " + dir + ": " + errno_text());
  const char* b = data.data();
  std::size_t left = data.size();
  while (left > 0) {
    ssize_t n = ::write(fd, b, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      std::string e = errno_text();
      ::close(fd);
      ::unlink(tmp.c_str());
      throw std::runtime_error(path + ": write failed: " + e);
    }
    b += n;
    left -= static_cast<std::size_t>(n);
  }
  ::fchmod(fd, 0644);
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    std::string e = errno_text();
    ::unlink(tmp.c_str());
    throw std::runtime_error(path + ": cannot flush: " + e);
  }
  if (exclusive) {
    // link() fails with EEXIST instead of replacing: an existing result is never overwritten.
    if (::link(tmp.c_str(), path.c_str()) != 0) {
      std::string e = errno == EEXIST ? "already exists (results are never overwritten)" : errno_text();
      ::unlink(tmp.c_str());
      throw std::runtime_error(path + ": " + e);
    }
    ::unlink(tmp.c_str());
  } else if (::rename(tmp.c_str(), path.c_str()) != 0) {
    std::string e = errno_text();
    ::unlink(tmp.c_str());
    throw std::runtime_error(path + ": cannot rename into place: " + e);
  }
}

std::string self_exe() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : p.string();
}

std::string make_unique_dir(const std::string& base) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path b(base);
  if (!b.parent_path().empty()) fs::create_directories(b.parent_path(), ec);
  for (int i = 1; i < 100000; ++i) {
    std::string p = i == 1 ? base : base + "-" + std::to_string(i);
    if (::mkdir(p.c_str(), 0755) == 0) return p;
    if (errno != EEXIST) throw std::runtime_error(p + ": cannot create folder: " + errno_text());
  }
  throw std::runtime_error(base + ": no free folder name");
}

}  // namespace bp::base
