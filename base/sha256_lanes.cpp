// Four SHA-256 streams in lockstep (base/sha256_lanes.hpp). The rounds are the SHA extensions'
// (sha256rnds2 does two rounds, sha256msg1/msg2 extend the message schedule), in the state order
// those instructions use (ABEF and CDGH in two registers); everything else -- the initial state,
// the padding and the length at the end -- is OpenSSL's: each lane is an SHA256_CTX whose h[] and
// bit count are advanced here by whole blocks, and SHA256_Update/SHA256_Final finish it, so a
// lane's digest is SHA-256 by construction of everything but the block function.
#define OPENSSL_API_COMPAT 10101
#include "base/sha256_lanes.hpp"

#include <fcntl.h>
#include <openssl/sha.h>
#include <signal.h>
#include <dirent.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#define BP_SHA_LANES_X86 1
#endif

namespace bp {
namespace {

#if BP_SHA_LANES_X86
alignas(16) const std::uint32_t kRound[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

bool cpu_has_sha() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
  const bool ssse3 = (c & bit_SSSE3) != 0, sse41 = (c & bit_SSE4_1) != 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  return ssse3 && sse41 && (b & bit_SHA) != 0;
}

#define BP_SHA_TARGET __attribute__((target("sha,sse4.1,ssse3")))

// h[0..7] = a..h  <->  ABEF, CDGH.
BP_SHA_TARGET inline void pack(const std::uint32_t* h, __m128i& abef, __m128i& cdgh) {
  __m128i abcd = _mm_shuffle_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h)), 0xB1);
  __m128i efgh = _mm_shuffle_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + 4)), 0x1B);
  abef = _mm_alignr_epi8(abcd, efgh, 8);
  cdgh = _mm_blend_epi16(efgh, abcd, 0xF0);
}

BP_SHA_TARGET inline void unpack(__m128i abef, __m128i cdgh, std::uint32_t* h) {
  __m128i feba = _mm_shuffle_epi32(abef, 0x1B);
  __m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(h), _mm_blend_epi16(feba, dchg, 0xF0));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(h + 4), _mm_alignr_epi8(dchg, feba, 8));
}

// N lanes, `blocks` blocks each, one group of four rounds of every lane after the other so the
// lanes' independent instructions overlap.
template <int N>
BP_SHA_TARGET void compress(SHA256_CTX* const* ctx, const unsigned char* const* data, std::size_t blocks) {
  const __m128i swap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);  // big-endian words
  __m128i abef[N], cdgh[N];
  for (int n = 0; n < N; ++n) pack(ctx[n]->h, abef[n], cdgh[n]);
  for (std::size_t b = 0; b < blocks; ++b) {
    __m128i s0[N], s1[N], w[N][4];
    for (int n = 0; n < N; ++n) {
      s0[n] = abef[n];
      s1[n] = cdgh[n];
    }
#if !defined(__clang__)
#pragma GCC unroll 16
#endif
    for (int g = 0; g < 16; ++g) {
      const __m128i k = _mm_load_si128(reinterpret_cast<const __m128i*>(kRound + 4 * g));
      for (int n = 0; n < N; ++n) {
        __m128i m;
        if (g < 4) {
          m = _mm_loadu_si128(reinterpret_cast<const __m128i*>(data[n] + 64 * b + 16 * g));
          m = _mm_shuffle_epi8(m, swap);
        } else {  // W[t..t+3] from W[t-16..t-1]
          m = _mm_sha256msg1_epu32(w[n][g & 3], w[n][(g + 1) & 3]);
          m = _mm_add_epi32(m, _mm_alignr_epi8(w[n][(g + 3) & 3], w[n][(g + 2) & 3], 4));
          m = _mm_sha256msg2_epu32(m, w[n][(g + 3) & 3]);
        }
        w[n][g & 3] = m;
        __m128i t = _mm_add_epi32(m, k);
        s1[n] = _mm_sha256rnds2_epu32(s1[n], s0[n], t);
        s0[n] = _mm_sha256rnds2_epu32(s0[n], s1[n], _mm_shuffle_epi32(t, 0x0E));
      }
    }
    for (int n = 0; n < N; ++n) {
      abef[n] = _mm_add_epi32(abef[n], s0[n]);
      cdgh[n] = _mm_add_epi32(cdgh[n], s1[n]);
    }
  }
  for (int n = 0; n < N; ++n) unpack(abef[n], cdgh[n], ctx[n]->h);
}
#endif

