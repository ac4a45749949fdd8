#include "configs/variants.hpp"

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <stdexcept>

#include <yaml-cpp/yaml.h>

#include "base/sha256.hpp"

namespace bp::variants {

namespace fs = std::filesystem;

namespace {

const std::set<std::string> kKeys = {"description", "engine",          "cmd",          "args",
                                     "cwd",         "venv",            "warmup",       "env",
                                     "health_path", "ready_timeout_s", "stop_grace_s", "drain_timeout_s",
                                     "snapshot_timeout_s", "model",    "caches",       "placement"};
const std::set<std::string> kNumeric = {"warmup", "ready_timeout_s", "stop_grace_s", "drain_timeout_s",
                                        "snapshot_timeout_s"};

YAML::Node load(const std::string& text, const std::string& name) {
  YAML::Node n;
  try {
    n = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw std::invalid_argument(name + ": not YAML: " + e.what());
  }
  if (!n.IsMap()) throw std::invalid_argument(name + ": a config is a mapping of keys");
  return n;
}

/// A node as one line of YAML text (flow style), for comparing and showing.
std::string text_of(const YAML::Node& n) {
  if (!n.IsDefined() || n.IsNull()) return "(absent)";
  if (n.IsScalar()) return n.Scalar();
  YAML::Emitter e;
  e << YAML::Flow << n;
  return e.c_str();
}

bool is_flag(const YAML::Node& t) {
  if (!t.IsScalar()) return false;
  const std::string& s = t.Scalar();
  return s.size() > 1 && s[0] == '-';
}

/// An argv as units, as snapshot/diff.cpp pairs them: "--flag value", "--flag=value", a lone
/// "--flag", repeated flags "--flag#2", positionals "#N".
using argv_units = std::vector<std::pair<std::string, std::vector<YAML::Node>>>;
argv_units units_of_args(const YAML::Node& args) {
  argv_units out;
  if (!args.IsDefined() || !args.IsSequence()) return out;
  std::map<std::string, int> seen;
  int positional = 0;
  auto key_of = [&](const std::string& k) {
    int n = ++seen[k];
    return n == 1 ? k : k + "#" + std::to_string(n);
  };
  for (std::size_t i = 0; i < args.size(); ++i) {
    YAML::Node t = args[i];
    if (!is_flag(t)) {
      out.push_back({"#" + std::to_string(positional++), {t}});
      continue;
    }
    const std::string& s = t.Scalar();
    if (auto eq = s.find('='); eq != std::string::npos && s.rfind("--", 0) == 0) {
      out.push_back({key_of(s.substr(0, eq)), {t}});
      continue;
    }
    if (i + 1 < args.size() && !is_flag(args[i + 1])) {
      out.push_back({key_of(s), {t, args[i + 1]}});
      ++i;
    } else {
      out.push_back({key_of(s), {t}});
    }
  }
  return out;
}

std::string tokens_text(const std::vector<YAML::Node>& t) {
  std::string s;
  for (const auto& n : t) s += (s.empty() ? "" : " ") + text_of(n);
  return s;
}

const std::vector<YAML::Node>* find_unit(const argv_units& u, const std::string& key) {
  for (const auto& [k, t] : u)
    if (k == key) return &t;
  return nullptr;
}

/// A generated config lives in another folder than its base: its $REPO_ROOT (and with it the
/// default cwd and what is relative to it) is pinned to the base's with `repo_root:`, and a
/// relative `cwd`/`venv` is made absolute.
void absolute_paths(YAML::Node& root, const std::string& repo_root) {
  if (!repo_root.empty() && !root["repo_root"].IsDefined()) root["repo_root"] = repo_root;
  for (const char* k : {"cwd", "venv"}) {
    YAML::Node n = root[k];
    if (!n.IsDefined() || !n.IsScalar()) continue;
    const std::string& v = n.Scalar();
    if (v.empty() || v[0] == '/' || v[0] == '$') continue;
    root[k] = (fs::path(repo_root) / v).lexically_normal().string();
  }
}

std::string emit(const YAML::Node& root) {
  YAML::Emitter e;
  e << root;
  return std::string(e.c_str()) + "\n";
}

YAML::Node clone_map(const YAML::Node& n) { return YAML::Clone(n); }

}  // namespace

std::string unit::label() const { return key + ": " + from + " -> " + to; }

std::vector<unit> diff_units(const std::string& good, const std::string& good_name, const std::string& bad,
                             const std::string& bad_name) {
  YAML::Node g = load(good, good_name), b = load(bad, bad_name);
  std::vector<unit> out;
  // Top-level keys in GOOD's order, then BAD's own.
  std::vector<std::string> keys;
  for (auto it = g.begin(); it != g.end(); ++it) keys.push_back(it->first.Scalar());
  for (auto it = b.begin(); it != b.end(); ++it)
    if (std::find(keys.begin(), keys.end(), it->first.Scalar()) == keys.end()) keys.push_back(it->first.Scalar());
  for (const auto& k : keys) {
    if (k == "description") continue;  // says what a config is, changes nothing it does
    // Where the file's paths resolve from, not a knob: a generated config pins its base's.
    if (k == "repo_root") continue;
    if (k == "env") {
      YAML::Node ge = g["env"], be = b["env"];
      std::vector<std::string> names;
      if (ge.IsMap())
        for (auto it = ge.begin(); it != ge.end(); ++it) names.push_back(it->first.Scalar());
      if (be.IsMap())
        for (auto it = be.begin(); it != be.end(); ++it)
          if (std::find(names.begin(), names.end(), it->first.Scalar()) == names.end())
            names.push_back(it->first.Scalar());
      for (const auto& n : names) {
        std::string a = ge.IsMap() ? text_of(ge[n]) : "(absent)", c = be.IsMap() ? text_of(be[n]) : "(absent)";
        if (a != c) out.push_back({"env." + n, a, c});
      }
      continue;
    }
    if (k == "args") {
      argv_units ga = units_of_args(g["args"]), ba = units_of_args(b["args"]);
      std::vector<std::string> ks;
      for (const auto& [uk, t] : ga) ks.push_back(uk);
      for (const auto& [uk, t] : ba)
        if (std::find(ks.begin(), ks.end(), uk) == ks.end()) ks.push_back(uk);
      for (const auto& uk : ks) {
        const auto* x = find_unit(ga, uk);
        const auto* y = find_unit(ba, uk);
        std::string a = x ? tokens_text(*x) : "(absent)", c = y ? tokens_text(*y) : "(absent)";
        if (a != c) out.push_back({"args." + uk, a, c});
      }
      continue;
    }
    std::string a = text_of(g[k]), c = text_of(b[k]);
    if (a != c) out.push_back({k, a, c});
  }
  return out;
}

std::string apply_units(const std::string& good, const std::string& bad, const std::vector<std::string>& keys,
                        const std::string& repo_root) {
  YAML::Node g = clone_map(load(good, "GOOD")), b = load(bad, "BAD");
  std::set<std::string> chosen(keys.begin(), keys.end());
  for (const auto& k : keys) {
    if (k.rfind("env.", 0) == 0) {
      std::string name = k.substr(4);
      YAML::Node be = b["env"];
      bool in_bad = be.IsMap() && be[name].IsDefined();
      if (in_bad) {
        if (!g["env"].IsMap()) g["env"] = YAML::Node(YAML::NodeType::Map);
        g["env"][name] = YAML::Clone(be[name]);
      } else if (g["env"].IsMap()) {
        g["env"].remove(name);
      }
    } else if (k.rfind("args.", 0) != 0) {
      if (b[k].IsDefined()) g[k] = YAML::Clone(b[k]);
      else g.remove(k);
    }
  }
  bool any_args = std::any_of(keys.begin(), keys.end(), [](const std::string& k) { return k.rfind("args.", 0) == 0; });
  if (any_args) {
    argv_units ga = units_of_args(g["args"]), ba = units_of_args(b["args"]);
    YAML::Node out(YAML::NodeType::Sequence);
    for (const auto& [uk, t] : ga) {
      const std::vector<YAML::Node>* use = &t;
      if (chosen.count("args." + uk)) use = find_unit(ba, uk);  // nullptr: BAD has no such unit
      if (use)
        for (const auto& n : *use) out.push_back(YAML::Clone(n));
    }
    for (const auto& [uk, t] : ba)
      if (chosen.count("args." + uk) && !find_unit(ga, uk))
        for (const auto& n : t) out.push_back(YAML::Clone(n));
    g["args"] = out;
  }
  absolute_paths(g, repo_root);
  return emit(g);
}

axis parse_axis(const std::string& spec) {
  auto eq = spec.find('=');
  // "args.--flag=1,2": the first '=' after the key (a flag's own "--flag=v" form is not a key).
  if (eq == std::string::npos || eq == 0)
    throw std::invalid_argument("--vary '" + spec + "': expected KEY=VALUE,VALUE,... (e.g. env.NAME=a,b or 'args.--flag=1,2')");
  axis a;
  a.key = spec.substr(0, eq);
  std::string rest = spec.substr(eq + 1);
  std::size_t start = 0;
  while (true) {
    auto comma = rest.find(',', start);
    std::string v = rest.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (v.empty()) throw std::invalid_argument("--vary '" + spec + "': an empty value");
    a.values.push_back(v);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  std::set<std::string> uniq(a.values.begin(), a.values.end());
  if (uniq.size() != a.values.size()) throw std::invalid_argument("--vary '" + spec + "': a value is listed twice");
  if (a.key.rfind("env.", 0) == 0) {
    std::string name = a.key.substr(4);
    bool ok = !name.empty() && (std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_') &&
              std::all_of(name.begin(), name.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
    if (!ok) throw std::invalid_argument("--vary '" + spec + "': '" + name + "' is not an environment variable name");
  } else if (a.key.rfind("args.", 0) == 0) {
    std::string flag = a.key.substr(5);
    if (flag.size() < 2 || flag[0] != '-' || flag.find('=') != std::string::npos)
      throw std::invalid_argument("--vary '" + spec + "': after args. comes a flag (args.--name=1,2)");
  } else if (!kKeys.count(a.key)) {
    throw std::invalid_argument("--vary '" + spec + "': unknown key '" + a.key +
                                "' (env.NAME, args.--flag, or a config key: cmd, cwd, venv, warmup, model, ...)");
  } else if (a.key == "args" || a.key == "env" || a.key == "engine" || a.key == "placement" || a.key == "description") {
    throw std::invalid_argument("--vary '" + spec + "': '" + a.key + "' cannot be varied as a whole" +
                                (a.key == "args" ? " (vary one flag: args.--flag=...)" : a.key == "env" ? " (vary one variable: env.NAME=...)" : ""));
  }
  return a;
}

std::string apply_knobs(const std::string& base, const std::vector<std::pair<std::string, std::string>>& knobs,
                        const std::string& repo_root) {
  YAML::Node g = clone_map(load(base, "base config"));
  std::string note;
  for (const auto& [k, v] : knobs) {
    note += (note.empty() ? "" : ", ") + k + "=" + v;
    if (k.rfind("env.", 0) == 0) {
      if (!g["env"].IsMap()) g["env"] = YAML::Node(YAML::NodeType::Map);
      g["env"][k.substr(4)] = v;
    } else if (k.rfind("args.", 0) == 0) {
      std::string flag = k.substr(5);
      argv_units ga = units_of_args(g["args"]);
      YAML::Node out(YAML::NodeType::Sequence);
      bool found = false;
      for (const auto& [uk, t] : ga) {
        if (uk == flag && !found) {
          found = true;
          const std::string& first = t[0].Scalar();
          if (first.find('=') != std::string::npos) out.push_back(flag + "=" + v);
          else {
            out.push_back(flag);
            out.push_back(v);
          }
          continue;
        }
        for (const auto& n : t) out.push_back(YAML::Clone(n));
      }
      if (!found) {
        out.push_back(flag);
        out.push_back(v);
      }
      g["args"] = out;
    } else if (kNumeric.count(k)) {
      g[k] = YAML::Load(v);
    } else {
      g[k] = v;
    }
  }
  if (g["description"].IsScalar()) g["description"] = g["description"].Scalar() + " [" + note + "]";
  absolute_paths(g, repo_root);
  return emit(g);
}

std::vector<std::vector<std::pair<std::string, std::string>>> combinations(const std::vector<axis>& axes,
                                                                           bool one_at_a_time) {
  std::vector<std::vector<std::pair<std::string, std::string>>> out;
  if (axes.empty()) return out;
  if (one_at_a_time) {
    for (const auto& a : axes)
      for (const auto& v : a.values) out.push_back({{a.key, v}});
    return out;
  }
  out.push_back({});
  for (const auto& a : axes) {
    std::vector<std::vector<std::pair<std::string, std::string>>> next;
    for (const auto& partial : out)
      for (const auto& v : a.values) {
        auto c = partial;
        c.emplace_back(a.key, v);
        next.push_back(std::move(c));
      }
    out = std::move(next);
  }
  return out;
}

std::string file_stem(const std::vector<std::pair<std::string, std::string>>& knobs) {
  std::string s;
  for (const auto& [k, v] : knobs) s += (s.empty() ? "" : "_") + k + "=" + v;
  std::string safe;
  for (char c : s) {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '=' || c == '_' || c == '+') safe += c;
    else if (c == '-') {
      if (safe.empty() || safe.back() != '-') safe += c;  // "--t" reads "-t"
    } else {
      safe += '_';
    }
  }
  while (!safe.empty() && (safe[0] == '-' || safe[0] == '.')) safe.erase(0, 1);
  if (safe.empty()) safe = "variant";
  if (safe.size() > 120) safe = safe.substr(0, 100) + "~" + bp::sha256_hex(s).substr(0, 12);
  return safe;
}

}  // namespace bp::variants
