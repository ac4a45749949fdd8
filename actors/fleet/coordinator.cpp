#include "actors/fleet/coordinator.hpp"

#include <chrono>
#include <mutex>
#include <set>
#include <thread>

#include <caf/io/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/fleet/guard.hpp"

namespace bp::fleet {

namespace {

using clock_type = std::chrono::steady_clock;

enum class row_status { pending, running, done };

struct shared {
  std::mutex mu;
  std::vector<row_status> status;
  std::vector<std::set<std::string>> excluded;  // agents a row must not go to again (lost there)
  std::vector<row_outcome> outcomes;
  std::map<std::string, std::string> agent_notes;  // why an agent took no (more) work
  std::map<std::string, hello> hellos;
  std::set<std::string> working;  // agents with a row running now
  std::map<std::string, std::size_t> current;  // agent -> the row it runs now
  std::mutex done_mu;             // serializes on_done
};

std::int64_t now_unix_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// Reaches an agent through its guard: the guard dials it, both sides prove the token (TLS first
/// when on), then CAF connects to the guard's loopback port. `refused`: the token is wrong on one
/// side (retrying does not help).
caf::expected<caf::actor> connect(caf::actor_system& sys, outbound_guard& g, std::string& why, bool& refused) {
  why = g.prepare(refused);
  if (!why.empty()) return caf::make_error(caf::sec::cannot_connect_to_node, why);
  auto h = sys.middleman().remote_actor("127.0.0.1", g.local_port());
  if (!h) why = sys.render(h.error());
  return h;
}

void worker(caf::actor_system& sys, const coordinator_options& o, const agent_entry& a, outbound_guard& guard,
            const std::vector<row>& rows, const std::atomic<bool>& cancel, shared& sh,
            const std::function<void(const row&, const row_outcome&)>& on_done) {
  caf::actor handle;
  std::map<std::string, std::string> labels = a.labels;
  std::int64_t offset_us = 0;
  auto last_ok = clock_type::now();
  auto finish = [&](std::size_t i, row_outcome out) {
    {
      std::lock_guard<std::mutex> g(sh.mu);
      sh.status[i] = row_status::done;
      sh.outcomes[i] = out;
    }
    std::lock_guard<std::mutex> g(sh.done_mu);
    on_done(rows[i], out);
  };
  auto note = [&](const std::string& why) {
    std::lock_guard<std::mutex> g(sh.mu);
    sh.agent_notes[a.name] = why;
  };
  for (;;) {
    // Is there anything this agent could still do?
    bool any_pending_for_me = false, any_running = false, all_done = true;
    {
      std::lock_guard<std::mutex> g(sh.mu);
      for (std::size_t i = 0; i < rows.size(); ++i) {
        if (sh.status[i] != row_status::done) all_done = false;
        if (sh.status[i] == row_status::running) any_running = true;
        if (sh.status[i] == row_status::pending && matches(rows[i].placement, labels) && !sh.excluded[i].count(a.name))
          any_pending_for_me = true;
      }
    }
    if (all_done || cancel) return;
    fault_point("coordinator-worker");
    if (!handle) {
      if (!any_pending_for_me && !any_running) return;
      std::string why;
      bool refused = false;
      auto h = connect(sys, guard, why, refused);
      if (!h && refused) {
        note("refused the hello: " + why);
        spdlog::error("[fleet] agent {} ({}:{}) refused the hello: {}", a.name, a.host, a.port, why);
        return;  // a wrong token does not get better by retrying
      }
      if (!h) {
        if (why.rfind("unreachable", 0) != 0) why = "unreachable at " + a.host + ":" + std::to_string(a.port) + " (" + why + ")";
        note(why);
        // Keep trying while others still work (a restarted agent gets work again); alone and
        // unreachable for 10 s, give up: its rows fail with this reason.
        bool others_working;
        {
          std::lock_guard<std::mutex> g(sh.mu);
          others_working = !sh.working.empty();
        }
        if (!others_working && clock_type::now() - last_ok > std::chrono::seconds(10)) {
          spdlog::warn("[fleet] agent {}: {}; giving up", a.name, why);
          return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<long>(o.reconnect_s * 1000)));
        continue;
      }
      // Greet it: the token, its labels and GPUs, its clock.
      caf::scoped_actor self{sys};
      std::int64_t sent = now_unix_us();
      bool ok = false;
      self->request(*h, std::chrono::seconds(15), atom::fhello::value, o.token)
          .receive(
              [&](const hello& he) {
                std::int64_t back = now_unix_us();
                offset_us = he.clock_unix_us - (sent + back) / 2;
                for (const auto& kv : he.labels) {
                  auto eq = kv.find('=');
                  if (eq != std::string::npos) labels.emplace(kv.substr(0, eq), kv.substr(eq + 1));  // the file's win
                }
                std::lock_guard<std::mutex> g(sh.mu);
                sh.hellos[a.name] = he;
                ok = true;
              },
              [&](caf::error& e) { why = sys.render(e); });
      if (!ok) {
        note("refused the hello: " + why);
        spdlog::error("[fleet] agent {} ({}:{}) refused the hello: {}", a.name, a.host, a.port, why);
        return;  // a wrong token does not get better by retrying
      }
      handle = *h;
      last_ok = clock_type::now();
      spdlog::info("[fleet] agent {} at {}:{} ({}, clock offset {} us)", a.name, a.host, a.port,
                   sh.hellos[a.name].host, offset_us);
      continue;
    }
    // The next row for this agent, in the sweep's order.
    std::size_t pick = rows.size();
    {
      std::lock_guard<std::mutex> g(sh.mu);
      for (std::size_t i = 0; i < rows.size(); ++i)
        if (sh.status[i] == row_status::pending && matches(rows[i].placement, labels) && !sh.excluded[i].count(a.name)) {
          pick = i;
          sh.status[i] = row_status::running;
          sh.working.insert(a.name);
          sh.current[a.name] = i;
          break;
        }
    }
    if (pick == rows.size()) {
      if (!any_running && !any_pending_for_me) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));  // a running row may come back for retry
      continue;
    }
    const row& rw = rows[pick];
    job j = rw.j;
    j.token = o.token;
    caf::scoped_actor self{sys};
    self->monitor(handle);
    self->send(handle, atom::frun::value, j, caf::actor_cast<fleet_listener>(self));
    bool finished = false, lost = false, stop_sent = false;
    result got;
    std::string lost_why;
    self->receive_while([&] { return !finished; })(
        [&](atom::fresult, const std::string& rname, const result& r) {
          if (rname != j.row) return;
          got = r;
          finished = true;
        },
        [&](atom::fprogress, const std::string& rname, const std::string& text) {
          spdlog::info("[fleet] {} on {}: {}", rname, a.name, text);
        },
        [&](caf::down_msg& dm) {
          lost = true;
          lost_why = caf::to_string(dm.reason);
          finished = true;
        },
        caf::after(std::chrono::milliseconds(250)) >> [&] {
          if (cancel && !stop_sent) {
            spdlog::warn("[fleet] stopping {} on agent {}", j.row, a.name);
            self->send(handle, atom::fstop::value, o.token);
            stop_sent = true;
          }
        });
    {
      std::lock_guard<std::mutex> g(sh.mu);
      sh.working.erase(a.name);
      sh.current.erase(a.name);
    }
    row_outcome out;
    out.agent = a.name;
    out.clock_offset_us = offset_us;
    {
      std::lock_guard<std::mutex> g(sh.mu);
      out.agent_hello = sh.hellos[a.name];
    }
    if (lost) {
      std::string why = "agent " + a.name + " lost mid-row (" + lost_why + ")";
      spdlog::error("[fleet] {}: {}", j.row, why);
      handle = nullptr;
      last_ok = clock_type::now();
      bool retry = o.retry_elsewhere && !cancel;
      {
        std::lock_guard<std::mutex> g(sh.mu);
        sh.outcomes[pick].attempts.push_back(a.name + ": lost mid-row (" + lost_why + ")");
        if (retry) {
          sh.excluded[pick].insert(a.name);
          sh.status[pick] = row_status::pending;
        }
        out.attempts = sh.outcomes[pick].attempts;
      }
      if (!retry) {
        out.error = why;
        out.interrupted = stop_sent;
        finish(pick, out);
      }
      continue;
    }
    out.ran = got.ok;
    out.r = got;
    out.interrupted = stop_sent;
    if (!got.ok) out.error = got.error.empty() ? "the agent returned no result" : got.error;
    {
      std::lock_guard<std::mutex> g(sh.mu);
      sh.outcomes[pick].attempts.push_back(a.name + (got.ok ? ": ran" : ": " + out.error));
      out.attempts = sh.outcomes[pick].attempts;
    }
    finish(pick, out);
  }
}

}  // namespace