std::atomic<int> g_hardware{-1};  // -1: not asked yet

void add_bits(SHA256_CTX* c, std::size_t blocks) {
  std::uint64_t bits = (static_cast<std::uint64_t>(c->Nh) << 32 | c->Nl) + static_cast<std::uint64_t>(blocks) * 512;
  c->Nl = static_cast<SHA_LONG>(bits);
  c->Nh = static_cast<SHA_LONG>(bits >> 32);
}

// Advances n (1..4) contexts, none holding a partial block, by `blocks` whole blocks each.
void update_lanes(SHA256_CTX* const* ctx, const unsigned char* const* data, int n, std::size_t blocks) {
  if (blocks == 0) return;
#if BP_SHA_LANES_X86
  if (sha256_lanes_in_hardware()) {
    switch (n) {
      case 1: compress<1>(ctx, data, blocks); break;
      case 2: compress<2>(ctx, data, blocks); break;
      case 3: compress<3>(ctx, data, blocks); break;
      default: compress<4>(ctx, data, blocks); break;
    }
    for (int i = 0; i < n; ++i) add_bits(ctx[i], blocks);
    return;
  }
#endif
  for (int i = 0; i < n; ++i) SHA256_Update(ctx[i], data[i], blocks * 64);
}

// Large files are hashed from windows of a mapping (no copy out of the page cache). A file
// truncated while a window of it is mapped makes the pages past its new end raise SIGBUS when they
// are touched. on_sigbus checks whether the address is in a window this thread mapped; if it is,
// it puts zero pages over the rest of that window (the access is then repeated and reads zeros)
// and marks the window. Any other SIGBUS goes where it went before: the handler that was there,
// or the default (the process ends). No window is mapped unless on_sigbus is the handler then.
// Whether or not anything faulted, a mapped file is fstat'ed after its last byte was hashed, and
// one that faulted or no longer has the caller's stamp is hashed again from its start by read(2)
// (a truncation inside the last page raises no SIGBUS; a file replaced after the caller's stat
// may be longer): what a mapped file gives is always what read(2) would give.
constexpr int kSlots = 8;
struct window_slot {
  std::uintptr_t lo = 0, hi = 0;  // hi == 0: free
  volatile sig_atomic_t faulted = 0;
};
thread_local window_slot t_windows[kSlots] __attribute__((tls_model("initial-exec")));
struct sigaction g_previous;
std::uintptr_t g_page = 4096;
std::once_flag g_install;
bool g_installed = false;

void on_sigbus(int sig, siginfo_t* si, void* uc) {
  const int saved_errno = errno;
  struct restore {
    int e;
    ~restore() { errno = e; }
  } keep{saved_errno};
  const auto a = reinterpret_cast<std::uintptr_t>(si->si_addr);
  const bool fault = si->si_code > 0;  // not a kill
  if (fault) {  // in one of this thread's windows?
    for (auto& w : t_windows) {
      if (w.hi == 0 || a < w.lo || a >= w.hi) continue;
      const std::uintptr_t page = a & ~(g_page - 1);
      void* z = ::mmap(reinterpret_cast<void*>(page), w.hi - page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                       -1, 0);
      if (z != MAP_FAILED) {
        w.faulted = 1;
        return;
      }
      break;  // could not patch it: as if it were not ours
    }
  }
  if ((g_previous.sa_flags & SA_SIGINFO) != 0 && g_previous.sa_sigaction != nullptr) {
    g_previous.sa_sigaction(sig, si, uc);
    return;
  }
  if ((g_previous.sa_flags & SA_SIGINFO) == 0 && g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN) {
    g_previous.sa_handler(sig);
    return;
  }
  if (!fault && (g_previous.sa_flags & SA_SIGINFO) == 0 && g_previous.sa_handler == SIG_IGN) return;  // ignored
  // The default action: a fault repeats when this returns and ends the process (an ignored
  // SIGBUS from a fault ends it too); a kill is sent again.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  ::sigaction(SIGBUS, &dfl, nullptr);
  if (!fault) ::raise(SIGBUS);
}

