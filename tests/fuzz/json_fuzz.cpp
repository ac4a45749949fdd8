// libFuzzer target: the JSON reader every untrusted input goes through (base/json_read.hpp) and the
// walks over what it returns (redaction, bounding, dump, meta diff). Issue 26: nesting must never
// crash, whatever the depth. The first byte picks how the rest is read:
//   0: the rest is the JSON text itself;
//   1: a depth generator: two bytes give a depth (up to 262,140), the next a limit, the rest the
//      shape of each level (arrays, objects, strings holding brackets and escaped quotes): the
//      depth the scan finds must be the one generated, refused beyond the limit, parsed within it;
//   2: the same text cut short or with one byte changed: it must be refused, never crash.
// Every error must be a json_input_error whose message starts with the origin and is UTF-8.
#include <cstddef>
#include <cstdint>
#include <string>

#include "base/json_read.hpp"
#include "base/redact.hpp"
#include "snapshot/diff.hpp"

namespace {

using json = nlohmann::json;
using namespace bp::base;

const char* kOrigin = "fuzz.json";

void check_error(const json_input_error& e) {
  std::string m = e.what();
  if (m.rfind(kOrigin, 0) != 0) __builtin_trap();
  if (first_bad_utf8(m) != std::string::npos) __builtin_trap();
}

/// What may be done to any parsed value without crashing (the value is at most `limit` deep).
void exercise(json& j, std::size_t limit) {
  std::size_t depth = json_value_depth(j);
  if (depth > limit) __builtin_trap();
  (void)j.dump(2, ' ', false, json::error_handler_t::replace);
  json bounded = bound_json(j, 8, 4096);
  (void)bounded.dump();
  json cut = j;
  cut_deeper_than(cut, 4);
  if (json_value_depth(cut) > 4) __builtin_trap();
  static const redactor red({"sk-fuzz-secret-0123"}, "fuzz-key");
  json r = j;
  red.redact(r);
  json a = {{"schema_version", 1}, {"config", j}}, b = {{"schema_version", 1}, {"config", r}};
  try {
    (void)bp::snap::diff_snapshots(a, b);
  } catch (const std::runtime_error&) {
    if (depth + 2 <= json_file_depth) __builtin_trap();  // refused only when too deep
  }
}

std::string generate(const std::uint8_t* data, std::size_t size, std::size_t& depth, std::size_t& limit) {
  depth = size >= 3 ? ((std::size_t{data[1]} << 8) | data[2]) * 4 : 0;
  limit = size >= 4 ? data[3] % 200 + 1 : 64;
  const std::uint8_t* shape = size > 4 ? data + 4 : nullptr;
  std::size_t n = size > 4 ? size - 4 : 0;
  std::string open, close;
  open.reserve(depth * 8);
  close.reserve(depth * 2);
  for (std::size_t i = 0; i < depth; ++i) {
    switch (n ? shape[i % n] % 4 : 0) {
      case 0:
        open += "[";
        close += "]";
        break;
      case 1:
        open += "{\"a\":";
        close += "}";
        break;
      case 2:
        open += "[\"\\\"[{\",";  // a string holding an escaped quote and brackets, then a nested value
        close += "]";
        break;
      default:
        open += "{\"\\\\\":";  // a key that is one escaped backslash
        close += "}";
        break;
    }
  }
  std::string text = open + "1";
  text.append(close.rbegin(), close.rend());
  return text;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  int mode = data[0] % 3;
  if (mode == 0) {
    std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
    std::size_t limit = json_file_depth;
    try {
      json j = parse_json(text, kOrigin, limit);
      exercise(j, limit);
    } catch (const json_input_error& e) {
      check_error(e);
    }
    return 0;
  }
  std::size_t depth = 0, limit = 0;
  std::string text = generate(data, size, depth, limit);
  if (json_nesting_depth(text) != depth) __builtin_trap();
  if (mode == 2) {
    // Cut short, or one byte changed: malformed or shallower, never a crash.
    std::size_t at = size >= 5 ? (std::size_t{data[4]} * 7919u) % (text.size() + 1) : text.size() / 2;
    if (size >= 6 && at < text.size() && data[5] & 1)
      text[at] = static_cast<char>(data[5]);
    else
      text.resize(at);
  }
  try {
    json j = parse_json(text, kOrigin, limit);
    if (mode == 1 && depth > limit) __builtin_trap();  // refused beyond the limit, always
    exercise(j, limit);
  } catch (const json_input_error& e) {
    check_error(e);
    if (mode == 1 && depth <= limit) __builtin_trap();  // the generated text is well formed
  }
  return 0;
}
