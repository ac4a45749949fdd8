#include "actors/fleet/guard.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

namespace bp::fleet {

namespace {

using clock_type = std::chrono::steady_clock;

std::string ssl_errors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    out += (out.empty() ? "" : "; ") + std::string(buf);
  }
  return out.empty() ? "no detail" : out;
}

void set_nonblocking(int fd) {
  int fl = ::fcntl(fd, F_GETFL, 0);
  if (fl >= 0) ::fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

std::string address_of(const sockaddr_storage& ss) {
  char host[INET6_ADDRSTRLEN] = "?";
  unsigned port = 0;
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
    port = ntohs(a->sin_port);
    return std::string(host) + ":" + std::to_string(port);
  }
  if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
    port = ntohs(a->sin6_port);
    return "[" + std::string(host) + "]:" + std::to_string(port);
  }
  return "an address of family " + std::to_string(ss.ss_family);
}

/// One side of a relayed connection: a socket, with TLS or without.
struct endpoint {
  int fd = -1;
  SSL* ssl = nullptr;
  enum io { ok, want_read, want_write, eof, fail };
  std::string error;

  endpoint() = default;
  endpoint(const endpoint&) = delete;
  endpoint& operator=(const endpoint&) = delete;
  endpoint(endpoint&& o) noexcept : fd(o.fd), ssl(o.ssl) {
    o.fd = -1;
    o.ssl = nullptr;
  }
  endpoint& operator=(endpoint&& o) noexcept {
    if (this != &o) {
      reset();
      fd = o.fd;
      ssl = o.ssl;
      o.fd = -1;
      o.ssl = nullptr;
    }
    return *this;
  }
  ~endpoint() { reset(); }
  void reset() {
    if (ssl) SSL_free(ssl);
    ssl = nullptr;
    if (fd >= 0) ::close(fd);
    fd = -1;
  }

  io ssl_status(int r) {
    int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ) return want_read;
    if (e == SSL_ERROR_WANT_WRITE) return want_write;
    if (e == SSL_ERROR_ZERO_RETURN) return eof;
    if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
      error = errno ? std::strerror(errno) : "closed";
      return eof;
    }
    error = "TLS: " + ssl_errors();
    return fail;
  }

  io read(char* p, std::size_t n, std::size_t& got) {
    got = 0;
    if (ssl) {
      ERR_clear_error();
      int r = SSL_read(ssl, p, static_cast<int>(n));
      if (r > 0) {
        got = static_cast<std::size_t>(r);
        return ok;
      }
      return ssl_status(r);
    }
    ssize_t r = ::recv(fd, p, n, 0);
    if (r > 0) {
      got = static_cast<std::size_t>(r);
      return ok;
    }
    if (r == 0) return eof;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return want_read;
    error = std::strerror(errno);
    return errno == ECONNRESET ? eof : fail;
  }

  io write(const char* p, std::size_t n, std::size_t& put) {
    put = 0;
    if (ssl) {
      ERR_clear_error();
      int r = SSL_write(ssl, p, static_cast<int>(n));
      if (r > 0) {
        put = static_cast<std::size_t>(r);
        return ok;
      }
      return ssl_status(r);
    }
    ssize_t r = ::send(fd, p, n, MSG_NOSIGNAL);
    if (r >= 0) {
      put = static_cast<std::size_t>(r);
      return ok;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return want_write;
    error = std::strerror(errno);
    return errno == EPIPE || errno == ECONNRESET ? eof : fail;
  }
};

/// Waits until `fd` is ready for `events`, the deadline passes, or `stop`. False unless ready.
bool wait_for(int fd, short events, clock_type::time_point deadline, const std::atomic<bool>& stop) {
  for (;;) {
    if (stop) return false;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now()).count();
    if (left <= 0) return false;
    pollfd p{fd, events, 0};
    int r = ::poll(&p, 1, static_cast<int>(left < 250 ? left : 250));
    if (r > 0) return true;
    if (r < 0 && errno != EINTR) return false;
  }
}

