#include "snapshot/diff.hpp"

#include <gtest/gtest.h>

using namespace bp::snap;
using json = nlohmann::json;

namespace {
json snapshot(const std::string& env_value, const std::string& lib_version, int pid) {
  json s;
  s["schema_version"] = 1;
  s["engine"] = {{"pid", pid}, {"port", 40000 + pid}};
  s["command"]["pid"] = pid;
  s["command"]["argv"] = {"vllm", "serve", "m"};
  s["command"]["env"] = {{"A", "1"}, {"B", env_value}};
  json p1, p2;
  p1["pid"] = pid;
  p1["comm"] = "vllm";
  p1["env"]["B"] = env_value;
  p2["pid"] = pid + 1;
  p2["comm"] = "VLLM::EngineCor";
  p2["env"]["B"] = env_value;
  s["process_tree"]["processes"] = json::array({p1, p2});
  json l1, l2;
  l1["path"] = "/usr/lib/libcuda.so." + lib_version;
  l1["version"] = lib_version;
  l1["sha256"] = "h" + lib_version;
  l1["pids"] = json::array({pid});
  l2["path"] = "/usr/lib/libc.so.6";
  l2["version"] = "6";
  l2["sha256"] = "c";
  l2["pids"] = json::array({pid});
  s["loaded_libs"]["libraries"] = json::array({l1, l2});
  s["warmup"]["elapsed_ms"] = json::array({100.0 + pid});
  return s;
}
TEST(MetaDiff, AValueNestedDeeperThanTheFileLimitIsRefusedNotWalked) {
  // Issue 26: a config nested 30,000 arrays deep overflowed the stack in flatten().
  json a, b;
  a["config"]["x"] = 1;
  b["config"]["x"] = json::array();
  json* at = &b["config"]["x"];
  for (int i = 0; i < 30000; ++i) {
    at->push_back(json::array());
    at = &(*at)[0];
  }
  try {
    diff_snapshots(a, b);
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "snapshot B is nested deeper than 128 levels: not compared");
  }
  EXPECT_THROW(diff_snapshots(b, a), std::runtime_error);
}

}  // namespace

TEST(MetaDiff, EqualWhenOnlyInstanceFactsDiffer) {
  auto d = diff_snapshots(snapshot("x", "570.1", 100), snapshot("x", "570.1", 200));
  EXPECT_TRUE(d["equal"].get<bool>()) << d.dump(2);
}

TEST(MetaDiff, NamesExactlyTheEnvVarAndTheLibraryVersion) {
  auto d = diff_snapshots(snapshot("x", "570.1", 100), snapshot("y", "575.2", 200));
  EXPECT_FALSE(d["equal"].get<bool>());
  const auto& s = d["sections"];
  ASSERT_TRUE(s.contains("command"));
  ASSERT_EQ(s["command"].size(), 1u) << s.dump(2);
  EXPECT_EQ(s["command"][0]["path"], "command.env.B");
  // The same change in both processes is one change, reported once with every place it shows.
  EXPECT_FALSE(s.contains("process_tree")) << s.dump(2);
  EXPECT_EQ(s["command"][0]["seen_in"], json::array({"command.env.B", "process_tree.processes[VLLM::EngineCor].env.B",
                                                     "process_tree.processes[vllm].env.B"}));
  // libcuda keyed by its stem: one library whose version, hash and path changed.
  ASSERT_TRUE(s.contains("loaded_libs"));
  for (const auto& c : s["loaded_libs"])
    EXPECT_EQ(c["path"].get<std::string>().rfind("loaded_libs.libraries[libcuda.so]", 0), 0u) << c.dump();
  EXPECT_EQ(s.size(), 2u) << s.dump(2);
  auto text = render_diff(d);
  EXPECT_NE(text.find("~ env.B: x -> y"), std::string::npos) << text;
  EXPECT_NE(text.find("570.1 -> 575.2"), std::string::npos) << text;
}

TEST(MetaDiff, VenvFilesAddedRemovedChanged) {
  json a = {{"venv", {{"merkle_sha256", "m1"}, {"files", {{{"path", "lib/a.py"}, {"sha256", "1"}}, {{"path", "lib/b.py"}, {"sha256", "2"}}}}}}};
  json b = {{"venv", {{"merkle_sha256", "m2"}, {"files", {{{"path", "lib/b.py"}, {"sha256", "3"}}, {{"path", "lib/c.py"}, {"sha256", "4"}}}}}}};
  auto d = diff_snapshots(a, b);
  auto text = render_diff(d);
  EXPECT_NE(text.find("merkle_sha256: m1 -> m2"), std::string::npos) << text;
  EXPECT_NE(text.find("- files[lib/a.py]"), std::string::npos) << text;
  EXPECT_NE(text.find("~ files[lib/b.py].sha256: 2 -> 3"), std::string::npos) << text;
  EXPECT_NE(text.find("+ files[lib/c.py]"), std::string::npos) << text;
}

TEST(MetaDiff, AnInsertedFlagShiftsNothingAndFlagsKeepTheirValues) {
  json a, b;
  a["command"]["argv"] = {"vllm", "serve", "m", "--max-model-len", "2048", "--enforce-eager", "--port", "41000"};
  b["command"]["argv"] = {"vllm", "serve", "m", "--gpu-memory-utilization", "0.8", "--max-model-len", "1024",
                          "--enforce-eager", "--port", "42000"};
  auto d = diff_snapshots(a, b);
  const auto& c = d["sections"]["command"];
  ASSERT_EQ(c.size(), 2u) << c.dump(2);
  EXPECT_EQ(c[0]["path"], "command.argv[--gpu-memory-utilization]");
  EXPECT_EQ(c[0]["change"], "added");
  EXPECT_EQ(c[0]["b"], "0.8");
  EXPECT_EQ(c[1]["path"], "command.argv[--max-model-len]");
  EXPECT_EQ(c[1]["a"], "2048");
  EXPECT_EQ(c[1]["b"], "1024");
}

TEST(MetaDiff, PathsSortNaturally) {
  json a, b;
  for (int i = 0; i < 12; ++i) {
    a["command"]["argv"].push_back("p" + std::to_string(i));
    b["command"]["argv"].push_back("q" + std::to_string(i));
  }
  auto d = diff_snapshots(a, b);
  const auto& c = d["sections"]["command"];
  ASSERT_EQ(c.size(), 12u);
  EXPECT_EQ(c[1]["path"], "command.argv[#1]");
  EXPECT_EQ(c[2]["path"], "command.argv[#2]");
  EXPECT_EQ(c[10]["path"], "command.argv[#10]");
}

TEST(MetaDiff, AnEngineKindsVolatileFieldsAreNotDifferences) {
  json a, b;
  a["config"]["engine"] = b["config"]["engine"] = "llama.cpp";
  a["engine_reported"]["/props"]["body"] = {{"media_marker", "<__media_abc__>"}, {"n_ctx", 2048}};
  b["engine_reported"]["/props"]["body"] = {{"media_marker", "<__media_xyz__>"}, {"n_ctx", 2048}};
  EXPECT_TRUE(diff_snapshots(a, b)["equal"].get<bool>()) << diff_snapshots(a, b).dump(2);
  b["engine_reported"]["/props"]["body"]["n_ctx"] = 1024;
  auto d = diff_snapshots(a, b);
  ASSERT_EQ(d["sections"]["engine_reported"].size(), 1u) << d.dump(2);
  EXPECT_EQ(d["sections"]["engine_reported"][0]["path"], "engine_reported./props.body.n_ctx");
}
