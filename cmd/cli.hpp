#pragma once
/// What every subcommand shares: the table row that names it, CLI11 validators that let only
/// finite, in-range numbers through, logging setup and the stop signals. docs/architecture.md,
/// "Adding a subcommand".
#include <signal.h>

#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace bp::cli {

/// Thrown for bad command lines found after parsing (a missing file, options that exclude each
/// other); main prints it with the subcommand's name and exits 2, like CLI11's own errors.
struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// What a subcommand runs once its command line parsed; returns the exit status.
using runner = std::function<int()>;

/// One row of the subcommand table (cmd/bench_proxy.cpp): its name, its one line of help, and
/// the function that declares its options on `app` and returns what runs when it is chosen.
/// `argv` is bench-proxy's whole command line (recorded in /meta).
struct command {
  const char* name;
  const char* summary;
  runner (*define)(CLI::App& app, const std::vector<std::string>& argv);
};

/// Only finite numbers in [min, max] (NaN, inf, "5s", "" are refused with the option's name).
CLI::Validator finite_in(double min, double max);
/// Only whole numbers in [min, max].
CLI::Validator whole_in(long long min, long long max);

/// A relative threshold written "1%" or "0.01" (at most 50%), and its value as a fraction.
CLI::Validator relative_threshold();
double relative_value(const std::string& text);

/// --log-level LEVEL on `app`, checked; apply with setup_logging.
CLI::Option* add_log_level(CLI::App& app, std::string& level);
void setup_logging(const std::string& level);

/// SIGINT and SIGTERM: blocked in every thread, taken synchronously where a command handles them.
sigset_t stop_signals();

/// The subcommands, each defined in its own file under cmd/.
runner define_serve(CLI::App& app, const std::vector<std::string>& argv);
runner define_validate(CLI::App& app, const std::vector<std::string>& argv);
runner define_meta(CLI::App& app, const std::vector<std::string>& argv);
runner define_bench(CLI::App& app, const std::vector<std::string>& argv);
runner define_run(CLI::App& app, const std::vector<std::string>& argv);
runner define_sweep(CLI::App& app, const std::vector<std::string>& argv);
runner define_compare(CLI::App& app, const std::vector<std::string>& argv);
runner define_try(CLI::App& app, const std::vector<std::string>& argv);
runner define_bisect(CLI::App& app, const std::vector<std::string>& argv);
runner define_results(CLI::App& app, const std::vector<std::string>& argv);
runner define_report(CLI::App& app, const std::vector<std::string>& argv);
runner define_agent(CLI::App& app, const std::vector<std::string>& argv);

}  // namespace bp::cli