/// Reads or writes exactly `n` bytes before the deadline (the greeting, the proofs).
std::string exact(endpoint& e, char* p, std::size_t n, bool reading, clock_type::time_point deadline,
                  const std::atomic<bool>& stop) {
  std::size_t done = 0;
  while (done < n) {
    std::size_t k = 0;
    auto r = reading ? e.read(p + done, n - done, k) : e.write(p + done, n - done, k);
    if (r == endpoint::ok) {
      done += k;
      continue;
    }
    if (r == endpoint::eof) return "the peer closed the connection" + (e.error.empty() ? "" : " (" + e.error + ")");
    if (r == endpoint::fail) return e.error;
    if (!wait_for(e.fd, r == endpoint::want_read ? POLLIN : POLLOUT, deadline, stop))
      return stop ? "stopping" : "no complete greeting within the deadline";
  }
  return {};
}

std::string tls_handshake(endpoint& e, SSL_CTX* ctx, bool server, clock_type::time_point deadline,
                          const std::atomic<bool>& stop) {
  e.ssl = SSL_new(ctx);
  if (!e.ssl) return "TLS: " + ssl_errors();
  SSL_set_fd(e.ssl, e.fd);
  SSL_set_mode(e.ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  for (;;) {
    ERR_clear_error();
    int r = server ? SSL_accept(e.ssl) : SSL_connect(e.ssl);
    if (r == 1) return {};
    int err = SSL_get_error(e.ssl, r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      if (!wait_for(e.fd, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline, stop))
        return stop ? "stopping" : "no TLS handshake within the deadline";
      continue;
    }
    std::string detail = ssl_errors();
    long v = SSL_get_verify_result(e.ssl);
    if (v != X509_V_OK) detail += std::string(" (certificate: ") + X509_verify_cert_error_string(v) + ")";
    return "TLS handshake failed: " + detail;
  }
}

void hmac(const std::string& token, const char* label, const char* agent_nonce, const char* client_nonce, char* out) {
  std::string msg(label);
  msg.append(agent_nonce, nonce_size);
  msg.append(client_nonce, nonce_size);
  unsigned int len = mac_size;
  HMAC(EVP_sha256(), token.data(), static_cast<int>(token.size()), reinterpret_cast<const unsigned char*>(msg.data()),
       msg.size(), reinterpret_cast<unsigned char*>(out), &len);
}

bool random_bytes(char* p, std::size_t n) { return RAND_bytes(reinterpret_cast<unsigned char*>(p), static_cast<int>(n)) == 1; }

/// The agent's side of the greeting and the proofs. "" when the peer proved the token.
std::string prove_as_agent(endpoint& e, const std::string& token, clock_type::time_point deadline,
                           const std::atomic<bool>& stop, bool& wrong_token) {
  wrong_token = false;
  char mine[greeting_size];
  std::memcpy(mine, greeting_magic, sizeof(greeting_magic));
  if (!random_bytes(mine + sizeof(greeting_magic), nonce_size)) return "no random bytes for a nonce";
  if (auto w = exact(e, mine, greeting_size, false, deadline, stop); !w.empty()) return w;
  char theirs[greeting_size];
  // The magic first: anything else (plain BASP, TLS, HTTP) is refused on its first 8 bytes.
  if (auto w = exact(e, theirs, sizeof(greeting_magic), true, deadline, stop); !w.empty()) return w;
  if (auto w = greeting_problem(theirs, sizeof(greeting_magic)); !w.empty()) return w;
  if (auto w = exact(e, theirs + sizeof(greeting_magic), nonce_size, true, deadline, stop); !w.empty()) return w;
  char proof[mac_size], want[mac_size];
  if (auto w = exact(e, proof, mac_size, true, deadline, stop); !w.empty()) return w;
  const char* an = mine + sizeof(greeting_magic);
  const char* cn = theirs + sizeof(greeting_magic);
  hmac(token, "client", an, cn, want);
  if (CRYPTO_memcmp(proof, want, mac_size) != 0) {
    wrong_token = true;
    char no = 'T';
    exact(e, &no, 1, false, deadline, stop);
    return "wrong token";
  }
  char answer[1 + mac_size];
  answer[0] = 'K';
  hmac(token, "agent", an, cn, answer + 1);
  return exact(e, answer, sizeof(answer), false, deadline, stop);
}

/// The coordinator's side. "" when the agent accepted our proof and proved the token itself.
std::string prove_as_coordinator(endpoint& e, const std::string& token, clock_type::time_point deadline,
                                 const std::atomic<bool>& stop, bool& refused) {
  refused = false;
  char theirs[greeting_size];
  if (auto w = exact(e, theirs, sizeof(greeting_magic), true, deadline, stop); !w.empty()) return w;
  if (auto w = greeting_problem(theirs, sizeof(greeting_magic)); !w.empty()) {
    refused = true;
    return "the agent's greeting is " + w;
  }
  if (auto w = exact(e, theirs + sizeof(greeting_magic), nonce_size, true, deadline, stop); !w.empty()) return w;
  char mine[greeting_size + mac_size];
  std::memcpy(mine, greeting_magic, sizeof(greeting_magic));
  if (!random_bytes(mine + sizeof(greeting_magic), nonce_size)) return "no random bytes for a nonce";
  const char* an = theirs + sizeof(greeting_magic);
  const char* cn = mine + sizeof(greeting_magic);
  hmac(token, "client", an, cn, mine + greeting_size);
  if (auto w = exact(e, mine, sizeof(mine), false, deadline, stop); !w.empty()) return w;
  char status = 0;
  if (auto w = exact(e, &status, 1, true, deadline, stop); !w.empty()) return w;
  if (status == 'T') {
    refused = true;
    return "wrong token (the agent refused this coordinator's proof)";
  }
  if (status != 'K') {
    refused = true;
    return "the agent answered the proof with an unknown status";
  }
  char proof[mac_size], want[mac_size];
  if (auto w = exact(e, proof, mac_size, true, deadline, stop); !w.empty()) return w;
  hmac(token, "agent", an, cn, want);
  if (CRYPTO_memcmp(proof, want, mac_size) != 0) {
    refused = true;
    return "the agent did not prove the token (not this fleet's agent)";
  }
  return {};
}

/// Relays bytes both ways until either side closes, a frame from `net` breaks the rules, the
/// link is idle past the limit, or `stop`. Returns why it ended.
std::string relay(endpoint& net, endpoint& local, const guard_limits& lim, const std::atomic<bool>& stop) {
  struct direction {
    endpoint* from;
    endpoint* to;
    std::vector<char> buf;
    std::size_t start = 0, end = 0;
    endpoint::io read_wait = endpoint::ok, write_wait = endpoint::ok;
  };
  direction in{&net, &local, std::vector<char>(lim.buffer)}, out{&local, &net, std::vector<char>(lim.buffer)};
  basp_checker check(lim.frames);
  bool gone[2] = {false, false};
  auto last = clock_type::now();
  for (;;) {
    if (stop) return "stopping";
    bool moved = false;
    for (direction* d : {&in, &out}) {
      if (d->read_wait == endpoint::ok && d->end < d->buf.size()) {
        std::size_t got = 0;
        auto r = d->from->read(d->buf.data() + d->end, d->buf.size() - d->end, got);
        if (r == endpoint::ok) {
          if (d == &in) {
            std::string bad = check.feed(d->buf.data() + d->end, got);
            if (!bad.empty()) return bad;
          }
          d->end += got;
          moved = true;
        } else if (r == endpoint::eof) {
          return d == &in ? "the peer closed the connection" : "the local side closed the connection";
        } else if (r == endpoint::fail) {
          return d->from->error;
        } else {
          d->read_wait = r;
        }
      }
      if (d->write_wait == endpoint::ok && d->start < d->end) {
        std::size_t put = 0;
        auto r = d->to->write(d->buf.data() + d->start, d->end - d->start, put);
        if (r == endpoint::ok) {
          d->start += put;
          if (d->start == d->end) d->start = d->end = 0;
          moved = true;
        } else if (r == endpoint::eof) {
          return d == &in ? "the local side closed the connection" : "the peer closed the connection";
        } else if (r == endpoint::fail) {
          return d->to->error;
        } else {
          d->write_wait = r;
        }
      }
    }
    auto now = clock_type::now();
    if (moved) {
      last = now;
      continue;
    }
    if (now - last > lim.idle_timeout) return "idle for longer than the limit";
    // Nothing could move: wait for what each blocked operation needs (never a busy loop).
    pollfd p[2] = {{net.fd, 0, 0}, {local.fd, 0, 0}};
    auto want = [&](endpoint* e, endpoint::io w) {
      pollfd& x = e == &net ? p[0] : p[1];
      if (w == endpoint::want_read) x.events |= POLLIN;
      if (w == endpoint::want_write) x.events |= POLLOUT;
    };
    for (direction* d : {&in, &out}) {
      if (d->end < d->buf.size()) want(d->from, d->read_wait == endpoint::ok ? endpoint::want_read : d->read_wait);
      if (d->start < d->end) want(d->to, d->write_wait == endpoint::ok ? endpoint::want_write : d->write_wait);
    }
    // A socket that reported a hang-up or an error is left out while nothing is asked of it: poll
    // would report it at once, again and again.
    for (int i = 0; i < 2; ++i)
      if (gone[i] && p[i].events == 0) p[i].fd = -1;
    int r = ::poll(p, 2, 250);
    if (r < 0 && errno != EINTR) return std::strerror(errno);
    for (int i = 0; i < 2; ++i)
      if (p[i].revents & (POLLHUP | POLLERR | POLLNVAL)) gone[i] = true;
    // Whatever woke us, every blocked operation is tried again.
    for (direction* d : {&in, &out}) d->read_wait = d->write_wait = endpoint::ok;
  }
}

int listen_on(const std::string& host, std::uint16_t port, std::string& err) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (rc != 0) {
    err = ::gai_strerror(rc);
    return -1;
  }
  int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    err = std::strerror(errno);
    ::freeaddrinfo(res);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd, res->ai_addr, res->ai_addrlen) != 0 || ::listen(fd, 128) != 0) {
    err = std::strerror(errno);
    ::close(fd);
    ::freeaddrinfo(res);
    return -1;
  }
  ::freeaddrinfo(res);
  set_nonblocking(fd);
  return fd;
}

