// bench-proxy agent | sweep --agents FILE: one sweep across many hosts (actors/fleet/). Built into
// bench-proxy-fleet only: the serving binary, bench-proxy, does not load CAF's network layer and
// TLS (libcaf_io, libcaf_openssl, libssl) and hands these commands over by exec
// (fleet_exec.cpp). The options both binaries parse: fleet_options.cpp.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <mutex>
#include <set>

#include <caf/io/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/engine_run.hpp"
#include "base/process/engine_child.hpp"
#include "actors/fleet/agent.hpp"
#include "actors/fleet/coordinator.hpp"
#include "actors/fleet/guard.hpp"
#include "actors/campaign/measure.hpp"
#include "base/files.hpp"
#include "base/json_read.hpp"
#include "base/sha256.hpp"
#include "base/text.hpp"
#include "cmd/bench_flags.hpp"
#include "cmd/cli.hpp"
#include "cmd/exit_status.hpp"
#include "snapshot/gpu.hpp"
#include "configs/engine_config.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace bp::cli {

namespace {

/// The token: the file's first line, which must not be empty; a file others may read is refused.
std::string read_token(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw usage_error("--token-file " + path + ": cannot read it");
  if (st.st_mode & 077) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%03o", static_cast<unsigned>(st.st_mode & 0777));
    throw usage_error("--token-file " + path + ": mode " + mode + " lets others read it: chmod 600 it");
  }
  std::string t;
  try {
    t = base::read_file_limited(path, 4096);
  } catch (const std::exception& e) {
    throw usage_error("--token-file " + path + ": " + e.what());
  }
  t = std::string(base::trim(t.substr(0, t.find('\n'))));
  if (t.size() < 16) throw usage_error("--token-file " + path + ": the token must be at least 16 characters");
  return t;
}

fleet::tls_options tls_of(const bench_flags& f) {
  fleet::tls_options t{f.tls_cert, f.tls_key, f.tls_ca};
  if (t.enabled() && (t.cert.empty() || t.key.empty() || t.ca.empty()))
    throw usage_error("TLS needs all three of --tls-cert, --tls-key and --tls-ca (the CA verifies both sides)");
  for (const auto* p : {&t.cert, &t.key, &t.ca})
    if (!p->empty() && !fs::is_regular_file(*p)) throw usage_error("TLS file " + *p + " does not exist");
  if (t.enabled()) {
    try {
      fleet::tls_context check(t, false);  // loadable, the key matching the certificate: said before anything starts
    } catch (const std::exception& e) {
      throw usage_error(e.what());
    }
  }
  return t;
}


bool loopback(const std::string& host) { return host == "127.0.0.1" || host == "::1" || host.rfind("127.", 0) == 0; }

/// The files of a run folder that travel back (every regular file, caches/ aside), each at most
/// 64 MiB; engine.log only its last 1 MiB.
std::vector<std::string> collect_files(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    auto rel = fs::relative(it->path(), dir, ec).string();
    if (rel.rfind("caches", 0) == 0) {
      if (it->is_directory()) it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file()) continue;
    try {
      std::string bytes = base::read_file_limited(it->path().string(), 64ull << 20);
      if (rel == "engine.log" && bytes.size() > (1u << 20)) bytes = bytes.substr(bytes.size() - (1u << 20));
      out.push_back(rel);
      out.push_back(std::move(bytes));
    } catch (const std::exception& e) {
      spdlog::warn("agent: {} not sent back: {}", rel, e.what());
    }
  }
  return out;
}

}  // namespace


