#include "configs/engine_config.hpp"

#include "base/files.hpp"
#include "configs/engine_kinds.hpp"
#include "base/numbers.hpp"
#include "base/text.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <sstream>

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include "base/sha256.hpp"

extern char** environ;

namespace fs = std::filesystem;

namespace bp {

namespace {


const std::set<std::string> kKnownKeys = {
    "description", "engine",        "cmd",          "args",          "cwd",
    "venv",        "warmup",        "env",          "health_path",   "ready_timeout_s",
    "stop_grace_s", "drain_timeout_s", "snapshot_timeout_s", "model", "caches", "placement",
    "hash_cache", "repo_root"};

bool valid_var_name(const std::string& s) {
  if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

struct ctx {
  std::string file;
  std::vector<config_error> errors;
  const env_map* env = nullptr;

  void add(const YAML::Node& at, const std::string& key, const std::string& msg) {
    config_error e;
    e.file = file;
    if (at.IsDefined() && at.Mark().line >= 0) {
      e.line = at.Mark().line + 1;
      e.column = at.Mark().column + 1;
    }
    e.key = key;
    e.message = msg;
    errors.push_back(std::move(e));
  }

  // Interpolates a scalar; records an error naming the key on failure.
  std::optional<std::string> interp(const YAML::Node& n, const std::string& key) {
    std::string err;
    auto r = interpolate(n.Scalar(), *env, err);
    if (!r) add(n, key, err);
    return r;
  }

  // A scalar or {secret: scalar}; secrets are interpolated too.
  std::optional<config_value> value(const YAML::Node& n, const std::string& key) {
    if (n.IsScalar()) {
      auto v = interp(n, key);
      if (!v) return std::nullopt;
      return config_value{*v, false};
    }
    if (n.IsMap()) {
      bool ok = n.size() == 1 && n.begin()->first.IsScalar() &&
                n.begin()->first.Scalar() == "secret" && n.begin()->second.IsScalar();
      if (!ok) {
        add(n, key, "expected a string or { secret: <value> }");
        return std::nullopt;
      }
      std::string err;
      auto v = interpolate(n.begin()->second.Scalar(), *env, err);
      if (!v) {
        // Never echo the secret's text (an error message can quote part of it).
        add(n.begin()->second, key, "the secret's value has a bad $-reference (its text is not shown; write $$ for a literal dollar)");
        return std::nullopt;
      }
      if (v->size() < base::min_secret_length) {
        add(n.begin()->second, key,
            "a secret must be at least " + std::to_string(base::min_secret_length) +
                " characters long (shorter ones are guessable and cannot be redacted from free text)");
        return std::nullopt;
      }
      return config_value{*v, true};
    }
    if (n.IsNull()) {
      add(n, key, "needs a value (use \"\" for an empty string)");
      return std::nullopt;
    }
    add(n, key, "expected a string or { secret: <value> }, got a list");
    return std::nullopt;
  }

  std::optional<double> positive_number(const YAML::Node& n, const std::string& key) {
    if (!n.IsScalar()) {
      add(n, key, "expected a number of seconds");
      return std::nullopt;
    }
    // Finite, positive, at most a day: NaN, inf and 1e20 would disable or overflow a deadline.
    auto d = base::parse_number(n.Scalar(), 0, base::max_duration_s);
    if (!d || *d <= 0) {
      add(n, key, "expected a number of seconds greater than 0 and at most " +
                      std::to_string(static_cast<long>(base::max_duration_s)) + ", got '" + n.Scalar() + "'");
      return std::nullopt;
    }
    return d;
  }
};

/// Counts YAML documents (and where the first two start) without building them.
struct document_counter : YAML::EventHandler {
  int count = 0;
  YAML::Mark first, second;
  void OnDocumentStart(const YAML::Mark& m) override {
    if (++count == 1) first = m;
    if (count == 2) second = m;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

std::string known_kinds_text() {
  std::string s;
  for (const auto& k : engine_kinds_table()) s += (s.empty() ? "" : ", ") + k.name;
  return s;
}

std::string find_repo_root(const fs::path& config_dir) {
  std::error_code ec;
  for (fs::path p = config_dir; !p.empty(); p = p.parent_path()) {
    if (fs::exists(p / ".git", ec)) return p.string();
    if (p == p.parent_path()) break;
  }
  return config_dir.string();
}

std::string self_bin_dir() {
  auto exe = base::self_exe();
  return exe.empty() ? std::string() : fs::path(exe).parent_path().string();
}

bool is_host_or_port_flag(const std::string& a) {
  for (const char* f : {"--host", "--port"}) {
    std::string flag = f;
    if (a == flag || a.rfind(flag + "=", 0) == 0) return true;
  }
  return false;
}

}  // namespace

std::string config_error::str() const {
  std::ostringstream os;
  os << file;
  if (line > 0) os << ":" << line << ":" << column;
  os << ": ";
  if (!key.empty()) os << key << ": ";
  os << message;
  return os.str();
}

std::string prefix_reset_problem(const engine_config& cfg) {
  const engine_kind* k = find_engine_kind(cfg.engine);
  if (!k || k->reset.method.empty()) return "engine: " + cfg.engine + " has no prefix-cache reset";
  if (k->reset.needs_env.empty()) return {};
  for (const auto& [name, v] : cfg.env)
    if (name == k->reset.needs_env && v.value == "1") return {};
  return "env: " + k->name + " serves its prefix-cache reset only with " + k->reset.needs_env +
         "=1, which env: does not set";
}

std::string engine_config::env_path() const {
  for (const auto& [k, v] : env)
    if (k == "PATH") return v.value;
  return {};
}

std::vector<std::string> engine_config::secret_values() const {
  std::vector<std::string> out;
  for (const auto& a : args)
    if (a.secret && !a.value.empty()) out.push_back(a.value);
  for (const auto& [k, v] : env)
    if (v.secret && !v.value.empty()) out.push_back(v.value);
  return out;
}

std::vector<std::string> engine_config::plain_args() const {
  std::vector<std::string> out;
  for (const auto& a : args) out.push_back(a.value);
  return out;
}

env_map process_env() {
  env_map m;
  for (char** e = environ; e && *e; ++e) {
    std::string kv = *e;
    auto eq = kv.find('=');
    if (eq == std::string::npos) continue;
    m.emplace(kv.substr(0, eq), kv.substr(eq + 1));
  }
  return m;
}

std::optional<std::string> interpolate(const std::string& in, const env_map& env, std::string& error) {
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c != '$') {
      out.push_back(c);
      continue;
    }
    if (i + 1 >= in.size()) {
      error = "stray '$' at the end (write $$ for a literal dollar)";
      return std::nullopt;
    }
    char n = in[i + 1];
    std::string name;
    if (n == '$') {
      out.push_back('$');
      ++i;
      continue;
    }
    if (n == '{') {
      auto close = in.find('}', i + 2);
      if (close == std::string::npos) {
        error = "unterminated ${ (write $$ for a literal dollar)";
        return std::nullopt;
      }
      name = in.substr(i + 2, close - i - 2);
      if (!valid_var_name(name)) {
        error = "invalid variable name '${" + name + "}'";
        return std::nullopt;
      }
      i = close;
    } else if (std::isalpha(static_cast<unsigned char>(n)) || n == '_') {
      std::size_t j = i + 1;
      while (j < in.size() && (std::isalnum(static_cast<unsigned char>(in[j])) || in[j] == '_')) ++j;
      name = in.substr(i + 1, j - i - 1);
      i = j - 1;
    } else {
      error = std::string("stray '$' before '") + n + "' (write $$ for a literal dollar)";
      return std::nullopt;
    }
    auto it = env.find(name);
    if (it == env.end()) {
      error = "variable $" + name + " is not set in bench-proxy's environment";
      return std::nullopt;
    }
    out += it->second;
  }
  return out;
}

bool known_engine(const std::string& kind) { return find_engine_kind(kind) != nullptr; }

std::vector<std::string> engine_kinds() {
  std::vector<std::string> names;
  for (const auto& k : engine_kinds_table()) names.push_back(k.name);
  return names;
}

std::string default_health_path(const std::string& kind) {
  const auto* k = find_engine_kind(kind);
  return k ? k->health_path : "/health";
}

base::redactor engine_config::redactor() const { return base::redactor(secret_values(), base::secret_key()); }

load_result load_config(const std::string& path, const env_map& proc_env) {
  load_result res;
  std::error_code ec;
  fs::path abs = fs::absolute(path, ec);
  if (!fs::is_regular_file(abs, ec)) {
    res.errors.push_back({path, 0, 0, "", "cannot read config file: " +
                                             std::string(fs::exists(abs, ec) ? "not a regular file"
                                                                            : "no such file")});
    return res;
  }
  std::string text;
  try {
    text = base::read_file_limited(abs.string(), max_config_bytes);
  } catch (const std::exception& e) {
    res.errors.push_back({path, 0, 0, "", std::string("cannot read config file: ") + e.what()});
    return res;
  }
  return load_config_text(text, path, proc_env);
}

load_result load_config_text(const std::string& text, const std::string& path, const env_map& proc_env) {
  load_result res;
  ctx c;
  std::error_code ec;
  fs::path abs = fs::absolute(path, ec);
  c.file = path;
  YAML::Node root;
  // YAML is Unicode text; a stray byte must be named here, not deep inside a JSON library later.
  if (auto bad = base::first_invalid_utf8(text)) {
    auto at = base::position_of(text, *bad);
    char hex[8];
    std::snprintf(hex, sizeof(hex), "0x%02x", static_cast<unsigned char>(text[*bad]));
    res.errors.push_back({path, static_cast<int>(at.line), static_cast<int>(at.column), "",
                          std::string("byte ") + hex + " is not valid UTF-8"});
    return res;
  }
  try {
    // Count documents without YAML::LoadAll: in yaml-cpp 0.7 it loops forever on some invalid
    // input (a stray ',' at the top level; yaml-cpp issue 1040, found here by the fuzzer).
    document_counter docs;
    std::stringstream ss(text);
    YAML::Parser parser(ss);
    for (int i = 0; i < 2 && parser.HandleNextDocument(docs); ++i) {
    }
    if (docs.count > 1) {
      bool progressed = docs.second.pos > docs.first.pos;
      res.errors.push_back({path, docs.second.line + 1, docs.second.column + 1, "",
                            progressed ? "a second YAML document: a config file holds exactly one"
                                       : "YAML syntax: nothing can be parsed here (a stray ',' or the like)"});
      return res;
    }
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    res.errors.push_back({path, e.mark.line + 1, e.mark.column + 1, "", "YAML syntax: " + e.msg});
    return res;
  } catch (const YAML::Exception& e) {
    res.errors.push_back({path, 0, 0, "", std::string("cannot read config file: ") + e.what()});
    return res;
  }
  if (!root.IsMap()) {
    c.add(root, "", "the config must be a mapping of keys (description, engine, cmd, ...)");
    res.errors = std::move(c.errors);
    return res;
  }

  engine_config cfg;
  cfg.source_path = fs::weakly_canonical(abs, ec).string();
  env_map env = proc_env;
  // `repo_root:` pins $REPO_ROOT (sweep --vary and bisect write the base's into the configs they
  // generate in their own folders); otherwise the environment's, otherwise found from the file.
  YAML::Node pinned = root["repo_root"];
  const bool absolute = pinned.IsDefined() && pinned.IsScalar() && !pinned.Scalar().empty() && pinned.Scalar()[0] == '/';
  if (pinned.IsDefined() && !absolute) {
    c.add(pinned, "repo_root", "expected an absolute path (the folder $REPO_ROOT stands for)");
  } else if (absolute) {
    std::error_code dir_ec;
    if (!fs::is_directory(pinned.Scalar(), dir_ec)) c.add(pinned, "repo_root", "not a directory: " + pinned.Scalar());
  }
  if (absolute) {
    cfg.repo_root = fs::path(pinned.Scalar()).lexically_normal().string();
    env["REPO_ROOT"] = cfg.repo_root;
  } else if (auto it = env.find("REPO_ROOT"); it != env.end() && !it->second.empty()) {
    cfg.repo_root = it->second;
  } else {
    cfg.repo_root = find_repo_root(fs::path(cfg.source_path).parent_path());
    env["REPO_ROOT"] = cfg.repo_root;
  }
  if (env.find("BENCH_PROXY_BIN_DIR") == env.end()) env["BENCH_PROXY_BIN_DIR"] = self_bin_dir();
  c.env = &env;

  // Unknown and duplicate keys first: a typo must never silently change a benchmark.
  std::set<std::string> seen;
  for (auto it = root.begin(); it != root.end(); ++it) {
    const std::string key = it->first.Scalar();
    if (!kKnownKeys.count(key)) {
      c.add(it->first, key, "unknown key (known: description, engine, cmd, args, cwd, venv, warmup, "
                             "env, health_path, ready_timeout_s, stop_grace_s, drain_timeout_s, "
                             "snapshot_timeout_s, model, caches, placement, hash_cache, repo_root)");
    } else if (!seen.insert(key).second) {
      c.add(it->first, key, "duplicate key");
    }
  }

  auto scalar = [&](const char* key, bool required) -> std::optional<std::string> {
    YAML::Node n = root[key];
    if (!n.IsDefined() || n.IsNull()) {
      if (required) c.add(root, key, "required key is missing");
      return std::nullopt;
    }
    if (!n.IsScalar()) {
      c.add(n, key, "expected a string");
      return std::nullopt;
    }
    return c.interp(n, key);
  };

  if (auto d = scalar("description", true)) {
    if (d->find_first_not_of(" \t\r\n") == std::string::npos)
      c.add(root["description"], "description", "must not be empty");
    cfg.description = *d;
  }
  if (YAML::Node n = root["engine"]; !n.IsDefined() || n.IsNull()) {
    c.add(root, "engine", "required key is missing");
  } else if (!n.IsScalar() || !known_engine(n.Scalar())) {
    c.add(n, "engine", "unknown engine '" + (n.IsScalar() ? n.Scalar() : std::string("?")) +
                           "' (known: " + known_kinds_text() + ")");
  } else {
    cfg.engine = n.Scalar();
  }
  if (auto v = scalar("cmd", true)) {
    if (v->empty()) c.add(root["cmd"], "cmd", "must not be empty");
    cfg.cmd = *v;
  }
  if (YAML::Node n = root["args"]; n.IsDefined() && !n.IsNull()) {
    if (!n.IsSequence()) {
      c.add(n, "args", "expected a list");
    } else {
      for (std::size_t i = 0; i < n.size(); ++i) {
        std::string key = "args[" + std::to_string(i) + "]";
        auto v = c.value(n[i], key);
        if (!v) continue;
        if (is_host_or_port_flag(v->value)) {
          c.add(n[i], key, (v->secret ? std::string("a secret that is a host or port flag") : "'" + v->value + "'") +
                               " is not allowed: bench-proxy injects --host 127.0.0.1 --port N itself");
        }
        cfg.args.push_back(*v);
      }
    }
  }
  auto rel_path = [&](const char* key) -> std::string {
    auto v = scalar(key, false);
    if (!v || v->empty()) return {};
    fs::path p(*v);
    if (p.is_relative()) p = fs::path(cfg.repo_root) / p;
    return p.lexically_normal().string();
  };
  cfg.cwd = rel_path("cwd");
  if (cfg.cwd.empty()) cfg.cwd = cfg.repo_root;
  cfg.venv = rel_path("venv");
  for (const char* key : {"cmd", "cwd", "venv"})
    if (YAML::Node n = root[key]; n.IsDefined() && n.Mark().line >= 0)
      cfg.value_at[key] = {n.Mark().line + 1, n.Mark().column + 1};

  if (YAML::Node n = root["warmup"]; n.IsDefined() && !n.IsNull()) {
    bool ok = false;
    if (n.IsScalar()) {
      try {
        std::size_t pos = 0;
        long w = std::stol(n.Scalar(), &pos);
        if (pos == n.Scalar().size() && w >= 0 && w <= 1000) {
          cfg.warmup = static_cast<int>(w);
          ok = true;
        }
      } catch (const std::exception&) {
      }
    }
    if (!ok) c.add(n, "warmup", "expected a whole number of requests from 0 to 1000");
  }
  if (YAML::Node n = root["caches"]; n.IsDefined() && !n.IsNull()) {
    if (n.IsScalar() && (n.Scalar() == "fresh" || n.Scalar() == "shared"))
      cfg.caches_fresh = n.Scalar() == "fresh";
    else
      c.add(n, "caches", "expected fresh (new empty cache directories for this run) or shared (the default)");
  }
  if (YAML::Node n = root["hash_cache"]; n.IsDefined() && !n.IsNull()) {
    if (n.IsScalar() && (n.Scalar() == "on" || n.Scalar() == "off"))
      cfg.hash_cache = n.Scalar() == "on";
    else
      c.add(n, "hash_cache",
            "expected on (the default: unchanged venv files and libraries take their verified cached hash) or off "
            "(every file is read)");
  }
  if (YAML::Node n = root["placement"]; n.IsDefined() && !n.IsNull()) {
    // Labels a fleet agent must have to run this config (sweep --agents; docs/config.md).
    if (!n.IsMap()) {
      c.add(n, "placement", "expected a mapping LABEL: value (e.g. gpu: h100)");
    } else {
      for (auto it = n.begin(); it != n.end(); ++it) {
        if (!it->first.IsScalar() || !it->second.IsScalar())
          c.add(it->first, "placement", "each label and value must be a plain string");
        else
          cfg.placement[it->first.Scalar()] = it->second.Scalar();
      }
    }
  }
  if (YAML::Node n = root["env"]; n.IsDefined() && !n.IsNull()) {
    if (!n.IsMap()) {
      c.add(n, "env", "expected a mapping NAME: value");
    } else {
      std::set<std::string> names;
      for (auto it = n.begin(); it != n.end(); ++it) {
        std::string name = it->first.Scalar();
        std::string key = "env." + name;
        if (!valid_var_name(name)) c.add(it->first, key, "invalid environment variable name");
        if (!names.insert(name).second) c.add(it->first, key, "duplicate variable");
        if (auto v = c.value(it->second, key)) cfg.env.emplace_back(name, *v);
      }
    }
  }
  if (auto v = scalar("health_path", false)) {
    if (v->empty() || (*v)[0] != '/')
      c.add(root["health_path"], "health_path", "must start with '/'");
    cfg.health_path = *v;
  }
  if (cfg.health_path.empty()) cfg.health_path = default_health_path(cfg.engine);
  if (auto v = scalar("model", false)) cfg.model = *v;
  for (auto [key, field] : {std::pair{"ready_timeout_s", &cfg.ready_timeout_s},
                            std::pair{"stop_grace_s", &cfg.stop_grace_s},
                            std::pair{"drain_timeout_s", &cfg.drain_timeout_s},
                            std::pair{"snapshot_timeout_s", &cfg.snapshot_timeout_s}}) {
    if (YAML::Node n = root[key]; n.IsDefined() && !n.IsNull())
      if (auto d = c.positive_number(n, key)) *field = *d;
  }

  std::stable_sort(c.errors.begin(), c.errors.end(), [](const config_error& a, const config_error& b) {
    return a.line < b.line || (a.line == b.line && a.column < b.column);
  });
  res.errors = std::move(c.errors);
  if (res.errors.empty()) res.config = std::move(cfg);
  return res;
}

std::optional<std::string> resolve_command(const engine_config& c, std::string& why) {
  auto executable = [](const fs::path& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(p.c_str(), X_OK) == 0;
  };
  if (c.cmd.find('/') != std::string::npos) {
    fs::path p(c.cmd);
    if (p.is_relative()) p = fs::path(c.cwd) / p;
    if (executable(p)) return p.lexically_normal().string();
    why = "cmd '" + c.cmd + "' (" + p.string() + ") is not an executable file";
    return std::nullopt;
  }
  // A bare name is looked up on the PATH the engine will get (the YAML's env), never bench-proxy's.
  std::string path = c.env_path();
  if (path.empty()) {
    why = "cmd '" + c.cmd + "' is a bare name but env: sets no PATH to look it up on";
    return std::nullopt;
  }
  std::stringstream ss(path);
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    if (dir.empty()) continue;
    fs::path p = fs::path(dir) / c.cmd;
    if (executable(p)) return p.string();
  }
  why = "cmd '" + c.cmd + "' was not found on the PATH given in env: (" + path + ")";
  return std::nullopt;
}

std::vector<config_error> check_launchable(const engine_config& c) {
  std::vector<config_error> errs;
  auto add = [&](const std::string& key, std::string message) {
    auto it = c.value_at.find(key);
    int line = it == c.value_at.end() ? 0 : it->second.first, column = it == c.value_at.end() ? 0 : it->second.second;
    errs.push_back({c.source_path, line, column, key, std::move(message)});
  };
  std::string why;
  if (!resolve_command(c, why)) add("cmd", why);
  std::error_code ec;
  if (!fs::is_directory(c.cwd, ec)) add("cwd", "directory " + c.cwd + " does not exist");
  if (!c.venv.empty() && !fs::is_directory(c.venv, ec)) add("venv", "directory " + c.venv + " does not exist");
  return errs;
}

nlohmann::json to_json(const engine_config& c) {
  auto red = c.redactor();
  auto show = [&red](const config_value& v) -> nlohmann::json {
    return v.secret ? red.redacted_value(v.value) : nlohmann::json(v.value);
  };
  nlohmann::json args = nlohmann::json::array();
  for (const auto& a : c.args) args.push_back(show(a));
  nlohmann::json env = nlohmann::json::object();
  for (const auto& [k, v] : c.env) env[k] = show(v);
  std::string why;
  auto resolved = resolve_command(c, why);
  nlohmann::json j = {
      {"source", c.source_path},
      {"repo_root", c.repo_root},
      {"description", c.description},
      {"engine", c.engine},
      {"cmd", c.cmd},
      {"resolved_cmd", resolved ? nlohmann::json(*resolved) : nlohmann::json(nullptr)},
      {"args", args},
      {"cwd", c.cwd},
      {"venv", c.venv.empty() ? nlohmann::json(nullptr) : nlohmann::json(c.venv)},
      {"warmup", c.warmup},
      {"env", env},
      {"health_path", c.health_path},
      {"ready_timeout_s", c.ready_timeout_s},
      {"stop_grace_s", c.stop_grace_s},
      {"drain_timeout_s", c.drain_timeout_s},
      {"snapshot_timeout_s", c.snapshot_timeout_s},
      {"model", c.model.empty() ? nlohmann::json(nullptr) : nlohmann::json(c.model)},
      {"caches", c.caches_fresh ? "fresh" : "shared"},
      {"placement", c.placement},
      {"hash_cache", c.hash_cache ? "on" : "off"},
  };
  if (!resolved) j["resolved_cmd_error"] = why;
  // A secret may also appear inside a plain value (a description, a path): redact those too.
  red.redact(j);
  return j;
}

}  // namespace bp