int connect_to(const std::string& host, std::uint16_t port, clock_type::time_point deadline,
               const std::atomic<bool>& stop, std::string& err) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (rc != 0) {
    err = ::gai_strerror(rc);
    return -1;
  }
  int fd = -1;
  for (addrinfo* a = res; a; a = a->ai_next) {
    fd = ::socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
      err = std::strerror(errno);
      continue;
    }
    int r = ::connect(fd, a->ai_addr, a->ai_addrlen);
    if (r != 0 && errno == EINPROGRESS) {
      if (wait_for(fd, POLLOUT, deadline, stop)) {
        int so = 0;
        socklen_t len = sizeof(so);
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &len);
        r = so == 0 ? 0 : -1;
        errno = so;
      } else {
        errno = ETIMEDOUT;
      }
    }
    if (r == 0) break;
    err = std::strerror(errno);
    ::close(fd);
    fd = -1;
  }
  ::freeaddrinfo(res);
  if (fd >= 0) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  return fd;
}

/// Is the TCP connection whose far end is `peer` (on loopback) one of this process's sockets?
/// The coordinator's loopback edge relays only CAF's own connections, never another local user's.
/// /proc/net/tcp is read in pieces, not as one snapshot: while other sockets come and go, a line
/// can be missed, and an old connection's TIME_WAIT line (inode 0) can carry the same address.
/// So every line with that address is considered, and the table is read again a few times before
/// a connection is called foreign (ours is always there; a foreign one never becomes ours).
bool own_loopback_peer(const sockaddr_storage& peer) {
  if (peer.ss_family != AF_INET) return false;
  const auto* a = reinterpret_cast<const sockaddr_in*>(&peer);
  unsigned port = ntohs(a->sin_port);
  char want[16];
  std::snprintf(want, sizeof(want), "%08X:%04X", static_cast<unsigned>(a->sin_addr.s_addr), port);
  auto ours = [](const std::string& inode) {
    std::string target = "socket:[" + inode + "]";
    DIR* d = ::opendir("/proc/self/fd");
    if (!d) return false;
    bool found = false;
    while (dirent* e = ::readdir(d)) {
      char link[64];
      std::string p = std::string("/proc/self/fd/") + e->d_name;
      ssize_t n = ::readlink(p.c_str(), link, sizeof(link) - 1);
      if (n > 0 && std::string(link, static_cast<std::size_t>(n)) == target) {
        found = true;
        break;
      }
    }
    ::closedir(d);
    return found;
  };
  for (int attempt = 0; attempt < 5; ++attempt) {
    std::ifstream in("/proc/self/net/tcp");
    std::string line;
    std::getline(in, line);
    while (std::getline(in, line)) {
      std::istringstream is(line);
      std::string sl, local, remote, st, txrx, tr, retr, uid, timeout, ino;
      is >> sl >> local >> remote >> st >> txrx >> tr >> retr >> uid >> timeout >> ino;
      if (local == want && !ino.empty() && ino != "0" && ours(ino)) return true;
    }
  }
  return false;
}

