#include "cmd/exit_status.hpp"

namespace bp::cli {

int exit_status(errc code) {
  switch (code) {
    case errc::failure: return 1;
    case errc::usage: return 2;
    case errc::listen_failed: return 3;
    case errc::engine_start_failed: return 4;
    case errc::engine_died: return 5;
    case errc::warmup_failed: return 6;
    case errc::interrupted: return 130;  // 128 + SIGINT, as shells report it
  }
  return 1;
}

int exit_status(const caf::error& e) { return e ? exit_status(code_of(e)) : 0; }

}  // namespace bp::cli