// Whether files may be mapped now: on_sigbus installed, and still the handler.
bool may_map() {
  std::call_once(g_install, [] {
    long page = ::sysconf(_SC_PAGESIZE);
    if (page > 0) g_page = static_cast<std::uintptr_t>(page);
    struct sigaction sa {};
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    g_installed = ::sigaction(SIGBUS, &sa, &g_previous) == 0;
  });
  if (!g_installed) return false;
  struct sigaction now {};
  return ::sigaction(SIGBUS, nullptr, &now) == 0 && (now.sa_flags & SA_SIGINFO) != 0 && now.sa_sigaction == on_sigbus;
}

std::string final_hex(SHA256_CTX& c, const unsigned char* tail, std::size_t n) {
  SHA256_Update(&c, tail, n);
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256_Final(md, &c);
  return to_hex(md, sizeof(md));
}

}  // namespace

bool sha256_lanes_in_hardware() {
  int v = g_hardware.load(std::memory_order_relaxed);
  if (v < 0) {
#if BP_SHA_LANES_X86
    v = cpu_has_sha() ? 1 : 0;
#else
    v = 0;
#endif
    g_hardware.store(v, std::memory_order_relaxed);
  }
  return v == 1;
}

void sha256_lanes_use_hardware(bool on) {
#if BP_SHA_LANES_X86
  g_hardware.store(on && cpu_has_sha() ? 1 : 0, std::memory_order_relaxed);
#else
  (void)on;
  g_hardware.store(0, std::memory_order_relaxed);
#endif
}

std::vector<std::string> sha256_hex_lanes(const std::vector<std::string_view>& messages) {
  std::vector<std::string> out(messages.size());
  constexpr int kLanes = sha256_file_lanes::kLanes;
  for (std::size_t first = 0; first < messages.size(); first += kLanes) {
    const int n = static_cast<int>(std::min<std::size_t>(kLanes, messages.size() - first));
    SHA256_CTX c[kLanes];
    std::size_t pos[kLanes] = {};
    for (int i = 0; i < n; ++i) SHA256_Init(&c[i]);
    for (;;) {  // every lane with a whole block left advances by the fewest any of them has
      SHA256_CTX* ctx[kLanes];
      const unsigned char* data[kLanes];
      int idx[kLanes], k = 0;
      std::size_t blocks = ~std::size_t{0};
      for (int i = 0; i < n; ++i) {
        std::size_t left = (messages[first + i].size() - pos[i]) / 64;
        if (left == 0) continue;
        ctx[k] = &c[i];
        data[k] = reinterpret_cast<const unsigned char*>(messages[first + i].data()) + pos[i];
        idx[k++] = i;
        blocks = std::min(blocks, left);
      }
      if (k == 0) break;
      update_lanes(ctx, data, k, blocks);
      for (int j = 0; j < k; ++j) pos[idx[j]] += blocks * 64;
    }
    for (int i = 0; i < n; ++i) {
      const auto& m = messages[first + i];
      out[first + i] = final_hex(c[i], reinterpret_cast<const unsigned char*>(m.data()) + pos[i], m.size() - pos[i]);
    }
  }
  return out;
}