std::map<std::string, hello> dispatch(caf::actor_system& sys, const coordinator_options& o, const std::vector<row>& rows,
                                      const std::atomic<bool>& cancel,
                                      const std::function<void(const row&, const row_outcome&)>& on_done) {
  shared sh;
  sh.status.assign(rows.size(), row_status::pending);
  sh.excluded.resize(rows.size());
  sh.outcomes.resize(rows.size());
  // Certificates loaded once; one guard per agent (its loopback port is where CAF connects).
  std::shared_ptr<tls_context> tls;
  if (o.tls.enabled()) tls = std::make_shared<tls_context>(o.tls, false);  // throws: names the file
  std::vector<std::unique_ptr<outbound_guard>> guards;
  for (const auto& a : o.agents) guards.push_back(std::make_unique<outbound_guard>(a, o.token, tls, o.limits));
  std::vector<std::thread> threads;
  for (std::size_t k = 0; k < o.agents.size(); ++k)
    threads.emplace_back([&, k] {
      const auto& a = o.agents[k];
      try {
        worker(sys, o, a, *guards[k], rows, cancel, sh, on_done);
      } catch (const std::exception& e) {  // never out of a thread: its rows fail with the reason
        spdlog::error("[fleet] agent {}: {}", a.name, e.what());
        std::lock_guard<std::mutex> g(sh.mu);
        sh.agent_notes[a.name] = std::string("failed: ") + e.what();
        auto it = sh.current.find(a.name);
        if (it != sh.current.end() && sh.status[it->second] == row_status::running) {
          sh.status[it->second] = row_status::pending;  // another agent may take it; else it fails with the note
          sh.excluded[it->second].insert(a.name);
        }
        sh.current.erase(a.name);
        sh.working.erase(a.name);
      }
    });
  for (auto& t : threads) t.join();
  // What no agent took: fail with the reasons.
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (sh.status[i] == row_status::done) continue;
    row_outcome out = sh.outcomes[i];
    if (cancel) {
      out.error = "interrupted before it ran";
      out.interrupted = true;
    } else {
      std::string why;
      for (const auto& a : o.agents) {
        if (!matches(rows[i].placement, a.labels)) continue;
        auto it = sh.agent_notes.find(a.name);
        why += (why.empty() ? "" : "; ") + a.name + ": " +
               (sh.excluded[i].count(a.name) ? "lost it mid-row" : it != sh.agent_notes.end() ? it->second : "no answer");
      }
      out.error = why.empty() ? "no agent's labels match its placement" : "no agent could run it (" + why + ")";
    }
    std::lock_guard<std::mutex> g(sh.done_mu);
    on_done(rows[i], out);
  }
  return sh.hellos;
}

}  // namespace bp::fleet
