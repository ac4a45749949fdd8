#include "actors/fleet/agent.hpp"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <caf/io/all.hpp>
#include <caf/openssl/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/fleet/guard.hpp"
#include "base/files.hpp"
#include "base/text.hpp"

namespace fs = std::filesystem;

namespace bp::fleet {

namespace {

std::string host_name() {
  char buf[256] = {0};
  if (::gethostname(buf, sizeof(buf) - 1) != 0) return "unknown";
  return buf;
}

struct agent_state {
  agent_options opts;
  job_runner run;
  runner_spawner spawn_runner;
  std::uint16_t port = 0;  // the guard's (a refusal names the peers connected to it); set once
  bool busy = false;
  fleet_listener current;  // the running job's listener (monitored: a coordinator gone tears it down)
  std::string row;
  std::shared_ptr<std::atomic<bool>> stop = std::make_shared<std::atomic<bool>>(false);  // the running job: tear down
  fleet_runner_actor runner;  // spawned on the first job, again after it failed
  bool quitting = false;      // SIGINT/SIGTERM: no new job; end once the running one answered
  static inline const char* name = "fleet_agent";
};

using agent_ptr = fleet_agent_local::stateful_pointer<agent_state>;

/// The peers connected to the agent's port now (/proc/net/tcp{,6}, ESTABLISHED): CAF 0.17 does
/// not tell an actor the address a message came from, so a refusal names every candidate.
std::string peers_on(std::uint16_t port) {
  std::string out;
  for (const char* file : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(file);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream is(line);
      std::string sl, local, remote, state;
      is >> sl >> local >> remote >> state;
      if (state != "01") continue;
      auto lp = local.rfind(':'), rp = remote.rfind(':');
      if (lp == std::string::npos || rp == std::string::npos) continue;
      if (std::stoul(local.substr(lp + 1), nullptr, 16) != port) continue;
      std::string hex = remote.substr(0, rp);
      unsigned rport = static_cast<unsigned>(std::stoul(remote.substr(rp + 1), nullptr, 16));
      std::string addr;
      if (hex.size() == 8) {  // IPv4, little-endian bytes
        unsigned long v = std::stoul(hex, nullptr, 16);
        addr = std::to_string(v & 255) + "." + std::to_string((v >> 8) & 255) + "." + std::to_string((v >> 16) & 255) +
               "." + std::to_string((v >> 24) & 255);
      } else if (hex.size() == 32 && hex.substr(0, 24) == "0000000000000000FFFF0000") {  // v4-mapped
        unsigned long v = std::stoul(hex.substr(24), nullptr, 16);
        addr = std::to_string(v & 255) + "." + std::to_string((v >> 8) & 255) + "." + std::to_string((v >> 16) & 255) +
               "." + std::to_string((v >> 24) & 255);
      } else {
        addr = "[" + hex + "]";
      }
      out += (out.empty() ? "" : ", ") + addr + ":" + std::to_string(rport);
    }
  }
  return out.empty() ? "none found" : out;
}


std::string who(agent_ptr self) {
  auto s = self->current_sender();
  std::string peers;
  try {
    peers = peers_on(self->state.port);
  } catch (const std::exception& e) {
    peers = std::string("unknown: ") + e.what();
  }
  return (s ? "node " + caf::to_string(s->node()) : std::string("an unknown peer")) + " (connected to this agent: " +
         peers + ")";
}

/// A message only this process may send (run_agent's own, never a peer's).
bool from_this_process(agent_ptr self) {
  auto s = self->current_sender();
  return s && s->node() == self->node();
}

result refusal(const agent_options& o, const std::string& why) {
  result r;
  r.error = "refused by agent " + o.name + ": " + why;
  r.agent = o.name;
  r.host = host_name();
  r.insecure = o.insecure;
  return r;
}

/// The running job's answer reached the agent: it goes to the coordinator, and the agent is free
/// (or, stopping, ends).
void job_ended(agent_ptr self, result r) {
  auto& st = self->state;
  if (!st.busy) return;
  spdlog::info("agent: row {} {}", st.row, r.ok ? "done" : "failed: " + r.error);
  if (st.current) {
    self->send(st.current, atom::fresult::value, st.row, std::move(r));
    self->demonitor(st.current.address());
  }
  st.busy = false;
  st.current = nullptr;
  st.row.clear();
  if (st.quitting) {
    if (st.runner) self->send_exit(st.runner, caf::exit_reason::user_shutdown);
    self->quit(caf::exit_reason::user_shutdown);
  }
}

/// The runner: one job at a time, on its own thread (the run blocks it throughout).
fleet_runner_actor::behavior_type runner_actor(fleet_runner_actor::pointer self, agent_options o, job_runner run,
                                               std::shared_ptr<const std::atomic<bool>> stop) {
  (void)self;
  const std::string wire_tag = o.insecure ? " [INSECURE PLAINTEXT]" : "";
  return {
      [=](atom::frun, const job& j, const std::string& config_file, const fleet_listener& to) -> result {
        result r;
        std::string dir;
        try {
          dir = base::make_unique_dir(
              (fs::path(o.run_root) / (base::utc_now_compact() + "_" + fs::path(j.row).filename().string())).string());
        } catch (const std::exception& e) {
          r.error = std::string("agent cannot create a run folder: ") + e.what();
        }
        if (!dir.empty()) {
          // Progress goes straight to the coordinator, from whatever thread reports it.
          caf::anon_send(to, atom::fprogress::value, j.row,
                         "started on " + o.name + " (" + host_name() + ")" + wire_tag);
          auto progress = [to, row = j.row](std::string line) {
            caf::anon_send(to, atom::fprogress::value, row, std::move(line));
          };
          try {
            fault_point("agent-runner");
            r = run(j, config_file, dir, *stop, progress);
          } catch (const std::exception& e) {  // never out of the runner: the row fails with the reason
            r = result{};
            r.error = std::string("the run failed on the agent: ") + e.what();
            spdlog::error("agent: row {}: {}", j.row, r.error);
          }
          r.agent_run_dir = fs::absolute(dir).string();
        }
        r.agent = o.name;
        r.host = host_name();
        r.insecure = o.insecure;
        return r;
      },
  };
}

fleet_agent_local::behavior_type agent_actor(agent_ptr self, agent_options o, job_runner run, runner_spawner spawn) {
  auto& st0 = self->state;
  st0.opts = std::move(o);
  st0.run = std::move(run);
  st0.spawn_runner = std::move(spawn);
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& st = self->state;
    if (st.runner && dm.source == st.runner.address()) {
      st.runner = nullptr;
      if (st.busy) {
        result r;
        r.error = "the run failed on the agent: its runner ended (" + caf::to_string(dm.reason) + ")";
        r.agent = st.opts.name;
        r.host = host_name();
        r.insecure = st.opts.insecure;
        job_ended(self, std::move(r));
      }
      return;
    }
    if (st.busy && st.current && dm.source == st.current.address()) {
      spdlog::warn("agent: the coordinator of row {} is gone ({}): tearing the run down", st.row,
                   caf::to_string(dm.reason));
      st.stop->store(true);
    }
  });
  return {
      [=](atom::fhello, const std::string& token) -> caf::result<hello> {
        auto& st = self->state;
        try {
          if (!token_equal(token, st.opts.token)) {
            spdlog::warn("agent: refused a hello with a wrong token from {}", who(self));
            return caf::make_error(caf::sec::request_receiver_down, "wrong token");
          }
          hello h;
          h.agent = st.opts.name;
          h.host = host_name();
          h.version = BENCH_PROXY_VERSION;
          h.labels = st.opts.labels;
          h.gpus = st.opts.gpus;
          h.clock_unix_us = std::chrono::duration_cast<std::chrono::microseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
          h.insecure = st.opts.insecure;
          return h;
        } catch (const std::exception& e) {  // never out of the actor: the peer gets the reason
          spdlog::error("agent: a hello failed: {}", e.what());
          return caf::make_error(caf::sec::runtime_error, std::string("the agent failed: ") + e.what());
        }
      },
      [=](atom::frun, const job& j, const fleet_listener& reply_to) {
        auto& st = self->state;
        std::string resolved;
        std::string why;
        try {
          fault_point("agent-actor");
          why = check_job(j, st.opts.config_root, st.opts.token, resolved);
          if (why.empty() && st.busy) why = "busy with row " + st.row + " (one config at a time)";
          if (why.empty() && st.quitting) why = "the agent is stopping";
          if (why.empty() && !st.runner) {
            st.runner = st.spawn_runner(self, st.stop);
            self->monitor(st.runner);
          }
        } catch (const std::exception& e) {  // never out of the actor: the row fails with the reason
          why = std::string("the agent failed checking it: ") + e.what();
        }
        if (!why.empty()) {
          spdlog::warn("agent: refused row '{}' ({}) from {}: {}", j.row, j.config_path, who(self), why);
          if (reply_to) self->send(reply_to, atom::fresult::value, j.row, refusal(st.opts, why));
          return;
        }
        st.busy = true;
        st.current = reply_to;
        st.row = j.row;
        st.stop->store(false);
        if (reply_to) self->monitor(reply_to);
        spdlog::info("agent: accepted row {} ({})", j.row, j.config_path);
        self->request(st.runner, caf::infinite, atom::frun::value, j, resolved, reply_to)
            .then([=](result& r) { job_ended(self, std::move(r)); },
                  [=](caf::error& e) {
                    auto& st = self->state;
                    result r;
                    r.error = "the run failed on the agent: " + self->system().render(e);
                    r.agent = st.opts.name;
                    r.host = host_name();
                    r.insecure = st.opts.insecure;
                    job_ended(self, std::move(r));
                  });
      },
      [=](atom::fstop, const std::string& token) {
        auto& st = self->state;
        if (!token_equal(token, st.opts.token)) {
          spdlog::warn("agent: refused a stop with a wrong token from {}", who(self));
          return;
        }
        if (st.busy) {
          spdlog::warn("agent: the coordinator stops row {}: tearing the run down", st.row);
          st.stop->store(true);
        }
      },
      [=](atom::listening, std::uint16_t port) {
        auto& st = self->state;
        if (from_this_process(self) && st.port == 0) st.port = port;
      },
      [=](atom::stop, const std::string& why) {
        auto& st = self->state;
        if (!from_this_process(self)) {
          spdlog::warn("agent: refused a stop message from {}", who(self));
          return;
        }
        if (st.quitting) {
          spdlog::warn("agent: {} received again: still tearing row {} down", why, st.row);
          return;
        }
        st.quitting = true;
        if (!st.busy) {
          spdlog::info("agent: {} received: stopping", why);
          if (st.runner) self->send_exit(st.runner, caf::exit_reason::user_shutdown);
          self->quit(caf::exit_reason::user_shutdown);
          return;
        }
        spdlog::warn("agent: {} received: tearing row {} down, then stopping", why, st.row);
        st.stop->store(true);
      },
  };
}

