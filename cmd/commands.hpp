#pragma once
// Subcommands implemented in their own files under cmd/.
#include <signal.h>

#include <string>
#include <vector>

namespace bp::cli {
/// SIGINT and SIGTERM: blocked in every thread, taken synchronously where a command handles them.
sigset_t stop_signals();
int cmd_meta(const std::vector<std::string>& argv);
int cmd_bench(const std::vector<std::string>& argv);
int cmd_run(const std::vector<std::string>& argv, const std::vector<std::string>& full_argv);
int cmd_sweep(const std::vector<std::string>& argv, const std::vector<std::string>& full_argv);
}  // namespace bp::cli
