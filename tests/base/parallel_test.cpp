#include "base/parallel.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>

using bp::base::run_parallel;

TEST(RunParallel, EveryThreadRunsTheWorkAndTheCallerIsOneOfThem) {
  std::atomic<int> ran{0};
  run_parallel(4, [&] { ++ran; });
  EXPECT_EQ(ran.load(), 4);
  std::atomic<int> ticked{0};
  ran = 0;
  run_parallel(3, [&] { ++ran; }, [&] { ++ticked; });  // with a tick the caller only ticks
  EXPECT_EQ(ran.load(), 3);
}

TEST(RunParallel, AnExceptionOnAnyThreadIsRethrownOnceAllHaveReturned) {
  // One thread throws; the others go on until the shared work is done (they are joined, not
  // abandoned: no std::terminate), and the caller gets the exception.
  for (bool with_tick : {false, true}) {
    std::atomic<int> started{0}, finished{0};
    auto work = [&] {
      if (started.fetch_add(1) == 0) throw std::runtime_error("no memory for a buffer");
      ++finished;
    };
    try {
      if (with_tick)
        run_parallel(3, work, [] {});
      else
        run_parallel(3, work);
      FAIL() << "no exception";
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "no memory for a buffer");
    }
    EXPECT_EQ(started.load(), 3);
    EXPECT_EQ(finished.load(), 2);
  }
}
