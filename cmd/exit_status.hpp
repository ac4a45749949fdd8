#pragma once
/// The one mapping from bench-proxy's errors to process exit statuses (docs/cli.md, "Exit codes").
#include "actors/errors.hpp"

namespace bp::cli {

/// 1 failure, 2 usage, 3 listen address unusable, 4 engine failed to start, 5 engine died after
/// it was ready, 6 warmup failed, 130 interrupted.
int exit_status(errc code);
/// 0 for no error; errors of other categories than errc's are failures (1).
int exit_status(const caf::error& e);

}  // namespace bp::cli
