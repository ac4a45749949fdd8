#pragma once
/// The one way work is spread over threads here (hashing libraries, venv files).
#include <functional>

namespace bp::base {

/// `requested` when positive, else the number of cores (at least 1).
int thread_count(int requested);

/// Runs `work` on `threads` threads at once and returns when every one returned. The caller's
/// thread is one of them, unless `tick` is given: then the caller calls `tick` about every 50 ms
/// (progress reports) until the workers are done. An exception thrown by `work` on any thread is
/// rethrown here (the first one) once every thread has returned; when no thread can be started,
/// fewer (at least the caller's) do the work.
void run_parallel(int threads, const std::function<void()>& work, const std::function<void()>& tick = {});

}  // namespace bp::base