struct sha256_file_lanes::lane {
  bool active = false;
  int fd = -1;
  std::size_t token = 0;
  SHA256_CTX ctx;
  file_stamp before;                     // the caller's, or fstat's before the first read
  std::uint64_t expected = 0, size = 0;  // size: bytes read (or mapped) so far
  unsigned char* own = nullptr;          // this lane's part of the buffer
  unsigned char* buf = nullptr;          // own, or the window of the file mapped now
  std::size_t pos = 0, len = 0;          // not yet hashed: buf[pos, len)
  bool eof = false;
  bool mapped = false;                   // read through windows of a mapping, not read(2)
  bool used_map = false;                 // some of it was: checked after its last byte
  bool faulted = false;                  // a window of it raised SIGBUS (patched with zeros)
  int slot = -1;                         // its window's entry in the thread's fault table
  std::string digest;                    // a mapped file's, once it was checked
  bool typed = false;                    // its type was seen by an fstat of this descriptor
};

sha256_file_lanes::sha256_file_lanes(done_fn done, std::size_t buffer, bool check_after, int lanes)
    : done_(std::move(done)), check_after_(check_after), lanes_open_(std::clamp(lanes, 1, kLanes)),
      block_((std::max<std::size_t>(buffer, 4096 * kLanes) / kLanes) & ~std::size_t{63}), buf_(block_ * kLanes),
      lanes_(new lane[kLanes]) {
  for (int i = 0; i < kLanes; ++i)
    lanes_[i].own = lanes_[i].buf = reinterpret_cast<unsigned char*>(buf_.data()) + block_ * i;
}

sha256_file_lanes::~sha256_file_lanes() {
  for (int i = 0; i < kLanes; ++i) {
    if (!lanes_[i].active) continue;
    unmap(lanes_[i]);
    ::close(lanes_[i].fd);
  }
}

int sha256_file_lanes::busy() const {
  int n = 0;
  for (int i = 0; i < kLanes; ++i) n += lanes_[i].active ? 1 : 0;
  return n;
}

void sha256_file_lanes::end(lane& l, bool ok, const std::string& err) {
  result r;
  r.token = l.token;
  r.ok = ok;
  if (ok) {
    r.size = l.size;
    r.stamp = l.before;
    if (l.used_map) {  // checked already: it has the caller's stamp
      r.hex = std::move(l.digest);
      r.stable = check_after_;
    } else {
      r.hex = final_hex(l.ctx, l.buf + l.pos, l.len - l.pos);
      r.stable = check_after_ && held_still(l);
    }
  } else {
    r.err = err;
  }
  unmap(l);
  ::close(l.fd);
  l.fd = -1;
  l.active = false;
  l.digest.clear();
  done_(std::move(r));
}

void sha256_file_lanes::add(const std::string& path, std::size_t token, const file_stamp* known, int at) {
  if (busy() >= lanes_open_ && !step(true)) return;  // late: nothing more is opened
  auto failed = [&](int fd) {
    result r;
    r.token = token;
    r.err = std::strerror(errno);
    if (fd >= 0) ::close(fd);
    done_(std::move(r));
  };
  // O_NONBLOCK: a FIFO put where a file was must not hang the open (no effect on a regular file).
  const int flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK;
  int fd = ::openat(at, path.c_str(), flags);
  // Out of descriptors with files in the lanes: hash until one is closed, then try again.
  while (fd < 0 && (errno == EMFILE || errno == ENFILE) && busy() > 0) {
    if (!step(true)) return;
    fd = ::openat(at, path.c_str(), flags);
  }
  if (fd < 0) return failed(fd);
  lane* l = nullptr;  // chosen once the file is open: step() above may have freed another
  for (int i = 0; i < kLanes && !l; ++i)
    if (!lanes_[i].active) l = &lanes_[i];
  if (known) {  // a regular file's stamp from the caller's stat: no fstat before reading
    l->before = *known;
    l->expected = known->size;
  } else {
    struct stat st {};
    if (::fstat(fd, &st) != 0) return failed(fd);
    l->before = stamp_of(st);
    l->expected = S_ISREG(st.st_mode) ? static_cast<std::uint64_t>(st.st_size) : ~0ull;
  }
  l->fd = fd;
  l->token = token;
  // Large files: ask for the kernel's larger read-ahead (cold page cache).
  if (l->expected != ~0ull && l->expected > block_) ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  SHA256_Init(&l->ctx);
  l->size = l->pos = l->len = 0;
  l->eof = false;
  l->used_map = l->faulted = false;
  l->typed = !known;  // fstat'ed above
  l->buf = l->own;
  l->mapped = known && l->expected >= kMapFrom && may_map();
  l->active = true;
}

