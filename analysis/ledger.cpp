#include "analysis/ledger.hpp"
#include "base/text.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>
#include <stdexcept>

#include "analysis/compare.hpp"
#include "analysis/metrics.hpp"

namespace bp::bench {

using json = nlohmann::json;

const char* const kNotInterleaved = "not interleaved: drift cannot be separated";
const char* const kRemeasured = "baseline (the best, re-measured)";
const char* const kOneLifecycle = "inconclusive: one lifecycle on a side cannot see run-to-run noise";

namespace {

// The columns of v1 (14), v2 (16) and v3 (26) are prefixes of v4's: older columns never move.
// v4 = v3 (v2, then label ... headline_ci_high) and the interleaving group and a try's decision.
const char* kTsvHeaderV4 =
    "time\tdescription\tengine\tsnapshot_id\tvenv_merkle\trequests\terrors\tmedian_output_tps\t"
    "median_ttft_ms\tmedian_itl_ms\tp99_e2e_ms\ttotal_output_tps\tvalidity\tresult\tconfig\treasons\t"
    "label\trepo_commit\trepo_dirty\tworkload_sha256\tload_shape\ttrials\theadline_metric\theadline\t"
    "headline_ci_low\theadline_ci_high\tgroup\tdecision\tratio\tratio_ci_low\tratio_ci_high\trounds\t"
    "engine_seconds\tprocedure\tbaseline";

/// The largest header line read back (a header is a few hundred bytes).
constexpr std::size_t kMaxHeader = 64 * 1024;

std::string field(const json& j, std::initializer_list<const char*> keys) {
  const json* cur = &j;
  for (const char* k : keys) {
    if (!cur->is_object() || !cur->contains(k)) return "";
    cur = &(*cur)[k];
  }
  if (cur->is_null()) return "";
  return cur->is_string() ? cur->get<std::string>() : cur->dump();
}

std::string number(const json& j, std::initializer_list<const char*> keys, int decimals = 3) {
  std::string v = field(j, keys);
  if (v.empty()) return v;
  double d = std::atof(v.c_str());
  return std::isfinite(d) ? base::fixed(d, decimals) : "";
}

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : line) {
    if (c == '\t') {
      out.push_back(cur);
      cur.clear();
    } else if (c != '\r') {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

std::optional<double> opt_number(const std::string& s) {
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || !std::isfinite(v)) return std::nullopt;
  return v;
}

std::string fmt(double v, int prec = 2) { return base::fixed(v, prec); }

std::string pct(double x) {
  std::ostringstream os;
  os << std::showpos << std::fixed << std::setprecision(1) << x * 100 << "%";
  return os.str();
}

/// Every column this version writes, by name.
std::map<std::string, std::string> row_values(const json& r, const std::string& result_path) {
  std::map<std::string, std::string> v;
  std::string status = r.value("failed", false) ? "failed" : r.value("valid", false) ? "valid" : "invalid";
  v["time"] = field(r, {"finished_at"});
  v["description"] = field(r, {"snapshot", "config", "description"});
  v["engine"] = field(r, {"snapshot", "config", "engine"});
  if (v["description"].empty()) v["description"] = field(r, {"description"});  // a try: its candidate's
  if (v["engine"].empty()) v["engine"] = field(r, {"engine"});
  v["snapshot_id"] = field(r, {"snapshot_id"});
  v["venv_merkle"] = field(r, {"snapshot", "venv", "merkle_sha256"});
  // Counts: whole numbers whichever way the result stored them (a trials aggregate sums doubles).
  auto count = [&](const char* key) {
    const json s = r.contains("summary") && r["summary"].is_object() ? r["summary"].value(key, json()) : json();
    const double n = s.is_number() ? s.get<double>() : -1;
    if (std::isfinite(n) && n >= 0 && n == std::floor(n)) return std::to_string(static_cast<long long>(n));
    return field(r, {"summary", key});
  };
  v["requests"] = count("requests");
  v["errors"] = count("errors");
  v["median_output_tps"] = number(r, {"summary", "output_tps", "median"});
  v["median_ttft_ms"] = number(r, {"summary", "ttft_ms", "median"});
  v["median_itl_ms"] = number(r, {"summary", "itl_ms", "median"});
  v["p99_e2e_ms"] = number(r, {"summary", "e2e_ms", "p99"});
  v["total_output_tps"] = number(r, {"summary", "total_output_tps"});
  v["validity"] = status;
  v["result"] = result_path;
  v["config"] = field(r, {"config_path"});
  v["reasons"] = field(r, {"invalid_reason"});
  v["load_shape"] = load_shape_of(r);
  const json h = r.contains("summary") && r["summary"].is_object() ? r["summary"].value("headline", json::object())
                                                                    : json::object();
  std::string lo, hi;
  if (h.is_object() && h.contains("ci") && h["ci"].is_array() && h["ci"].size() == 2 && h["ci"][0].is_number() &&
      h["ci"][1].is_number()) {
    lo = base::fixed(h["ci"][0].get<double>(), 3);
    hi = base::fixed(h["ci"][1].get<double>(), 3);
  }
  v["label"] = field(r, {"label"});
  v["repo_commit"] = field(r, {"repo", "commit"});
  v["repo_dirty"] = field(r, {"repo", "dirty"});
  // A workload file's sha256; a generated workload's fingerprint (its request bytes and arrival
  // schedule: docs/workloads.md), since it has no file (or its file is only the source).
  bool generated = r.contains("workload") && r["workload"].is_object() && r["workload"].contains("kind") &&
                   r.contains("workload_fingerprint");
  v["workload_sha256"] = generated ? field(r, {"workload_fingerprint", "sha256"}) : field(r, {"workload", "sha256"});
  bool is_try = r.value("kind", std::string()) == "bench-proxy try" || r.contains("decision");
  v["trials"] = r.contains("trials") && r["trials"].is_number() ? r["trials"].dump()
                : status == "failed" || is_try              ? ""
                                                            : "1";
  if (is_try) {  // a try's row: the candidate's lifecycles, whose headline (and interval) the row carries
    const json* c = r.contains("sides") && r["sides"].is_object() && r["sides"].contains("candidate")
                        ? &r["sides"]["candidate"]
                        : nullptr;
    if (c && c->is_object() && c->contains("lifecycles") && (*c)["lifecycles"].is_array()) {
      std::size_t valid = 0;
      for (const auto& l : (*c)["lifecycles"])
        if (l.is_object() && l.value("valid", false)) ++valid;
      if (valid) v["trials"] = std::to_string(valid);
    }
  }
  v["headline_metric"] = h.is_object() ? field(h, {"metric"}) : "";
  v["headline"] = h.is_object() ? number(h, {"value"}) : "";
  v["headline_ci_low"] = lo;
  v["headline_ci_high"] = hi;
  v["group"] = field(r, {"interleaved_with"});
  if (r.contains("decision") && r["decision"].is_object()) {
    const json& d = r["decision"];
    v["decision"] = field(d, {"verdict"});
    v["ratio"] = number(d, {"ratio"}, 6);
    v["ratio_ci_low"] = number(d, {"low"}, 6);
    v["ratio_ci_high"] = number(d, {"high"}, 6);
    v["rounds"] = d.contains("rounds") && d["rounds"].is_number() ? number(d, {"rounds"}, 0) : "";
    v["engine_seconds"] = number(d, {"engine_seconds"}, 3);
    v["procedure"] = field(d, {"procedure"});
    v["baseline"] = field(d, {"baseline"});
    if (v["headline_metric"].empty()) v["headline_metric"] = field(d, {"metric"});
  }
  return v;
}

/// The first line of the open file (at most kMaxHeader bytes), without its line end.
std::string read_first_line(int fd, const std::string& path) {
  std::string head;
  char buf[4096];
  off_t off = 0;
  while (head.size() < kMaxHeader) {
    ssize_t n = ::pread(fd, buf, sizeof buf, off);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(path + ": cannot read the results TSV: " + std::strerror(errno));
    }
    if (n == 0) break;
    head.append(buf, static_cast<std::size_t>(n));
    off += n;
    if (head.find('\n') != std::string::npos) break;
  }
  auto nl = head.find('\n');
  if (nl != std::string::npos) head.resize(nl);
  if (!head.empty() && head.back() == '\r') head.pop_back();
  return head;
}

void write_all(int fd, const std::string& s, const std::string& path) {
  std::size_t done = 0;
  while (done < s.size()) {
    ssize_t n = ::write(fd, s.data() + done, s.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(path + ": cannot append to the results TSV: " + std::strerror(errno));
    }
    done += static_cast<std::size_t>(n);
  }
}

struct fd_guard {
  int fd;
  ~fd_guard() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

std::string escape_field(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      default: out += c;
    }
  }
  return out;
}