/// Threads a guard started, so its destructor can wait for every one.
struct thread_group {
  std::mutex mu;
  std::condition_variable cv;
  std::size_t running = 0;
  void start(std::function<void()> f) {
    {
      std::lock_guard<std::mutex> g(mu);
      ++running;
    }
    try {
      std::thread([this, f = std::move(f)] {
        try {
          f();
        } catch (const std::exception& e) {
          spdlog::error("fleet guard: a connection's thread failed: {}", e.what());
        } catch (...) {
          spdlog::error("fleet guard: a connection's thread failed");
        }
        std::lock_guard<std::mutex> g(mu);
        --running;
        cv.notify_all();
      }).detach();
    } catch (const std::exception& e) {  // no thread to be had: the connection is dropped
      std::lock_guard<std::mutex> g(mu);
      --running;
      throw;
    }
  }
  void wait() {
    std::unique_lock<std::mutex> lk(mu);
    cv.wait(lk, [&] { return running == 0; });
  }
};

/// accept() that never spins: on EMFILE/ENFILE (descriptors exhausted) it says so once and waits
/// a little before the next try instead of polling a listener that stays readable.
int accept_one(int lfd, sockaddr_storage& ss, clock_type::time_point& quiet_until, const std::string& tag) {
  socklen_t len = sizeof(ss);
  int fd = ::accept4(lfd, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (fd >= 0) return fd;
  if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
    static std::atomic<long> last_log{0};
    long now_s = std::chrono::duration_cast<std::chrono::seconds>(clock_type::now().time_since_epoch()).count();
    if (last_log.exchange(now_s) != now_s)
      spdlog::error("{}: cannot accept a connection: {} (waiting 100 ms before trying again)", tag,
                    std::strerror(errno));
    quiet_until = clock_type::now() + std::chrono::milliseconds(100);
  }
  return -1;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

tls_context::tls_context(const tls_options& o, bool server) {
  SSL_CTX* ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (!ctx) throw std::runtime_error("TLS: " + ssl_errors());
  auto fail = [&](const std::string& what) {
    std::string detail = ssl_errors();
    SSL_CTX_free(ctx);
    throw std::runtime_error(what + ": " + detail);
  };
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (SSL_CTX_use_certificate_chain_file(ctx, o.cert.c_str()) != 1) fail("cannot load the certificate " + o.cert);
  if (SSL_CTX_use_PrivateKey_file(ctx, o.key.c_str(), SSL_FILETYPE_PEM) != 1) fail("cannot load the key " + o.key);
  if (SSL_CTX_check_private_key(ctx) != 1) fail("the key " + o.key + " does not match the certificate " + o.cert);
  if (SSL_CTX_load_verify_locations(ctx, o.ca.c_str(), nullptr) != 1) fail("cannot load the CA " + o.ca);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  ctx_ = ctx;
}

tls_context::~tls_context() {
  if (ctx_) SSL_CTX_free(static_cast<SSL_CTX*>(ctx_));
}

// ---------------------------------------------------------------------------------------------

struct inbound_guard::state {
  int lfd = -1;
  std::uint16_t port = 0, backend = 0;
  std::string token, tag;
  std::shared_ptr<tls_context> tls;
  guard_limits lim;
  std::atomic<bool> stop{false};
  std::atomic<std::size_t> unauthenticated{0}, relayed{0};
  thread_group threads;
  std::thread acceptor;

  void serve(int fd, std::string peer) {
    endpoint net;
    net.fd = fd;
    auto deadline = clock_type::now() + lim.handshake_timeout;
    std::string why;
    bool wrong = false;
    if (tls) why = tls_handshake(net, static_cast<SSL_CTX*>(tls->native()), true, deadline, stop);
    if (why.empty()) why = prove_as_agent(net, token, deadline, stop, wrong);
    unauthenticated.fetch_sub(1);
    if (!why.empty()) {
      if (why != "stopping") spdlog::warn("{}: refused {}: {}", tag, peer, why);
      return;
    }
    if (relayed.fetch_add(1) >= lim.max_connections) {
      relayed.fetch_sub(1);
      spdlog::warn("{}: refused {}: already {} connections (the limit)", tag, peer, lim.max_connections);
      return;
    }
    try {
      fault_point("agent-guard");
    } catch (...) {
      relayed.fetch_sub(1);
      throw;
    }
    std::string err;
    endpoint local;
    local.fd = connect_to("127.0.0.1", backend, clock_type::now() + std::chrono::seconds(5), stop, err);
    if (local.fd < 0) {
      relayed.fetch_sub(1);
      spdlog::error("{}: cannot reach its own CAF listener for {}: {}", tag, peer, err);
      return;
    }
    spdlog::info("{}: {} proved the token{}", tag, peer, tls ? " (TLS, certificate of the fleet's CA)" : "");
    std::string end = relay(net, local, lim, stop);
    relayed.fetch_sub(1);
    if (end == "stopping" || end.find("closed the connection") != std::string::npos)
      spdlog::info("{}: connection of {} ended: {}", tag, peer, end);
    else
      spdlog::warn("{}: closed the connection of {}: {}", tag, peer, end);
  }

  void accept_loop() {
    auto quiet_until = clock_type::now();
    while (!stop) {
      try {
        int wait_ms = 250;
        auto now = clock_type::now();
        if (now < quiet_until) {
          ::poll(nullptr, 0, static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(quiet_until - now).count()));
          continue;
        }
        pollfd p{lfd, POLLIN, 0};
        if (::poll(&p, 1, wait_ms) <= 0) continue;
        fault_point("agent-accept");
        sockaddr_storage ss{};
        int fd = accept_one(lfd, ss, quiet_until, tag);
        if (fd < 0) continue;
        std::string peer = address_of(ss);
        if (unauthenticated.load() >= lim.max_unauthenticated) {
          ::close(fd);
          spdlog::warn("{}: refused {}: {} connections are already proving the token (the limit)", tag, peer,
                       lim.max_unauthenticated);
          continue;
        }
        unauthenticated.fetch_add(1);
        try {
          threads.start([this, fd, peer] { serve(fd, peer); });
        } catch (const std::exception& e) {
          unauthenticated.fetch_sub(1);
          ::close(fd);
          spdlog::error("{}: refused {}: no thread for it ({})", tag, peer, e.what());
        }
      } catch (const std::exception& e) {
        spdlog::error("{}: accepting: {}", tag, e.what());
      }
    }
  }
};

