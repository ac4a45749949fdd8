#include "base/json_read.hpp"
#include "base/text.hpp"

#include <algorithm>
#include <vector>

namespace bp::base {

using json = nlohmann::json;

json_input_error::json_input_error(const std::string& origin, std::size_t line, std::size_t column,
                                   const std::string& why)
    : std::runtime_error(origin + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + why),
      line_(line),
      column_(column),
      why_(why) {}

std::size_t json_nesting_depth(std::string_view text, std::size_t stop_above, std::size_t* where) {
  std::size_t depth = 0, deepest = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;  // the escaped character is never a quote that ends the string
      else if (c == '"')
        in_string = false;
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '[':
      case '{':
        if (++depth > deepest) {
          deepest = depth;
          if (deepest > stop_above) {
            if (where) *where = i;
            return deepest;
          }
        }
        break;
      case ']':
      case '}':
        if (depth > 0) --depth;
        break;
      default:
        break;
    }
  }
  return deepest;
}

std::pair<std::size_t, std::size_t> line_column(std::string_view text, std::size_t offset, std::size_t first_line) {
  auto pos = position_of(text, std::min(offset, text.size()));  // base/text.hpp
  return {pos.line + first_line - 1, pos.column};
}

std::size_t first_bad_utf8(std::string_view s) {
  auto bad = first_invalid_utf8(s);  // base/text.hpp: the one UTF-8 rule (RFC 3629)
  return bad ? *bad : std::string_view::npos;
}

std::string printable_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  while (!s.empty()) {
    std::size_t bad = first_bad_utf8(s);
    if (bad == std::string_view::npos) {
      out.append(s);
      break;
    }
    out.append(s.substr(0, bad));
    static const char* hex = "0123456789ABCDEF";
    auto b = static_cast<unsigned char>(s[bad]);
    out += "\\x";
    out += hex[b >> 4];
    out += hex[b & 15];
    s.remove_prefix(bad + 1);
  }
  return out;
}

namespace {

/// nlohmann's "[json.exception.parse_error.101] parse error at line 1, column 3: syntax error ..."
/// without the prefix (the position is ours: in the file, not in the piece parsed).
std::string parse_reason(const std::string& what) {
  std::string w = what;
  auto col = w.find("column ");
  if (col != std::string::npos) {
    auto colon = w.find(": ", col);
    if (colon != std::string::npos) return w.substr(colon + 2);
  }
  auto bracket = w.find("] ");
  return bracket == std::string::npos ? w : w.substr(bracket + 2);
}

}  // namespace

json parse_json(std::string_view text, const std::string& origin, std::size_t max_depth, std::size_t first_line) {
  std::size_t where = 0;
  if (json_nesting_depth(text, max_depth, &where) > max_depth) {
    auto [line, column] = line_column(text, where, first_line);
    throw json_input_error(printable_utf8(origin), line, column,
                           "JSON nested deeper than " + std::to_string(max_depth) +
                               " levels of arrays and objects (the limit for this input; docs/meta-schema.md)");
  }
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::parse_error& e) {
    // e.byte: 1-based index of the last character read (the offending one).
    std::size_t at = e.byte > 0 ? e.byte - 1 : 0;
    auto [line, column] = line_column(text, at, first_line);
    throw json_input_error(printable_utf8(origin), line, column, "not JSON: " + printable_utf8(parse_reason(e.what())));
  } catch (const json::exception& e) {
    // A number beyond a double (out_of_range.406 "number overflow parsing '1e400'") carries no
    // position: the token it quotes is found in the text.
    std::string reason = parse_reason(e.what());
    std::size_t at = 0;
    auto q1 = reason.find('\''), q2 = reason.rfind('\'');
    if (q1 != std::string::npos && q2 > q1) {
      auto found = text.find(reason.substr(q1 + 1, q2 - q1 - 1));
      if (found != std::string_view::npos) at = found;
    }
    auto [line, column] = line_column(text, at, first_line);
    throw json_input_error(printable_utf8(origin), line, column, "not JSON: " + printable_utf8(reason));
  }
}

std::optional<json> try_parse_json(std::string_view text, const std::string& origin, std::string& err,
                                   std::size_t max_depth) {
  try {
    return parse_json(text, origin, max_depth);
  } catch (const json_input_error& e) {
    err = e.what();
    return std::nullopt;
  }
}

json read_json_file(const std::string& path, std::size_t max_depth, std::uint64_t max_bytes) {
  std::string text = read_file_limited(path, max_bytes);
  return parse_json(text, path, max_depth);
}

std::size_t json_value_depth(const json& j, std::size_t stop_above) {
  std::size_t deepest = 0;
  std::vector<std::pair<const json*, std::size_t>> todo{{&j, 0}};
  while (!todo.empty()) {
    auto [v, d] = todo.back();
    todo.pop_back();
    if (!v->is_structured()) continue;
    deepest = std::max(deepest, d + 1);
    if (deepest > stop_above) return deepest;
    for (const auto& child : *v)
      if (child.is_structured()) todo.emplace_back(&child, d + 1);
  }
  return deepest;
}

std::size_t cut_deeper_than(json& j, std::size_t max_depth) {
  if (max_depth == 0) {
    if (!j.is_structured()) return 0;
    j = "<truncated: nested deeper than 0 levels>";
    return 1;
  }
  std::size_t cut = 0;
  const std::string note = "<truncated: nested deeper than " + std::to_string(max_depth) + " levels>";
  std::vector<std::pair<json*, std::size_t>> todo;
  if (j.is_structured()) todo.emplace_back(&j, 1);
  while (!todo.empty()) {
    auto [v, level] = todo.back();
    todo.pop_back();
    for (auto& child : *v) {
      if (!child.is_structured()) continue;
      if (level + 1 > max_depth) {
        child = note;  // the old subtree is destroyed without recursion (nlohmann >= 3.10)
        ++cut;
      } else {
        todo.emplace_back(&child, level + 1);
      }
    }
  }
  return cut;
}

json bound_json(json j, std::size_t max_depth, std::size_t max_bytes, std::string* why) {
  std::string reason;
  json out;
  if (json_value_depth(j, max_depth) > max_depth) {
    reason = "nested deeper than " + std::to_string(max_depth) + " levels";
    out = {{"truncated", reason}};
  } else {
    std::size_t bytes = j.dump(-1, ' ', false, json::error_handler_t::replace).size();
    if (bytes <= max_bytes) return j;
    reason = std::to_string(bytes) + " bytes, more than the " + std::to_string(max_bytes) + " kept";
    out = {{"truncated", reason}, {"bytes", bytes}};
  }
  if (why) *why = reason;
  return out;
}

const nlohmann::json& member(const nlohmann::json& j, const char* key) {
  static const nlohmann::json none;
  if (!j.is_object()) return none;
  auto it = j.find(key);
  return it == j.end() ? none : *it;
}

}  // namespace bp::base
