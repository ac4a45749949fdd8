#pragma once
/// bench-proxy's one error vocabulary between actors, the measurement library and the CLI: an
/// enum registered with CAF's error system the way CAF's own `sec` is (category "bench"), with
/// the human-readable reason in the error's context. Exactly one place maps it to the process
/// exit status: cmd/exit_status.cpp (the codes are documented in docs/cli.md).
#include <cstdint>
#include <string>

#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/make_message.hpp>

namespace bp {

enum class errc : std::uint8_t {
  /// Anything without a more specific code (an actor that threw, a result that is not valid).
  failure = 1,
  /// A bad command line or config, found before anything started.
  usage,
  /// The listen address could not be bound.
  listen_failed,
  /// The engine failed to start or never became ready.
  engine_start_failed,
  /// The engine died after it had been ready.
  engine_died,
  /// The warmup requests failed.
  warmup_failed,
  /// Ctrl-C (SIGINT/SIGTERM) ended the work early.
  interrupted,
};

/// CAF's category atom for errc.
constexpr caf::atom_value errc_category = caf::atom("bench");

std::string to_string(errc x);

/// An error of category "bench" whose context is `what` (found by ADL: `caf::error e = errc::x`
/// works too, without a reason).
caf::error make_error(errc x);
caf::error make_error(errc x, std::string what);

/// The errc of `e`; `errc::failure` for errors of another category (CAF's own), nullopt-like
/// `0` never: callers check `e` first.
errc code_of(const caf::error& e);

/// The reason stored with make_error, or CAF's rendering for errors of other categories.
std::string reason_of(const caf::error& e);

/// Registers the category so `actor_system::render` prints "bench: engine_died (REASON)".
void add_error_category(caf::actor_system_config& cfg);

}  // namespace bp