/// Waits for SIGINT/SIGTERM (blocked in every thread) without polling and tells the agent, from
/// a local actor; ends when destroyed.
class signal_forwarder {
 public:
  signal_forwarder(caf::actor_system& sys, fleet_agent_local agent) {
    thread_ = std::thread([this, &sys, agent] {
      sigset_t set;
      sigemptyset(&set);
      sigaddset(&set, SIGINT);
      sigaddset(&set, SIGTERM);
      for (;;) {
        int sig = 0;
        if (::sigwait(&set, &sig) != 0) continue;
        if (done_) return;
        try {
          caf::scoped_actor s{sys};
          s->send(agent, atom::stop::value, std::string(sig == SIGINT ? "SIGINT" : "SIGTERM"));
        } catch (const std::exception& e) {  // never out of a thread
          spdlog::error("agent: forwarding a signal: {}", e.what());
        }
      }
    });
  }
  ~signal_forwarder() {
    done_ = true;
    ::pthread_kill(thread_.native_handle(), SIGTERM);  // blocked there: sigwait takes it
    thread_.join();
  }
  signal_forwarder(const signal_forwarder&) = delete;
  signal_forwarder& operator=(const signal_forwarder&) = delete;

 private:
  std::atomic<bool> done_{false};
  std::thread thread_;
};

}  // namespace