inbound_guard::inbound_guard(const std::string& host, std::uint16_t port, std::uint16_t backend_port,
                             const std::string& token, std::shared_ptr<tls_context> tls, guard_limits limits,
                             std::string tag)
    : st_(std::make_shared<state>()) {
  std::string err;
  st_->lfd = listen_on(host, port, err);
  if (st_->lfd < 0) throw std::runtime_error("cannot listen on " + host + ":" + std::to_string(port) + ": " + err);
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  ::getsockname(st_->lfd, reinterpret_cast<sockaddr*>(&ss), &len);
  st_->port = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                       : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  st_->backend = backend_port;
  st_->token = token;
  st_->tls = std::move(tls);
  st_->lim = limits;
  st_->tag = std::move(tag);
  auto s = st_;
  st_->acceptor = std::thread([s] { s->accept_loop(); });
}

inbound_guard::~inbound_guard() {
  st_->stop = true;
  if (st_->acceptor.joinable()) st_->acceptor.join();
  st_->threads.wait();
  if (st_->lfd >= 0) ::close(st_->lfd);
}

std::uint16_t inbound_guard::port() const { return st_->port; }

// ---------------------------------------------------------------------------------------------

struct outbound_guard::state {
  int lfd = -1;
  std::uint16_t port = 0;
  agent_entry agent;
  std::string token;
  std::shared_ptr<tls_context> tls;
  guard_limits lim;
  std::atomic<bool> stop{false};
  std::atomic<std::size_t> relayed{0};
  thread_group threads;
  std::thread acceptor;
  std::mutex mu;
  std::deque<endpoint> ready;  // dialled and proven, waiting for CAF's connection