std::string unescape_field(const std::string& s) {
  if (s.find('\\') == std::string::npos) return s;
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      char n = s[i + 1];
      char c = n == '\\' ? '\\' : n == 't' ? '\t' : n == 'n' ? '\n' : n == 'r' ? '\r' : 0;
      if (c) {
        out += c;
        ++i;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

std::string ledger_problem(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "";  // created by the first row
  if (!S_ISREG(st.st_mode)) return path + ": the results TSV must be a regular file";
  if (st.st_size == 0) return "";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return path + ": cannot read the results TSV: " + std::strerror(errno);
  fd_guard guard{fd};
  if (::access(path.c_str(), W_OK) != 0) return path + ": cannot append to the results TSV: " + std::strerror(errno);
  try {
    auto columns = split_tabs(read_first_line(fd, path));
    if (std::find(columns.begin(), columns.end(), "time") == columns.end() ||
        std::find(columns.begin(), columns.end(), "validity") == columns.end())
      return path + ":1: not a bench-proxy results TSV (no time and validity columns)";
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

std::string load_shape_of(const json& r) {
  const json o = r.is_object() && r.contains("options") ? r["options"] : json::object();
  return o.is_object() && !o.empty()
             ? "concurrency=" + field(o, {"concurrency"}) + " rate=" + field(o, {"rate"}) +
                   " max_tokens=" + field(o, {"max_tokens"}) + " requests=" + field(o, {"requests"}) +
                   (o.contains("load") && o["load"].is_string() && o["load"] != "sync" ? " load=" + field(o, {"load"})
                                                                                       : std::string())
             : "";
}

std::string append_tsv(const std::string& path, const json& r, const std::string& result_path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error(path + ": cannot append to the results TSV: " + std::strerror(errno));
  fd_guard guard{fd};
  // One writer at a time: the line-end repair and the row are one step.
  while (::flock(fd, LOCK_EX) != 0)
    if (errno != EINTR) throw std::runtime_error(path + ": cannot lock the results TSV: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw std::runtime_error(path + ": cannot stat the results TSV: " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw std::runtime_error(path + ": the results TSV must be a regular file; nothing was appended");
  bool fresh = st.st_size == 0;
  std::string out;
  std::vector<std::string> columns;
  if (fresh) {
    out = std::string(kTsvHeaderV4) + "\n";
    columns = split_tabs(kTsvHeaderV4);
  } else {
    // The header decides the format: a ledger started by another bench-proxy keeps its columns.
    std::string header = read_first_line(fd, path);
    columns = split_tabs(header);
    bool has_time = false, has_validity = false;
    for (const auto& c : columns) {
      has_time |= c == "time";
      has_validity |= c == "validity";
    }
    if (!has_time || !has_validity)
      throw std::runtime_error(path + ":1: not a bench-proxy results TSV (no time and validity columns); "
                               "nothing was appended");
    // A last line without its line end (a torn write, an editor) is ended, never glued onto.
    char last = '\n';
    while (::pread(fd, &last, 1, st.st_size - 1) < 0)
      if (errno != EINTR) throw std::runtime_error(path + ": cannot read the results TSV: " + std::strerror(errno));
    if (last != '\n') out = "\n";
  }
  auto values = row_values(r, result_path);
  bool has_reasons = false;
  for (const auto& c : columns) has_reasons |= c == "reasons";
  // The first ledgers knew only valid and invalid.
  if (!has_reasons && values["validity"] == "failed") values["validity"] = "invalid";
  // An older ledger keeps its columns: say what this row could not record there.
  std::string lost;
  for (const char* c : {"group", "decision", "ratio", "ratio_ci_low", "ratio_ci_high", "rounds", "engine_seconds",
                        "procedure", "baseline"})
    if (!values[c].empty() && std::find(columns.begin(), columns.end(), c) == columns.end())
      lost += (lost.empty() ? "" : ", ") + std::string(c);
  if (!lost.empty())
    std::cerr << "warning: " << path << " predates the columns " << lost
              << ": this row's values for them are not recorded (a new results TSV has them)\n";
  std::string row;
  for (std::size_t i = 0; i < columns.size(); ++i) {
    if (i) row += '\t';
    auto it = values.find(columns[i]);
    if (it != values.end()) row += escape_field(it->second);  // a column this version does not know: empty
  }
  out += row + "\n";
  write_all(fd, out, path);
  ::fdatasync(fd);
  return row;
}

std::vector<ledger_row> load_ledger(const std::string& path, std::vector<std::string>* warnings) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open the results TSV");
  auto warn = [&](const std::string& w) {
    if (warnings)
      warnings->push_back(w);
    else
      std::cerr << "warning: " << w << "\n";
  };
  std::string line;
  if (!std::getline(in, line)) throw std::runtime_error(path + ": empty (no header)");
  auto header = split_tabs(line);
  std::map<std::string, std::size_t> col;
  for (std::size_t i = 0; i < header.size(); ++i) col.emplace(header[i], i);
  if (!col.count("time") || !col.count("validity"))
    throw std::runtime_error(path + ":1: not a bench-proxy results TSV (no time and validity columns)");
  std::vector<ledger_row> rows;
  std::size_t n = 1;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty() || line == "\r") continue;
    auto f = split_tabs(line);
    if (f.size() != header.size()) {
      warn(path + ":" + std::to_string(n) + ": " + std::to_string(f.size()) + " fields, the header has " +
           std::to_string(header.size()) + ": row skipped (a torn or glued line); the other rows are read");
      continue;
    }
    auto get = [&](const char* name) -> std::string {
      auto it = col.find(name);
      return it == col.end() ? "" : unescape_field(f[it->second]);
    };
    ledger_row r;
    r.line = n;
    r.time = get("time");
    r.label = get("label");
    r.status = get("validity");
    r.description = get("description");
    r.config = get("config");
    r.result = get("result");
    r.reasons = get("reasons");
    r.repo_commit = get("repo_commit");
    r.repo_dirty = get("repo_dirty");
    r.workload = get("workload_sha256");
    r.load_shape = get("load_shape");
    if (auto t = opt_number(get("trials"))) r.trials = static_cast<int>(*t);
    r.metric = get("headline_metric");
    if (r.metric.empty() || r.metric == "median output_tps") {
      r.metric = "output_tps";
      r.value = opt_number(get("headline"));
      if (!r.value) r.value = opt_number(get("median_output_tps"));
    } else {
      r.value = opt_number(get("headline"));
    }
    r.ci_low = opt_number(get("headline_ci_low"));
    r.ci_high = opt_number(get("headline_ci_high"));
    r.group = get("group");
    r.decision = get("decision");
    r.ratio = opt_number(get("ratio"));
    r.ratio_low = opt_number(get("ratio_ci_low"));
    r.ratio_high = opt_number(get("ratio_ci_high"));
    if (auto x = opt_number(get("rounds"))) r.rounds = static_cast<int>(*x);
    r.engine_seconds = opt_number(get("engine_seconds"));
    r.procedure = get("procedure");
    r.baseline = get("baseline");
    rows.push_back(r);
  }
  return rows;
}

namespace {

bool higher_is_better(const std::string& metric) {
  const metric_def* def = find_metric(metric);
  return def ? def->higher_is_better : true;
}

/// The same config file, however its path was spelled ("./a.yaml", "a.yaml").
bool same_config(const std::string& a, const std::string& b) {
  if (a.empty() || b.empty()) return false;
  if (std::filesystem::path(a).lexically_normal() == std::filesystem::path(b).lexically_normal()) return true;
  // One spelled relative, one absolute (or through a link): the same file if both resolve to it.
  std::error_code ea, eb;
  auto ca = std::filesystem::weakly_canonical(a, ea), cb = std::filesystem::weakly_canonical(b, eb);
  return !ea && !eb && ca == cb;
}

bool comparable(const ledger_row& a, const ledger_row& b) {
  return a.metric == b.metric && (a.workload.empty() || b.workload.empty() || a.workload == b.workload) &&
         (a.load_shape.empty() || b.load_shape.empty() || a.load_shape == b.load_shape);
}

/// keep / discard / within noise / inconclusive of `r` against `ref` (both valid with values).
std::string judge(const ledger_row& r, const ledger_row& ref, double noise, double& change) {
  double ratio = *ref.value != 0 ? *r.value / *ref.value : 0;
  change = ratio - 1.0;
  // A row of one lifecycle has an interval over its requests only: it cannot see how much a
  // config moves from one engine start to the next, so it supports no verdict (as in compare).
  if (r.trials < 2 || ref.trials < 2) return kOneLifecycle;
  // Relative half-widths of both intervals combined in quadrature (no interval: 0).
  auto hw = [](const ledger_row& x) {
    return x.ci_low && x.ci_high && *x.value != 0 ? (*x.ci_high - *x.ci_low) / 2.0 / std::fabs(*x.value) : 0.0;
  };
  double w = std::sqrt(hw(r) * hw(r) + hw(ref) * hw(ref));
  std::string v = verdict_of(ratio * (1 - w), ratio * (1 + w), noise, higher_is_better(r.metric));
  return v == "faster" ? "keep" : v == "slower" ? "discard" : v == "no change" ? "within noise" : "inconclusive";
}

std::string try_verdict(const std::string& decision) {
  if (decision == "faster") return "keep";
  if (decision == "slower") return "discard";
  if (decision == "no change") return "within noise";
  if (decision == "inconclusive" || decision.rfind("inconclusive", 0) == 0) return "inconclusive";
  if (decision == "not comparable") return "not comparable";
  return "unknown decision: " + decision;
}

}  // namespace

std::vector<campaign_entry> campaign(const std::vector<ledger_row>& rows, double noise) {
  std::vector<campaign_entry> out;
  // `best` is the running best's current measurement: the row kept last, or a later row of an
  // interleaved group that re-measured its config.
  const ledger_row* best = nullptr;
  const ledger_row* measured = nullptr;  // the best value seen among rows comparable with the best
  auto better = [](const ledger_row& a, const ledger_row& b) {
    return higher_is_better(a.metric) ? *a.value > *b.value : *a.value < *b.value;
  };
  // A row of i's group, later in the ledger, that measured the best's config (a sweep may log
  // its candidates before its baseline).
  auto remeasure_of = [&](std::size_t i, const ledger_row& b) -> const ledger_row* {
    if (rows[i].group.empty()) return nullptr;
    for (std::size_t j = i + 1; j < rows.size(); ++j) {
      const ledger_row& y = rows[j];
      if (y.group == rows[i].group && y.decision.empty() && y.status == "valid" && y.value && same_config(y.config, b.config) &&
          comparable(y, b))
        return &y;
    }
    return nullptr;
  };
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const ledger_row& r = rows[i];
    campaign_entry e;
    e.row = r;
    bool usable = r.status == "valid" && r.value.has_value();
    if (!r.decision.empty() && r.status != "failed" && (usable || r.decision == "not comparable")) {
      // A try: its own interleaved, sequential decision is the verdict.
      e.verdict = try_verdict(r.decision);
      if (r.ratio) e.change = *r.ratio - 1.0;
      if (r.ratio_low && r.ratio_high) {
        e.change_low = *r.ratio_low - 1.0;
        e.change_high = *r.ratio_high - 1.0;
      }
      // Against the running best's config, or against another one (then a keep says nothing
      // about the best it replaces).
      if (best && !r.baseline.empty()) e.baseline_is_best = same_config(r.baseline, best->config);
      // A kept try becomes the running best only where it can be compared with it (the same
      // headline, workload and load shape): a try judged by another headline is its own decision.
      if (e.verdict == "keep" && usable && (!best || comparable(r, *best))) best = &r;
    } else if (r.status == "failed") {
      e.verdict = "failed";
    } else if (!usable) {
      e.verdict = "invalid";
    } else if (!best) {
      e.verdict = "keep";  // the baseline
      best = &r;
    } else if (!comparable(r, *best)) {
      e.verdict = "not comparable";
    } else if (!r.group.empty() && r.group == best->group) {
      e.against_line = best->line;
      e.verdict = judge(r, *best, noise, e.change);
      if (e.verdict == "keep") best = &r;
    } else if (!r.group.empty() && same_config(r.config, best->config)) {
      // The best's config measured again, interleaved with the rest of this group: the group's
      // rows are judged against this measurement.
      e.verdict = kRemeasured;
      e.against_line = best->line;
      e.change = *best->value != 0 ? *r.value / *best->value - 1.0 : 0;
      best = &r;
    } else if (const ledger_row* y = remeasure_of(i, *best)) {
      e.against_line = y->line;
      e.verdict = judge(r, *y, noise, e.change);
      if (e.verdict == "keep") best = &r;
    } else {
      // Measured at another time than the best: a difference may be the machine's drift.
      e.verdict = kNotInterleaved;
      e.change = *best->value != 0 ? *r.value / *best->value - 1.0 : 0;
    }
    if (best) {
      if (!measured || !comparable(*measured, *best)) measured = best;
      if (usable && comparable(r, *best) && better(r, *measured)) measured = &r;
      e.best_line = best->line;
      e.best_value = best->value;
      e.best_measured_line = measured->line;
      e.best_measured_value = measured->value;
    }
    out.push_back(e);
  }
  return out;
}

std::string render_campaign(const std::vector<campaign_entry>& c, double noise) {
  std::ostringstream os;
  int vw = 15;  // the verdict column fits the longest verdict
  for (const auto& e : c) vw = std::max(vw, static_cast<int>(e.verdict.size()) + 2);
  os << std::left << std::setw(6) << "line" << std::setw(22) << "time" << std::setw(20) << "label" << std::setw(16)
     << "metric" << std::right << std::setw(12) << "value" << std::setw(24) << "CI" << std::setw(9) << "change"
     << "  " << std::left << std::setw(vw) << "verdict" << "best\n";
  bool any_try = false, any_apart = false;
  for (const auto& e : c) {
    const auto& r = e.row;
    // Its --label, else its config's file (generated variants are named by their knobs), else
    // its description.
    std::string label = !r.label.empty()    ? r.label
                        : !r.config.empty() ? std::filesystem::path(r.config).filename().string()
                                            : r.description;
    for (auto& ch : label)
      if (ch == '\t' || ch == '\n' || ch == '\r') ch = ' ';
    label = base::shorten_middle(label, 19);
    std::string ci = r.ci_low && r.ci_high ? "[" + fmt(*r.ci_low) + ", " + fmt(*r.ci_high) + "]" : "";
    std::string change = e.change != 0 ? pct(e.change) : "";  // 0: the baseline
    os << std::left << std::setw(6) << r.line << std::setw(22) << r.time.substr(0, 21) << std::setw(20) << label
       << std::setw(16) << r.metric << std::right << std::setw(12) << (r.value ? fmt(*r.value) : "-") << std::setw(24)
       << ci << std::setw(9) << change << "  " << std::left << std::setw(vw) << e.verdict
       << (e.best_line ? "line " + std::to_string(*e.best_line) + " (" + fmt(*e.best_value) + ")" : "-");
    if (!r.decision.empty()) {
      any_try = true;
      os << "  try: " << r.decision;
      if (r.ratio) os << " " << pct(*r.ratio - 1);
      if (r.ratio_low && r.ratio_high) os << " [" << pct(*r.ratio_low - 1) << ", " << pct(*r.ratio_high - 1) << "]";
      if (r.rounds) os << " after " << *r.rounds << " round" << (*r.rounds == 1 ? "" : "s");
      if (r.engine_seconds) os << ", " << fmt(*r.engine_seconds, 0) << " s of engine time";
      if (!r.baseline.empty()) os << ", against " << r.baseline;
      if (e.baseline_is_best && !*e.baseline_is_best) os << " (not the running best's config)";
    }
    if (e.verdict == kNotInterleaved) any_apart = true;
    os << "\n";
  }
  os << "(verdicts against the running best, only where it was measured interleaved with the row: in the same "
        "sweep or try (the group column); noise ±"
     << fmt(noise * 100, 1) << "%";
  if (any_try) os << "; a try's verdict is its own decision";
  os << ")\n";
  if (!c.empty() && c.back().best_measured_line && c.back().best_measured_line != c.back().best_line)
    os << "highest measured value: line " << *c.back().best_measured_line << " (" << fmt(*c.back().best_measured_value)
       << "): a single measurement, not the running best (the best is kept only on a verdict beyond noise)\n";
  else if (any_apart)
    os << "rows measured apart from the best: run them in one sweep with the best's config, or try them --against it\n";
  return os.str();
}

namespace {

/// `s` with every byte that is not part of well-formed UTF-8 shown as U+FFFD: a ledger is bytes
/// (a label or path in another encoding), JSON is UTF-8.
std::string utf8(const std::string& s) {
  auto bad = base::first_invalid_utf8(s);
  if (!bad) return s;
  std::string out = s.substr(0, *bad);
  std::size_t i = *bad;
  while (i < s.size()) {
    out += "\xEF\xBF\xBD";
    ++i;
    auto next = base::first_invalid_utf8(std::string_view(s).substr(i));
    std::size_t good = next ? *next : s.size() - i;
    out.append(s, i, good);
    i += good;
  }
  return out;
}

}  // namespace

json to_json(const std::vector<campaign_entry>& c) {
  json a = json::array();
  auto opt = [](const auto& o) { return o ? json(*o) : json(nullptr); };
  for (const auto& e : c) {
    const auto& r = e.row;
    json t = nullptr;
    if (!r.decision.empty())
      t = {{"decision", utf8(r.decision)},
           {"ratio", opt(r.ratio)},
           {"ci", r.ratio_low && r.ratio_high ? json::array({*r.ratio_low, *r.ratio_high}) : json(nullptr)},
           {"rounds", opt(r.rounds)},
           {"engine_seconds", opt(r.engine_seconds)},
           {"procedure", utf8(r.procedure)},
           {"baseline", utf8(r.baseline)},
           {"baseline_is_best", opt(e.baseline_is_best)}};
    a.push_back({{"line", r.line},
                 {"time", utf8(r.time)},
                 {"label", utf8(r.label)},
                 {"status", utf8(r.status)},
                 {"config", utf8(r.config)},
                 {"result", utf8(r.result)},
                 {"metric", utf8(r.metric)},
                 {"value", opt(r.value)},
                 {"ci", r.ci_low && r.ci_high ? json::array({*r.ci_low, *r.ci_high}) : json(nullptr)},
                 {"trials", r.trials},
                 {"repo_commit", utf8(r.repo_commit)},
                 {"repo_dirty", utf8(r.repo_dirty)},
                 {"group", utf8(r.group)},
                 {"try", t},
                 {"verdict", utf8(e.verdict)},
                 {"change", e.change},
                 {"change_ci", e.change_low && e.change_high ? json::array({*e.change_low, *e.change_high}) : json(nullptr)},
                 {"against_line", opt(e.against_line)},
                 {"best_line", opt(e.best_line)},
                 {"best_value", opt(e.best_value)},
                 {"best_measured_line", opt(e.best_measured_line)},
                 {"best_measured_value", opt(e.best_measured_value)},
                 {"reasons", utf8(r.reasons)}});
  }
  return a;
}

}  // namespace bp::bench
