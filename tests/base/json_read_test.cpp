// Untrusted JSON never crashes: depth limits before parsing, bounded values, line:column errors
// (issue 26, item 1).
#include "base/json_read.hpp"
#include "base/redact.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>

namespace fs = std::filesystem;
using namespace bp::base;
using json = nlohmann::json;

namespace {

std::string nested_arrays(std::size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

std::string nested_objects(std::size_t depth) {
  std::string s;
  for (std::size_t i = 0; i < depth; ++i) s += "{\"a\":";
  s += "1";
  s += std::string(depth, '}');
  return s;
}

/// A value nested `depth` deep, built without recursion (and destroyed without it: nlohmann 3.11).
json deep_value(std::size_t depth) {
  json root = json::array();
  json* at = &root;
  for (std::size_t i = 1; i < depth; ++i) {
    at->push_back(json::array());
    at = &(*at)[0];
  }
  return root;
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

TEST(JsonRead, NestingDepthIgnoresBracketsInStringsAndEscapedQuotes) {
  EXPECT_EQ(json_nesting_depth("1"), 0u);
  EXPECT_EQ(json_nesting_depth("[]"), 1u);
  EXPECT_EQ(json_nesting_depth("[[{}],[]]"), 3u);
  EXPECT_EQ(json_nesting_depth(R"(["[[[[", "\"[[[[", {"k{": "}}}"}])"), 2u);
  EXPECT_EQ(json_nesting_depth(R"(["\\", [1]])"), 2u);  // an escaped backslash ends the escape
  std::size_t where = 0;
  EXPECT_EQ(json_nesting_depth(nested_arrays(1000), 10, &where), 11u);
  EXPECT_EQ(where, 10u);
}

TEST(JsonRead, ExactlyTheLimitParsesOneMoreIsRefusedWithLineAndColumn) {
  EXPECT_NO_THROW(parse_json(nested_arrays(json_file_depth), "a.json"));
  EXPECT_NO_THROW(parse_json(nested_objects(json_file_depth), "a.json"));
  std::string m = message_of([] { parse_json(nested_arrays(json_file_depth + 1), "a.json"); });
  EXPECT_EQ(m.rfind("a.json:1:129: JSON nested deeper than 128 levels", 0), 0u) << m;
  m = message_of([] { parse_json("{\n  \"x\": " + nested_objects(5), "b.json", 3); });
  EXPECT_EQ(m.rfind("b.json:2:18: JSON nested deeper than 3 levels", 0), 0u) << m;
}

TEST(JsonRead, TheAttacksOfIssue26AreRefusedNotCrashed) {
  // meta diff: a config nested 30,000 arrays deep; compare: engine_reported 50,000 objects deep;
  // bench: a message content nested 100,000 deep (600 KB).
  std::string config = R"({"schema_version": 1, "config": {"x": )" + nested_arrays(30000) + "}}";
  EXPECT_THROW(parse_json(config, "B.json"), json_input_error);
  std::string result = R"({"snapshot": {"engine_reported": )" + nested_objects(50000) + "}}";
  EXPECT_THROW(parse_json(result, "result.json"), json_input_error);
  std::string line = R"({"messages":[{"role":"user","content":)" + nested_objects(100000) + "}]}";
  EXPECT_GT(line.size(), 600000u);
  std::string m = message_of([&] { parse_json(line, "deep.jsonl", workload_json_depth, 7); });
  EXPECT_EQ(m.rfind("deep.jsonl:7:", 0), 0u) << m;
  EXPECT_NE(m.find("nested deeper than 64"), std::string::npos) << m;
}

TEST(JsonRead, MalformedTextNamesOriginLineAndColumn) {
  std::string m = message_of([] { parse_json("{\n  \"a\": 1,\n  \"b\": tru\n}", "x.json"); });
  EXPECT_EQ(m.rfind("x.json:3:", 0), 0u) << m;
  EXPECT_NE(m.find("not JSON"), std::string::npos) << m;
  EXPECT_EQ(m.find("[json.exception"), std::string::npos) << m;
  // A line of a JSONL file: its own line number in the file.
  m = message_of([] { parse_json("{\"a\": }", "w.jsonl", 64, 12); });
  EXPECT_EQ(m.rfind("w.jsonl:12:7: not JSON", 0), 0u) << m;
}

TEST(JsonRead, ANumberBeyondADoubleIsAnErrorAtItsToken) {
  std::string m = message_of([] { parse_json("[1,\n 2, 1e400]", "n.json"); });
  EXPECT_EQ(m.rfind("n.json:2:5: not JSON: number overflow parsing '1e400'", 0), 0u) << m;
  EXPECT_THROW(parse_json("-1e999", "n.json"), json_input_error);
}

TEST(JsonRead, IllFormedUtf8IsAnErrorAtItsByteAndTheMessageIsPrintable) {
  std::string text = "{\"a\": \"ok\",\n \"b\": \"x\xff\"}";
  std::string m = message_of([&] { parse_json(text, "u.jsonl"); });
  EXPECT_EQ(m.rfind("u.jsonl:2:", 0), 0u) << m;
  EXPECT_EQ(first_bad_utf8(m), std::string::npos) << m;
  EXPECT_NE(m.find("\\xFF"), std::string::npos) << m;
  EXPECT_NO_THROW(json(m).dump());
}

TEST(JsonRead, Utf8Validation) {
  EXPECT_EQ(first_bad_utf8("plain"), std::string::npos);
  EXPECT_EQ(first_bad_utf8("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80"), std::string::npos);
  EXPECT_EQ(first_bad_utf8("ab\xff"), 2u);
  EXPECT_EQ(first_bad_utf8("a\xc0\xaf"), 1u);          // overlong '/'
  EXPECT_EQ(first_bad_utf8("a\xed\xa0\x80"), 1u);      // a surrogate
  EXPECT_EQ(first_bad_utf8("a\xf4\x90\x80\x80"), 1u);  // above U+10FFFF
  EXPECT_EQ(first_bad_utf8("a\xe2\x82"), 1u);          // cut short
  EXPECT_EQ(printable_utf8("a\xff" "b\xc3\xa9"), "a\\xFFb\xc3\xa9");
  EXPECT_EQ(line_column("ab\ncd\nef", 7), (std::pair<std::size_t, std::size_t>{3, 2}));
}

TEST(JsonRead, ReadJsonFileNamesThePath) {
  fs::path dir = fs::temp_directory_path() / ("bp_json_read_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::string p = (dir / "deep.json").string();
  std::ofstream(p) << nested_arrays(200);
  std::string m = message_of([&] { read_json_file(p); });
  EXPECT_EQ(m.rfind(p + ":1:129:", 0), 0u) << m;
  std::ofstream(p) << R"({"ok": [1, 2]})";
  EXPECT_EQ(read_json_file(p)["ok"][1], 2);
  fs::remove_all(dir);
}

TEST(JsonRead, ValueDepthAndCuttingNeedNoRecursion) {
  json v = deep_value(200000);
  EXPECT_EQ(json_value_depth(v, 100), 101u);
  EXPECT_EQ(json_value_depth(json(1)), 0u);
  EXPECT_EQ(json_value_depth(json::parse("[[1],{\"a\":[]}]")), 3u);
  EXPECT_EQ(cut_deeper_than(v, 10), 1u);
  EXPECT_EQ(json_value_depth(v), 10u);
  json leaf = v;
  for (int i = 0; i < 9; ++i) leaf = json(leaf[0]);
  EXPECT_EQ(leaf[0], "<truncated: nested deeper than 10 levels>");
  EXPECT_NO_THROW(v.dump(2));
}

TEST(JsonRead, BoundJsonKeepsSmallValuesAndRecordsWhatItCut) {
  json small = {{"a", 1}, {"b", {1, 2, 3}}};
  std::string why;
  EXPECT_EQ(bound_json(small, 4, 1000, &why), small);
  EXPECT_TRUE(why.empty());
  json deep = bound_json(deep_value(5000), 32, 1u << 20, &why);
  EXPECT_EQ(deep, json({{"truncated", "nested deeper than 32 levels"}}));
  EXPECT_EQ(why, "nested deeper than 32 levels");
  json big = bound_json(json(std::string(5000, 'x')), 4, 1000, &why);
  EXPECT_EQ(big["bytes"], 5002);
  EXPECT_NE(big["truncated"].get<std::string>().find("5002 bytes"), std::string::npos);
}

TEST(JsonRead, RedactionOfADeepValueIsBoundedAndStillRedacts) {
  redactor r({"sk-0123456789abcdef"}, "k");
  json v = deep_value(100000);
  v.push_back("sk-0123456789abcdef");
  r.redact(v);  // would overflow the stack if it recursed 100,000 levels
  EXPECT_EQ(json_value_depth(v), json_file_depth);
  EXPECT_EQ(v[1]["redacted"], true);
}

}  // namespace

// base/json_precondition.hpp keeps nlohmann/json's preconditions in release builds: a missing key
// read through a const json is an exception naming the check, never a read past the map (the
// sweep table once read a result's absent "snapshot" that way and failed at random with bad_alloc).
TEST(JsonPrecondition, AMissingKeyOfAConstJsonIsAnExceptionNotUndefinedBehaviour) {
  const nlohmann::json j = {{"present", 1}};
  EXPECT_EQ(j["present"].get<int>(), 1);
  try {
    (void)j["absent"];
    FAIL() << "no exception";
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("nlohmann::json precondition failed"), std::string::npos) << e.what();
  }
}
