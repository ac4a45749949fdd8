#include "actors/errors.hpp"

#include <caf/message.hpp>

namespace bp {

std::string to_string(errc x) {
  switch (x) {
    case errc::failure: return "failure";
    case errc::usage: return "usage";
    case errc::listen_failed: return "listen_failed";
    case errc::engine_start_failed: return "engine_start_failed";
    case errc::engine_died: return "engine_died";
    case errc::warmup_failed: return "warmup_failed";
    case errc::interrupted: return "interrupted";
  }
  return "unknown";
}

caf::error make_error(errc x) { return {static_cast<std::uint8_t>(x), errc_category}; }

caf::error make_error(errc x, std::string what) {
  return {static_cast<std::uint8_t>(x), errc_category, caf::make_message(std::move(what))};
}

errc code_of(const caf::error& e) {
  if (e.category() != errc_category || e.code() < 1 || e.code() > static_cast<std::uint8_t>(errc::interrupted))
    return errc::failure;
  return static_cast<errc>(e.code());
}

std::string reason_of(const caf::error& e) {
  if (!e) return {};
  if (e.category() == errc_category) {
    if (e.context().match_elements<std::string>()) return e.context().get_as<std::string>(0);
    return to_string(code_of(e));
  }
  return to_string(e);
}

void add_error_category(caf::actor_system_config& cfg) {
  cfg.add_error_category(errc_category, [](std::uint8_t code, caf::atom_value, const caf::message& ctx) {
    std::string out = "bench: " + to_string(static_cast<errc>(code));
    if (ctx.match_elements<std::string>()) out += " (" + ctx.get_as<std::string>(0) + ")";
    return out;
  });
}

}  // namespace bp
