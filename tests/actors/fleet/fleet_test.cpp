// The fleet's rules without a network: what an agent accepts, the agents file, placement.
#include "actors/fleet/fleet.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "base/sha256.hpp"

namespace fs = std::filesystem;
using namespace bp::fleet;

namespace {

struct temp_dir {
  fs::path path;
  temp_dir() {
    path = fs::temp_directory_path() / ("bp_fleet_" + std::to_string(::getpid()) + "_" + std::to_string(counter()++));
    fs::create_directories(path);
  }
  ~temp_dir() { fs::remove_all(path); }
  static int& counter() {
    static int n = 0;
    return n;
  }
  std::string write(const std::string& rel, const std::string& text) const {
    fs::create_directories((path / rel).parent_path());
    std::ofstream(path / rel) << text;
    return (path / rel).string();
  }
};

job good_job(const std::string& path, const std::string& content) {
  job j;
  j.token = "the-fleet-token-0123456789";
  j.config_path = path;
  j.config_sha256 = bp::sha256_hex(content);
  j.workload_name = "w.csv";
  j.workload = "prompt\nhello\n";
  j.workload_sha256 = bp::sha256_hex(j.workload);
  j.row = "1_a";
  return j;
}

}  // namespace

TEST(Fleet, TokensAreComparedWholeAndAnEmptyExpectedTokenAcceptsNothing) {
  EXPECT_TRUE(token_equal("abcdef0123456789", "abcdef0123456789"));
  EXPECT_FALSE(token_equal("abcdef012345678", "abcdef0123456789"));
  EXPECT_FALSE(token_equal("abcdef01234567890", "abcdef0123456789"));
  EXPECT_FALSE(token_equal("abcdef0123456788", "abcdef0123456789"));
  EXPECT_FALSE(token_equal("", ""));
}

TEST(Fleet, AnAgentRunsOnlyConfigsUnderItsRootWithTheExpectedContent) {
  temp_dir root, outside;
  const std::string text = "engine: mock\n";
  root.write("engines/a.yaml", text);
  std::string resolved;
  auto j = good_job("engines/a.yaml", text);
  EXPECT_EQ(check_job(j, root.path.string(), j.token, resolved), "");
  EXPECT_EQ(resolved, fs::canonical(root.path / "engines/a.yaml").string());

  auto bad = j;
  bad.token = "the-fleet-token-012345678X";
  EXPECT_EQ(check_job(bad, root.path.string(), j.token, resolved), "wrong token");
  bad = j;
  bad.config_path = (root.path / "engines/a.yaml").string();
  EXPECT_NE(check_job(bad, root.path.string(), j.token, resolved).find("is absolute"), std::string::npos);
  bad = j;
  bad.config_path = "engines/../../x.yaml";
  EXPECT_NE(check_job(bad, root.path.string(), j.token, resolved).find("leaves the agent's --config-root"),
            std::string::npos);
  // A symlink inside the root that points out of it.
  std::string target = outside.write("evil.yaml", text);
  fs::create_symlink(target, root.path / "evil.yaml");
  bad = good_job("evil.yaml", text);
  EXPECT_NE(check_job(bad, root.path.string(), j.token, resolved).find("resolves outside"), std::string::npos);
  bad = j;
  bad.config_sha256 = bp::sha256_hex("engine: vllm\n");
  EXPECT_NE(check_job(bad, root.path.string(), j.token, resolved).find("differs from the coordinator's"),
            std::string::npos);
  bad = j;
  bad.config_path = "engines/missing.yaml";
  EXPECT_NE(check_job(bad, root.path.string(), j.token, resolved).find("no config"), std::string::npos);
  bad = j;
  bad.workload += "x";
  EXPECT_NE(check_job(bad, root.path.string(), j.token, resolved).find("workload"), std::string::npos);
  bad = j;
  bad.workload_name = "../w.csv";
  EXPECT_NE(check_job(bad, root.path.string(), j.token, resolved).find("plain file name"), std::string::npos);
  bad = j;
  bad.row = "../../etc";
  EXPECT_NE(check_job(bad, root.path.string(), j.token, resolved).find("bad row name"), std::string::npos);
}

TEST(Fleet, TheAgentsFileIsCheckedNamingTheLine) {
  temp_dir d;
  auto ok = d.write("agents.yaml",
                    "agents:\n  - name: b200\n    address: 10.0.0.5:7700\n    labels: {gpu: b200, count: 8}\n"
                    "  - name: h100\n    address: '[fd00::2]:7701'\n");
  auto agents = load_agents(ok);
  ASSERT_EQ(agents.size(), 2u);
  EXPECT_EQ(agents[0].host, "10.0.0.5");
  EXPECT_EQ(agents[0].port, 7700);
  EXPECT_EQ(agents[0].labels.at("count"), "8");
  EXPECT_EQ(agents[1].host, "fd00::2");
  auto fails = [&](const std::string& text, const std::string& needle) {
    auto p = d.write("bad.yaml", text);
    try {
      load_agents(p);
      ADD_FAILURE() << "accepted: " << text;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("bad.yaml:"), std::string::npos) << e.what();
    }
  };
  fails("agents:\n  - name: a\n    address: host\n", "not HOST:PORT");
  fails("agents:\n  - name: a\n    address: h:99999\n", "invalid port");
  fails("agents:\n  - name: a\n    address: h:1\n    lables: {}\n", "unknown key 'lables'");
  fails("agents:\n  - name: a\n    address: h:1\n  - name: a\n    address: h:2\n", "appears twice");
  fails("agents: []\n", "no agents");
  fails("nodes: []\n", "expected `agents:`");
}

TEST(Fleet, PlacementNeedsEveryLabelWithTheSameValue) {
  std::map<std::string, std::string> labels = {{"gpu", "h100"}, {"count", "2"}};
  EXPECT_TRUE(matches({}, labels));
  EXPECT_TRUE(matches({{"gpu", "h100"}}, labels));
  EXPECT_FALSE(matches({{"gpu", "b200"}}, labels));
  EXPECT_FALSE(matches({{"rack", "3"}}, labels));
}
