#include <signal.h>

#include <spdlog/spdlog.h>

#include "actors/actors.hpp"
#include "base/process/engine_child.hpp"
#include "net/client/http_client.hpp"

namespace bp {

struct engine_state {
  static inline const char* name = "engine";
  std::shared_ptr<run_context> ctx;
  engine_listener supervisor;
  std::unique_ptr<engine_child> child;  ///< owned here alone
  int port = 0;
  std::chrono::steady_clock::time_point deadline;
  bool ready = false;
  bool stopping = false;
  bool exited = false;
  std::string last_probe;
  caf::actor prober;  ///< does the blocking readiness probes, so this actor never waits on one
};

namespace {

/// The readiness prober: one GET of the health URL per message, answered with (status, error)
/// (status 0: no answer). Detached (its own thread) and linked to the engine actor, so the up to
/// 2 s a probe may take never blocks the engine actor or a scheduler thread.
caf::behavior health_prober(caf::event_based_actor*) {
  return {
      [](atom::poll, const std::string& url) -> std::tuple<int, std::string> {
        std::string err;
        auto r = net::http_fetch("GET", url, "", std::chrono::milliseconds(2000), err);
        return std::make_tuple(r ? r->status : 0, r ? std::string() : err);
      },
  };
}

/// The behavior of an actor that already quit (it failed while starting).
engine_actor::behavior_type quitting() {
  return {engine_actor::behavior_type::unsafe_init{}, caf::behavior{}};
}

std::string tail_text(const engine_child& c, std::size_t n) {
  std::string out;
  for (const auto& l : c.output().tail_lines(n)) out += "\n  | " + l;
  return out;
}

}  // namespace

namespace {

engine_actor::behavior_type engine_behavior(engine_actor::stateful_pointer<engine_state> self,
                                            std::shared_ptr<run_context> ctx, engine_listener supervisor) {
  auto& st = self->state;
  st.ctx = ctx;
  st.supervisor = supervisor;
  const auto& cfg = ctx->config;
  if (fault_for(ctx->faults, "engine") == "throw-on-start") throw std::runtime_error("injected fault: engine actor throws on start");

  auto fail = [self](const std::string& why, errc code) {
    self->send(self->state.supervisor, atom::failed::value, std::string("engine"), make_error(code, why));
    self->quit();
  };
  std::string why;
  auto exe = resolve_command(cfg, why);
  if (!exe) {
    fail(cfg.source_path + ": " + why, errc::engine_start_failed);
    return quitting();
  }
  for (const auto& e : check_launchable(cfg)) {
    fail(e.str(), errc::engine_start_failed);
    return quitting();
  }
  std::string err;
  int port = free_loopback_port(err);
  if (port <= 0) {
    fail(err, errc::engine_start_failed);
    return quitting();
  }
  st.port = port;
  launch_spec spec;
  spec.shim_exe = ctx->shim_exe;
  spec.exe = *exe;
  spec.argv.push_back(cfg.cmd);
  for (const auto& a : cfg.plain_args()) spec.argv.push_back(a);
  for (const char* a : {"--host", "127.0.0.1", "--port"}) spec.argv.push_back(a);
  spec.argv.push_back(std::to_string(port));
  for (const auto& [k, v] : ctx->engine_env()) spec.envp.push_back(k + "=" + v);
  spec.cwd = cfg.cwd;
  spec.log_path = ctx->run_dir + "/engine.log";
  spec.output_at_info = ctx->engine_output_at_info;
  spec.redact = cfg.redactor();
  engine_actor me = caf::actor_cast<engine_actor>(self);
  std::unique_ptr<engine_child> child =
      engine_child::launch(spec, [me](int status) { caf::anon_send(me, atom::reaped::value, status); }, err);
  if (!child) {
    fail("cannot start the engine: " + err, errc::engine_start_failed);
    return quitting();
  }
  st.child = std::move(child);
  auto& c = *st.child;
  st.deadline = std::chrono::steady_clock::now() +
                std::chrono::milliseconds(static_cast<long>(cfg.ready_timeout_s * 1000));
  // Which shim: bench-proxy-shim, or bench-proxy itself (`__engine-shim`) when that is missing.
  bool own_shim = spec.shim_exe.size() >= 16 && spec.shim_exe.compare(spec.shim_exe.size() - 16, 16, "bench-proxy-shim") == 0;
  spdlog::info("[engine] started {} (pid {}, port {}, supervised by shim pid {}: {}{}), log {}", *exe, c.pid(), port,
               c.shim_pid(), spec.shim_exe, own_shim ? "" : " __engine-shim", spec.log_path);
  engine_started es{c.pid(), c.shim_pid(), port, *exe, c.output_handle()};
  self->send(supervisor, atom::started::value, es);
  self->send(self, atom::poll::value);

  return {
      [self](atom::poll) {
        auto& s = self->state;
        if (s.ready || s.stopping || s.exited) return;
        const auto& c = s.ctx->config;
        if (!s.prober) s.prober = self->spawn<caf::detached + caf::linked>(health_prober);
        std::string url = "http://127.0.0.1:" + std::to_string(s.port) + c.health_path;
        self->request(s.prober, caf::infinite, atom::poll::value, url).then([self](int status, std::string err) {
          auto& s = self->state;
          if (s.ready || s.stopping || s.exited) return;
          const auto& c = s.ctx->config;
          if (status / 100 == 2) {
            s.ready = true;
            spdlog::info("[engine] ready: GET {} answered {}", c.health_path, status);
            if (fault_for(s.ctx->faults, "engine") == "throw-on-ready")
              throw std::runtime_error("injected fault: engine actor throws on ready");
            self->send(s.supervisor, atom::ready::value, s.port);
            return;
          }
          if (status == 404 || status == 405) {
            self->send(s.supervisor, atom::failed::value, std::string("engine"),
                       make_error(errc::engine_start_failed, "readiness probe GET " + c.health_path + " answered " +
                                                                 std::to_string(status) + " (set health_path in " +
                                                                 c.source_path + ")"));
            s.stopping = true;
            return;
          }
          s.last_probe = status > 0 ? "HTTP " + std::to_string(status) : err;
          if (std::chrono::steady_clock::now() > s.deadline) {
            self->send(s.supervisor, atom::failed::value, std::string("engine"),
                       make_error(errc::engine_start_failed,
                                  "engine not ready within " + std::to_string(static_cast<long>(c.ready_timeout_s)) +
                                      " s (ready_timeout_s); last probe of " + c.health_path + ": " + s.last_probe));
            s.stopping = true;
            return;
          }
          self->delayed_send(self, std::chrono::milliseconds(200), atom::poll::value);
        });
      },
      [self](atom::reaped, int status) {
        auto& s = self->state;
        s.exited = true;
        std::string desc = "engine (pid " + std::to_string(s.child->pid()) + ") " + describe_wait_status(status);
        if (s.stopping) {
          spdlog::info("[engine] {}", desc);
          self->send(s.supervisor, atom::stopped::value, desc);
        } else {
          self->send(s.supervisor, atom::exited::value, desc, tail_text(*s.child, 20), s.ready);
        }
        self->quit();
      },
      [self](atom::terminate, double grace_s) {
        auto& s = self->state;
        s.stopping = true;
        if (s.exited) return;
        spdlog::info("[engine] stopping: SIGTERM to process group {} (grace {} s)", s.child->pid(), grace_s);
        s.child->signal_group(SIGTERM);
        self->delayed_send(self, std::chrono::milliseconds(static_cast<long>(grace_s * 1000)), atom::kill::value);
      },
      [self](atom::kill) {
        auto& s = self->state;
        if (s.exited) return;
        spdlog::warn("[engine] still running after the grace period: SIGKILL to process group {}", s.child->pid());
        s.child->signal_group(SIGKILL);
      },
  };
}

}  // namespace

engine_actor spawn_engine_actor(caf::local_actor* parent, engine_listener listener, std::shared_ptr<run_context> ctx,
                                bool detached) {
  if (!detached) return parent->spawn<caf::monitored>(engine_behavior, ctx, listener);
  return parent->spawn<caf::monitored + caf::detached>(engine_behavior, ctx, listener);
}

}  // namespace bp