int fleet_sweep_main(const bench_flags& f, const std::vector<std::string>& full_argv) {
  setup_logging(f.log_level);
  if (f.token_file.empty()) throw usage_error("--agents needs --token-file");
  std::string token = read_token(f.token_file);
  auto tls = tls_of(f);
  std::vector<fleet::agent_entry> agents;
  try {
    agents = fleet::load_agents(f.agents);
  } catch (const std::exception& e) {
    throw usage_error(e.what());
  }
  auto base_opts = measure_options(f, "", full_argv);
  const std::string& workload_path = base_opts.bench.queries_path;
  if (base_opts.bench.generated.any())
    throw usage_error("sweep --agents needs a workload file (--queries): generated workloads are not shipped to agents yet");
  std::string workload_bytes;
  try {
    bench::load_workload(workload_path);
    workload_bytes = base::read_file_limited(workload_path);
  } catch (const std::exception& e) {
    throw usage_error(e.what());
  }
  // Every config: a relative path (the agents resolve it under their own root), loadable here.
  std::vector<std::map<std::string, std::string>> placement;
  std::vector<std::string> shas;
  std::string errors;
  for (const auto& c : f.configs) {
    if (fs::path(c).is_absolute() || c.find("..") != std::string::npos) {
      errors += (errors.empty() ? "" : "\n") + c + ": with --agents, name configs by a relative path (the agents " +
                "resolve it under their --config-root)";
      continue;
    }
    auto loaded = load_config(c, process_env());
    if (!loaded.config) {
      for (const auto& e : loaded.errors) errors += (errors.empty() ? "" : "\n") + e.str();
      continue;
    }
    placement.push_back(loaded.config->placement);
    shas.push_back(sha256_hex(base::read_file_limited(c)));
  }
  if (!errors.empty()) {
    std::cout << "failed: " << errors.substr(0, errors.find('\n')) << "\n";
    throw usage_error(errors);
  }
  // The bench options go to the agents as they were given, without what only the coordinator uses.
  std::vector<std::string> forwarded;
  {
    static const std::set<std::string> with_value = {"--agents", "--token-file", "--tls-cert", "--tls-key", "--tls-ca",
                                                     "--sweep-dir", "--queries", "--results", "--trials", "--order",
                                                     "--noise", "--threads", "--listen", "--log-level"};
    static const std::set<std::string> flags = {"--retry-elsewhere", "--no-progress"};
    std::set<std::string> cfgs(f.configs.begin(), f.configs.end());
    auto it = std::find(full_argv.begin(), full_argv.end(), "sweep");
    for (it = it == full_argv.end() ? full_argv.begin() : it + 1; it != full_argv.end(); ++it) {
      std::string a = *it;
      std::string name = a.substr(0, a.find('='));
      if (with_value.count(name)) {
        if (a.find('=') == std::string::npos && it + 1 != full_argv.end()) ++it;
        continue;
      }
      if (flags.count(a) || cfgs.count(a)) continue;
      forwarded.push_back(a);
    }
  }
  std::string sweep_dir = claim_sweep_dir(f);
  caf::actor_system_config cfg;
  configure_actor_system(cfg);
  fleet::configure_network(cfg, tls);
  caf::actor_system sys{cfg};
  std::vector<measure::sweep_entry> entries(f.configs.size());
  for (std::size_t i = 0; i < f.configs.size(); ++i) entries[i].config = f.configs[i];
  std::vector<std::string> dirs = config_dirs(f.configs, sweep_dir);
  const std::string workload_sha256 = sha256_hex(workload_bytes);
  auto plan = measure::trial_order(f.configs.size(), f.trials, f.order == "shuffled", base_opts.bench.seed);
  std::vector<fleet::row> rows;
  std::vector<std::string> row_dirs;
  for (const auto& [ci, t] : plan) {
    fleet::row r;
    r.index = rows.size();
    r.placement = placement[ci];
    r.j.config_path = f.configs[ci];
    r.j.config_sha256 = shas[ci];
    r.j.workload_name = fs::path(workload_path).filename().string();
    r.j.workload = workload_bytes;
    r.j.workload_sha256 = workload_sha256;
    r.j.bench_args = forwarded;
    std::string dir = trial_dir(f, dirs[ci], t);
    r.j.row = fs::relative(dir, sweep_dir).string();
    rows.push_back(std::move(r));
    row_dirs.push_back(dir);
  }
  fleet::coordinator_options co;
  co.agents = agents;
  co.token = token;
  co.retry_elsewhere = f.retry_elsewhere;
  co.tls = tls;
  measure::interrupt_state st;
  std::vector<measure::outcome> outcomes(rows.size());
  std::vector<std::string> outcomes_agent(rows.size());  // "agent@host" per row
  std::mutex mu;
  // One row's end, from the coordinator actor: the files that came back, the row's result.json (with the
  // fleet's record) or, when there is no result, failure.json with the reason. A row without a
  // result enters the sweep as a local failed run does (no result; its reason), so the table,
  // sweep.json and report.html are written whatever failed. Never throws: a failure here becomes
  // the row's reason.
  auto on_done = [&](const fleet::row& r, const fleet::row_outcome& o) {
    measure::outcome out;
    out.run_dir = fs::absolute(row_dirs[r.index]).string();
    const std::string cfg_path = r.j.config_path;
    std::string agent_tag;
    try {
      fleet::fault_point("coordinator-row");
      json fleet_info = {{"agent", o.agent},
                         {"host", o.r.host},
                         {"agent_run_dir", o.r.agent_run_dir},
                         {"insecure_plaintext", o.r.insecure},
                         {"clock_offset_us", o.clock_offset_us},
                         {"agent_version", o.agent_hello.version},
                         {"agent_gpus", o.agent_hello.gpus},
                         {"agent_labels", o.agent_hello.labels},
                         {"attempts", o.attempts}};
      std::error_code ec;
      fs::create_directories(out.run_dir, ec);
      json result;
      std::string result_error;
      for (std::size_t k = 0; k + 1 < o.r.files.size(); k += 2) {
        const std::string& name = o.r.files[k];
        fs::path rel(name);
        if (name.empty() || rel.is_absolute() || name.find("..") != std::string::npos) continue;  // never outside the row
        if (name == "result.json") {  // bounded like every JSON read (docs/meta-schema.md)
          if (o.ran) {
            auto parsed = base::try_parse_json(o.r.files[k + 1], "the agent's result.json of " + cfg_path, result_error);
            if (parsed) result = std::move(*parsed);
          }
          continue;  // written below, with the fleet's record
        }
        if (name == "failure.json") continue;  // the coordinator writes its own, below
        fs::path dst = fs::path(out.run_dir) / rel;
        fs::create_directories(dst.parent_path(), ec);
        try {
          base::write_file_atomic(dst.string(), o.r.files[k + 1], true);
        } catch (const std::exception& e) {
          spdlog::error("[fleet] {}: {}", dst.string(), e.what());
        }
      }
      // What the sweep's aggregation reads of a result must be there, of the right type: an
      // agent's answer is input like any other file.
      if (result.is_object()) {
        std::string bad = fleet::result_shape_problem(result);
        if (!bad.empty()) {
          result_error = "the agent's result.json of " + cfg_path + " " + bad;
          result = json();
        }
      } else if (!result.is_null()) {
        result_error = "the agent's result.json of " + cfg_path + " is not an object";
        result = json();
      }
      if (result.is_object()) {
        out.result = std::move(result);
        out.started = out.published = true;
        out.valid = out.result["valid"].get<bool>();
        out.teardown_verified = out.result.value("teardown_verified", true);
        if (!out.valid) {
          out.reason = out.result.value("invalid_reason", std::string("invalid"));
          out.error = make_error(errc::failure, out.reason);
        }
        out.result["fleet"] = fleet_info;
        out.result["config_path"] = cfg_path;
        out.result["run_dir"] = out.run_dir;
        if (o.r.insecure) {
          if (!out.result["warnings"].is_array()) out.result["warnings"] = json::array();
          out.result["warnings"].push_back("run by agent " + o.agent +
                                           " over plaintext off loopback (--insecure-plaintext): anyone on that network "
                                           "could read or alter what travelled");
        }
        out.result_path = (fs::path(out.run_dir) / "result.json").string();
        out.meta_path = (fs::path(out.run_dir) / "meta.json").string();
        base::write_file_atomic(out.result_path, out.result.dump(2, ' ', false, json::error_handler_t::replace) + "\n",
                                true);
        if (f.trials == 1 && !f.results.empty()) {
          try {
            bench::append_tsv(f.results, out.result, fs::absolute(out.result_path).string());
          } catch (const std::exception& e) {
            spdlog::error("{}", e.what());
          }
        }
      } else {
        out.reason = !o.error.empty() ? o.error : !result_error.empty() ? result_error : "no result came back";
        out.error = make_error(o.interrupted ? errc::interrupted : errc::failure, out.reason);
        json failure = measure::failed_result(cfg_path, out.reason, out.run_dir, f.label);
        failure["fleet"] = fleet_info;
        base::write_file_atomic((fs::path(out.run_dir) / "failure.json").string(),
                                failure.dump(2, ' ', false, json::error_handler_t::replace) + "\n", true);
        if (f.trials == 1 && !f.results.empty()) {
          try {
            bench::append_tsv(f.results, failure, "");
          } catch (const std::exception& e) {
            spdlog::error("{}", e.what());
          }
        }
      }
    } catch (const std::exception& e) {
      // Whatever failed here (a full disk, a folder that cannot be made): the row says so.
      out = measure::outcome{};
      out.run_dir = fs::absolute(row_dirs[r.index]).string();
      out.reason = (o.error.empty() ? std::string() : o.error + "; ") + "the coordinator could not store the row: " + e.what();
      out.error = make_error(errc::failure, out.reason);
      try {  // the reason on disk too, where the disk allows
        base::write_file_atomic((fs::path(out.run_dir) / "failure.json").string(),
                                measure::failed_result(cfg_path, out.reason, out.run_dir, f.label).dump(2) + "\n", true);
      } catch (const std::exception& e2) {
        spdlog::error("[fleet] {}: {}", r.j.row, e2.what());
      }
    }
    if (out.valid)
      spdlog::info("[fleet] {} on {}: {:.2f} {}", r.j.row, o.agent, bench::headline(out.result), base_opts.bench.headline);
    else
      spdlog::warn("[fleet] {} ({}): {}", r.j.row, o.agent.empty() ? "no agent" : o.agent, out.reason);
    std::lock_guard<std::mutex> g(mu);
    if (!o.agent.empty() && o.ran) outcomes_agent[r.index] = o.agent + "@" + o.r.host;
    outcomes[r.index] = std::move(out);
  };
  // One actor supervises every agent (actors/fleet/coordinator.hpp); this thread takes Ctrl-C
  // and tells it, and waits for it to deliver once every row has ended.
  auto done = std::make_shared<std::promise<fleet::dispatch_result>>();
  auto finished = done->get_future();
  auto coordinator = fleet::spawn_coordinator(sys, co, rows, on_done, done, false);  // scheduled: see its header
  measure::run_interruptible([&] { finished.get(); }, st,
                             [&] { caf::anon_send(coordinator, atom::stop::value, std::string("interrupted")); },
                             [] {});
  for (std::size_t i = 0; i < rows.size(); ++i) entries[plan[i].first].trials.push_back(std::move(outcomes[i]));
  auto mo = base_opts;
  if (f.trials > 1) mo.results_tsv.clear();
  // Which agent and host produced each row (also result.fleet in each row's result.json); before
  // the table, so the headline stays the last line.
  std::cout << "ran on:";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& t = outcomes_agent[i];
    std::cout << " " << rows[i].j.row << "=" << (t.empty() ? "-" : t);
  }
  std::cout << "\n";
  return finish_sweep(f, mo, entries, dirs, sweep_dir, st);
}

