#include "base/parallel.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <system_error>
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
  std::exception_ptr failed;  // the first exception of any thread, rethrown once all are joined
  auto guarded = [&] {
    try {
      work();
    } catch (...) {
      std::lock_guard<std::mutex> g(mu);
      if (!failed) failed = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  int spawn = tick ? threads : threads - 1;
  for (int i = 0; i < spawn; ++i) {
    {
      std::lock_guard<std::mutex> g(mu);
      ++running;
    }
    try {
      pool.emplace_back([&] {
        guarded();
        std::lock_guard<std::mutex> g(mu);
        --running;
        cv.notify_all();
      });
    } catch (const std::system_error&) {  // no more threads to be had: fewer do the work
      std::lock_guard<std::mutex> g(mu);
      --running;
      break;
    }
  }
  if (tick && !pool.empty()) {
    std::unique_lock<std::mutex> g(mu);
    while (!cv.wait_for(g, std::chrono::milliseconds(50), [&] { return running == 0; })) {
      g.unlock();
      tick();
      g.lock();
    }
  } else {
    guarded();
  }
  for (auto& t : pool) t.join();
  if (failed) std::rethrow_exception(failed);
}

}  // namespace bp::base
