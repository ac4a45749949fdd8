#include "actors/fleet/agent.hpp"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <mutex>

#include <caf/io/all.hpp>
#include <caf/openssl/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/fleet/guard.hpp"
#include "base/files.hpp"
#include "base/text.hpp"

namespace fs = std::filesystem;

namespace bp::fleet {

namespace {

using done_atom = caf::atom_constant<caf::atom("fdone")>;

std::string host_name() {
  char buf[256] = {0};
  if (::gethostname(buf, sizeof(buf) - 1) != 0) return "unknown";
  return buf;
}

/// Jobs accepted by the actor, run by the agent's main thread.
struct job_queue {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::pair<job, fleet_listener>> jobs;
  std::atomic<bool> stop{false};  // the running job: tear down
};

struct agent_state {
  agent_options opts;
  std::shared_ptr<job_queue> q;
  bool busy = false;
  fleet_listener current;  // the running job's reply_to
  std::string row;
  std::string tag;  // "" (plaintext is said by every log line's pattern: agent_log_pattern)
};

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

std::atomic<std::uint16_t> g_port{0};  // the published port (one agent per process)

std::string who(caf::event_based_actor* self) {
  auto s = self->current_sender();
  std::string peers;
  try {
    peers = peers_on(g_port.load());
  } catch (const std::exception& e) {
    peers = std::string("unknown: ") + e.what();
  }
  return (s ? "node " + caf::to_string(s->node()) : std::string("an unknown peer")) + " (connected to this agent: " +
         peers + ")";
}

caf::behavior agent_actor(caf::stateful_actor<agent_state>* self, agent_options o, std::shared_ptr<job_queue> q) {
  self->state.opts = std::move(o);
  self->state.q = std::move(q);
  self->state.tag = "";
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& st = self->state;
    if (st.busy && dm.source == st.current.address()) {
      spdlog::warn("agent{}: the coordinator of row {} is gone ({}): tearing the run down", st.tag, st.row,
                   caf::to_string(dm.reason));
      st.q->stop = true;
    }
  });
  return {
      [=](atom::fhello, const std::string& token) -> caf::result<hello> {
        auto& st = self->state;
        try {
        if (!token_equal(token, st.opts.token)) {
          spdlog::warn("agent{}: refused a hello with a wrong token from {}", st.tag, who(self));
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
        } catch (const std::exception& e) {  // never out of the actor: the row fails with the reason
          why = std::string("the agent failed checking it: ") + e.what();
        }
        if (why.empty() && st.busy) why = "busy with row " + st.row + " (one config at a time)";
        if (!why.empty()) {
          spdlog::warn("agent{}: refused row '{}' ({}) from {}: {}", st.tag, j.row, j.config_path, who(self), why);
          result r;
          r.error = "refused by agent " + st.opts.name + ": " + why;
          r.agent = st.opts.name;
          r.host = host_name();
          r.insecure = st.opts.insecure;
          if (reply_to) self->send(reply_to, atom::fresult::value, j.row, r);
          return;
        }
        st.busy = true;
        st.current = reply_to;
        st.row = j.row;
        self->monitor(reply_to);
        spdlog::info("agent{}: accepted row {} ({})", st.tag, j.row, j.config_path);
        {
          std::lock_guard<std::mutex> g(st.q->mu);
          st.q->stop = false;
          st.q->jobs.emplace_back(j, reply_to);
        }
        st.q->cv.notify_all();
      },
      [=](atom::fstop, const std::string& token) {
        auto& st = self->state;
        if (!token_equal(token, st.opts.token)) {
          spdlog::warn("agent{}: refused a stop with a wrong token from {}", st.tag, who(self));
          return;
        }
        if (st.busy) {
          spdlog::warn("agent{}: the coordinator stops row {}: tearing the run down", st.tag, st.row);
          st.q->stop = true;
        }
      },
      [=](done_atom) {
        auto& st = self->state;
        if (st.current) self->demonitor(st.current.address());
        st.busy = false;
        st.current = nullptr;
        st.row.clear();
      },
  };
}

}  // namespace

