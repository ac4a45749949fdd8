#pragma once
/// One I/O thread's readiness loop: an edge-triggered epoll set, work posted from other threads,
/// work deferred to the end of the current batch, and a few timers.
///
/// Why not Asio's reactor: an `async_wait` (or an `async_read_some` after a readiness event)
/// costs one `epoll_ctl(MOD)` or one speculative `recv` per operation, so two system calls per
/// proxied request on top of the six a relay needs (docs/benchmarks.md, "System calls and
/// instructions per request"). Here a socket is registered once, for reading and writing,
/// edge-triggered (as nginx does), and its owner remembers what the kernel said: a socket that
/// returned a short read waits for the next edge instead of being asked again.
///
/// Everything but `post` and `add` is for the loop's own thread.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace bp::net {

/// Something with a descriptor in a loop. It must outlive its registration: delete the
/// descriptor from the loop (event_loop::remove) before the watch goes away, and keep the watch
/// alive until the end of the batch (event_loop::retire): an event already fetched may still name it.
class io_watch {
 public:
  virtual void on_events(std::uint32_t events) = 0;

 protected:
  ~io_watch() = default;
};

class event_loop {
 public:
  using clock = std::chrono::steady_clock;

  /// Throws std::system_error when the kernel refuses an epoll set or an eventfd.
  event_loop();
  ~event_loop();
  event_loop(const event_loop&) = delete;
  event_loop& operator=(const event_loop&) = delete;

  /// Registers `fd` for input, output and peer shutdown, edge-triggered. Returns errno, 0 on success.
  int add(int fd, io_watch* w);
  /// Deregisters `fd` (call before closing it: a forked child may hold a copy of the descriptor,
  /// and the kernel keeps reporting a registration until every copy is closed).
  void remove(int fd);

  /// From any thread: `f` runs on the loop's thread, in order, after the current batch.
  void post(std::function<void()> f);
  /// On the loop's thread: `f` runs after the current batch of events, before the next wait.
  void defer(std::function<void()> f);
  /// On the loop's thread: `f` runs once `when` has passed.
  void at(clock::time_point when, std::function<void()> f);
  /// Keeps `p` alive until the current batch is over (an owner that closed itself in a handler).
  void retire(std::shared_ptr<void> p) { retired_.push_back(std::move(p)); }

  /// Handles events until stop(). A handler's exception is reported through `on_error` and the
  /// loop goes on with the rest of the batch (an edge-triggered event dropped is a stuck socket).
  void run(const std::function<void(const std::string&)>& on_error);
  /// On the loop's thread: run() returns after the current batch.
  void stop() { stopping_ = true; }
  /// Drops what is still queued (posted, deferred, timers, retired); for after run() returned.
  void discard_pending();
  bool in_loop_thread() const;

 private:
  void run_deferred(const std::function<void(const std::string&)>& on_error);
  void take_posted();

  int ep_ = -1;
  int wake_ = -1;  // eventfd: post() from another thread
  bool stopping_ = false;
  std::vector<std::function<void()>> deferred_, running_;
  std::multimap<clock::time_point, std::function<void()>> timers_;
  std::vector<std::shared_ptr<void>> retired_;
  std::mutex mu_;
  std::vector<std::function<void()>> posted_;  // guarded by mu_
  bool wake_pending_ = false;                  // guarded by mu_
};

}  // namespace bp::net
