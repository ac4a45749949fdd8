// The fleet's rules without a network: what an agent accepts, the agents file, placement.
#include "actors/fleet/fleet.hpp"
#include "actors/fleet/frame.hpp"
#include "actors/fleet/guard.hpp"

#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
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

// ---- the network edge (issue 26 items 3-6) -------------------------------------------------

namespace {

std::string basp(unsigned op, std::uint32_t len, std::uint64_t data = 0, std::uint64_t src = 0, std::uint64_t dst = 0) {
  std::string h(basp_header_size, '\0');
  h[0] = static_cast<char>(op);
  for (int i = 0; i < 4; ++i) h[4 + i] = static_cast<char>((len >> (24 - 8 * i)) & 255);
  for (int i = 0; i < 8; ++i) {
    h[8 + i] = static_cast<char>((data >> (56 - 8 * i)) & 255);
    h[16 + i] = static_cast<char>((src >> (56 - 8 * i)) & 255);
    h[24 + i] = static_cast<char>((dst >> (56 - 8 * i)) & 255);
  }
  return h;
}

}  // namespace

TEST(FleetFrames, AStreamOfWellFormedFramesPassesInAnyPieces) {
  std::string stream = basp(1, 5) + "hello" + basp(6, 0) + basp(2, 3, 0, 7, 9) + "abc" + basp(4, 2, 0, 0, 1) + "xy";
  for (std::size_t piece : {1u, 2u, 7u, 31u, 32u, 33u, 1000u}) {
    basp_checker c;
    for (std::size_t at = 0; at < stream.size(); at += piece)
      ASSERT_EQ(c.feed(stream.data() + at, std::min(piece, stream.size() - at)), "") << piece;
    EXPECT_EQ(c.frames(), 4u);
    EXPECT_TRUE(c.at_boundary());
  }
}

TEST(FleetFrames, ClaimsBeyondTheBoundsAndMalformedHeadersAreRefusedOnTheirHeaderAlone) {
  auto refuse = [](const std::string& stream, const std::string& why) {
    basp_checker c;
    std::string got = c.feed(stream.data(), stream.size());
    EXPECT_NE(got.find(why), std::string::npos) << got;
    EXPECT_EQ(c.feed("x", 1), got);  // stays refused
  };
  refuse(basp(1, 0xFFFFFFFFu, 1), "claims 4294967295 bytes of payload (at most 65536 before the handshake)");
  refuse(basp(1, 65537), "before the handshake");
  refuse(basp(1, 0) + basp(2, 0xFFFFFFFFu, 0, 1, 1), "claims 4294967295 bytes of payload (at most 1073741824)");
  refuse(basp(9, 0), "not a BASP frame (operation 9)");
  refuse(basp(2, 4, 0, 1, 1), "the first frame is not a BASP handshake");
  refuse(basp(0, 0, 2), "BASP version 2");
  refuse(basp(1, 0) + basp(6, 1), "a malformed BASP heartbeat");
  refuse(basp(1, 0) + basp(2, 4, 0, 1, 0), "a malformed BASP message header");
  refuse(basp(1, 0) + basp(0, 0, 3), "a second BASP handshake of another kind");
  basp_checker ok;
  EXPECT_EQ(ok.feed(basp(0, 10, 3).data(), basp_header_size), "");  // a server handshake of version 3
  EXPECT_FALSE(ok.at_boundary());                                   // its payload outstanding
}

TEST(FleetFrames, TheGreetingIsJudgedOnItsFirstEightBytes) {
  std::string g(greeting_magic, sizeof(greeting_magic));
  EXPECT_EQ(greeting_problem(g.data(), g.size()), "");
  EXPECT_NE(greeting_problem("BPFLEET2", 8).find("another version ('2')"), std::string::npos);
  std::string b = basp(1, 0xFFFFFFFFu, 1);
  EXPECT_NE(greeting_problem(b.data(), b.size()).find("plain BASP"), std::string::npos);
  EXPECT_NE(greeting_problem("\x16\x03\x01\x02\x00\x01\x00\x01", 8).find("TLS handshake"), std::string::npos);
  EXPECT_EQ(greeting_problem("GET / HT", 8), "not a bench-proxy fleet peer");
  EXPECT_EQ(greeting_problem("BPF", 3), "a short greeting");
}

