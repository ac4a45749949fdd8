#include "actors/fleet/coordinator.hpp"

#include <chrono>
#include <set>

#include <caf/io/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/fleet/guard.hpp"

namespace bp::fleet {

namespace {

enum class row_status { pending, running, done };

/// One agent as the coordinator sees it. `idle`: not connected (dialled again on a timer while
/// `retry_armed`); `dialing` and `greeting` wait for an answer; `ready`: connected, no row;
/// `running`: a row sent, waiting for its result or the agent's down message; `retired`: it
/// takes no more work (nothing left for it, refused, given up, failed).
enum class phase { idle, dialing, greeting, ready, running, retired };

struct agent_slot {
  agent_entry entry;
  std::map<std::string, std::string> labels;  ///< the file's, then the hello's (the file's win)
  phase ph = phase::idle;
  fleet_agent_actor handle;
  std::uint64_t gen = 0;  ///< bumped by each attempt and each loss: an answer of an older one is ignored
  bool retry_armed = false;
  bool greeted = false;  ///< it answered a hello once (its labels are known)
  std::int64_t offset_us = 0;
  caf::actor_clock::time_point last_ok;  ///< start, the last hello, the last loss (for give_up_s)
  std::size_t row = 0;                   ///< while running
  bool stop_sent = false;
};

struct coordinator_state {
  coordinator_options o;
  std::vector<row> rows;
  row_callback on_done;
  std::shared_ptr<std::promise<dispatch_result>> done;
  std::vector<agent_slot> slots;
  std::vector<row_status> status;
  std::vector<std::set<std::string>> excluded;  // agents a row must not go to again (lost there)
  std::vector<row_outcome> outcomes;
  std::map<std::string, std::string> notes;  // agent -> why it took no (more) work
  dispatch_result hellos;
  bool cancel = false;
  bool finished = false;

  ~coordinator_state() {
    // Never a caller left waiting: a coordinator that ended without finishing says so.
    if (done && !finished) {
      try {
        done->set_exception(std::make_exception_ptr(std::runtime_error("the fleet coordinator ended early")));
      } catch (...) {
      }
    }
  }

