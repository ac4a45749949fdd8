#include "base/parallel.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace bp::base {

int thread_count(int requested) {
  return requested > 0 ? requested : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

void run_parallel(int threads, const std::function<void()>& work, const std::function<void()>& tick) {
  threads = std::max(1, threads);
  std::mutex mu;
  std::condition_variable cv;
  int running = 0;
  std::vector<std::thread> pool;
  int spawn = tick ? threads : threads - 1;
  for (int i = 0; i < spawn; ++i) {
    {
      std::lock_guard<std::mutex> g(mu);
      ++running;
    }
    pool.emplace_back([&] {
      work();
      std::lock_guard<std::mutex> g(mu);
      --running;
      cv.notify_all();
    });
  }
  if (tick) {
    std::unique_lock<std::mutex> g(mu);
    while (!cv.wait_for(g, std::chrono::milliseconds(50), [&] { return running == 0; })) {
      g.unlock();
      tick();
      g.lock();
    }
  } else {
    work();
  }
  for (auto& t : pool) t.join();
}

}  // namespace bp::base
