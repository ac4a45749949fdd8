#include <map>

#include <spdlog/spdlog.h>

#include "actors/actors.hpp"
#include "base/process/engine_child.hpp"

namespace bp {

struct run_supervisor_state {
  static inline const char* name = "run";
  std::shared_ptr<run_context> ctx;
  std::shared_ptr<std::promise<run_result>> promise;
  engine_actor engine;
  warmup_actor warmup;
  meta_actor meta;
  telemetry_actor telemetry;
  engine_started engine_info;
  bool engine_known = false, engine_gone = false, ready = false, stopping = false, done = false;
  int meta_restarts = 0;
  nlohmann::json warmup_json;
  std::map<std::uint64_t, connection_actor> connections;
  std::map<caf::actor_addr, std::shared_ptr<net::connection_handle>> handles;
  net::conn_stats totals;
  std::uint64_t connections_total = 0;
  run_result pending;
  std::chrono::steady_clock::time_point drain_deadline;
};

namespace {

using self_ptr = run_supervisor_actor::stateful_pointer<run_supervisor_state>;

void finish(self_ptr self) {
  auto& s = self->state;
  if (s.done) return;
  s.done = true;
  spdlog::info("[run] connections: {} opened, {} requests, {} proxied, {} client aborts, {} upstream errors",
               s.connections_total, s.totals.requests, s.totals.proxied, s.totals.client_aborts,
               s.totals.upstream_errors);
  for (auto& [id, a] : s.connections) self->send_exit(a, caf::exit_reason::user_shutdown);
  if (s.warmup) self->send_exit(s.warmup, caf::exit_reason::user_shutdown);
  if (s.meta) self->send_exit(s.meta, caf::exit_reason::user_shutdown);
  if (s.telemetry) self->send_exit(s.telemetry, caf::exit_reason::user_shutdown);
  s.ctx->status->set_state(!s.pending.error ? net::run_state::stopping : net::run_state::failed);
  s.promise->set_value(s.pending);
  self->quit();
}

/// Starts the orderly end of the run. `error` none: a requested stop (`message` is logged);
/// else the run fails with it (the first failure wins).
void begin_shutdown(self_ptr self, caf::error error, const std::string& message = {}) {
  auto& s = self->state;
  if (s.stopping) {
    if (error && !s.pending.error) s.pending.error = std::move(error);
    return;
  }
  s.stopping = true;
  s.pending.error = error;
  if (error) {
    std::string why = reason_of(error);
    spdlog::error("[run] {}", why);
    s.ctx->status->set_detail(why);
  } else {
    spdlog::info("[run] {}", message);
  }
  s.ctx->status->set_state(!error ? net::run_state::stopping : net::run_state::failed);
  // In-flight streams may finish (drain_timeout_s) only on an orderly stop.
  double drain = !error ? s.ctx->config.drain_timeout_s : 0;
  s.drain_deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<long>(drain * 1000));
  if (s.ctx->proxy) {
    // The listener closes on the proxy's I/O thread, which then starts the drain with a message:
    // nothing here waits for that thread, so this actor keeps handling Ctrl-C and faults.
    auto me = caf::actor_cast<run_supervisor_actor>(self);
    s.ctx->proxy->stop_accepting([me] { caf::anon_send(me, atom::drain::value); });
  } else {
    self->send(self, atom::drain::value);
  }
}

}  // namespace

