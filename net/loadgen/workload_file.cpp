#include "net/loadgen/workload_file.hpp"

#include <set>
#include <sstream>
#include <stdexcept>

#include "base/files.hpp"
#include "base/json_read.hpp"
#include "base/numbers.hpp"
#include "base/sha256.hpp"
#include "base/text.hpp"

namespace bp::bench {

using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;

namespace {

const std::set<std::string> kRequestFields = {
    "messages",          "prompt",         "max_tokens",  "max_completion_tokens", "temperature", "top_p",
    "n",                 "stop",           "seed",        "presence_penalty",      "frequency_penalty",
    "response_format",   "tools",          "tool_choice", "logprobs",              "top_logprobs",
    "logit_bias",        "user",           "model"};

std::string trim(const std::string& s) { return std::string(base::trim(s)); }

/// RFC 4180 records with the line each starts on.
std::vector<std::pair<int, std::vector<std::string>>> parse_csv(const std::string& text, const std::string& path) {
  std::vector<std::pair<int, std::vector<std::string>>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false, field_started = false;
  int line = 1, row_line = 1;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field.push_back('"');
          ++i;
        } else {
          quoted = false;
        }
      } else {
        if (c == '\n') ++line;
        field.push_back(c);
      }
      continue;
    }
    if (c == '"' && !field_started) {
      quoted = true;
      field_started = true;
    } else if (c == ',') {
      row.push_back(field);
      field.clear();
      field_started = false;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      row.push_back(field);
      field.clear();
      field_started = false;
      if (!(row.size() == 1 && row[0].empty())) rows.emplace_back(row_line, row);
      row.clear();
      ++line;
      row_line = line;
    } else {
      field.push_back(c);
      field_started = true;
    }
  }
  if (quoted) throw std::runtime_error(path + ":" + std::to_string(row_line) + ": unterminated quoted field");
  if (field_started || !row.empty()) {
    row.push_back(field);
    rows.emplace_back(row_line, row);
  }
  return rows;
}

void check_request(const json& req, const std::string& where) {
  if (req.contains("messages")) {
    if (!req["messages"].is_array() || req["messages"].empty())
      throw std::runtime_error(where + ": 'messages' must be a non-empty list");
    for (const auto& m : req["messages"])
      if (!m.is_object() || !m.contains("role") || !m.contains("content"))
        throw std::runtime_error(where + ": every message needs 'role' and 'content'");
  } else {
    throw std::runtime_error(where + ": needs 'messages' (or a 'prompt' column)");
  }
  for (const char* k : {"max_tokens", "max_completion_tokens", "n", "seed", "top_logprobs"})
    if (req.contains(k) && !req[k].is_number_integer()) throw std::runtime_error(where + ": '" + k + "' must be an integer");
  // A count of tokens or choices below 1 (or a negative number of logprobs) is refused here, not
  // sent to the engine to fail or be ignored request by request.
  for (const char* k : {"max_tokens", "max_completion_tokens", "n"})
    if (req.contains(k) && req[k].get<long long>() < 1)
      throw std::runtime_error(where + ": '" + k + "' must be at least 1, got " + req[k].dump());
  if (req.contains("top_logprobs") && req["top_logprobs"].get<long long>() < 0)
    throw std::runtime_error(where + ": 'top_logprobs' must not be negative, got " + req["top_logprobs"].dump());
  for (const char* k : {"temperature", "top_p", "presence_penalty", "frequency_penalty"})
    if (req.contains(k) && !req[k].is_number()) throw std::runtime_error(where + ": '" + k + "' must be a number");
}

json csv_value(const std::string& col, const std::string& v) {
  static const std::set<std::string> ints = {"max_tokens", "max_completion_tokens", "n", "seed", "top_logprobs"};
  static const std::set<std::string> nums = {"temperature", "top_p", "presence_penalty", "frequency_penalty"};
  if (ints.count(col)) {
    auto x = base::parse_integer(v, -(1ll << 53), 1ll << 53);
    if (!x) throw std::invalid_argument("'" + col + "' must be a whole number, got '" + v + "'");
    return *x;
  }
  if (nums.count(col)) {
    auto x = base::parse_number(v, -1e300, 1e300);
    if (!x) throw std::invalid_argument("'" + col + "' must be a finite number, got '" + v + "'");
    return *x;
  }
  if (col == "messages" || col == "stop" || col == "response_format" || col == "tools" || col == "tool_choice" ||
      col == "logit_bias") {
    try {
      return base::parse_json(v, col, base::workload_json_depth);
    } catch (const base::json_input_error& e) {
      throw std::invalid_argument("'" + col + "': " + e.reason() + " (line " + std::to_string(e.line()) +
                                  ", column " + std::to_string(e.column()) + " of the cell)");
    }
  }
  return v;
}

}  // namespace

bool is_request_field(const std::string& name) { return kRequestFields.count(name) > 0; }