TEST(FleetResults, AnAgentsResultMustHaveTheShapeTheSweepReads) {
  nlohmann::json r = {{"valid", true},
                      {"summary", {{"headline", {{"value", 12.5}}}, {"requests", 4}, {"ttft_ms", {{"median", 1.0}}}}},
                      {"warnings", {"w"}}};
  EXPECT_EQ(result_shape_problem(r), "");
  auto with = [&](const char* ptr, nlohmann::json v) {
    auto x = r;
    x[nlohmann::json::json_pointer(ptr)] = v;
    return result_shape_problem(x);
  };
  EXPECT_EQ(result_shape_problem(nlohmann::json(3)), "is not an object");
  EXPECT_EQ(with("/valid", "yes"), "has no boolean 'valid'");
  EXPECT_EQ(with("/summary", 1), "has no 'summary' object");
  EXPECT_EQ(with("/summary/headline", nullptr), "has no 'summary.headline' object");
  EXPECT_EQ(with("/summary/headline/value", "12"), "has a 'summary.headline.value' that is not a number");
  EXPECT_EQ(with("/summary/requests", "4"), "has a 'summary.requests' that is not a number");
  EXPECT_EQ(with("/summary/ttft_ms/median", nullptr), "has a 'summary.ttft_ms.median' that is not a number");
  EXPECT_EQ(with("/warnings", {1}), "has a warning that is not a string");
  EXPECT_EQ(with("/invalid_reasons", "x"), "has 'invalid_reasons' that are not a list");
}

TEST(FleetGuard, BothSidesProveTheTokenBeforeOneByteReachesCafAndAWrongTokenIsRefused) {
  // The agent's CAF stands in as a plain listener on loopback; the coordinator's CAF is this test's socket.
  int backend = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(backend, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_EQ(::listen(backend, 4), 0);
  socklen_t len = sizeof(a);
  ::getsockname(backend, reinterpret_cast<sockaddr*>(&a), &len);
  const std::string token = "the-fleet-token-0123456789";
  guard_limits lim;
  lim.handshake_timeout = std::chrono::seconds(30);
  inbound_guard in("127.0.0.1", 0, ntohs(a.sin_port), token, nullptr, lim, "agent");
  agent_entry e;
  e.name = "a";
  e.host = "127.0.0.1";
  e.port = in.port();
  {
    outbound_guard wrong(e, "not-the-fleet-token-000000", nullptr, lim);
    bool refused = false;
    EXPECT_NE(wrong.prepare(refused).find("wrong token"), std::string::npos);
    EXPECT_TRUE(refused);
  }
  outbound_guard out(e, token, nullptr, lim);
  bool refused = true;
  ASSERT_EQ(out.prepare(refused), "");
  EXPECT_FALSE(refused);
  sockaddr_in o{};
  o.sin_family = AF_INET;
  o.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  o.sin_port = htons(out.local_port());
  // Another process on this host gets nothing through the coordinator's loopback edge: closed,
  // and the connection prepared for CAF stays for CAF.
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    int s = ::socket(AF_INET, SOCK_STREAM, 0);
    if (::connect(s, reinterpret_cast<sockaddr*>(&o), sizeof(o)) != 0) ::_exit(2);
    char b;
    ::_exit(::recv(s, &b, 1, 0) <= 0 ? 0 : 1);
  }
  int status = -1;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  int caf_client = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_EQ(::connect(caf_client, reinterpret_cast<sockaddr*>(&o), sizeof(o)), 0);
  int caf_server = ::accept(backend, nullptr, nullptr);  // the relayed connection reaches the agent's CAF
  ASSERT_GE(caf_server, 0);
  auto recv_all = [](int fd, std::size_t n) {
    std::string got(n, '\0');
    std::size_t have = 0;
    while (have < n) {
      ssize_t r = ::recv(fd, got.data() + have, n - have, 0);
      if (r <= 0) break;
      have += static_cast<std::size_t>(r);
    }
    return got.substr(0, have);
  };
  std::string server_hs = basp(0, 4, 3) + "node";
  ASSERT_EQ(::send(caf_server, server_hs.data(), server_hs.size(), 0), static_cast<ssize_t>(server_hs.size()));
  EXPECT_EQ(recv_all(caf_client, server_hs.size()), server_hs);
  std::string client_hs = basp(1, 2) + "id";
  ASSERT_EQ(::send(caf_client, client_hs.data(), client_hs.size(), 0), static_cast<ssize_t>(client_hs.size()));
  EXPECT_EQ(recv_all(caf_server, client_hs.size()), client_hs);
  // A frame beyond the bound from the network side ends the relayed connection: CAF sees it close.
  std::string huge = basp(2, 0xFFFFFFFFu, 0, 1, 1);  // from the agent's side, checked by the coordinator
  ASSERT_EQ(::send(caf_server, huge.data(), huge.size(), 0), static_cast<ssize_t>(huge.size()));
  char c;
  EXPECT_LE(::recv(caf_client, &c, 1, 0), 0);
  ::close(caf_client);
  ::close(caf_server);
  ::close(backend);
}