namespace {

run_supervisor_actor::behavior_type run_supervisor(self_ptr self, std::shared_ptr<run_context> ctx,
                                                   std::shared_ptr<std::promise<run_result>> result) {
  auto& s = self->state;
  s.ctx = ctx;
  s.promise = result;
  ctx->status->set_state(net::run_state::starting);
  ctx->status->set_config_description(ctx->config.description);
  s.engine = ctx->spawn.engine(self, self, ctx);

  self->set_down_handler([self](caf::down_msg& dm) {
    auto& s = self->state;
    std::string reason = self->system().render(dm.reason);
    if (dm.source == s.engine.address()) {
      s.engine_gone = true;
      if (dm.reason && dm.reason != caf::exit_reason::normal) {
        // The engine actor failed: its child dies with it (the actor alone owns it; engine_child's
        // destructor, on the detached actor's own thread, kills the group and waits). Never a
        // silent restart: the process /meta describes would be another one.
        begin_shutdown(self, make_error(errc::failure, "engine actor failed: " + reason));
      }
      if (s.stopping) self->send(self, atom::drain::value);
      return;
    }
    if (s.telemetry && dm.source == s.telemetry.address()) {
      // Conditions are recorded, never required: a failed telemetry actor is logged, not fatal.
      if (dm.reason && dm.reason != caf::exit_reason::normal && dm.reason != caf::exit_reason::user_shutdown)
        spdlog::warn("[run] telemetry actor failed ({}); telemetry.csv ends here", reason);
      s.telemetry = nullptr;
      return;
    }
    if (dm.source == s.warmup.address()) {
      s.warmup = nullptr;
      if (dm.reason && dm.reason != caf::exit_reason::normal && !s.stopping)
        begin_shutdown(self, make_error(errc::warmup_failed, "warmup actor failed: " + reason));
      return;
    }
    if (dm.source == s.meta.address()) {
      s.meta = nullptr;
      if (dm.reason && dm.reason != caf::exit_reason::normal && !s.stopping && !s.ctx->status->meta()) {
        if (s.meta_restarts++ < 1) {
          spdlog::warn("[run] meta actor failed ({}); restarting it once", reason);
          s.meta = s.ctx->spawn.meta(self, self, s.ctx, s.engine_info, s.warmup_json);
        } else {
          begin_shutdown(self, make_error(errc::failure, "meta actor failed twice: " + reason + "; no snapshot"));
        }
      }
      return;
    }
    auto it = s.handles.find(dm.source);
    if (it != s.handles.end()) {
      if (dm.reason && dm.reason != caf::exit_reason::normal) {
        spdlog::warn("[run] connection actor {} failed ({}); closing that connection only", it->second->id(), reason);
        it->second->close("connection actor failed");
      }
      s.connections.erase(it->second->id());
      s.handles.erase(it);
    }
  });

  return {
      [self](atom::started, engine_started e) {
        auto& s = self->state;
        s.engine_info = e;
        s.engine_known = true;
        s.ctx->status->set_engine_pid(e.pid);
      },
      [self](atom::ready, int port) {
        auto& s = self->state;
        if (s.stopping) return;
        s.ready = true;
        s.ctx->status->set_engine_port(port);
        if (s.ctx->proxy) s.ctx->proxy->set_upstream_port(static_cast<std::uint16_t>(port));
        s.ctx->status->set_state(net::run_state::warming);
        if (s.ctx->telemetry_interval_ms > 0 && !s.ctx->run_dir.empty() && !s.telemetry && s.ctx->spawn.telemetry)
          s.telemetry = s.ctx->spawn.telemetry(self, s.ctx, s.engine_info);
        if (s.ctx->config.warmup == 0) {
          self->send(self, atom::warmup::value, std::vector<double>{}, s.ctx->config.model);
          return;
        }
        spdlog::info("[run] engine ready on 127.0.0.1:{}; warming up with {} requests", port, s.ctx->config.warmup);
        s.warmup = s.ctx->spawn.warmup(self, self, s.ctx, port);
      },
      [self](atom::warmup, std::vector<double> elapsed, std::string model) {
        auto& s = self->state;
        if (s.stopping) return;
        s.warmup_json = {{"requests", elapsed.size()}, {"model", model}, {"elapsed_ms", elapsed}};
        s.ctx->status->set_state(net::run_state::snapshotting);
        s.meta = s.ctx->spawn.meta(self, self, s.ctx, s.engine_info, s.warmup_json);
      },
      [self](atom::published, std::string id, std::string path) {
        auto& s = self->state;
        s.pending.snapshot_id = id;
        s.pending.meta_path = path;
        if (s.stopping) return;
        s.ctx->status->set_state(net::run_state::ready);
        spdlog::info("[run] ready: serving {} with snapshot {}", s.ctx->listen_address, id);
      },
      [self](atom::failed, std::string who, caf::error error) {
        spdlog::debug("[run] failure reported by {}", who);
        begin_shutdown(self, std::move(error));
      },
      [self](atom::exited, std::string desc, std::string tail, bool was_ready) {
        auto& s = self->state;
        s.engine_gone = true;
        std::string msg = desc + (was_ready ? " after it was ready" : " during startup") +
                          "; bench-proxy does not restart engines (the snapshot would describe another process)." +
                          (tail.empty() ? "" : " Last output:" + tail);
        if (s.stopping) {
          return finish(self);
        }
        begin_shutdown(self, make_error(was_ready ? errc::engine_died : errc::engine_start_failed, msg));
      },
      [self](atom::stopped, std::string desc) {
        auto& s = self->state;
        s.engine_gone = true;
        spdlog::info("[run] {}; its process tree is gone", desc);
        if (s.stopping) finish(self);
      },
      [self](atom::stop, std::string why) { begin_shutdown(self, caf::error{}, "stop requested (" + why + "): shutting down"); },
      [self](atom::drain) {
        auto& s = self->state;
        if (s.done) return;
        std::size_t busy = s.ctx->proxy ? s.ctx->proxy->in_flight() : 0;
        if (busy > 0 && std::chrono::steady_clock::now() < s.drain_deadline) {
          self->delayed_send(self, std::chrono::milliseconds(50), atom::drain::value);
          return;
        }
        if (busy > 0) spdlog::warn("[run] {} requests still in flight after drain_timeout_s; closing them", busy);
        if (s.engine_gone || !s.engine_known) {
          if (!s.engine_known && !s.engine_gone) {
            // The engine actor may still be launching: ask it to stop; it answers when gone.
            self->send(s.engine, atom::terminate::value, s.ctx->config.stop_grace_s);
            return;
          }
          return finish(self);
        }
        self->send(s.engine, atom::terminate::value, s.ctx->config.stop_grace_s);
      },
      [self](atom::opened, std::shared_ptr<net::connection_handle> h) {
        auto& s = self->state;
        connection_listener me = self;
        auto a = self->spawn<caf::monitored>(connection_behavior, h, me);
        s.connections[h->id()] = a;
        s.handles[a.address()] = h;
        s.connections_total++;
        std::string f = fault_for(s.ctx->faults, "connection");
        if (f == "throw" || f == "throw-peer:" + h->peer()) self->send(a, atom::kill::value);
      },
      [self](atom::closed, std::uint64_t id, net::conn_stats st, std::string reason) {
        auto& s = self->state;
        auto it = s.connections.find(id);
        if (it == s.connections.end()) {
          self->send(self, atom::stats::value, st);
          return;
        }
        self->send(it->second, atom::report::value, st, reason);
      },
      [self](atom::stats, net::conn_stats st) {
        auto& t = self->state.totals;
        t.requests += st.requests;
        t.proxied += st.proxied;
        t.bytes_from_client += st.bytes_from_client;
        t.bytes_to_client += st.bytes_to_client;
        t.client_aborts += st.client_aborts;
        t.upstream_errors += st.upstream_errors;
        t.bad_requests += st.bad_requests;
      },
  };
}

}  // namespace

run_supervisor_actor spawn_run_supervisor(caf::actor_system& sys, std::shared_ptr<run_context> ctx,
                                          std::shared_ptr<std::promise<run_result>> result) {
  if (!ctx->spawn.engine)
    ctx->spawn.engine = [](caf::local_actor* p, engine_listener l, std::shared_ptr<run_context> c) {
      return spawn_engine_actor(p, std::move(l), std::move(c));
    };
  if (!ctx->spawn.warmup)
    ctx->spawn.warmup = [](caf::local_actor* p, warmup_listener l, std::shared_ptr<run_context> c, int port) {
      return spawn_warmup_actor(p, std::move(l), std::move(c), port);
    };
  if (!ctx->spawn.meta) ctx->spawn.meta = spawn_meta_actor;
  if (!ctx->spawn.telemetry) ctx->spawn.telemetry = spawn_telemetry_actor;
  return sys.spawn(run_supervisor, ctx, result);
}

}  // namespace bp
