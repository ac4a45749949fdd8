#include "actors/engine_run.hpp"
#include "configs/engine_kinds.hpp"
#include "base/process/engine_child.hpp"
#include "snapshot/collect.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <ctime>
#include <filesystem>
#include <thread>

#include <signal.h>

#include <spdlog/spdlog.h>

#include "base/files.hpp"
#include "base/text.hpp"

namespace fs = std::filesystem;

namespace bp {

void configure_actor_system(caf::actor_system_config& cfg) {
  // Actors here see lifecycle events, not bytes (the proxy's I/O threads carry those, and the
  // snapshot's hashing runs on threads of its own): eight scheduler threads at most, not one per
  // core (a GPU host has 100 to 200; each idle one still costs about 10 KiB of memory,
  // docs/benchmarks.md, "Memory").
  cfg.set("scheduler.max-threads", static_cast<std::size_t>(std::clamp(std::thread::hardware_concurrency(), 2u, 8u)));
  // Work sharing: idle scheduler threads block on a condition variable. The default work
  // stealing polls every 10 ms per idle thread, wake-ups that steal the CPU from the I/O threads
  // and show in the proxy's tail latency; actors here only see lifecycle events.
  cfg.set("scheduler.policy", caf::atom("sharing"));
  add_error_category(cfg);
}

/// The binary the engine shim runs: this very process's, even when its file was replaced since it
/// started (an upgrade or a rebuild during a long sweep or try): then the path reads "... (deleted)"
/// and only /proc/self/exe still leads to the running inode (a child's exec through it gets it).
std::string self_exe() {
  std::string p = base::self_exe();
  std::error_code ec;
  const std::string deleted = " (deleted)";
  bool gone = p.empty() || (p.size() > deleted.size() && p.compare(p.size() - deleted.size(), deleted.size(), deleted) == 0) ||
              !fs::exists(p, ec);
  return gone ? std::string("/proc/self/exe") : p;
}

std::string utc_stamp() { return base::utc_now_compact(); }

std::string default_run_dir(const std::string& config_path) {
  return (fs::path("runs") / (utc_stamp() + "_" + fs::path(config_path).stem().string() + "_" +
                              std::to_string(::getpid())))
      .string();
}

caf::expected<std::unique_ptr<engine_run>> engine_run::start(caf::actor_system& sys, const run_options& o) {
  // One error style out of here: each step's own failure (a list of config errors, a message, an
  // exception) becomes one error of bench-proxy's category with the whole text.
  auto joined = [](const auto& errors) {
    std::string out;
    for (const auto& e : errors) out += (out.empty() ? "" : "\n") + e.str();
    return out;
  };
  auto loaded = load_config(o.config_path, process_env());
  if (!loaded.config) return make_error(errc::usage, joined(loaded.errors));
  if (auto launch_errors = check_launchable(*loaded.config); !launch_errors.empty())
    return make_error(errc::usage, joined(launch_errors));
  std::unique_ptr<engine_run> r(new engine_run());
  std::string err;
  r->ctx_ = std::make_shared<run_context>();
  r->ctx_->config = std::move(*loaded.config);
  if (o.rehash) r->ctx_->config.hash_cache = false;  // recorded as `hash_cache: off` in /meta's config
  r->status_ = std::make_unique<net::run_status>();
  net::server_options so = o.server;
  so.listen = o.listen;
  so.threads = o.threads;
  // Bind first: if the address is taken, no engine is ever started.
  r->proxy_ = net::proxy_server::create(so, *r->status_, err);
  if (!r->proxy_) return make_error(errc::listen_failed, err);
  std::string dir;
  try {
    dir = claim_run_dir(o.run_dir, o.config_path);
  } catch (const std::exception& e) {
    return make_error(errc::usage, e.what());
  }
  r->ctx_->run_dir = fs::absolute(dir).string();
  // Every proxied request's timing, appended as it finishes (docs/metrics.md, "Proxy-side timing").
  if (!r->proxy_->requests().open_file(r->ctx_->run_dir + "/requests.jsonl", err)) return make_error(errc::usage, err);
  // The engine's shim: bench-proxy-shim beside this binary (a few pages resident), else this
  // binary's own `__engine-shim` (the same code, with all of bench-proxy's libraries mapped).
  bool standalone_shim = false;
  std::string shim = find_engine_shim(base::self_exe(), standalone_shim);
  r->ctx_->shim_exe = standalone_shim ? shim : self_exe();
  if (!standalone_shim) {
    static std::atomic<bool> said{false};
    if (!said.exchange(true))
      spdlog::warn("no bench-proxy-shim next to {}: the engine's shim is bench-proxy itself (__engine-shim), "
                   "which holds about 8 MiB more memory beside each engine", base::self_exe());
  }
  r->ctx_->status = r->status_.get();
  r->ctx_->proxy = r->proxy_.get();
  r->ctx_->hash_threads = o.hash_threads;
  r->ctx_->telemetry_interval_ms = o.telemetry_interval_ms;
  r->ctx_->engine_output_at_info = o.engine_output_at_info;
  if (o.keep_published) r->ctx_->keep_published = std::make_shared<run_context::published_slot>();
  if (const engine_kind* k = find_engine_kind(r->ctx_->config.engine))
    r->status_->set_engine_metrics(k->metrics_path, k->name);
  else
    r->status_->set_engine_metrics("", r->ctx_->config.engine);
  // Caches: `fresh` gives each of the kind's caches an empty directory under the run folder;
  // either way their state is scanned now, before the engine starts, and again at snapshot time.
  if (const engine_kind* k = find_engine_kind(r->ctx_->config.engine); k && r->ctx_->config.caches_fresh)
    for (const auto& c : k->caches) {
      std::string d = r->ctx_->run_dir + "/caches/" + c.name;
      std::error_code mk;
      fs::create_directories(d, mk);
      r->ctx_->cache_env.emplace_back(c.env_var, d);
      r->ctx_->caches_injected[c.name] = d;
    }
  r->ctx_->caches_before = snap::scan_caches(r->ctx_->config.engine, r->ctx_->engine_env(),
                                             std::chrono::steady_clock::now() + std::chrono::seconds(30));
  r->ctx_->bench_proxy_argv = o.argv;
  r->ctx_->listen_address = r->proxy_->local_address();
  if (const char* f = std::getenv("BENCH_PROXY_FAULTS")) {
    r->ctx_->faults = f;
    spdlog::warn("fault injection active (BENCH_PROXY_FAULTS={}): test use only", f);
  }
  r->promise_ = std::make_shared<std::promise<run_result>>();
  r->future_ = r->promise_->get_future().share();
  r->supervisor_ = spawn_run_supervisor(sys, r->ctx_, r->promise_);
  run_supervisor_actor sup = r->supervisor_;
  net::server_hooks hooks;
  // A connection's birth: the supervisor spawns its connection actor, which hears of the end
  // from the connection's I/O thread itself (the handle's on_end) and alone acts on it.
  hooks.on_open = [sup](std::shared_ptr<net::connection_handle> h) { caf::anon_send(sup, atom::opened::value, h); };
  hooks.on_error = [](const std::string& what) { spdlog::error("proxy: {}", what); };
  r->proxy_->start(std::move(hooks));
  spdlog::info("bench-proxy {} listening on {} for '{}' (run folder {})", BENCH_PROXY_VERSION,
               r->proxy_->local_address(), r->ctx_->config.description, r->ctx_->run_dir);
  return r;
}

engine_run::~engine_run() {
  if (!waited_ && future_.valid()) {
    stop();
    wait();
  }
}

std::string engine_run::url() const { return "http://" + proxy_->local_address(); }

void engine_run::stop(const std::string& why) { caf::anon_send(supervisor_, atom::stop::value, why); }

void engine_run::kill_now() {
  // The engine's root leads its process group; the shim then reaps and kills whatever is left.
  pid_t pid = status_->engine_pid();
  if (pid > 0) {
    spdlog::warn("killing the engine's process group {} now (SIGKILL, no grace period)", pid);
    ::kill(-pid, SIGKILL);
  }
}

std::vector<std::pair<std::string, std::string>> run_context::engine_env() const {
  std::vector<std::pair<std::string, std::string>> env;
  for (const auto& [k, v] : config.env) {
    bool moved = false;  // caches: fresh moves this variable to the run's own directory
    for (const auto& kv : cache_env) moved = moved || kv.first == k;
    if (!moved) env.emplace_back(k, v.value);
  }
  for (const auto& kv : cache_env) env.push_back(kv);
  return env;
}

std::string claim_run_dir(const std::string& wanted, const std::string& config_path) {
  if (wanted.empty()) return base::make_unique_dir(default_run_dir(config_path));
  std::error_code ec;
  for (const char* f : {"result.json", "meta.json", "engine.log", "trials.json", "sweep.json", "requests.jsonl"})
    if (fs::exists(fs::path(wanted) / f, ec))
      throw std::runtime_error("run folder " + wanted + " already holds " + f +
                               " from another run (results are never overwritten: choose a new folder)");
  fs::create_directories(wanted, ec);
  if (ec) throw std::runtime_error("cannot create run folder " + wanted + ": " + ec.message());
  return wanted;
}

bool engine_run::finished() const {
  return future_.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
}

std::pair<std::string, std::shared_ptr<nlohmann::json>> engine_run::take_published() {
  auto slot = ctx_->keep_published;
  if (!slot) return {};
  std::lock_guard<std::mutex> lk(slot->mu);
  return {slot->id, std::move(slot->doc)};  // a moved-from shared_ptr is null: taken once
}

bool engine_run::wait_published(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (status_->meta()) return true;
    if (future_.wait_for(std::chrono::milliseconds(20)) == std::future_status::ready) return status_->meta() != nullptr;
  }
  return false;
}

run_result engine_run::wait() {
  if (waited_) return result_;
  result_ = future_.get();
  proxy_->shutdown();
  proxy_->requests().close_file();
  waited_ = true;
  return result_;
}

}  // namespace bp
