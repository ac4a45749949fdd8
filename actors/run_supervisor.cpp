#include <algorithm>
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
  /// Shutdown: an orderly stop drains connections until this deadline (the actor clock's time, so
  /// that tests on the test coordinator move it); a failed run closes them at once.
  bool orderly = false;
  caf::actor_clock::time_point drain_deadline;
  bool listener_closed = false;   // the connections were told to drain or close
  bool gave_up = false;           // some connection actors never reported: going on without them
  bool terminate_sent = false;
};

namespace {

using self_ptr = run_supervisor_actor::stateful_pointer<run_supervisor_state>;

/// How long past the drain deadline the supervisor waits for the connection actors' reports
/// (each aborts its connection at the deadline, and reports once its I/O thread says it ended)
/// before it goes on without them: a backstop, never reached unless an I/O thread is stuck.
constexpr auto kReportGrace = std::chrono::seconds(2);

void finish(self_ptr self) {
  auto& s = self->state;
  if (s.done) return;
  s.done = true;
  spdlog::info("[run] connections: {} opened: {}", s.connections_total, net::describe(s.totals));
  s.pending.connections = s.connections_total;
  s.pending.connection_totals = s.totals;
  // Only actors that never reported are left (gave_up): their connections close now.
  for (auto& [id, a] : s.connections) self->send(a, atom::close::value, std::string("bench-proxy stopped"));
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
  s.orderly = !error;
  double drain = s.orderly ? s.ctx->config.drain_timeout_s : 0;
  s.drain_deadline = self->clock().now() + std::chrono::milliseconds(static_cast<long>(drain * 1000));
  if (s.ctx->proxy) {
    // The listener closes on the proxy's I/O thread, which then starts the drain with a message:
    // nothing here waits for that thread, so this actor keeps handling Ctrl-C and faults.
    auto me = caf::actor_cast<run_supervisor_actor>(self);
    s.ctx->proxy->stop_accepting([me] { caf::anon_send(me, atom::drain::value); });
  } else {
    self->send(self, atom::drain::value);
  }
}

/// Asks one connection actor to end its connection as this shutdown wants: drain it until the
/// deadline (orderly) or close it now (a failed run).
void end_connection(self_ptr self, const connection_actor& a) {
  auto& s = self->state;
  if (!s.orderly) {
    self->send(a, atom::close::value, std::string("bench-proxy is stopping: the run failed"));
    return;
  }
  auto left = std::max(caf::timespan{0}, std::chrono::duration_cast<caf::timespan>(s.drain_deadline - self->clock().now()));
  self->send(a, atom::drain::value, left, std::string("bench-proxy is stopping"));
}

/// The next step of a shutdown, once the one before it is done: connections drained (every
/// connection actor reported, or the grace after the deadline passed) -> the engine stopped ->
/// the result.
void advance_shutdown(self_ptr self) {
  auto& s = self->state;
  if (s.done || !s.stopping || !s.listener_closed) return;
  if (!s.connections.empty() && !s.gave_up) return;
  if (s.engine_gone) return finish(self);
  if (s.terminate_sent) return;
  // The engine actor may still be launching: it is asked all the same, and answers when it is gone.
  s.terminate_sent = true;
  self->send(s.engine, atom::terminate::value, s.ctx->config.stop_grace_s);
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
      advance_shutdown(self);
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
      auto h = it->second;
      s.connections.erase(h->id());
      s.handles.erase(it);
      if (dm.reason && dm.reason != caf::exit_reason::normal) {
        // The actor failed (an exception, which already aborted the connection, or killed): that
        // connection is aborted, no other is touched. Its counters come here instead, at once if
        // the connection already ended.
        spdlog::warn("[run] connection actor {} failed ({}); aborting that connection only", h->id(), reason);
        auto me = self->address();
        h->on_end([me](const net::conn_stats& st, const std::string&) {
          if (auto sup = caf::actor_cast<run_supervisor_actor>(me)) caf::anon_send(sup, atom::stats::value, st);
        });
        h->abort("connection actor failed: " + reason);
      }
      advance_shutdown(self);
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
        if (s.stopping) return advance_shutdown(self);
        begin_shutdown(self, make_error(was_ready ? errc::engine_died : errc::engine_start_failed, msg));
      },
      [self](atom::stopped, std::string desc) {
        auto& s = self->state;
        s.engine_gone = true;
        spdlog::info("[run] {}; its process tree is gone", desc);
        advance_shutdown(self);
      },
      [self](atom::stop, std::string why) { begin_shutdown(self, caf::error{}, "stop requested (" + why + "): shutting down"); },
      [self](atom::drain) {
        auto& s = self->state;
        if (s.done || !s.stopping) return;
        auto now = self->clock().now();
        if (!s.listener_closed) {
          // No connection opens from here on: each connection actor ends its own connection.
          s.listener_closed = true;
          for (auto& [id, a] : s.connections) end_connection(self, a);
          if (!s.connections.empty()) {
            spdlog::info("[run] {} {} open connections", s.orderly ? "draining" : "closing", s.connections.size());
            // Each actor keeps the deadline itself (it aborts what is still busy then); this is
            // only the backstop for an actor that never reports.
            auto left = std::max(caf::timespan{0}, std::chrono::duration_cast<caf::timespan>(s.drain_deadline - now));
            self->delayed_send(self, left + kReportGrace, atom::drain::value);
          }
        } else if (!s.connections.empty() && now >= s.drain_deadline + kReportGrace) {
          spdlog::warn("[run] {} connection actors did not report within {} s of the drain deadline; going on "
                       "without their counters",
                       s.connections.size(), std::chrono::duration_cast<std::chrono::seconds>(kReportGrace).count());
          s.gave_up = true;
        }
        advance_shutdown(self);
      },
      [self](atom::opened, std::shared_ptr<net::connection_handle> h) {
        auto& s = self->state;
        auto a = s.ctx->spawn.connection(self, h, self);
        s.connections[h->id()] = a;
        s.handles[a.address()] = h;
        s.connections_total++;
        std::string f = fault_for(s.ctx->faults, "connection");
        if (f == "throw" || f == "throw-peer:" + h->peer()) self->send(a, atom::kill::value);
        // Accepted as the listener closed: it ends like the others.
        if (s.listener_closed) end_connection(self, a);
      },
      [self](atom::stats, net::conn_stats st) { self->state.totals += st; },
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
  if (!ctx->spawn.connection)
    ctx->spawn.connection = [](caf::local_actor* p, std::shared_ptr<net::connection_handle> h, connection_listener l) {
      return p->spawn<caf::monitored>(connection_behavior, std::move(h), std::move(l));
    };
  return sys.spawn(run_supervisor, ctx, result);
}

}  // namespace bp
