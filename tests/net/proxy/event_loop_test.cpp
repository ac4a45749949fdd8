// One I/O thread's readiness loop (net/proxy/event_loop.hpp), on its own.
#include "net/proxy/event_loop.hpp"

#include <gtest/gtest.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

using namespace bp::net;
using namespace std::chrono_literals;

namespace {

/// Runs a loop on its own thread; stop() is posted, so it also checks post().
struct running_loop {
  event_loop loop;
  std::vector<std::string> errors;
  std::mutex mu;
  std::thread t;
  running_loop() {
    t = std::thread([this] {
      loop.run([this](const std::string& e) {
        std::lock_guard<std::mutex> g(mu);
        errors.push_back(e);
      });
    });
  }
  ~running_loop() {
    loop.post([this] { loop.stop(); });
    t.join();
  }
};

template <class F>
bool eventually(F f) {
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!f()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

struct recording_watch final : io_watch {
  int fd = -1;
  std::atomic<int> readable{0};
  std::atomic<int> reads{0};
  void on_events(std::uint32_t e) override {
    if (e & EPOLLIN) {
      readable++;
      char buf[4];  // a short read on purpose: the rest stays in the socket
      if (::recv(fd, buf, sizeof buf, 0) > 0) reads++;
    }
  }
};

}  // namespace

TEST(EventLoop, WorkPostedFromAnotherThreadRunsOnTheLoopThreadInOrder) {
  running_loop r;
  std::vector<int> seen;
  std::atomic<bool> on_loop{true};
  std::atomic<int> done{0};
  for (int i = 0; i < 1000; ++i)
    r.loop.post([&, i] {
      if (!r.loop.in_loop_thread()) on_loop = false;
      seen.push_back(i);
      done++;
    });
  ASSERT_TRUE(eventually([&] { return done.load() == 1000; }));
  EXPECT_TRUE(on_loop.load());
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(seen[static_cast<std::size_t>(i)], i);
  EXPECT_FALSE(r.loop.in_loop_thread());
}

TEST(EventLoop, DeferredWorkRunsAfterTheWorkThatDeferredItAndTimersFireInOrderOncePassed) {
  running_loop r;
  std::vector<std::string> order;
  std::atomic<bool> done{false};
  r.loop.post([&] {
    auto now = event_loop::clock::now();
    r.loop.at(now + 30ms, [&] {
      order.push_back("timer 30ms");
      done = true;
    });
    r.loop.at(now + 10ms, [&] { order.push_back("timer 10ms"); });
    r.loop.defer([&] {
      order.push_back("deferred");
      r.loop.defer([&] { order.push_back("deferred by deferred"); });
    });
    order.push_back("posted");
  });
  ASSERT_TRUE(eventually([&] { return done.load(); }));
  std::vector<std::string> want = {"posted", "deferred", "deferred by deferred", "timer 10ms", "timer 30ms"};
  EXPECT_EQ(order, want);
}

TEST(EventLoop, AnEdgeIsReportedOnceAndDataLeftBehindWaitsForTheNextEdge) {
  running_loop r;
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
  recording_watch w;
  w.fd = sv[0];
  std::atomic<int> added{-1};
  r.loop.post([&] { added = r.loop.add(sv[0], &w); });
  ASSERT_TRUE(eventually([&] { return added.load() == 0; }));
  ASSERT_EQ(::send(sv[1], "0123456789", 10, 0), 10);
  ASSERT_TRUE(eventually([&] { return w.reads.load() == 1; }));
  // The watch read 4 of 10 bytes; edge-triggered, the rest raises no new event until more comes.
  std::atomic<bool> turned{false};
  r.loop.post([&] { turned = true; });  // a full turn of the loop after the read
  ASSERT_TRUE(eventually([&] { return turned.load(); }));
  EXPECT_EQ(w.readable.load(), 1);
  ASSERT_EQ(::send(sv[1], "x", 1, 0), 1);
  ASSERT_TRUE(eventually([&] { return w.readable.load() == 2; }));
  std::atomic<bool> removed{false};
  r.loop.post([&] {
    r.loop.remove(sv[0]);
    removed = true;
  });
  ASSERT_TRUE(eventually([&] { return removed.load(); }));
  ::close(sv[0]);
  ::close(sv[1]);
}

TEST(EventLoop, AHandlersExceptionIsReportedAndTheLoopGoesOn) {
  running_loop r;
  std::atomic<bool> after{false};
  r.loop.post([] { throw std::runtime_error("handler failed"); });
  r.loop.post([&] { after = true; });
  ASSERT_TRUE(eventually([&] { return after.load(); }));
  std::lock_guard<std::mutex> g(r.mu);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0], "handler failed");
}

TEST(EventLoop, WhatIsRetiredLivesUntilTheBatchIsOver) {
  running_loop r;
  auto p = std::make_shared<int>(7);
  std::weak_ptr<int> w = p;
  std::atomic<bool> alive_in_batch{false}, done{false};
  r.loop.post([&, q = std::move(p)]() mutable {
    r.loop.retire(std::move(q));
    alive_in_batch = !w.expired();
  });
  r.loop.post([&] { done = true; });
  ASSERT_TRUE(eventually([&] { return done.load() && w.expired(); }));
  EXPECT_TRUE(alive_in_batch.load());
}