  static inline const char* name = "fleet_coordinator";
};

using self_ptr = fleet_coordinator_actor::stateful_pointer<coordinator_state>;

std::int64_t now_unix_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

caf::timespan seconds(double s) {
  return std::chrono::duration_cast<caf::timespan>(std::chrono::duration<double>(s));
}

bool all_done(const coordinator_state& st) {
  for (auto s : st.status)
    if (s != row_status::done) return false;
  return true;
}

bool any_running(const coordinator_state& st) {
  for (const auto& s : st.slots)
    if (s.ph == phase::running) return true;
  return false;
}

/// The first pending row agent `k` may take (sweep order), or rows.size().
std::size_t next_for(const coordinator_state& st, std::size_t k) {
  const auto& s = st.slots[k];
  for (std::size_t i = 0; i < st.rows.size(); ++i)
    if (st.status[i] == row_status::pending && matches(st.rows[i].placement, s.labels) &&
        !st.excluded[i].count(s.entry.name))
      return i;
  return st.rows.size();
}

void advance(self_ptr self, std::size_t k);

/// Calls on_done; whatever it throws becomes a log line (the CLI's on_done never throws).
void finish(self_ptr self, std::size_t i, row_outcome out) {
  auto& st = self->state;
  st.status[i] = row_status::done;
  st.outcomes[i] = out;
  try {
    st.on_done(st.rows[i], out);
  } catch (const std::exception& e) {
    spdlog::error("[fleet] {}: storing the row: {}", st.rows[i].j.row, e.what());
  }
}

/// Every agent retired: what no agent took fails with the reasons, then the result is delivered.
void check_end(self_ptr self) {
  auto& st = self->state;
  if (st.finished) return;
  for (const auto& s : st.slots)
    if (s.ph != phase::retired) return;
  for (std::size_t i = 0; i < st.rows.size(); ++i) {
    if (st.status[i] == row_status::done) continue;
    row_outcome out = st.outcomes[i];
    if (st.cancel) {
      out.error = "interrupted before it ran";
      out.interrupted = true;
    } else {
      std::string why;
      for (const auto& a : st.o.agents) {
        if (!matches(st.rows[i].placement, a.labels)) continue;
        auto it = st.notes.find(a.name);
        why += (why.empty() ? "" : "; ") + a.name + ": " +
               (st.excluded[i].count(a.name) ? "lost it mid-row" : it != st.notes.end() ? it->second : "no answer");
      }
      out.error = why.empty() ? "no agent's labels match its placement" : "no agent could run it (" + why + ")";
    }
    finish(self, i, out);
  }
  st.finished = true;
  st.done->set_value(st.hellos);
  self->quit();
}

void retire(self_ptr self, std::size_t k) {
  auto& s = self->state.slots[k];
  s.ph = phase::retired;
  s.retry_armed = false;
  ++s.gen;
  if (s.handle) self->demonitor(s.handle.address());
  s.handle = nullptr;
  check_end(self);
}

/// Gives every agent that waits for work a look at the rows (a row ended or came back).
void wake_all(self_ptr self) {
  for (std::size_t k = 0; k < self->state.slots.size(); ++k) {
    auto ph = self->state.slots[k].ph;
    if (ph == phase::idle || ph == phase::ready) advance(self, k);
  }
  check_end(self);
}

/// The slot failed in the coordinator itself (an exception): its row goes back for another
/// agent, and its rows fail with "NAME: failed: ..." when no other takes them.
void fail_slot(self_ptr self, std::size_t k, const std::string& what) {
  auto& st = self->state;
  auto& s = st.slots[k];
  spdlog::error("[fleet] agent {}: {}", s.entry.name, what);
  st.notes[s.entry.name] = "failed: " + what;
  if (s.ph == phase::running && st.status[s.row] == row_status::running) {
    st.status[s.row] = row_status::pending;
    st.excluded[s.row].insert(s.entry.name);
  }
  retire(self, k);
  wake_all(self);
}

void greet(self_ptr self, std::size_t k) {
  auto& st = self->state;
  auto& s = st.slots[k];
  s.ph = phase::greeting;
  self->monitor(s.handle);
  auto gen = s.gen;
  std::int64_t sent = now_unix_us();
  self->request(s.handle, seconds(st.o.hello_timeout_s), atom::fhello::value, st.o.token)
      .then(
          [=](const hello& he) {
            auto& st = self->state;
            auto& s = st.slots[k];
            if (s.ph != phase::greeting || s.gen != gen) return;
            std::int64_t back = now_unix_us();
            s.offset_us = he.clock_unix_us - (sent + back) / 2;
            for (const auto& kv : he.labels) {
              auto eq = kv.find('=');
              if (eq != std::string::npos) s.labels.emplace(kv.substr(0, eq), kv.substr(eq + 1));  // the file's win
            }
            st.hellos[s.entry.name] = he;
            s.greeted = true;
            s.ph = phase::ready;
            s.last_ok = self->clock().now();
            spdlog::info("[fleet] agent {} at {}:{} ({}, clock offset {} us)", s.entry.name, s.entry.host, s.entry.port,
                         he.host, s.offset_us);
            advance(self, k);
          },
          [=](caf::error& e) {
            auto& st = self->state;
            auto& s = st.slots[k];
            if (s.ph != phase::greeting || s.gen != gen) return;
            std::string why = self->system().render(e);
            st.notes[s.entry.name] = "refused the hello: " + why;
            spdlog::error("[fleet] agent {} ({}:{}) refused the hello: {}", s.entry.name, s.entry.host, s.entry.port,
                          why);
            retire(self, k);  // a wrong token does not get better by retrying
            wake_all(self);
          });
}

void dialed(self_ptr self, std::size_t k, dial_outcome r) {
  auto& st = self->state;
  auto& s = st.slots[k];
  if (r.agent) {
    s.handle = std::move(r.agent);
    greet(self, k);
    return;
  }
  std::string why = r.error;
  if (r.refused) {
    st.notes[s.entry.name] = "refused the hello: " + why;
    spdlog::error("[fleet] agent {} ({}:{}) refused the hello: {}", s.entry.name, s.entry.host, s.entry.port, why);
    retire(self, k);  // a wrong token does not get better by retrying
    wake_all(self);
    return;
  }
  if (why.rfind("unreachable", 0) != 0)
    why = "unreachable at " + s.entry.host + ":" + std::to_string(s.entry.port) + " (" + why + ")";
  st.notes[s.entry.name] = why;
  s.ph = phase::idle;
  // Keep trying while others work (a restarted agent gets work again); alone and unreachable for
  // give_up_s, give up: its rows fail with this reason.
  if (!any_running(st) && self->clock().now() - s.last_ok > seconds(st.o.give_up_s)) {
    spdlog::warn("[fleet] agent {}: {}; giving up", s.entry.name, why);
    retire(self, k);
    wake_all(self);
    return;
  }
  s.retry_armed = true;
  self->delayed_send(self, seconds(st.o.reconnect_s), atom::fretry::value, k, s.gen);
}

void dial(self_ptr self, std::size_t k) {
  auto& st = self->state;
  auto& s = st.slots[k];
  s.ph = phase::dialing;
  auto gen = ++s.gen;
  fleet_dialer_actor d;
  try {
    d = st.o.dialer(self, k);
  } catch (const std::exception& e) {
    dial_outcome r;
    r.error = std::string("cannot start a dialer: ") + e.what();
    dialed(self, k, r);
    return;
  }
  self->request(d, caf::infinite, atom::fdial::value)
      .then(
          [=](dial_outcome& r) {
            auto& s = self->state.slots[k];
            if (s.ph == phase::dialing && s.gen == gen) dialed(self, k, std::move(r));
          },
          [=](caf::error& e) {
            auto& s = self->state.slots[k];
            if (s.ph != phase::dialing || s.gen != gen) return;
            dial_outcome r;
            r.error = self->system().render(e);
            dialed(self, k, std::move(r));
          });
}

void run_row(self_ptr self, std::size_t k, std::size_t i) {
  auto& st = self->state;
  auto& s = st.slots[k];
  st.status[i] = row_status::running;
  s.ph = phase::running;
  s.row = i;
  s.stop_sent = false;
  job j = st.rows[i].j;
  j.token = st.o.token;
  self->send(s.handle, atom::frun::value, std::move(j), caf::actor_cast<fleet_listener>(self));
}

/// What agent `k` does next, when it waits for nothing: the loop of the former per-agent thread.
void advance(self_ptr self, std::size_t k) {
  auto& st = self->state;
  auto& s = st.slots[k];
  if (st.finished || (s.ph != phase::idle && s.ph != phase::ready)) return;
  if (all_done(st) || st.cancel) {
    retire(self, k);
    return;
  }
  try {
    fault_point("coordinator-worker");
    std::size_t pick = next_for(st, k);
    if (s.ph == phase::idle) {
      // Nothing it could still do; one not greeted yet is dialled all the same: the labels its
      // hello reports may match a row that the file's do not.
      if (pick == st.rows.size() && !any_running(st) && s.greeted) {
        retire(self, k);
        return;
      }
      if (!s.retry_armed) dial(self, k);
      return;
    }
    if (pick < st.rows.size()) {
      run_row(self, k, pick);
      return;
    }
    // Nothing for it now; a running row may come back for retry (wake_all looks again).
    if (!any_running(st)) retire(self, k);
  } catch (const std::exception& e) {  // never out of the actor: this agent's rows go elsewhere or fail
    fail_slot(self, k, e.what());
  }
}

/// The running slot of the row named `name` (an answer for a row that is not running is stale).
std::size_t slot_of_row(const coordinator_state& st, const std::string& name) {
  for (std::size_t k = 0; k < st.slots.size(); ++k)
    if (st.slots[k].ph == phase::running && st.rows[st.slots[k].row].j.row == name) return k;
  return st.slots.size();
}

row_outcome outcome_of(const coordinator_state& st, const agent_slot& s) {
  row_outcome out;
  out.agent = s.entry.name;
  out.clock_offset_us = s.offset_us;
  auto it = st.hellos.find(s.entry.name);
  if (it != st.hellos.end()) out.agent_hello = it->second;
  return out;
}

void on_result(self_ptr self, const std::string& name, const result& got) {
  auto& st = self->state;
  std::size_t k = slot_of_row(st, name);
  if (k == st.slots.size()) {
    spdlog::debug("[fleet] a result for {}, which no agent runs now: ignored", name);
    return;
  }
  auto& s = st.slots[k];
  std::size_t i = s.row;
  s.ph = phase::ready;
  row_outcome out = outcome_of(st, s);
  out.ran = got.ok;
  out.r = got;
  out.interrupted = s.stop_sent;
  if (!got.ok) out.error = got.error.empty() ? "the agent returned no result" : got.error;
  st.outcomes[i].attempts.push_back(s.entry.name + (got.ok ? ": ran" : ": " + out.error));
  out.attempts = st.outcomes[i].attempts;
  finish(self, i, out);
  advance(self, k);  // its next row first, as the agent's own loop took it
  wake_all(self);
}

void on_down(self_ptr self, const caf::down_msg& dm) {
  auto& st = self->state;
  for (std::size_t k = 0; k < st.slots.size(); ++k) {
    auto& s = st.slots[k];
    if (!s.handle || s.handle.address() != dm.source) continue;
    s.handle = nullptr;
    ++s.gen;  // an answer still on its way (the hello) is stale
    s.last_ok = self->clock().now();
    std::string lost_why = caf::to_string(dm.reason);
    if (s.ph == phase::running) {
      std::size_t i = s.row;
      std::string why = "agent " + s.entry.name + " lost mid-row (" + lost_why + ")";
      spdlog::error("[fleet] {}: {}", st.rows[i].j.row, why);
      bool retry = st.o.retry_elsewhere && !st.cancel;
      st.outcomes[i].attempts.push_back(s.entry.name + ": lost mid-row (" + lost_why + ")");
      s.ph = phase::idle;
      if (retry) {
        st.excluded[i].insert(s.entry.name);
        st.status[i] = row_status::pending;
      } else {
        row_outcome out = outcome_of(st, s);
        out.attempts = st.outcomes[i].attempts;
        out.error = why;
        out.interrupted = s.stop_sent;
        finish(self, i, out);
      }
    } else if (s.ph != phase::retired) {
      spdlog::warn("[fleet] agent {} lost ({})", s.entry.name, lost_why);
      s.ph = phase::idle;
    }
  }
  wake_all(self);
}

void on_stop(self_ptr self, const std::string& why) {
  auto& st = self->state;
  if (st.cancel) return;
  st.cancel = true;
  spdlog::debug("[fleet] coordinator stopping: {}", why);
  for (std::size_t k = 0; k < st.slots.size(); ++k) {
    auto& s = st.slots[k];
    if (s.ph == phase::running) {
      spdlog::warn("[fleet] stopping {} on agent {}", st.rows[s.row].j.row, s.entry.name);
      self->send(s.handle, atom::fstop::value, st.o.token);
      s.stop_sent = true;
    } else if (s.ph != phase::retired) {
      retire(self, k);  // a dial or hello under way is answered to nobody
    }
  }
  check_end(self);
}

fleet_coordinator_actor::behavior_type coordinator(self_ptr self, coordinator_options o, std::vector<row> rows,
                                                   row_callback on_done,
                                                   std::shared_ptr<std::promise<dispatch_result>> done) {
  auto& st = self->state;
  st.o = std::move(o);
  st.rows = std::move(rows);
  st.on_done = std::move(on_done);
  st.done = std::move(done);
  st.status.assign(st.rows.size(), row_status::pending);
  st.excluded.resize(st.rows.size());
  st.outcomes.resize(st.rows.size());
  for (const auto& a : st.o.agents) {
    agent_slot s;
    s.entry = a;
    s.labels = a.labels;
    s.last_ok = self->clock().now();
    st.slots.push_back(std::move(s));
  }
  self->set_down_handler([=](caf::down_msg& dm) { on_down(self, dm); });
  // Every agent starts in its turn, from the mailbox (as if its retry timer fired).
  for (std::size_t k = 0; k < st.slots.size(); ++k) self->send(self, atom::fretry::value, k, std::uint64_t{0});
  if (st.slots.empty()) self->send(self, atom::stop::value, std::string("no agents"));
  return {
      [=](atom::fprogress, const std::string& name, const std::string& text) {
        auto& st = self->state;
        std::size_t k = slot_of_row(st, name);
        if (k < st.slots.size()) spdlog::info("[fleet] {} on {}: {}", name, st.slots[k].entry.name, text);
      },
      [=](atom::fresult, const std::string& name, const result& r) { on_result(self, name, r); },
      [=](atom::stop, const std::string& why) { on_stop(self, why); },
      [=](atom::fretry, std::size_t k, std::uint64_t gen) {
        auto& st = self->state;
        if (k >= st.slots.size()) return;
        auto& s = st.slots[k];
        if (s.ph != phase::idle || s.gen != gen) return;
        s.retry_armed = false;
        advance(self, k);
        check_end(self);
      },
  };
}

/// One dial through `guard`, then CAF's connect to its loopback port; answers once and quits.
fleet_dialer_actor::behavior_type dialer(fleet_dialer_actor::pointer self, std::shared_ptr<outbound_guard> guard) {
  return {
      [=](atom::fdial) -> dial_outcome {
        dial_outcome r;
        try {
          std::string why = guard->prepare(r.refused);
          if (!why.empty()) {
            r.error = why;
          } else {
            auto h = self->system().middleman().remote_actor<fleet_agent_actor>("127.0.0.1", guard->local_port());
            if (h)
              r.agent = *h;
            else
              r.error = self->system().render(h.error());
          }
        } catch (const std::exception& e) {  // never out of the actor: the attempt fails with the reason
          r.error = e.what();
          r.refused = false;
        }
        self->quit();
        return r;
      },
  };
}

}  // namespace

fleet_coordinator_actor spawn_coordinator(caf::actor_system& sys, coordinator_options o, std::vector<row> rows,
                                          row_callback on_done, std::shared_ptr<std::promise<dispatch_result>> done,
                                          bool detached) {
  if (!o.dialer) {
    // Certificates loaded once; one guard per agent (its loopback port is where CAF connects).
    // Each dialer holds its agent's guard, so a guard outlives every attempt that uses it.
    std::shared_ptr<tls_context> tls;
    if (o.tls.enabled()) tls = std::make_shared<tls_context>(o.tls, false);  // throws: names the file
    std::vector<std::shared_ptr<outbound_guard>> guards;
    for (const auto& a : o.agents) guards.push_back(std::make_shared<outbound_guard>(a, o.token, tls, o.limits));
    o.dialer = [guards](caf::local_actor* parent, std::size_t k) -> fleet_dialer_actor {
      return parent->spawn<caf::detached>(dialer, guards.at(k));
    };
  }
  if (detached)
    return sys.spawn<caf::detached>(coordinator, std::move(o), std::move(rows), std::move(on_done), std::move(done));
  return sys.spawn(coordinator, std::move(o), std::move(rows), std::move(on_done), std::move(done));
}

}  // namespace bp::fleet
