#include "snapshot/diff.hpp"

#include <map>
#include <set>
#include <sstream>

namespace bp::snap {

using json = nlohmann::json;

namespace {

// Sections compared, in report order. Left out: bench_proxy, snapshot, engine (instance facts),
// warmup (timings), engine_log (its bytes hold PIDs and times), collectors (timings).
const std::vector<std::string> kSections = {"config", "command", "process_tree", "engine_version", "loaded_libs",
                                            "venv", "inputs", "engine_reported", "host", "gpus", "lshw"};

const std::set<std::string> kIgnoredKeys = {"pid", "ppid", "pgid", "sid", "start_time_unix", "elapsed_ms",
                                            "raw_xml", "pids", "root_pid", "supervisor_pid", "threads",
                                            "created", "uptime_s", "collect_ms"};

std::string lib_stem(const std::string& path) {
  auto slash = path.rfind('/');
  std::string b = slash == std::string::npos ? path : path.substr(slash + 1);
  auto so = b.find(".so");
  std::string stem = so == std::string::npos ? b : b.substr(0, so + 3);
  // libLLVM-15.so -> libLLVM.so
  auto dash = stem.rfind('-');
  if (dash != std::string::npos && dash + 1 < stem.size() && std::isdigit(static_cast<unsigned char>(stem[dash + 1])))
    stem = stem.substr(0, dash) + ".so";
  return stem;
}

/// Key for an element of a known array of objects, so that reordering is no difference.
std::string element_key(const std::string& array_path, const json& e, std::map<std::string, int>& seen) {
  std::string k;
  if (!e.is_object()) return {};
  if (array_path == "process_tree.processes" && e.contains("comm")) {
    k = e["comm"].is_string() ? e["comm"].get<std::string>() : "?";
  } else if (array_path == "loaded_libs.libraries" && e.contains("path")) {
    k = lib_stem(e["path"].get<std::string>());
  } else if ((array_path == "venv.files" || array_path == "inputs.files" || array_path == "inputs.directories" ||
              (array_path.size() > 6 && array_path.compare(array_path.size() - 6, 6, ".files") == 0)) &&
             e.contains("path") && e["path"].is_string()) {
    k = e["path"].get<std::string>();
  } else if (array_path == "gpus.gpus") {
    k = e.contains("uuid") && e["uuid"].is_string() ? e["uuid"].get<std::string>()
                                                     : (e.contains("index") ? e["index"].dump() : "");
  } else {
    return {};
  }
  int n = seen[k]++;
  return n == 0 ? k : k + "#" + std::to_string(n + 1);
}

void flatten(const json& j, const std::string& path, std::map<std::string, json>& out) {
  if (j.is_object()) {
    // A redacted secret is one value, not an object to look into.
    if (j.contains("redacted") && j.contains("sha256") && j.size() <= 3) {
      out[path] = j;
      return;
    }
    if (j.empty()) out[path] = json::object();
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (kIgnoredKeys.count(it.key())) continue;
      flatten(it.value(), path.empty() ? it.key() : path + "." + it.key(), out);
    }
    return;
  }
  if (j.is_array()) {
    std::map<std::string, int> seen;
    bool keyed = !j.empty() && !element_key(path, j[0], seen).empty();
    seen.clear();
    if (j.empty()) out[path] = json::array();
    for (std::size_t i = 0; i < j.size(); ++i) {
      std::string k = keyed ? element_key(path, j[i], seen) : std::string();
      flatten(j[i], path + "[" + (k.empty() ? std::to_string(i) : k) + "]", out);
    }
    return;
  }
  out[path] = j;
}

}  // namespace

json diff_snapshots(const json& a, const json& b) {
  json res = {{"equal", true}, {"sections", json::object()}};
  for (const auto& sec : kSections) {
    if (!a.contains(sec) && !b.contains(sec)) continue;
    std::map<std::string, json> fa, fb;
    if (a.contains(sec)) flatten(a[sec], sec, fa);
    if (b.contains(sec)) flatten(b[sec], sec, fb);
    json changes = json::array();
    for (const auto& [k, v] : fa) {
      auto it = fb.find(k);
      if (it == fb.end())
        changes.push_back({{"path", k}, {"change", "removed"}, {"a", v}});
      else if (it->second != v)
        changes.push_back({{"path", k}, {"change", "changed"}, {"a", v}, {"b", it->second}});
    }
    for (const auto& [k, v] : fb)
      if (!fa.count(k)) changes.push_back({{"path", k}, {"change", "added"}, {"b", v}});
    if (!changes.empty()) {
      res["equal"] = false;
      res["sections"][sec] = changes;
    }
  }
  if (a.contains("venv") && b.contains("venv"))
    res["venv_merkle"] = {{"a", a["venv"].value("merkle_sha256", json(nullptr))},
                          {"b", b["venv"].value("merkle_sha256", json(nullptr))}};
  return res;
}

std::string render_diff(const json& d) {
  std::ostringstream os;
  if (d.value("equal", false)) {
    os << "snapshots are equal (instance facts such as PIDs, ports and timings are not compared)\n";
    return os.str();
  }
  auto show = [](const json& v) {
    std::string s = v.is_string() ? v.get<std::string>() : v.dump();
    if (s.size() > 160) s = s.substr(0, 157) + "...";
    return s;
  };
  for (auto it = d["sections"].begin(); it != d["sections"].end(); ++it) {
    const auto& changes = it.value();
    os << it.key() << ": " << changes.size() << " difference" << (changes.size() == 1 ? "" : "s") << "\n";
    if (it.key() == "venv" && d.contains("venv_merkle"))
      os << "  merkle_sha256: " << show(d["venv_merkle"]["a"]) << " -> " << show(d["venv_merkle"]["b"]) << "\n";
    std::size_t shown = 0;
    for (const auto& c : changes) {
      if (++shown > 200) {
        os << "  ... " << changes.size() - 200 << " more (use --json for all)\n";
        break;
      }
      std::string path = c["path"].get<std::string>().substr(it.key().size() + 1);
      std::string kind = c["change"];
      if (kind == "changed")
        os << "  ~ " << path << ": " << show(c["a"]) << " -> " << show(c["b"]) << "\n";
      else if (kind == "added")
        os << "  + " << path << ": " << show(c["b"]) << "\n";
      else
        os << "  - " << path << ": " << show(c["a"]) << "\n";
    }
  }
  return os.str();
}

}  // namespace bp::snap
