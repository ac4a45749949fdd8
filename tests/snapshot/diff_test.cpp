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
  ASSERT_EQ(s["process_tree"].size(), 2u) << s.dump(2);
  EXPECT_EQ(s["process_tree"][0]["path"], "process_tree.processes[VLLM::EngineCor].env.B");
  // libcuda keyed by its stem: one library whose version, hash and path changed.
  ASSERT_TRUE(s.contains("loaded_libs"));
  for (const auto& c : s["loaded_libs"])
    EXPECT_EQ(c["path"].get<std::string>().rfind("loaded_libs.libraries[libcuda.so]", 0), 0u) << c.dump();
  EXPECT_EQ(s.size(), 3u) << s.dump(2);
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