  std::string where() const { return agent.host + ":" + std::to_string(agent.port); }

  /// Dials the agent: TCP, TLS, the proofs.
  std::string dial(endpoint& e, bool& refused) {
    refused = false;
    auto deadline = clock_type::now() + lim.handshake_timeout;
    std::string err;
    e.fd = connect_to(agent.host, agent.port, deadline, stop, err);
    if (e.fd < 0) return "unreachable at " + where() + " (" + err + ")";
    std::string why;
    if (tls) why = tls_handshake(e, static_cast<SSL_CTX*>(tls->native()), false, deadline, stop);
    if (!why.empty() && why.rfind("TLS handshake failed", 0) == 0) {
      refused = true;  // a certificate of another CA, or none: retrying does not help
      return why;
    }
    if (!why.empty()) return "unreachable at " + where() + " (" + why + ")";
    why = prove_as_coordinator(e, token, deadline, stop, refused);
    if (!why.empty() && why.rfind("TLS: ", 0) == 0) {
      // TLS 1.3: the agent's verdict on our certificate comes as an alert on the first read.
      refused = true;
      return "TLS handshake failed: " + why.substr(5);
    }
    if (!why.empty()) return refused ? why : "unreachable at " + where() + " (" + why + ")";
    return {};
  }

  void serve(int fd, sockaddr_storage peer) {
    endpoint local;
    local.fd = fd;
    if (!own_loopback_peer(peer)) {
      spdlog::warn("[fleet] refused {} on the loopback edge for agent {}: not this process's own connection",
                   address_of(peer), agent.name);
      return;
    }
    fault_point("coordinator-guard");
    endpoint net;
    {
      std::lock_guard<std::mutex> g(mu);
      if (!ready.empty()) {
        net = std::move(ready.front());
        ready.pop_front();
      }
    }
    if (net.fd < 0) {
      bool refused = false;
      std::string why = dial(net, refused);
      if (!why.empty()) {
        spdlog::warn("[fleet] agent {}: {}", agent.name, why);
        return;
      }
    }
    if (relayed.fetch_add(1) >= lim.max_connections) {
      relayed.fetch_sub(1);
      return;
    }
    std::string end = relay(net, local, lim, stop);
    relayed.fetch_sub(1);
    if (end != "stopping" && end.find("closed the connection") == std::string::npos)
      spdlog::warn("[fleet] agent {} ({}): closed the connection: {}", agent.name, where(), end);
  }