runner define_agent(CLI::App& app, const std::vector<std::string>& argv) {
  auto f = std::make_shared<bench_flags>();
  auto o = std::make_shared<fleet::agent_options>();
  auto listen = std::make_shared<std::string>();
  auto run_root = std::make_shared<std::string>("agent-runs");
  auto insecure = std::make_shared<bool>(false);
  app.footer(R"(Runs configs for a fleet coordinator (bench-proxy sweep --agents FILE), one at a time, through the
same pipeline as a local run; only configs under --config-root, named by relative path, whose
sha256 is the one the coordinator expects. Without TLS it listens on loopback only, unless
--insecure-plaintext (then every log line and result says so). docs/fleet.md.)");
  app.add_option("--listen", *listen, "ADDR:PORT to publish the agent on")->type_name("ADDR:PORT")->required();
  app.add_option("--config-root", o->config_root, "the only folder configs are run from")->type_name("DIR")->required();
  app.add_option("--token-file", f->token_file, "the fleet's shared token (mode 600)")->type_name("FILE")->required();
  app.add_option("--run-root", *run_root, "where the agent keeps its own copy of every run (default agent-runs)")
      ->type_name("DIR");
  app.add_option("--label", o->labels, "k=v describing the host (repeatable), e.g. gpu=h100 count=2")->type_name("K=V");
  app.add_option("--name", o->name, "the agent's name (default: the host name)")->type_name("NAME");
  app.add_flag("--insecure-plaintext", *insecure, "listen off loopback without TLS (marked in every log line and result)");
  add_tls_options(app, *f);
  add_log_level(app, f->log_level);
  return [f, o, listen, run_root, insecure, argv]() -> int {
    setup_logging(f->log_level);
    o->token = read_token(f->token_file);
    o->tls = tls_of(*f);
    std::string host, err;
    std::uint16_t port = 0;
    if (!net::parse_listen_address(*listen, host, port, err)) throw usage_error("--listen: " + err);
    if (!o->tls.enabled() && !loopback(host) && !*insecure)
      throw usage_error("--listen " + *listen + " is not loopback: give --tls-cert/--tls-key/--tls-ca, or "
                        "--insecure-plaintext to accept plaintext (then every result says so)");
    o->insecure = !o->tls.enabled() && !loopback(host);
    fleet::set_agent_logging(o->insecure);
    o->listen_host = host;
    o->port = port;
    for (const auto& l : o->labels)
      if (l.find('=') == std::string::npos || l.front() == '=') throw usage_error("--label " + l + ": expected K=V");
    std::error_code ec;
    if (!fs::is_directory(o->config_root, ec)) throw usage_error("--config-root " + o->config_root + " is not a folder");
    o->config_root = fs::canonical(o->config_root).string();
    fs::create_directories(*run_root, ec);
    o->run_root = fs::absolute(*run_root).string();
    if (o->name.empty()) {
      char h[256] = {0};
      ::gethostname(h, sizeof(h) - 1);
      o->name = h;
    }
    o->gpus = snap::nvidia_gpu_names(snap::find_nvidia_smi());
    become_subreaper();
    caf::actor_system_config cfg;
    configure_actor_system(cfg);
    fleet::configure_network(cfg, o->tls);
    caf::actor_system sys{cfg};
    std::vector<std::string> self_argv = argv;
    auto runner = [&sys, self_argv](const fleet::job& j, const std::string& config_file, const std::string& dir,
                                    const std::atomic<bool>& stop, const std::function<void(std::string)>& progress) {
      fleet::result r;
      bench_flags bf;
      CLI::App app;
      add_bench_options(app, bf);
      add_trial_options(app, bf, false);
      std::vector<std::string> args(j.bench_args.rbegin(), j.bench_args.rend());  // CLI11 takes them reversed
      std::string workload = (fs::path(dir) / j.workload_name).string();
      try {
        args.push_back(workload);
        args.push_back("--queries");
        app.parse(args);
        base::write_file_atomic(workload, j.workload, true);
      } catch (const CLI::ParseError& e) {
        r.error = std::string("bad bench options from the coordinator: ") + e.what();
        return r;
      } catch (const std::exception& e) {
        r.error = e.what();
        return r;
      }
      auto mo = measure_options(bf, config_file, self_argv);
      mo.run_dir = dir;
      mo.results_tsv.clear();
      auto last = std::make_shared<std::chrono::steady_clock::time_point>();
      mo.bench.progress = [progress, last](long done, long total, long errors) {
        auto now = std::chrono::steady_clock::now();
        if (done != total && now - *last < std::chrono::seconds(1)) return;
        *last = now;
        progress(std::to_string(done) + "/" + std::to_string(total) + " requests, " + std::to_string(errors) + " errors");
      };
      measure::interrupt_state st;
      st.external = &stop;
      st.take_signals = false;  // the agent's signal thread takes them, and stops the run through `stop`
      auto out = measure::measure(sys, mo, st);
      r.ok = out.result.is_object() && !out.result.empty() && fs::exists(fs::path(dir) / "result.json");
      if (!r.ok) r.error = out.reason.empty() ? "the run produced no result" : out.reason;
      r.files = collect_files(dir);
      if (!r.ok) {
        // A failed run still says why, in the shape of a local failed row.
        r.files.push_back("failure.json");
        r.files.push_back(measure::failed_result(j.config_path, r.error, dir).dump(2) + "\n");
      }
      return r;
    };
    bool insecure = o->insecure;
    return fleet::run_agent(sys, *o, runner, [insecure](std::uint16_t p) {
      std::cout << "agent listening on port " << p << (insecure ? " [INSECURE PLAINTEXT]" : "") << std::endl;
    });
  };
}

}  // namespace bp::cli
