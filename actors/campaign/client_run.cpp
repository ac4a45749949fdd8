#include "actors/campaign/client_run.hpp"
#include "actors/campaign/measure.hpp"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <set>
#include <thread>

#include <spdlog/spdlog.h>

#include "actors/engine_run.hpp"
#include "base/process/engine_child.hpp"
#include "analysis/engine_metrics.hpp"
#include "base/files.hpp"
#include "base/json_read.hpp"
#include "base/text.hpp"
#include "configs/engine_kinds.hpp"
#include "net/client/http_client.hpp"
#include "net/loadgen/crosscheck.hpp"
#include "net/loadgen/prefix_cache.hpp"
#include "net/loadgen/proxy_result.hpp"

extern char** environ;

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace bp::measure {

namespace {

/// The program a command names: a path as it is, a bare name on bench-proxy's PATH. Empty with
/// `why` when there is none that can be executed.
std::string resolve_program(const std::string& name, std::string& why) {
  auto usable = [](const std::string& p) {
    struct stat st{};
    return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(p.c_str(), X_OK) == 0;
  };
  if (name.empty()) {
    why = "--client: the command is empty";
    return {};
  }
  if (name.find('/') != std::string::npos) {
    struct stat st{};
    if (::stat(name.c_str(), &st) != 0) {
      why = "--client: " + name + ": " + std::strerror(errno);
      return {};
    }
    if (!S_ISREG(st.st_mode) || ::access(name.c_str(), X_OK) != 0) {
      why = "--client: " + name + " is not an executable file";
      return {};
    }
    return fs::absolute(name).lexically_normal().string();
  }
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "";
  std::size_t at = 0;
  while (at <= p.size()) {
    std::size_t colon = p.find(':', at);
    std::string dir = p.substr(at, colon == std::string::npos ? std::string::npos : colon - at);
    if (!dir.empty() && usable(dir + "/" + name)) return dir + "/" + name;
    if (colon == std::string::npos) break;
    at = colon + 1;
  }
  why = "--client: '" + name + "' was not found on PATH (" + p + ")";
  return {};
}

std::string strip_slash(std::string s) {
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

/// GET /proxy/window: {"windows": [...], "last_id": N}.
json proxy_windows(const std::string& base) {
  std::string err;
  auto r = net::http_fetch("GET", base + "/proxy/window", "", std::chrono::seconds(30), err);
  if (!r) throw std::runtime_error("GET " + base + "/proxy/window: " + err);
  if (r->status != 200) throw std::runtime_error("GET " + base + "/proxy/window answered HTTP " + std::to_string(r->status));
  json j = base::parse_json(r->body, "GET /proxy/window", base::engine_json_depth);
  if (!j.is_object() || !j.contains("last_id") || !j["last_id"].is_number_unsigned())
    throw std::runtime_error("GET " + base + "/proxy/window: no last_id");
  return j;
}

std::string join_command(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) {
    bool plain = !a.empty() && a.find_first_of(" \t\n'\"\\$`") == std::string::npos;
    s += (s.empty() ? "" : " ") + (plain ? a : "'" + base::printable_utf8(a) + "'");
  }
  return s;
}

}  // namespace

std::string client_problem(const std::vector<std::string>& command) {
  if (command.empty()) return "--client needs a command after '--' (bench-proxy run --config C --client -- COMMAND ARGS...)";
  std::string why;
  resolve_program(command[0], why);
  return why;
}

std::vector<std::string> expand_client_args(const std::vector<std::string>& command, const std::string& url,
                                            const std::string& model, const std::string& queries,
                                            const std::string& run_dir) {
  std::vector<std::string> out;
  // {host_port}: the URL without its scheme, for clients that take HOST:PORT (genai-perf --url).
  std::string host_port = url.rfind("http://", 0) == 0 ? url.substr(7) : url;
  for (const auto& a : command) {
    std::string s = a;
    for (const auto& [key, value] : std::vector<std::pair<std::string, std::string>>{
             {"{url}", url}, {"{host_port}", host_port}, {"{model}", model}, {"{queries}", queries},
             {"{run_dir}", run_dir}}) {
      for (std::size_t at = s.find(key); at != std::string::npos; at = s.find(key, at + value.size()))
        s.replace(at, key.size(), value);
    }
    out.push_back(std::move(s));
  }
  return out;
}

client_session::client_session(client_options o, std::string run_dir, base::redactor redact)
    : o_(std::move(o)), run_dir_(std::move(run_dir)), redact_(std::move(redact)) {}

client_session::~client_session() = default;

void client_session::interrupt() {
  interrupts_.fetch_add(1);
  std::lock_guard<std::mutex> g(mu_);
  if (child_) child_->signal_group(SIGINT);
}

void client_session::kill() {
  interrupts_.fetch_add(1);
  std::lock_guard<std::mutex> g(mu_);
  if (child_) child_->signal_group(SIGKILL);
}

json client_session::measure(const bench::options& bo) {
  const std::string base = strip_slash(bo.url);
  std::string err;
  int meta_status = 0;
  auto before = bench::fetch_snapshot(base, err, &meta_status, bo.known_snapshot);
  if (!before) throw std::runtime_error(base + ": no provenance snapshot: " + err);
  std::string model = bo.model;
  if (model.empty()) {
    auto r = net::http_fetch("GET", base + "/v1/models", "", std::chrono::seconds(30), err);
    if (!r || r->status != 200)
      throw std::runtime_error(base + "/v1/models: " + (r ? "HTTP " + std::to_string(r->status) : err) + " (pass --model)");
    try {
      model = base::parse_json(r->body, "GET /v1/models", base::engine_json_depth).at("data").at(0).at("id").get<std::string>();
    } catch (const std::exception&) {
      throw std::runtime_error(base + "/v1/models: no model id in the answer (pass --model)");
    }
  }
  json workload = nullptr;
  std::string queries_abs;
  if (!bo.queries_path.empty()) {
    std::string sha;
    auto q = bench::load_workload(bo.queries_path, &sha);
    queries_abs = fs::absolute(bo.queries_path).string();
    workload = {{"path", bo.queries_path}, {"sha256", sha}, {"rows", q.size()}};
  }
  json reset = nullptr;
  std::string metrics_url, metrics_kind, cut_before, cut_after;
  if (before->doc.contains("engine") && before->doc["engine"].is_object()) {
    const json& e = before->doc["engine"];
    metrics_kind = e.value("kind", std::string());
    if (bo.reset_prefix_cache) reset = bench::reset_prefix_cache(metrics_kind, "127.0.0.1", e.value("port", 0), 30);
    if (const engine_kind* k = find_engine_kind(metrics_kind); k && !k->metrics_path.empty() && e.value("port", 0) > 0)
      metrics_url = "http://127.0.0.1:" + std::to_string(e.value("port", 0)) + k->metrics_path;
  }
  auto scrape = [&](std::string& cut) {
    return metrics_url.empty() ? std::string()
                               : bench::scrape_engine_metrics(metrics_url, bench::kMetricsMaxBytes,
                                                              std::chrono::milliseconds(bench::kMetricsTimeoutMs), cut);
  };
  std::string metrics_before = scrape(cut_before);

  // Every request from here on is the client's: the proxy gives ids in arrival order.
  const std::uint64_t start_id = proxy_windows(base)["last_id"].get<std::uint64_t>();
  std::string why;
  launch_spec spec;
  spec.shim_exe = self_exe();
  spec.exe = resolve_program(o_.command.at(0), why);
  if (spec.exe.empty()) throw std::runtime_error(why);
  spec.argv = expand_client_args(o_.command, base, model, queries_abs, run_dir_);
  const std::string timings = (fs::path(run_dir_) / "client-timings.jsonl").string();
  std::set<std::string> ours = {"BENCH_PROXY_URL", "BENCH_PROXY_MODEL", "BENCH_PROXY_QUERIES",
                                "BENCH_PROXY_CLIENT_TIMINGS", "BENCH_PROXY_RUN_DIR"};
  for (char** e = environ; e && *e; ++e) {
    std::string kv = *e;
    if (!ours.count(kv.substr(0, kv.find('=')))) spec.envp.push_back(kv);
  }
  spec.envp.push_back("BENCH_PROXY_URL=" + base);
  spec.envp.push_back("BENCH_PROXY_MODEL=" + model);
  if (!queries_abs.empty()) spec.envp.push_back("BENCH_PROXY_QUERIES=" + queries_abs);
  spec.envp.push_back("BENCH_PROXY_CLIENT_TIMINGS=" + timings);
  spec.envp.push_back("BENCH_PROXY_RUN_DIR=" + run_dir_);
  spec.cwd = fs::current_path().string();
  spec.log_path = (fs::path(run_dir_) / "client.stdout").string();
  spec.err_log_path = (fs::path(run_dir_) / "client.stderr").string();
  spec.redact = redact_;
  spec.log_prefix = "client";
  spec.output_at_info = false;
  std::atomic<int> wait_status{0};
  const double t_start = base::unix_now();
  {
    std::lock_guard<std::mutex> g(mu_);
    child_ = engine_child::launch(spec, [&wait_status](int ws) { wait_status = ws; }, err);
    if (!child_) throw std::runtime_error("the client did not start: " + err);
    if (interrupts_.load() > 0) child_->signal_group(SIGINT);  // Ctrl-C came while it was starting
  }
  spdlog::info("[client] started {} (pid {}): {}", spec.exe, child_->pid(), redact_.scrub(join_command(spec.argv)));
  bool timed_out = false;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(o_.timeout_s);
  std::optional<std::chrono::steady_clock::time_point> interrupted_at;
  while (!child_->wait_gone(std::chrono::milliseconds(50))) {
    auto now = std::chrono::steady_clock::now();
    if (!timed_out && now >= deadline) {
      timed_out = true;
      spdlog::warn("[client] still running after --client-timeout {} s: killing its process group", o_.timeout_s);
      child_->signal_group(SIGKILL);
    }
    if (interrupts_.load() > 0 && !interrupted_at) interrupted_at = now;
    if (interrupted_at && now - *interrupted_at > std::chrono::seconds(10)) child_->signal_group(SIGKILL);
  }
  const double t_end = base::unix_now();
  {
    std::lock_guard<std::mutex> g(mu_);
    child_.reset();  // the shim has reaped the client's whole tree; the reaper thread is joined
  }
  const int ws = wait_status.load();  // set by the reaper thread before it ended

  // The proxy's records of every request that arrived while the client ran.
  json win = proxy_windows(base);
  const std::uint64_t end_id = win["last_id"].get<std::uint64_t>();
  std::vector<std::uint64_t> ids;
  for (std::uint64_t id = start_id + 1; id <= end_id; ++id) ids.push_back(id);
  std::string rerr;
  auto recs = bench::fetch_proxy_records(base, ids, rerr);
  if (recs.size() < ids.size()) {
    // Older than /proxy/requests' window: requests.jsonl has every record.
    std::string file = (fs::path(run_dir_) / "requests.jsonl").string();
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    for (;;) {
      try {
        for (auto& rec : bench::read_requests_jsonl(file)) {
          auto id = rec["id"].get<std::uint64_t>();
          if (id > start_id && id <= end_id) recs.emplace(id, std::move(rec));
        }
      } catch (const std::exception& e) {
        rerr = e.what();
      }
      if (recs.size() >= ids.size() || std::chrono::steady_clock::now() >= until) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // a poll with a deadline
    }
  }
  std::string metrics_after = scrape(cut_after);
  // Only its id: the same snapshot is a 304, nothing to transfer or parse.
  auto after = bench::fetch_snapshot_id(base, before->id, err);

  bench::proxy_measurement m;
  for (auto& [id, rec] : recs) m.records.push_back(rec);
  // The measurement's clock is its requests' own span (first arrival to last byte), not the
  // client process's lifetime (an interpreter's start, a tokenizer's load): client.duration_s.
  m.start_unix_s = m.end_unix_s = 0;
  m.url = base;
  m.model = model;
  m.workload = workload;
  json client = {{"command", o_.command},
                 {"command_line", join_command(o_.command)},
                 {"argv", spec.argv},
                 {"exe", spec.exe},
                 {"exit_status", WIFEXITED(ws) ? json(WEXITSTATUS(ws)) : json(nullptr)},
                 {"signal", WIFSIGNALED(ws) ? json(WTERMSIG(ws)) : json(nullptr)},
                 {"exit", describe_wait_status(ws)},
                 {"timed_out", timed_out},
                 {"timeout_s", o_.timeout_s},
                 {"interrupted", interrupts_.load() > 0},
                 {"duration_s", t_end - t_start},
                 {"stdout", "client.stdout"},
                 {"stderr", "client.stderr"},
                 {"timings", fs::exists(timings) ? json("client-timings.jsonl") : json(nullptr)},
                 {"first_request_id", start_id + 1},
                 {"last_request_id", end_id}};
  m.client = client;

  // What makes every result of this client invalid (the run's and each window's).
  std::vector<std::string> reasons;
  if (timed_out) {
    reasons.push_back("the client ran past --client-timeout " + base::fixed(o_.timeout_s, 0) +
                      " s: its process group was killed");
  } else if (interrupts_.load() == 0 && !(WIFEXITED(ws) && WEXITSTATUS(ws) == 0)) {
    reasons.push_back("the client " + describe_wait_status(ws) + " (" + join_command(o_.command) + "; its output: client.stdout, client.stderr)");
  }
  if (recs.size() < ids.size())
    reasons.push_back("the proxy's records of " + std::to_string(ids.size() - recs.size()) + " of the client's " +
                      std::to_string(ids.size()) + " requests never arrived" + (rerr.empty() ? "" : " (" + rerr + ")"));
  if (!after) {
    reasons.push_back("no snapshot after the run (did the engine restart or the proxy stop?)");
  } else if (*after != before->id) {
    reasons.push_back("the snapshot changed during the run (" + before->id + " -> " + *after + "): another process answered");
  }
  // The client's own timings, when it wrote any: never the numbers, only their difference to the
  // proxy's (docs/metrics.md, "Client overhead").
  json overhead = nullptr;
  std::vector<std::string> timing_warnings;
  if (fs::exists(timings)) {
    std::vector<bench::timed_pair> pairs;
    std::size_t line_no = 0, bad = 0;
    try {
      std::string all = base::read_file_limited(timings);
      base::for_each_line(all, [&](std::string_view line, std::size_t n, bool) {
        line_no = n;
        std::string perr;
        auto j = base::try_parse_json(line, timings, perr);
        if (!j || !j->is_object() || !(*j)["id"].is_number_unsigned() || !(*j)["ttft_ms"].is_number() ||
            !(*j)["e2e_ms"].is_number()) {
          ++bad;
          return true;
        }
        auto it = recs.find((*j)["id"].get<std::uint64_t>());
        if (it == recs.end() || !it->second["ttft_ms"].is_number() || !it->second["e2e_ms"].is_number()) return true;
        pairs.push_back({(*j)["ttft_ms"].get<double>(), (*j)["e2e_ms"].get<double>(),
                         it->second["ttft_ms"].get<double>(), it->second["e2e_ms"].get<double>()});
        return true;
      });
    } catch (const std::exception& e) {
      timing_warnings.push_back("client timings " + timings + ": " + e.what());
    }
    if (bad > 0)
      timing_warnings.push_back("client timings: " + std::to_string(bad) + " of " + std::to_string(line_no) +
                                " lines of " + timings + " were not {\"id\", \"ttft_ms\", \"e2e_ms\"}: left out");
    std::size_t completed = 0;
    for (const auto& [id, rec] : recs)
      if (bench::from_proxy_record(rec, 0).ok) ++completed;
    overhead = bench::client_overhead(pairs, completed);
    overhead["source"] = "the client's own timings (client-timings.jsonl), joined by x-bench-proxy-request-id";
  }
  auto finish = [&](json& r) {
    for (const auto& why : reasons) bench::add_invalid_reason(r, why);
    if (bo.reset_prefix_cache) {
      r["prefix_cache_reset"] = reset;
      if (!reset.is_object() || !reset.value("ok", false))
        bench::add_invalid_reason(r, "the prefix cache was not reset: " +
                                         (reset.is_object() ? reset.value("error", std::string("unknown")) : std::string("unknown")));
    }
    r["snapshot_id"] = before->id;
    r["snapshot_id_after"] = after ? json(*after) : json(nullptr);
    r["snapshot"] = before->doc;
    bench::redact_like_snapshot(r, before->doc);
  };
  json result = bench::result_from_proxy(m, bo);
  if (!overhead.is_null()) {
    for (const auto& w : bench::client_overhead_warnings(overhead)) result["warnings"].push_back(w);
    result["client_overhead_ms"] = overhead;
  }
  for (const auto& w : timing_warnings) result["warnings"].push_back(w);
  if (!metrics_url.empty()) {
    double prompt = 0, output = 0;
    bool server_counts = true;
    std::vector<bench::failed_request_tokens> failed;
    for (const auto& rec : m.records) {
      auto r = bench::from_proxy_record(rec, 0);
      if (r.ok) {
        prompt += r.prompt_tokens;
        output += r.output_tokens;
        server_counts = server_counts && r.usage_from_server;
      } else if (r.http_status == 200 && !rec.value("local", false)) {
        // The engine answered it: it read the prompt and generated what the proxy saw, at least.
        int seen = rec.contains("output_tokens") && rec["output_tokens"].is_number() ? rec["output_tokens"].get<int>() : 0;
        failed.push_back({seen, -1, -1});
      }
    }
    json em = bench::engine_metrics(metrics_kind, metrics_before, metrics_after, server_counts ? prompt : -1,
                             server_counts ? output : -1);
    if (em.contains("cross_check")) bench::account_failed_requests(em["cross_check"], failed);
    em["url"] = metrics_url;
    em["raw"] = {{"before", metrics_before}, {"after", metrics_after}};
    if (!cut_before.empty() || !cut_after.empty())
      em["cut"] = {{"before", cut_before.empty() ? json(nullptr) : json(cut_before)},
                   {"after", cut_after.empty() ? json(nullptr) : json(cut_after)}};
    for (const auto& w : bench::engine_metric_warnings(em)) result["warnings"].push_back(w);
    result["engine_metrics"] = em;
  }

  auto spans = bench::window_spans(win.value("windows", json::array()), m.records, start_id, end_id, t_end);
  json listing = json::array();
  windows_.clear();
  for (const auto& s : spans) {
    json wr = bench::window_result(m, s, bo);
    if (s.left_open) {
      wr["warnings"].push_back("window '" + s.name + "' was still open when the client exited: closed there");
      result["warnings"].push_back("window '" + s.name + "' was still open when the client exited: closed there");
    }
    finish(wr);
    listing.push_back({{"name", s.name},
                       {"requests", wr["summary"]["requests"]},
                       {"completed", wr["summary"]["completed"]},
                       {"headline", wr["summary"]["headline"].value("value", 0.0)},
                       {"left_open", s.left_open},
                       {"valid", wr.value("valid", false)},
                       {"result", "windows/" + s.name + "/result.json"}});
    windows_.push_back(std::move(wr));
  }
  if (!listing.empty()) result["windows"] = listing;
  finish(result);
  return result;
}

std::vector<std::string> write_window_results(std::vector<json> windows, const std::string& run_dir,
                                              const std::string& tsv) {
  std::vector<std::string> paths;
  for (auto& w : windows) {
    std::string dir = (fs::path(run_dir) / "windows" / w.value("window", std::string("unnamed"))).string();
    std::error_code ec;
    fs::create_directories(dir, ec);
    w["run_dir"] = run_dir;
    std::string path = write_result(w, dir);
    if (!tsv.empty()) bench::append_tsv(tsv, w, path);
    paths.push_back(path);
  }
  return paths;
}

}  // namespace bp::measure
