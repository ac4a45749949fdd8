// One actor per proxied connection, from its birth to its end (docs/architecture.md, the actor
// map). The bytes never come here: the connection's I/O thread tells this actor of the end once,
// with the counters; this actor is the one through which the rest of the process closes, drains or
// aborts the connection (its handle's commands, which that I/O thread picks up).
#include <spdlog/spdlog.h>

#include "actors/actors.hpp"

namespace bp {

namespace {

std::string what_of(const std::exception_ptr& e) {
  try {
    if (e) std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
  }
  return "unknown exception";
}

}  // namespace

connection_actor::behavior_type connection_behavior(connection_actor::pointer self,
                                                    std::shared_ptr<net::connection_handle> handle,
                                                    connection_listener supervisor) {
  const std::uint64_t id = handle->id();
  spdlog::debug("[connection {}] opened from {}", id, handle->peer());
  // The end comes from the connection's I/O thread. A weak address: the handle (which the session
  // holds) must not keep this actor alive; a message to an actor that is gone is dropped.
  caf::actor_addr me = self->address();
  handle->on_end([me](const net::conn_stats& st, const std::string& why) {
    if (auto a = caf::actor_cast<connection_actor>(me)) caf::anon_send(a, atom::closed::value, st, why);
  });
  // A fault (a handler throws) aborts this connection, and only this one, before the actor goes;
  // its supervisor then takes over the counters (run_supervisor.cpp, the down handler).
  self->set_exception_handler([handle](caf::scheduled_actor* a, std::exception_ptr& e) -> caf::error {
    handle->abort("connection actor failed: " + what_of(e));
    return caf::scheduled_actor::default_exception_handler(a, e);
  });
  return {
      [self, id, supervisor](atom::closed, net::conn_stats st, std::string why) {
        spdlog::debug("[connection {}] closed ({}): {}", id, why, net::describe(st));
        self->send(supervisor, atom::stats::value, st);
        self->quit();
      },
      [handle](atom::close, std::string why) { handle->close(why); },
      [self, handle](atom::drain, caf::timespan within, std::string why) {
        handle->drain(why);
        // Still open at the deadline: a request is in flight that did not finish in time. A
        // connection that ended first ended this actor too, and this message goes nowhere.
        self->delayed_send(self, within, atom::abort::value,
                           std::string("drain_timeout_s passed with a request in flight (") + why + ")");
      },
      [id, handle](atom::abort, std::string why) {
        spdlog::warn("[connection {}] aborting the connection from {}: {}", id, handle->peer(), why);
        handle->abort(why);
      },
      [id](atom::kill) {
        // Fault injection: the connection actor fails; the exception handler aborts the connection.
        throw std::runtime_error("injected fault: connection actor " + std::to_string(id) + " throws");
      },
  };
}

}  // namespace bp
