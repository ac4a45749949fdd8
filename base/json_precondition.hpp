// Force-included into every translation unit (CMakeLists.txt), before any header.
//
// nlohmann/json checks its preconditions with assert(), which NDEBUG removes in release builds:
// reading a missing key through a const json's operator[] then reads past the end of its map
// (undefined behaviour: a wrong value, a bad_alloc, a crash far away). Every build keeps the check
// and turns a broken precondition into an exception that names it, at the place of the read (or,
// inside one of the library's noexcept functions, into std::terminate with that message: a clean
// stop instead of a read of freed or foreign memory).
#pragma once
#include <stdexcept>

namespace bp::base {
[[noreturn]] inline void json_precondition_failed(const char* what) {
  throw std::logic_error(std::string("nlohmann::json precondition failed: ") + what);
}
}  // namespace bp::base

#define JSON_ASSERT(x) ((x) ? static_cast<void>(0) : ::bp::base::json_precondition_failed(#x))