void sha256_file_lanes::unmap(lane& l) {
  if (l.slot < 0) return;
  window_slot& w = t_windows[l.slot];
  if (w.faulted) l.faulted = true;
  ::munmap(reinterpret_cast<void*>(w.lo), w.hi - w.lo);
  w.hi = 0;
  w.faulted = 0;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  l.slot = -1;
  l.buf = l.own;
  l.pos = l.len = 0;
}

// The next window of a mapped file, where the last one ended (every window but the last is whole
// pages, so whole blocks: nothing is left over from the last). False: no window to be had.
bool sha256_file_lanes::map_next(lane& l) {
  unmap(l);
  const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(kWindow, l.expected - l.size));
  if (n == 0) {
    l.eof = true;
    return true;
  }
  int slot = -1;
  for (int i = 0; i < kSlots && slot < 0; ++i)
    if (t_windows[i].hi == 0) slot = i;
  if (slot < 0) return false;
  void* m = ::mmap(nullptr, n, PROT_READ, MAP_PRIVATE, l.fd, static_cast<off_t>(l.size));
  if (m == MAP_FAILED) return false;
  window_slot& w = t_windows[slot];
  w.faulted = 0;
  w.lo = reinterpret_cast<std::uintptr_t>(m);
  w.hi = w.lo + ((n + g_page - 1) & ~(g_page - 1));
  std::atomic_signal_fence(std::memory_order_seq_cst);  // registered before the first touch
  l.slot = slot;
  l.used_map = true;
  l.buf = static_cast<unsigned char*>(m);
  l.pos = 0;
  l.len = n;
  l.size += n;
  if (l.size == l.expected) l.eof = true;
  return true;
}

// A file that faulted or changed: hashed again from its start by read(2), as if never mapped.
// False when even that cannot start (the lane has ended with the reason).
bool sha256_file_lanes::reread(lane& l) {
  unmap(l);
  l.mapped = l.used_map = l.faulted = false;
  l.digest.clear();
  SHA256_Init(&l.ctx);
  l.size = l.pos = l.len = 0;
  l.eof = false;
  struct stat st {};
  if (::fstat(l.fd, &st) != 0 || ::lseek(l.fd, 0, SEEK_SET) != 0) {
    end(l, false, std::strerror(errno));
    return false;
  }
  if (!S_ISREG(st.st_mode)) {
    end(l, false, "not a regular file any more");
    return false;
  }
  l.expected = static_cast<std::uint64_t>(st.st_size);
  l.typed = true;
  return true;
}

// A mapped file's last bytes are hashed (touching its last window), then it is checked: no window
// faulted, and fstat gives the caller's stamp. True: `digest` holds. False: it is being hashed
// again by read(2), or has ended.
bool sha256_file_lanes::check_mapped(lane& l) {
  l.digest = final_hex(l.ctx, l.buf + l.pos, l.len - l.pos);
  unmap(l);
  if (!l.faulted && held_still(l)) return true;
  reread(l);
  return false;
}

// After its last byte: fstat still gives the stamp it started with, and as many bytes were read.
bool sha256_file_lanes::held_still(const lane& l) {
  struct stat after {};
  return ::fstat(l.fd, &after) == 0 && stamp_of(after) == l.before && l.size == l.expected;
}

void sha256_file_lanes::finish() {
  while (busy() > 0 && !late_) step(false);
}

