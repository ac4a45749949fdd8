#include "actors/engine_run.hpp"

#include <unistd.h>

#include <ctime>
#include <filesystem>
#include <thread>

#include <spdlog/spdlog.h>

namespace fs = std::filesystem;

namespace bp {

void configure_actor_system(caf::actor_system_config& cfg) {
  cfg.set("scheduler.max-threads", static_cast<std::size_t>(std::max(2u, std::thread::hardware_concurrency())));
  // Work sharing: idle scheduler threads block on a condition variable. The default work
  // stealing polls every 10 ms per idle thread, wake-ups that steal the CPU from the I/O threads
  // and show in the proxy's tail latency; actors here only see lifecycle events.
  cfg.set("scheduler.policy", caf::atom("sharing"));
}

std::string self_exe() {
  std::error_code ec;
  auto p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : p.string();
}

std::string utc_stamp() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::string default_run_dir(const std::string& config_path) {
  return (fs::path("runs") / (utc_stamp() + "_" + fs::path(config_path).stem().string() + "_" +
                              std::to_string(::getpid())))
      .string();
}

std::unique_ptr<engine_run> engine_run::start(caf::actor_system& sys, const run_options& o, std::string& err,
                                              int& code) {
  std::unique_ptr<engine_run> r(new engine_run());
  auto loaded = load_config(o.config_path, process_env());
  if (!loaded.config) {
    for (const auto& e : loaded.errors) err += (err.empty() ? "" : "\n") + e.str();
    code = exit_code::usage;
    return nullptr;
  }
  auto launch_errors = check_launchable(*loaded.config);
  if (!launch_errors.empty()) {
    for (const auto& e : launch_errors) err += (err.empty() ? "" : "\n") + e.str();
    code = exit_code::usage;
    return nullptr;
  }
  r->ctx_ = std::make_shared<run_context>();
  r->ctx_->config = std::move(*loaded.config);
  r->status_ = std::make_unique<net::run_status>();
  net::server_options so = o.server;
  so.listen = o.listen;
  so.threads = o.threads;
  // Bind first: if the address is taken, no engine is ever started.
  r->proxy_ = net::proxy_server::create(so, *r->status_, err);
  if (!r->proxy_) {
    code = exit_code::listen_failed;
    return nullptr;
  }
  std::string dir = o.run_dir.empty() ? default_run_dir(o.config_path) : o.run_dir;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    err = "cannot create run folder " + dir + ": " + ec.message();
    code = exit_code::failure;
    return nullptr;
  }
  r->ctx_->run_dir = fs::absolute(dir).string();
  r->ctx_->shim_exe = self_exe();
  r->ctx_->status = r->status_.get();
  r->ctx_->proxy = r->proxy_.get();
  r->ctx_->hash_threads = o.hash_threads;
  r->ctx_->bench_proxy_argv = o.argv;
  r->ctx_->listen_address = r->proxy_->local_address();
  if (const char* f = std::getenv("BENCH_PROXY_FAULTS")) {
    r->ctx_->faults = f;
    spdlog::warn("fault injection active (BENCH_PROXY_FAULTS={}): test use only", f);
  }
  r->promise_ = std::make_shared<std::promise<run_result>>();
  r->future_ = r->promise_->get_future().share();
  r->supervisor_ = spawn_run_supervisor(sys, r->ctx_, r->promise_);
  caf::actor sup = r->supervisor_;
  net::server_hooks hooks;
  hooks.on_open = [sup](std::shared_ptr<net::connection_handle> h) { caf::anon_send(sup, atom::opened::value, h); };
  hooks.on_close = [sup](std::uint64_t id, const net::conn_stats& st, const std::string& reason) {
    caf::anon_send(sup, atom::closed::value, id, st, reason);
  };
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

void engine_run::stop() { caf::anon_send(supervisor_, atom::stop::value); }

bool engine_run::finished() const {
  return future_.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
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
  waited_ = true;
  return result_;
}

}  // namespace bp
