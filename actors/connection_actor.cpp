#include <spdlog/spdlog.h>

#include "actors/actors.hpp"

namespace bp {

connection_actor::behavior_type connection_behavior(connection_actor::pointer self,
                                                    std::shared_ptr<net::connection_handle> handle,
                                                    connection_listener supervisor) {
  spdlog::debug("[connection {}] opened from {}", handle->id(), handle->peer());
  return {
      [self, handle, supervisor](atom::report, net::conn_stats st, std::string reason) {
        spdlog::debug("[connection {}] closed ({}): {} requests, {} proxied, {} B in, {} B out, {} aborts",
                      handle->id(), reason, st.requests, st.proxied, st.bytes_from_client, st.bytes_to_client,
                      st.client_aborts);
        self->send(supervisor, atom::stats::value, st);
        self->quit();
      },
      [handle](atom::close, std::string reason) { handle->close(reason); },
      [handle](atom::kill) {
        // Fault injection: the connection actor fails; its supervisor closes only this connection.
        throw std::runtime_error("injected fault: connection actor " + std::to_string(handle->id()) + " throws");
      },
  };
}

}  // namespace bp