void set_agent_logging(bool insecure) {
  // The pattern of cmd/cli.cpp's setup_logging, with the warning in every line: the agent's own,
  // the run pipeline's under it (engine, proxy, meta, bench) and the guard's, whatever logger.
  if (insecure) spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ [INSECURE PLAINTEXT] %v");
}

fleet_agent_local spawn_agent(caf::actor_system& sys, agent_options o, job_runner run, runner_spawner runner) {
  if (!runner) {
    runner = [o, run](caf::local_actor* parent, std::shared_ptr<const std::atomic<bool>> stop) -> fleet_runner_actor {
      return parent->spawn<caf::detached>(runner_actor, o, run, std::move(stop));
    };
  }
  return sys.spawn(agent_actor, std::move(o), std::move(run), std::move(runner));
}

int run_agent(caf::actor_system& sys, const agent_options& o, const job_runner& runner,
              const std::function<void(std::uint16_t)>& on_listening) {
  // Certificates are loaded once, here; a file moved later changes nothing.
  std::shared_ptr<tls_context> tls;
  if (o.tls.enabled()) {
    try {
      tls = std::make_shared<tls_context>(o.tls, true);
    } catch (const std::exception& e) {
      spdlog::error("agent: {}", e.what());
      return 2;
    }
  }
  auto agent = spawn_agent(sys, o, runner);
  // CAF listens on loopback only; the guard faces the network (docs/fleet.md, "The network
  // edge"). Published through its public face: coordinators see hello, run and stop only.
  caf::expected<std::uint16_t> backend =
      sys.middleman().publish(fleet_agent_actor{agent}, 0, "127.0.0.1", true);
  if (!backend) {
    spdlog::error("agent: cannot publish on loopback: {}", sys.render(backend.error()));
    caf::anon_send_exit(agent, caf::exit_reason::user_shutdown);
    return 3;
  }
  std::unique_ptr<inbound_guard> guard;
  try {
    guard = std::make_unique<inbound_guard>(o.listen_host, o.port, *backend, o.token, tls, o.limits, "agent");
  } catch (const std::exception& e) {
    spdlog::error("agent: {}", e.what());
    caf::anon_send_exit(agent, caf::exit_reason::user_shutdown);
    return 3;
  }
  auto port = guard->port();
  caf::scoped_actor self{sys};
  self->send(agent, atom::listening::value, port);
  spdlog::info("agent '{}' listening on {}:{} ({}; config root {}; runs under {}; CAF on 127.0.0.1:{})", o.name,
               o.listen_host, port, o.tls.enabled() ? "TLS" : "plaintext", o.config_root, o.run_root, *backend);
  if (on_listening) on_listening(port);
  // This thread waits, without polling, for the agent actor to end: after SIGINT/SIGTERM (the
  // forwarder's message; a running row is torn down and answered first), or on its own.
  self->monitor(agent);
  int rc = 0;
  {
    signal_forwarder signals(sys, agent);
    self->receive([&](caf::down_msg& dm) {
      if (dm.reason && dm.reason != caf::exit_reason::user_shutdown) {
        spdlog::error("agent: the agent actor ended: {}", sys.render(dm.reason));
        rc = 1;
      }
    });
  }
  guard.reset();  // no new connection; the relayed ones closed
  return rc;
}

}  // namespace bp::fleet