std::vector<query> load_workload(const std::string& path, std::string* sha256) {
  std::string text;
  try {
    text = base::read_file_limited(path);
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("cannot read workload file: ") + e.what());
  }
  if (sha256) *sha256 = sha256_hex(text);
  // A workload is UTF-8 text (docs/cli.md, "Workload files"): the first ill-formed byte is an
  // error at its line and column, not a type_error when the first request is serialised.
  if (auto bad = base::first_bad_utf8(text); bad != std::string::npos) {
    auto [line, column] = base::line_column(text, bad);
    char byte[8];
    std::snprintf(byte, sizeof(byte), "0x%02X", static_cast<unsigned char>(text[bad]));
    throw std::runtime_error(path + ":" + std::to_string(line) + ":" + std::to_string(column) +
                             ": not UTF-8 (byte " + byte + "): a workload file must be UTF-8 text");
  }
  // A byte-order mark (spreadsheets write one) is not part of the first column's name.
  if (text.rfind("\xEF\xBB\xBF", 0) == 0) text.erase(0, 3);
  std::vector<query> out;
  bool jsonl = path.size() >= 6 && (path.substr(path.size() - 6) == ".jsonl" || path.substr(path.size() - 5) == ".json");
  if (jsonl) {
    std::istringstream is(text);
    std::string line;
    int n = 0;
    while (std::getline(is, line)) {
      ++n;
      if (trim(line).empty() || trim(line)[0] == '#') continue;
      std::string where = path + ":" + std::to_string(n);
      // Nested at most base::workload_json_depth deep (docs/cli.md): errors are path:line:column.
      json j = base::parse_json(line, path, base::workload_json_depth, static_cast<std::size_t>(n));
      if (!j.is_object()) throw std::runtime_error(where + ": each line must be a JSON object");
      query q;
      q.line = n;
      q.request = json::object();
      q.metadata = json::object();
      for (auto it = j.begin(); it != j.end(); ++it) {
        if (it.key() == "prompt" && !j.contains("messages")) {
          if (!it.value().is_string()) throw std::runtime_error(where + ": 'prompt' must be a string");
          q.request["messages"] = json::array({{{"role", "user"}, {"content", it.value()}}});
        } else if (it.key() == "system") {
          q.metadata["system"] = it.value();
        } else if (is_request_field(it.key()) && it.key() != "model") {
          q.request[it.key()] = it.value();
        } else {
          q.metadata[it.key()] = it.value();
        }
      }
      if (j.contains("system") && j["system"].is_string() && q.request.contains("messages"))
        q.request["messages"].insert(q.request["messages"].begin(), json{{"role", "system"}, {"content", j["system"]}});
      check_request(q.request, where);
      q.metadata = base::bound_json(std::move(q.metadata), base::workload_metadata_depth, base::workload_metadata_bytes);
      out.push_back(std::move(q));
    }
  } else {
    auto rows = parse_csv(text, path);
    if (rows.empty()) throw std::runtime_error(path + ": empty workload");
    auto header = rows[0].second;
    for (auto& h : header) h = trim(h);
    bool has_prompt = std::find(header.begin(), header.end(), "prompt") != header.end();
    bool has_messages = std::find(header.begin(), header.end(), "messages") != header.end();
    if (!has_prompt && !has_messages)
      throw std::runtime_error(path + ":1: the header needs a 'prompt' or 'messages' column");
    for (std::size_t r = 1; r < rows.size(); ++r) {
      const auto& [line, cells] = rows[r];
      std::string where = path + ":" + std::to_string(line);
      if (cells.size() != header.size())
        throw std::runtime_error(where + ": " + std::to_string(cells.size()) + " fields, the header has " +
                                 std::to_string(header.size()));
      query q;
      q.line = line;
      q.request = json::object();
      q.metadata = json::object();
      std::string system;
      for (std::size_t c = 0; c < header.size(); ++c) {
        const std::string& col = header[c];
        const std::string& v = cells[c];
        if (col == "prompt") {
          if (!has_messages) q.request["messages"] = json::array({{{"role", "user"}, {"content", v}}});
        } else if (col == "system") {
          system = v;
          q.metadata["system"] = v;
        } else if (is_request_field(col) && col != "model") {
          if (v.empty()) continue;
          try {
            q.request[col] = csv_value(col, v);
          } catch (const std::invalid_argument& e) {
            throw std::runtime_error(where + ": column " + e.what());
          } catch (const std::exception& e) {
            throw std::runtime_error(where + ": column '" + col + "': bad value '" + v.substr(0, 80) + "': " + e.what());
          }
        } else {
          q.metadata[col] = v;
        }
      }
      if (!system.empty() && q.request.contains("messages"))
        q.request["messages"].insert(q.request["messages"].begin(), json{{"role", "system"}, {"content", system}});
      check_request(q.request, where);
      q.metadata = base::bound_json(std::move(q.metadata), base::workload_metadata_depth, base::workload_metadata_bytes);
      out.push_back(std::move(q));
    }
  }
  if (out.empty()) throw std::runtime_error(path + ": no queries");
  return out;
}

}  // namespace bp::bench
