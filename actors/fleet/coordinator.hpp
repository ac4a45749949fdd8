#pragma once
/// The coordinator side of a fleet: connects to every agent (each on its own thread, so an
/// unreachable one holds nobody up), greets it with the token, and hands each free agent the next
/// row whose placement its labels satisfy, in the sweep's order. A lost agent (CAF 0.17: the
/// monitor's down message, `remote_link_unreachable`, within the heartbeat's few seconds) fails
/// its row, or with `retry_elsewhere` gives the row back for another matching agent; the agent is
/// tried again and, when it is back (restarted), gets work again.
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "actors/fleet/fleet.hpp"
#include "actors/fleet/guard.hpp"

namespace bp::fleet {

struct row {
  std::size_t index = 0;  ///< position in the sweep's plan
  std::map<std::string, std::string> placement;
  job j;  ///< everything but the token
};

struct row_outcome {
  bool ran = false;   ///< an agent returned a result for it
  result r;           ///< the agent's answer (files, ok, error)
  std::string agent;  ///< which agent ran it (or last tried)
  std::string error;  ///< why it did not run (lost agent, no match, refused...)
  std::int64_t clock_offset_us = 0;  ///< agent's clock minus ours at its hello (recorded, never used to time)
  hello agent_hello;                 ///< what the agent said of itself (host, version, GPUs, labels)
  std::vector<std::string> attempts;  ///< "agent: what happened", in order
  bool interrupted = false;           ///< the coordinator was interrupted before or while it ran
};

struct coordinator_options {
  std::vector<agent_entry> agents;
  std::string token;
  bool retry_elsewhere = false;
  tls_options tls;
  double reconnect_s = 2;  ///< between attempts to reach a lost or unreachable agent
  guard_limits limits;     ///< what an agent may cost before and after it proved the token
};

/// Runs `rows`; `on_done` is called (from agent threads, serialized) once per row as it ends.
/// Returns when every row has ended or `cancel` is set and the running rows were stopped.
/// Returns the hello of each agent that answered (name -> hello).
std::map<std::string, hello> dispatch(caf::actor_system& sys, const coordinator_options& o, const std::vector<row>& rows,
                                      const std::atomic<bool>& cancel,
                                      const std::function<void(const row&, const row_outcome&)>& on_done);

}  // namespace bp::fleet
