#include "actors/fleet/fleet.hpp"

#include <openssl/crypto.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <set>

#include <spdlog/spdlog.h>

#include <caf/io/all.hpp>
#include <yaml-cpp/yaml.h>

#include "base/files.hpp"
#include "base/sha256.hpp"

namespace fs = std::filesystem;

namespace bp::fleet {

void configure_network(caf::actor_system_config& cfg, const tls_options& tls) {
  cfg.add_message_type<job>("bp_fleet_job");
  cfg.add_message_type<hello>("bp_fleet_hello");
  cfg.add_message_type<result>("bp_fleet_result");
  cfg.add_message_type<fleet_listener>("bp_fleet_listener");
  cfg.load<caf::io::middleman>();
  // A peer that stops answering is dropped after a few seconds, not minutes: each node sends a
  // heartbeat every second and gives up on a connection silent for five.
  cfg.set("middleman.heartbeat-interval", caf::timespan{std::chrono::seconds(1)});
  cfg.set("middleman.connection-timeout", caf::timespan{std::chrono::seconds(5)});
  // The fleet's protocol version: nodes of another one (an older bench-proxy, whose run message
  // carried an untyped handle) are refused at CAF's handshake instead of ignoring each other.
  cfg.set("middleman.app-identifiers", std::vector<std::string>{"bench-proxy-fleet-2"});
  // TLS is the guard's (guard.hpp), never libcaf_openssl's: CAF itself only speaks to loopback.
  (void)tls;
}

void fault_point(const char* hook) {
  static const std::string faults = [] {
    const char* f = std::getenv("BENCH_PROXY_FAULTS");
    std::string v = f ? f : "";
    if (v.find("fleet:") != std::string::npos)
      spdlog::warn("fault injection active (BENCH_PROXY_FAULTS={}): test use only", v);
    return v;
  }();
  if (faults.empty()) return;
  static std::mutex mu;
  static std::set<std::string> fired;
  std::string key = std::string("fleet:") + hook + "=throw";
  std::string padded = "," + faults + ",";
  if (padded.find("," + key + ",") == std::string::npos) return;
  {
    std::lock_guard<std::mutex> g(mu);
    if (!fired.insert(key).second) return;
  }
  throw std::runtime_error("injected fault (fleet:" + std::string(hook) + ")");
}

bool token_equal(const std::string& presented, const std::string& expected) {
  if (expected.empty()) return false;
  // Equal lengths are compared in constant time; a length mismatch is refused after the same work.
  std::string a = presented.size() == expected.size() ? presented : std::string(expected.size(), '\0');
  bool same = CRYPTO_memcmp(a.data(), expected.data(), expected.size()) == 0;
  return same && presented.size() == expected.size();
}

std::string check_job(const job& j, const std::string& config_root, const std::string& token, std::string& resolved) {
  if (!token_equal(j.token, token)) return "wrong token";
  fs::path rel(j.config_path);
  if (j.config_path.empty()) return "no config path";
  if (rel.is_absolute()) return "config path '" + j.config_path + "' is absolute: name a file under the agent's --config-root";
  for (const auto& part : rel)
    if (part == "..") return "config path '" + j.config_path + "' leaves the agent's --config-root ('..')";
  std::error_code ec;
  fs::path root = fs::canonical(config_root, ec);
  if (ec) return "the agent's --config-root " + config_root + " is not readable: " + ec.message();
  fs::path file = fs::canonical(root / rel, ec);
  if (ec) return "no config '" + j.config_path + "' under the agent's --config-root";
  auto r = file.lexically_relative(root);
  if (r.empty() || *r.begin() == "..") return "config '" + j.config_path + "' resolves outside the agent's --config-root";
  if (!fs::is_regular_file(file, ec)) return "config '" + j.config_path + "' is not a regular file";
  std::string bytes;
  try {
    bytes = base::read_file_limited(file.string());
  } catch (const std::exception& e) {
    return std::string("cannot read config: ") + e.what();
  }
  std::string have = sha256_hex(bytes);
  if (have != j.config_sha256)
    return "config '" + j.config_path + "' differs from the coordinator's (sha256 " + have.substr(0, 12) + "... here, " +
           j.config_sha256.substr(0, 12) + "... expected): nothing was started";
  if (sha256_hex(j.workload) != j.workload_sha256) return "the workload's bytes do not match their sha256";
  fs::path wname(j.workload_name);
  if (wname.empty() || wname.has_parent_path() || wname == "." || wname == "..")
    return "workload name '" + j.workload_name + "' must be a plain file name";
  if (j.row.empty() || j.row.find("..") != std::string::npos || fs::path(j.row).is_absolute())
    return "bad row name '" + j.row + "'";
  resolved = file.string();
  return {};
}

std::vector<agent_entry> load_agents(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    throw std::runtime_error(path + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  auto where = [&](const YAML::Node& n) { return path + ":" + std::to_string(n.Mark().line + 1); };
  if (!root.IsMap() || !root["agents"] || !root["agents"].IsSequence())
    throw std::runtime_error(path + ":1: expected `agents:` with a list of {name, address, labels}");
  std::vector<agent_entry> out;
  for (const auto& a : root["agents"]) {
    if (!a.IsMap()) throw std::runtime_error(where(a) + ": each agent is a map {name, address, labels}");
    agent_entry e;
    for (auto it = a.begin(); it != a.end(); ++it) {
      std::string k = it->first.as<std::string>();
      if (k != "name" && k != "address" && k != "labels")
        throw std::runtime_error(where(it->first) + ": unknown key '" + k + "' (known: name, address, labels)");
    }
    if (!a["name"] || !a["name"].IsScalar()) throw std::runtime_error(where(a) + ": agent without a name");
    e.name = a["name"].as<std::string>();
    if (!a["address"] || !a["address"].IsScalar())
      throw std::runtime_error(where(a) + ": agent '" + e.name + "' without an address (HOST:PORT)");
    std::string addr = a["address"].as<std::string>();
    auto colon = addr.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 >= addr.size())
      throw std::runtime_error(where(a["address"]) + ": address '" + addr + "' is not HOST:PORT");
    e.host = addr.substr(0, colon);
    if (e.host.size() > 2 && e.host.front() == '[' && e.host.back() == ']') e.host = e.host.substr(1, e.host.size() - 2);
    std::string p = addr.substr(colon + 1);
    if (p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos || std::stoi(p) == 0 || std::stoi(p) > 65535)
      throw std::runtime_error(where(a["address"]) + ": invalid port in '" + addr + "'");
    e.port = static_cast<std::uint16_t>(std::stoi(p));
    if (a["labels"]) {
      if (!a["labels"].IsMap()) throw std::runtime_error(where(a["labels"]) + ": labels are a map {key: value}");
      for (auto it = a["labels"].begin(); it != a["labels"].end(); ++it)
        e.labels[it->first.as<std::string>()] = it->second.as<std::string>();
    }
    for (const auto& other : out)
      if (other.name == e.name) throw std::runtime_error(where(a) + ": agent name '" + e.name + "' appears twice");
    out.push_back(std::move(e));
  }
  if (out.empty()) throw std::runtime_error(path + ":1: no agents listed");
  return out;
}

std::string result_shape_problem(const nlohmann::json& r) {
  if (!r.is_object()) return "is not an object";
  if (!r.contains("valid") || !r["valid"].is_boolean()) return "has no boolean 'valid'";
  for (const char* k : {"teardown_verified", "failed"})
    if (r.contains(k) && !r[k].is_boolean()) return std::string("has a '") + k + "' that is not a boolean";
  for (const char* k : {"invalid_reason", "snapshot_id"})
    if (r.contains(k) && !r[k].is_string() && !r[k].is_null()) return std::string("has a '") + k + "' that is not a string";
  if (r.contains("warnings")) {
    if (!r["warnings"].is_array()) return "has 'warnings' that are not a list";
    for (const auto& w : r["warnings"])
      if (!w.is_string()) return "has a warning that is not a string";
  }
  if (r.contains("invalid_reasons")) {
    if (!r["invalid_reasons"].is_array()) return "has 'invalid_reasons' that are not a list";
    for (const auto& w : r["invalid_reasons"])
      if (!w.is_string()) return "has an invalid reason that is not a string";
  }
  if (!r.contains("summary") || !r["summary"].is_object()) return "has no 'summary' object";
  const auto& s = r["summary"];
  if (!s.contains("headline") || !s["headline"].is_object()) return "has no 'summary.headline' object";
  if (s["headline"].contains("value") && !s["headline"]["value"].is_number())
    return "has a 'summary.headline.value' that is not a number";
  for (const char* k : {"requests", "errors", "total_output_tps"})
    if (s.contains(k) && !s[k].is_number()) return std::string("has a 'summary.") + k + "' that is not a number";
  for (const char* k : {"output_tps", "ttft_ms", "itl_ms", "e2e_ms"}) {
    if (!s.contains(k)) continue;
    if (!s[k].is_object()) return std::string("has a 'summary.") + k + "' that is not an object";
    for (const char* q : {"median", "p99"})
      if (s[k].contains(q) && !s[k][q].is_number())
        return std::string("has a 'summary.") + k + "." + q + "' that is not a number";
  }
  return {};
}

bool matches(const std::map<std::string, std::string>& placement, const std::map<std::string, std::string>& labels) {
  for (const auto& [k, v] : placement) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  return true;
}

}  // namespace bp::fleet
