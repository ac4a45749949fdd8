#include "net/proxy/event_loop.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>

namespace bp::net {

namespace {
thread_local const event_loop* current_loop = nullptr;
}

event_loop::event_loop() {
  ep_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep_ < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
  wake_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_ < 0) {
    int e = errno;
    ::close(ep_);
    throw std::system_error(e, std::generic_category(), "eventfd");
  }
  epoll_event ev{};
  ev.events = EPOLLIN;  // level-triggered: read in full whenever it fires
  ev.data.ptr = nullptr;
  if (::epoll_ctl(ep_, EPOLL_CTL_ADD, wake_, &ev) != 0) {
    int e = errno;
    ::close(wake_);
    ::close(ep_);
    throw std::system_error(e, std::generic_category(), "epoll_ctl(eventfd)");
  }
}

event_loop::~event_loop() {
  discard_pending();
  ::close(wake_);
  ::close(ep_);
}

int event_loop::add(int fd, io_watch* w) {
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.ptr = w;
  return ::epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : errno;
}

void event_loop::remove(int fd) {
  epoll_event ev{};
  ::epoll_ctl(ep_, EPOLL_CTL_DEL, fd, &ev);
}

void event_loop::post(std::function<void()> f) {
  if (in_loop_thread()) return defer(std::move(f));
  bool signal = false;
  {
    std::lock_guard<std::mutex> lk(mu_);
    posted_.push_back(std::move(f));
    signal = !wake_pending_;
    wake_pending_ = true;
  }
  if (signal) {
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_, &one, sizeof one);
  }
}

void event_loop::defer(std::function<void()> f) { deferred_.push_back(std::move(f)); }

void event_loop::at(clock::time_point when, std::function<void()> f) { timers_.emplace(when, std::move(f)); }

bool event_loop::in_loop_thread() const { return current_loop == this; }

void event_loop::take_posted() {
  std::uint64_t n = 0;
  [[maybe_unused]] auto r = ::read(wake_, &n, sizeof n);
  std::vector<std::function<void()>> got;
  {
    std::lock_guard<std::mutex> lk(mu_);
    got.swap(posted_);
    wake_pending_ = false;
  }
  for (auto& f : got) deferred_.push_back(std::move(f));
}

void event_loop::run_deferred(const std::function<void(const std::string&)>& on_error) {
  // Work deferred by deferred work runs in the same turn, after what was queued before it.
  while (!deferred_.empty()) {
    running_.clear();
    running_.swap(deferred_);
    for (auto& f : running_) {
      try {
        f();
      } catch (const std::exception& e) {
        if (on_error) on_error(e.what());
      }
    }
    running_.clear();
    retired_.clear();
  }
}

void event_loop::run(const std::function<void(const std::string&)>& on_error) {
  const event_loop* outer = current_loop;
  current_loop = this;
  stopping_ = false;
  constexpr int kMaxEvents = 256;
  epoll_event evs[kMaxEvents];
  while (!stopping_) {
    run_deferred(on_error);
    if (stopping_) break;
    int timeout = -1;
    if (!timers_.empty()) {
      auto left = timers_.begin()->first - clock::now();
      auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
      timeout = ms <= 0 ? 0 : static_cast<int>(std::min<long long>(ms, 60'000));
    }
    int n = ::epoll_wait(ep_, evs, kMaxEvents, timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (on_error) on_error(std::string("epoll_wait: ") + std::generic_category().message(errno));
      break;
    }
    for (int i = 0; i < n; ++i) {
      auto* w = static_cast<io_watch*>(evs[i].data.ptr);
      if (!w) {
        take_posted();
        continue;
      }
      try {
        w->on_events(evs[i].events);
      } catch (const std::exception& e) {
        if (on_error) on_error(e.what());
      }
    }
    retired_.clear();
    if (!timers_.empty()) {
      auto now = clock::now();
      while (!timers_.empty() && timers_.begin()->first <= now) {
        auto f = std::move(timers_.begin()->second);
        timers_.erase(timers_.begin());
        try {
          f();
        } catch (const std::exception& e) {
          if (on_error) on_error(e.what());
        }
      }
    }
  }
  retired_.clear();
  current_loop = outer;
}

void event_loop::discard_pending() {
  // Destroying a closure may close a connection, which may queue more: until nothing is left.
  for (;;) {
    std::vector<std::function<void()>> got;
    {
      std::lock_guard<std::mutex> lk(mu_);
      got.swap(posted_);
      wake_pending_ = false;
    }
    if (got.empty() && deferred_.empty() && running_.empty() && timers_.empty() && retired_.empty()) return;
    got.clear();
    auto d = std::move(deferred_);
    deferred_.clear();
    d.clear();
    running_.clear();
    auto t = std::move(timers_);
    timers_.clear();
    t.clear();
    auto r = std::move(retired_);
    retired_.clear();
    r.clear();
  }
}

}  // namespace bp::net