// Reads what the lanes need, ends the files that are done, and hashes the whole blocks every busy
// lane has, the fewest any of them has. Until a lane is free (add) or every lane is (finish).
bool sha256_file_lanes::step(bool until_free) {
  for (;;) {
    if (deadline_ != std::chrono::steady_clock::time_point::max() && std::chrono::steady_clock::now() > deadline_) {
      late_ = true;  // the files still in the lanes give no result; the caller says why
      return false;
    }
    bool freed = false;
    for (int i = 0; i < kLanes; ++i) {
      lane& l = lanes_[i];
      if (!l.active) continue;
      bool failed = false;
      if (l.mapped && (l.faulted || (l.slot >= 0 && t_windows[l.slot].faulted))) {
        failed = !reread(l);  // no sense hashing zeros to the end
      } else if (l.mapped && l.len - l.pos < 64 && !l.eof && !map_next(l)) {
        // No mapping to be had (a file system that cannot map, no address space): the rest of
        // it by read(2), from where the windows ended.
        l.mapped = false;
        if (::lseek(l.fd, static_cast<off_t>(l.size), SEEK_SET) < 0) {
          end(l, false, std::strerror(errno));
          failed = true;
        }
      }
      while (!failed && !l.mapped && l.len - l.pos < 64 && !l.eof) {
        std::memmove(l.buf, l.buf + l.pos, l.len - l.pos);
        l.len -= l.pos;
        l.pos = 0;
        const std::size_t want = block_ - l.len;
        ssize_t n = ::read(l.fd, l.buf + l.len, want);
        if (n < 0) {
          if (errno == EINTR) continue;
          end(l, false, std::strerror(errno));
          failed = true;
          break;
        }
        if (n == 0) {
          l.eof = true;
          break;
        }
        l.len += static_cast<std::size_t>(n);
        l.size += static_cast<std::uint64_t>(n);
        // A regular file's read is short only at its end: past the size fstat gave, that is the end.
        if (static_cast<std::size_t>(n) < want && l.size >= l.expected) l.eof = true;
        // Past the size the caller's stamp gave: is it still a regular file (a device put in its
        // place would be read forever)? Asked once; a file that grew reads on to its new end.
        if (!l.eof && !l.typed && l.size > l.expected) {
          struct stat st {};
          l.typed = true;
          const bool seen = ::fstat(l.fd, &st) == 0;
          if (!seen || !S_ISREG(st.st_mode)) {
            end(l, false, seen ? "not a regular file any more" : std::strerror(errno));
            failed = true;
            break;
          }
          l.expected = static_cast<std::uint64_t>(st.st_size);
        }
      }
      if (!failed && l.len - l.pos < 64 && l.eof && (!l.used_map || check_mapped(l))) end(l, true, {});
      if (!l.active) freed = true;
    }
    if (freed && until_free) return true;
    SHA256_CTX* ctx[kLanes];
    const unsigned char* data[kLanes];
    lane* who[kLanes];
    int k = 0;
    std::size_t blocks = ~std::size_t{0};
    for (int i = 0; i < kLanes; ++i) {
      lane& l = lanes_[i];
      if (!l.active) continue;
      ctx[k] = &l.ctx;
      data[k] = l.buf + l.pos;
      who[k++] = &l;
      blocks = std::min(blocks, (l.len - l.pos) / 64);
    }
    if (k == 0) return true;  // nothing busy: every lane is free
    update_lanes(ctx, data, k, blocks);
    for (int j = 0; j < k; ++j) who[j]->pos += blocks * 64;
  }
}

int sha256_lanes_per_thread(int threads) {
  struct rlimit lim {};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY) return sha256_file_lanes::kLanes;
  long open = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (dirent* e = ::readdir(d)) open += e->d_name[0] == '.' ? 0 : 1;
    ::closedir(d);
    --open;  // the listing's own
  }
  // What the rest of the process may still open meanwhile (sockets, logs, the walk's folders).
  constexpr long kLeave = 64;
  const long spare = static_cast<long>(lim.rlim_cur) - open - kLeave;
  return static_cast<int>(std::clamp<long>(spare / std::max(1, threads), 1, sha256_file_lanes::kLanes));
}

}  // namespace bp
