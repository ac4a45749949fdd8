#include "snapshot/diff.hpp"

#include <algorithm>
#include <cctype>

#include "configs/engine_kinds.hpp"
#include "base/json_read.hpp"
#include "snapshot/collect.hpp"

#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

namespace bp::snap {

using json = nlohmann::json;

namespace {

// Sections compared, in report order: the config, then every collector the registry says to
// compare. Left out: bench_proxy, snapshot, engine (instance facts), warmup (timings), collectors
// (timings), and collectors registered with diff.compare = false (engine_log).
std::vector<std::string> compared_sections() {
  std::vector<std::string> out = {"config"};
  for (const auto& def : all_collectors())
    if (def.diff.compare) out.push_back(def.name);
  return out;
}

const std::set<std::string> kIgnoredKeys = {"pid", "ppid", "pgid", "sid", "start_time_unix", "elapsed_ms",
                                            "raw_xml", "pids", "root_pid", "supervisor_pid", "threads",
                                            "created", "uptime_s", "collect_ms",
                                            // how the venv/loaded_libs hashes were obtained (cache or read), not what they are
                                            "hash_cache"};

/// The rules of every compared section, from the registry.
const std::map<std::string, diff_rules>& rules_by_section() {
  static const auto rules = [] {
    std::map<std::string, diff_rules> m;
    for (const auto& def : all_collectors()) m[def.name] = def.diff;
    return m;
  }();
  return rules;
}

/// Key for an element of an array of objects its collector's diff rules name, so that
/// reordering is no difference; empty for arrays compared by position.
std::string element_key(const std::string& array_path, const json& e, std::map<std::string, int>& seen) {
  if (!e.is_object()) return {};
  std::string section = array_path.substr(0, array_path.find('.'));
  auto r = rules_by_section().find(section);
  if (r == rules_by_section().end()) return {};
  auto dot = array_path.rfind('.');
  std::string name = dot == std::string::npos ? array_path : array_path.substr(dot + 1);
  auto rule = r->second.element_keys.find(name);
  if (rule == r->second.element_keys.end()) return {};
  std::string k = rule->second(e);
  if (k.empty()) return {};
  int n = seen[k]++;
  return n == 0 ? k : k + "#" + std::to_string(n + 1);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_argv(const std::string& path) { return ends_with(path, "argv") || path == "config.args"; }

std::string token_text(const json& t) { return t.is_string() ? t.get<std::string>() : t.dump(); }

/// An argv as units, so that one inserted flag shifts nothing: "--flag value" (or "--flag=value")
/// is keyed by the flag, a lone "--flag" by itself, and a positional by its place among the
/// positionals (argv[0] is "#0"). Repeated flags get "#2", "#3". Flag order is not compared.
void flatten_argv(const json& j, const std::string& path, std::map<std::string, json>& out) {
  if (j.empty()) out[path] = json::array();
  std::map<std::string, int> seen;
  auto key_of = [&](const std::string& k) {
    int n = ++seen[k];
    return n == 1 ? k : k + "#" + std::to_string(n);
  };
  int positional = 0;
  for (std::size_t i = 0; i < j.size(); ++i) {
    const json& t = j[i];
    std::string s = token_text(t);
    bool flag = s.size() > 1 && s[0] == '-' && !t.is_object();
    if (!flag) {
      json v = t;
      out[path + "[#" + std::to_string(positional++) + "]"] = v;
      continue;
    }
    if (auto eq = s.find('='); eq != std::string::npos && s.rfind("--", 0) == 0) {
      out[path + "[" + key_of(s.substr(0, eq)) + "]"] = s.substr(eq + 1);
      continue;
    }
    std::string k = path + "[" + key_of(s) + "]";
    bool has_value = i + 1 < j.size() && !(token_text(j[i + 1]).size() > 1 && token_text(j[i + 1])[0] == '-' &&
                                           !j[i + 1].is_object());
    if (!has_value) {
      out[k] = true;
      continue;
    }
    ++i;
    // The loopback port bench-proxy injects differs on every run: an instance fact.
    out[k] = s == "--port" ? json("<injected port>") : j[i];
  }
}

/// "argv[10]" after "argv[9]": digit runs compare as numbers.
bool natural_less(const std::string& a, const std::string& b) {
  std::size_t i = 0, k = 0;
  while (i < a.size() && k < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) && std::isdigit(static_cast<unsigned char>(b[k]))) {
      std::size_t i2 = i, k2 = k;
      while (i2 < a.size() && std::isdigit(static_cast<unsigned char>(a[i2]))) ++i2;
      while (k2 < b.size() && std::isdigit(static_cast<unsigned char>(b[k2]))) ++k2;
      std::string na = a.substr(i, i2 - i), nb = b.substr(k, k2 - k);
      while (na.size() > 1 && na[0] == '0') na.erase(0, 1);
      while (nb.size() > 1 && nb[0] == '0') nb.erase(0, 1);
      if (na.size() != nb.size()) return na.size() < nb.size();
      if (na != nb) return na < nb;
      i = i2;
      k = k2;
      continue;
    }
    if (a[i] != b[k]) return a[i] < b[k];
    ++i;
    ++k;
  }
  return a.size() - i < b.size() - k;
}

/// What a change is, wherever it was seen: the last path component (the env var, the flag, the
/// key) and both values. The same change seen in config, command and process_tree is one change.
std::string change_identity(const json& c) {
  std::string p = c["path"].get<std::string>();
  std::string last = p;
  if (!p.empty() && p.back() == ']') {
    last = p.substr(p.rfind('['));
  } else if (auto dot = p.rfind('.'); dot != std::string::npos) {
    last = p.substr(dot + 1);
  }
  return c["change"].get<std::string>() + "\x1f" + last + "\x1f" + c.value("a", json()).dump() + "\x1f" +
         c.value("b", json()).dump();
}

void flatten(const json& j, const std::string& path, std::map<std::string, json>& out) {
  if (j.is_object()) {
    // A redacted secret is one value, not an object to look into.
    if (j.contains("redacted") && j.contains("hmac_sha256") && j.size() <= 3) {
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
    if (is_argv(path)) return flatten_argv(j, path, out);
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
  // flatten() and the comparisons recurse once per level: bounded like every JSON bench-proxy
  // reads (docs/meta-schema.md, "Limits on JSON input"), checked without recursion.
  for (const json* side : {&a, &b})
    if (base::json_value_depth(*side, base::json_file_depth) > base::json_file_depth)
      throw std::runtime_error(std::string("snapshot ") + (side == &a ? "A" : "B") + " is nested deeper than " +
                               std::to_string(base::json_file_depth) + " levels: not compared");
  json res = {{"equal", true}, {"sections", json::object()}};
  // Fields the engine changes on every start (engine-kind table) are not differences.
  std::set<std::string> volatile_paths;
  for (const json* side : {&a, &b})
    if (side->contains("config") && (*side)["config"].contains("engine") && (*side)["config"]["engine"].is_string())
      if (const auto* kind = find_engine_kind((*side)["config"]["engine"].get<std::string>()))
        for (const auto& v : kind->volatile_fields) volatile_paths.insert("engine_reported." + v);
  auto is_volatile = [&](const std::string& p) {
    for (const auto& v : volatile_paths)
      if (p == v || (p.size() > v.size() && p.compare(0, v.size(), v) == 0 && (p[v.size()] == '.' || p[v.size()] == '[')))
        return true;
    return false;
  };
  std::map<std::string, std::pair<std::string, std::size_t>> first_seen;  // identity -> (section, index)
  for (const auto& sec : compared_sections()) {
    if (!a.contains(sec) && !b.contains(sec)) continue;
    std::map<std::string, json> fa, fb;
    if (a.contains(sec)) flatten(a[sec], sec, fa);
    if (b.contains(sec)) flatten(b[sec], sec, fb);
    std::vector<json> found;
    for (const auto& [k, v] : fa) {
      if (is_volatile(k)) continue;
      auto it = fb.find(k);
      if (it == fb.end())
        found.push_back({{"path", k}, {"change", "removed"}, {"a", v}});
      else if (it->second != v)
        found.push_back({{"path", k}, {"change", "changed"}, {"a", v}, {"b", it->second}});
    }
    for (const auto& [k, v] : fb)
      if (!fa.count(k) && !is_volatile(k)) found.push_back({{"path", k}, {"change", "added"}, {"b", v}});
    std::stable_sort(found.begin(), found.end(), [](const json& x, const json& y) {
      return natural_less(x["path"].get<std::string>(), y["path"].get<std::string>());
    });
    json changes = json::array();
    for (auto& c : found) {
      // Reported once, where it was first seen, with every other place it shows.
      auto id = change_identity(c);
      auto it = first_seen.find(id);
      if (it != first_seen.end()) {
        auto& first = it->second.first == sec ? changes[it->second.second]
                                              : res["sections"][it->second.first][it->second.second];
        first["seen_in"].push_back(c["path"]);
        continue;
      }
      c["seen_in"] = json::array({c["path"]});
      first_seen[id] = {sec, changes.size()};
      changes.push_back(c);
    }
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
      if (c.contains("seen_in") && c["seen_in"].size() > 1) {
        std::string also;
        for (std::size_t k = 1; k < c["seen_in"].size(); ++k)
          also += (also.empty() ? "" : ", ") + c["seen_in"][k].get<std::string>();
        os << "      also in " << also << "\n";
      }
    }
  }
  return os.str();
}

std::string render_summary(const json& m, const std::string& id) {
  std::ostringstream os;
  auto str = [](const json& j, const char* k) -> std::string {
    if (!j.is_object() || !j.contains(k) || j[k].is_null()) return "-";
    return j[k].is_string() ? j[k].get<std::string>() : j[k].dump();
  };
  const json empty = json::object();
  const json& cfg = m.contains("config") ? m["config"] : empty;
  const json& eng = m.contains("engine") ? m["engine"] : empty;
  os << "snapshot   " << (id.empty() ? "-" : id) << "\n";
  os << "config     " << str(cfg, "description") << " (" << str(cfg, "source") << ")\n";
  os << "engine     " << str(eng, "kind") << " pid " << str(eng, "pid") << ", version "
     << (m.contains("engine_version") ? str(m["engine_version"], "version") : "-") << "\n";
  if (m.contains("command") && m["command"].contains("argv")) {
    std::string argv;
    for (const auto& a : m["command"]["argv"]) argv += (argv.empty() ? "" : " ") + (a.is_string() ? a.get<std::string>() : a.dump());
    os << "argv       " << argv << "\n";
  }
  if (m.contains("process_tree") && m["process_tree"].contains("processes")) {
    os << "processes  " << m["process_tree"]["processes"].size() << ":";
    for (const auto& p : m["process_tree"]["processes"]) os << " " << str(p, "comm") << "(" << str(p, "pid") << ")";
    os << "\n";
  }
  if (m.contains("warmup") && m["warmup"].contains("elapsed_ms")) {
    os << "warmup     ";
    for (const auto& w : m["warmup"]["elapsed_ms"]) {
      char b[32];
      std::snprintf(b, sizeof(b), "%.1f ", w.get<double>());
      os << b;
    }
    os << "ms\n";
  }
  if (m.contains("inputs") && m["inputs"].is_object()) {
    // The model: files named in argv, and Hugging Face repo ids resolved through the hub cache.
    for (const auto& f : m["inputs"].value("files", json::array()))
      os << "input      " << str(f, "path") << "  " << str(f, "size") << " B  sha256 " << str(f, "sha256") << "\n";
    for (const auto& mod : m["inputs"].value("models", json::array())) {
      if (!mod.value("resolved", false)) {
        os << "model      " << str(mod, "repo_id") << ": not resolved (" << str(mod, "reason") << ")\n";
        continue;
      }
      os << "model      " << str(mod, "repo_id") << " @ " << str(mod, "revision") << " (" << mod["files"].size()
         << " files, " << str(mod, "total_bytes") << " B)\n";
      for (const auto& f : mod["files"]) os << "             " << str(f, "path") << "  sha256 " << str(f, "sha256") << "\n";
    }
  }
  if (m.contains("bench_proxy") && m["bench_proxy"].is_object()) {
    const auto& b = m["bench_proxy"];
    os << "bench-proxy " << str(b, "version") << ", commit " << str(b, "git_commit")
       << (b.value("git_dirty", false) ? " (dirty tree)" : "") << ", binary sha256 " << str(b, "binary_sha256") << "\n";
  }
  if (m.contains("loaded_libs") && m["loaded_libs"].contains("count"))
    os << "libraries  " << m["loaded_libs"]["count"] << " shared objects mapped, each with its sha256\n";
  if (m.contains("venv")) {
    const auto& v = m["venv"];
    if (v.value("configured", false))
      os << "venv       " << str(v, "path") << ": " << str(v, "file_count") << " files, merkle " << str(v, "merkle_sha256") << "\n";
    else
      os << "venv       " << (v.contains("error") ? "error: " + str(v, "error") : "none configured") << "\n";
  }
  if (m.contains("gpus")) {
    const auto& g = m["gpus"];
    if (g.value("available", false)) {
      os << "gpus       " << g["gpus"].size() << " x ";
      if (!g["gpus"].empty()) os << str(g["gpus"][0], "name");
      os << ", driver " << str(g, "driver_version") << ", CUDA " << str(g, "cuda_version") << "\n";
    } else {
      os << "gpus       none: " << str(g, "reason") << "\n";
    }
  }
  if (m.contains("host") && m["host"].is_object()) {
    const auto& h = m["host"];
    os << "host       " << str(h, "hostname") << ", kernel " << str(h, "kernel");
    if (h.contains("cpu")) os << ", " << str(h["cpu"], "model") << " (" << str(h["cpu"], "threads") << " threads)";
    os << "\n";
  }
  if (m.contains("collectors")) {
    std::string failed;
    for (auto it = m["collectors"].begin(); it != m["collectors"].end(); ++it)
      if (!it.value().value("ok", false)) failed += " " + it.key();
    os << "collectors " << m["collectors"].size() << " reported" << (failed.empty() ? ", all ok" : ", failed:" + failed) << "\n";
  }
  return os.str();
}

}  // namespace bp::snap