void set_agent_logging(bool insecure) {
  // The pattern of cmd/cli.cpp's setup_logging, with the warning in every line: the agent's own,
  // the run pipeline's under it (engine, proxy, meta, bench) and the guard's, whatever logger.
  if (insecure) spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ [INSECURE PLAINTEXT] %v");
}

int run_agent(caf::actor_system& sys, const agent_options& o, const job_runner& runner,
              const std::function<void(std::uint16_t)>& on_listening) {
  auto q = std::make_shared<job_queue>();
  // Plaintext is said by every line's pattern (set_agent_logging), not by each message.
  const std::string tag;
  const std::string wire_tag = o.insecure ? " [INSECURE PLAINTEXT]" : "";
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
  auto agent = sys.spawn(agent_actor, o, q);
  // CAF listens on loopback only; the guard faces the network (docs/fleet.md, "The network edge").
  caf::expected<std::uint16_t> backend = sys.middleman().publish(caf::actor_cast<fleet_agent_actor>(agent), 0, "127.0.0.1", true);
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
  g_port.store(port);
  spdlog::info("agent{} '{}' listening on {}:{} ({}; config root {}; runs under {}; CAF on 127.0.0.1:{})", tag, o.name,
               o.listen_host, port, o.tls.enabled() ? "TLS" : "plaintext", o.config_root, o.run_root, *backend);
  if (on_listening) on_listening(port);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  for (;;) {
    std::pair<job, fleet_listener> next;
    bool have = false;
    {
      std::unique_lock<std::mutex> lk(q->mu);
      if (!q->jobs.empty()) {
        next = std::move(q->jobs.front());
        q->jobs.pop_front();
        have = true;
      }
    }
    if (!have) {
      timespec ts{0, 100 * 1000 * 1000};
      int sig = sigtimedwait(&set, nullptr, &ts);
      if (sig == SIGINT || sig == SIGTERM) {
        spdlog::info("agent{}: {} received: stopping", tag, sig == SIGINT ? "SIGINT" : "SIGTERM");
        break;
      }
      continue;
    }
    const job& j = next.first;
    fleet_listener reply_to = next.second;
    std::string resolved;
    std::string why = check_job(j, o.config_root, o.token, resolved);  // checked again: the file may have changed
    result r;
    if (!why.empty()) {
      r.error = "refused by agent " + o.name + ": " + why;
    } else {
      std::string dir;
      try {
        dir = base::make_unique_dir((fs::path(o.run_root) / (base::utc_now_compact() + "_" + fs::path(j.row).filename().string())).string());
      } catch (const std::exception& e) {
        r.error = std::string("agent cannot create a run folder: ") + e.what();
      }
      if (!dir.empty()) {
        caf::anon_send(reply_to, atom::fprogress::value, j.row, "started on " + o.name + " (" + host_name() + ")" + wire_tag);
        auto progress = [&](std::string line) { caf::anon_send(reply_to, atom::fprogress::value, j.row, std::move(line)); };
        try {
          fault_point("agent-runner");
          r = runner(j, resolved, dir, q->stop, progress);
        } catch (const std::exception& e) {  // never out of the agent: the row fails with the reason
          r = result{};
          r.error = std::string("the run failed on the agent: ") + e.what();
          spdlog::error("agent: row {}: {}", j.row, r.error);
        }
        r.agent_run_dir = fs::absolute(dir).string();
      }
    }
    r.agent = o.name;
    r.host = host_name();
    r.insecure = o.insecure;
    caf::anon_send(reply_to, atom::fresult::value, j.row, r);
    caf::anon_send(agent, done_atom::value);
    spdlog::info("agent{}: row {} {}", tag, j.row, r.ok ? "done" : "failed: " + r.error);
  }
  guard.reset();  // no new connection; the relayed ones closed
  caf::anon_send_exit(agent, caf::exit_reason::user_shutdown);
  return 0;
}

}  // namespace bp::fleet
