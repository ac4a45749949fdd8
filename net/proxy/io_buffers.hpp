#pragma once
/// Internal to the proxy: a session's byte buffers and what it knows of a socket's readiness.
///
/// The bytes a session reads (byte_buffer: read into its free space, parsed from its front) and
/// writes (out_buffer), a socket's readiness as the edge-triggered loop last reported it, and
/// the one recv that keeps that readiness true. Header-only: everything here runs per read, on
/// the byte path, and is inlined into the session (docs/benchmarks.md, "The session in its own
/// file"). sys_error and would_block serve the listener too.
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/string.hpp>

namespace bp::net::detail {

/// A growable byte buffer with a read offset; sized on demand.
struct byte_buffer {
  std::vector<char> data;
  std::size_t begin = 0, end = 0;
  /// How much the next read asks for (recv_into): 2 KiB to start (a request or a plain answer
  /// fits, so an idle keep-alive connection holds 2 KiB, not 8 or 16), doubled up to the socket's
  /// maximum whenever a read filled what it asked for (more was waiting: a large body, a fast stream).
  std::size_t read_size = 2048;
  std::size_t size() const { return end - begin; }
  bool empty() const { return begin == end; }
  boost::asio::mutable_buffer prepare(std::size_t n) {
    if (begin == end) begin = end = 0;
    if (data.size() - end < n) {
      if (begin > 0) {
        std::memmove(data.data(), data.data() + begin, end - begin);
        end -= begin;
        begin = 0;
      }
      if (data.size() - end < n) data.resize(end + n);
    }
    return boost::asio::buffer(data.data() + end, n);
  }
  void commit(std::size_t n) { end += n; }
  void consume(std::size_t n) {
    begin += n;
    if (begin == end) begin = end = 0;
  }
  void release_if_idle() {
    // Keep RSS low with thousands of idle connections.
    if (empty() && data.capacity() > 64 * 1024) std::vector<char>().swap(data);
  }
};

inline boost::beast::string_view as_sv(const byte_buffer& b) {
  return boost::beast::string_view(b.data.data() + b.begin, b.size());
}

/// Output bytes with a write offset.
struct out_buffer {
  std::string data;
  std::size_t off = 0;
  bool pending() const { return off < data.size(); }
  void clear() {
    data.clear();
    off = 0;
  }
};

inline boost::beast::error_code sys_error(int e) {
  return boost::beast::error_code(e, boost::system::system_category());
}

inline bool would_block(int e) { return e == EAGAIN || e == EWOULDBLOCK; }

/// Events that make a read worth trying (an error or hang-up shows as the read's result).
constexpr std::uint32_t kReadable = EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR;
constexpr std::uint32_t kWritable = EPOLLOUT | EPOLLHUP | EPOLLERR;
constexpr std::uint32_t kPeerShut = EPOLLRDHUP | EPOLLHUP | EPOLLERR;

/// A socket's readiness as the kernel last reported it (edge-triggered: nothing is reported
/// twice), and whether its owner waits to read it. `readable` goes false on EAGAIN or on a short
/// read, unless the peer already shut down: then the next read returns the end of the stream,
/// and there will be no edge for it.
struct readiness {
  bool readable = false;
  bool peer_shut = false;
  bool waiting = false;  // the session wants to read this socket
  bool queued = false;   // a read is deferred to the end of the batch
  void on_events(std::uint32_t e) {
    if (e & kReadable) readable = true;
    if (e & kPeerShut) peer_shut = true;
  }
  void drained() { readable = peer_shut; }
  void reset() { readable = peer_shut = waiting = false; }
};

/// One recv of up to `cap` bytes on a non-blocking socket, keeping `ready` true to what the
/// kernel said. False when nothing was there (EAGAIN: waiting again, for the next edge); else `n`
/// bytes read, or `ec` set (eof at the end of the stream).
inline bool recv_ready(int fd, char* at, std::size_t cap, readiness& ready, std::size_t& n,
                       boost::beast::error_code& ec) {
  ready.waiting = false;
  ssize_t got;
  do got = ::recv(fd, at, cap, 0);
  while (got < 0 && errno == EINTR);
  if (got < 0) {
    int e = errno;
    if (would_block(e)) {
      ready.readable = false;
      ready.waiting = true;
      return false;
    }
    ec = sys_error(e);
    return true;
  }
  if (got == 0) {
    ec = boost::asio::error::eof;
    return true;
  }
  n = static_cast<std::size_t>(got);
  if (n < cap) ready.drained();
  return true;
}

/// recv_ready into `b`'s free space, as much as its read size asks; the read size doubles (up to
/// `max`) when a read fills it.
inline bool recv_into(int fd, byte_buffer& b, std::size_t max, readiness& ready, std::size_t& n,
                      boost::beast::error_code& ec) {
  std::size_t ask = std::min(b.read_size, max);
  if (!recv_ready(fd, static_cast<char*>(b.prepare(ask).data()), ask, ready, n, ec)) return false;
  if (!ec && n == ask && b.read_size < max) b.read_size = std::min(2 * b.read_size, max);
  return true;
}

}  // namespace bp::net::detail