  void accept_loop() {
    auto quiet_until = clock_type::now();
    while (!stop) {
      try {
        auto now = clock_type::now();
        if (now < quiet_until) {
          ::poll(nullptr, 0, static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(quiet_until - now).count()));
          continue;
        }
        pollfd p{lfd, POLLIN, 0};
        if (::poll(&p, 1, 250) <= 0) continue;
        sockaddr_storage ss{};
        int fd = accept_one(lfd, ss, quiet_until, "[fleet] agent " + agent.name);
        if (fd < 0) continue;
        try {
          threads.start([this, fd, ss] { serve(fd, ss); });
        } catch (const std::exception& e) {
          ::close(fd);
          spdlog::error("[fleet] agent {}: no thread for a connection ({})", agent.name, e.what());
        }
      } catch (const std::exception& e) {
        spdlog::error("[fleet] agent {}: accepting: {}", agent.name, e.what());
      }
    }
  }
};

outbound_guard::outbound_guard(const agent_entry& agent, const std::string& token, std::shared_ptr<tls_context> tls,
                               guard_limits limits)
    : st_(std::make_shared<state>()) {
  std::string err;
  st_->lfd = listen_on("127.0.0.1", 0, err);
  if (st_->lfd < 0) throw std::runtime_error("cannot listen on loopback for agent " + agent.name + ": " + err);
  sockaddr_in sa{};
  socklen_t len = sizeof(sa);
  ::getsockname(st_->lfd, reinterpret_cast<sockaddr*>(&sa), &len);
  st_->port = ntohs(sa.sin_port);
  st_->agent = agent;
  st_->token = token;
  st_->tls = std::move(tls);
  st_->lim = limits;
  auto s = st_;
  st_->acceptor = std::thread([s] { s->accept_loop(); });
}

outbound_guard::~outbound_guard() {
  st_->stop = true;
  if (st_->acceptor.joinable()) st_->acceptor.join();
  st_->threads.wait();
  if (st_->lfd >= 0) ::close(st_->lfd);
}

std::uint16_t outbound_guard::local_port() const { return st_->port; }

std::string outbound_guard::prepare(bool& refused) {
  endpoint e;
  std::string why = st_->dial(e, refused);
  if (!why.empty()) return why;
  std::lock_guard<std::mutex> g(st_->mu);
  st_->ready.clear();  // one at a time: an older one CAF never took is dropped
  st_->ready.push_back(std::move(e));
  return {};
}

}  // namespace bp::fleet
