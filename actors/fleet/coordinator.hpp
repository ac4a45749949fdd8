#pragma once
/// The coordinator side of a fleet: one event-based actor (fleet_coordinator_actor,
/// actors/actors.hpp) supervises every agent, with per-agent state instead of a thread each. For
/// each agent it dials (a short-lived detached dialer: the guard's TCP connect, TLS and token
/// proofs, then CAF's connect), greets it with the token (`request(...).then`, a deadline), monitors
/// it, and hands it the next row whose placement its labels satisfy, in the sweep's order. A lost
/// agent (CAF 0.17: the monitor's down message, `remote_link_unreachable`, within the heartbeat's
/// few seconds) fails its row, or with `retry_elsewhere` gives the row back for another matching
/// agent; an unreachable or lost agent is dialled again on a timer and, when it is back
/// (restarted), gets work again. docs/fleet.md has the table of what happens when.
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "actors/actors.hpp"
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
  double reconnect_s = 2;       ///< between attempts to reach a lost or unreachable agent
  double give_up_s = 10;        ///< unreachable this long while no other agent runs a row: its rows fail
  double hello_timeout_s = 15;  ///< for the agent's answer to the greeting
  guard_limits limits;          ///< what an agent may cost before and after it proved the token
  /// How the coordinator reaches agent K (an index into `agents`); empty: the real dialer, through
  /// one outbound guard per agent (spawn_coordinator builds them). Tests on CAF's test coordinator
  /// put a stand-in here that answers with stand-in agents.
  std::function<fleet_dialer_actor(caf::local_actor* parent, std::size_t agent)> dialer;
};

/// Called in the coordinator, once per row, as it ends (never throws: a failure to store the row
/// becomes the row's reason).
using row_callback = std::function<void(const row&, const row_outcome&)>;

/// What the coordinator delivers when every row has ended: each agent that answered its hello,
/// by name.
using dispatch_result = std::map<std::string, hello>;

/// Spawns the coordinator of `rows`. It ends by itself once every row has ended (on_done called
/// for each, also for rows no agent could take, with the reasons) and sets `done`; a `stop`
/// message (Ctrl-C) stops the running rows on their agents and starts nothing new. `detached`:
/// on a thread of its own. The CLI spawns it scheduled (false), as CAF's test coordinator does:
/// its timers and the hello's deadline are messages CAF's clock holds with a strong reference to
/// it, and a detached actor's thread waits for the actor's destruction, so a timer still pending
/// when the sweep ended kept ~actor_system waiting forever once the clock had stopped (seen in
/// test_fleet: a coordinator done, its process never exiting). on_done's file writes are short.
/// Throws std::runtime_error when the guards cannot start (TLS files, loopback).
fleet_coordinator_actor spawn_coordinator(caf::actor_system& sys, coordinator_options o, std::vector<row> rows,
                                          row_callback on_done, std::shared_ptr<std::promise<dispatch_result>> done,
                                          bool detached = true);

}  // namespace bp::fleet
