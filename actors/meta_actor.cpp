#include <fcntl.h>
#include <unistd.h>

#include <ctime>
#include <fstream>
#include <atomic>
#include <map>
#include <thread>

#include <spdlog/spdlog.h>

#include "actors/actors.hpp"
#include "base/build_info.hpp"
#include "base/json_read.hpp"
#include "base/text.hpp"
#include "base/process/engine_child.hpp"
#include "net/client/http_client.hpp"
#include "snapshot/collect.hpp"
#include "snapshot/gpu.hpp"
#include "base/sha256.hpp"

namespace bp {

namespace {


snap::collect_input make_input(const run_context& ctx, const engine_started& e,
                               std::chrono::steady_clock::time_point deadline) {
  snap::collect_input in;
  in.engine_pid = e.pid;
  in.shim_pid = e.shim_pid;
  in.engine_kind = ctx.config.engine;
  in.engine_exe = e.exe;
  in.venv = ctx.config.venv;
  in.engine_env = ctx.engine_env();
  in.caches_before = ctx.caches_before;
  in.caches_injected = ctx.caches_injected;
  in.engine_port = static_cast<std::uint16_t>(e.port);
  in.threads = ctx.hash_threads;
  in.hash_cache = ctx.config.hash_cache;  // the verified hash cache (snapshot/hash_cache.hpp)
  in.deadline = deadline;
  in.nvidia_smi = snap::find_nvidia_smi();  // bench-proxy's PATH, or BENCH_PROXY_NVIDIA_SMI
  if (const char* p = std::getenv("BENCH_PROXY_LSHW")) in.lshw = p;
  std::shared_ptr<const output_capture> output = e.output;
  std::string log_path = ctx.run_dir + "/engine.log";
  in.engine_log = [output, log_path]() -> nlohmann::json {
    if (!output) throw std::runtime_error("no engine output capture");
    auto v = output->snapshot();
    nlohmann::json j = {{"path", log_path}, {"total_bytes", v.total_bytes}, {"sha256", v.sha256},
                        {"truncated", v.truncated}, {"head", v.head}};
    j["tail"] = v.tail.empty() ? nlohmann::json(nullptr) : nlohmann::json(v.tail);
    return j;
  };
  // engine_reported's GETs of the engine's private port: the snapshot library opens no sockets.
  in.engine_get = [port = in.engine_port](const std::string& path, std::chrono::milliseconds timeout,
                                          std::uint64_t max_bytes,
                                          std::string& err) -> std::optional<snap::collect_input::engine_answer> {
    auto r = net::http_fetch("GET", "http://127.0.0.1:" + std::to_string(port) + path, "", timeout, err, max_bytes);
    if (!r) return std::nullopt;
    return snap::collect_input::engine_answer{r->status, std::move(r->body)};
  };
  return in;
}

}  // namespace

std::string fault_for(const std::string& faults, const std::string& actor_name) {
  // "engine=throw-on-ready,collector:venv=throw"
  std::size_t pos = 0;
  while (pos < faults.size()) {
    auto comma = faults.find(',', pos);
    std::string item = faults.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    auto eq = item.find('=');
    if (eq != std::string::npos && item.substr(0, eq) == actor_name) return item.substr(eq + 1);
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return {};
}

collector_actor::behavior_type collector_behavior(collector_actor::pointer self, std::string name,
                                                  std::shared_ptr<run_context> ctx, engine_started engine) {
  return {
      [self, name, ctx, engine](atom::collect, double budget_s) -> caf::result<collector_report> {
        auto t0 = std::chrono::steady_clock::now();
        auto deadline = t0 + std::chrono::milliseconds(static_cast<long>(budget_s * 1000));
        std::string fault = fault_for(ctx->faults, "collector:" + name);
        if (fault == "crash") throw std::runtime_error("injected fault: collector " + name + " crashes");
        if (fault == "exit") {
          self->quit(caf::exit_reason::user_shutdown);
          return caf::make_error(caf::sec::request_receiver_down);
        }
        if (fault == "stall") std::this_thread::sleep_until(deadline + std::chrono::seconds(2));
        collector_report r;
        r.name = name;
        try {
          if (fault == "throw") throw std::runtime_error("injected fault: collector " + name + " throws");
          auto in = make_input(*ctx, engine, deadline);
          in.progress = [name](const std::string& msg) { spdlog::info("[collector {}] {}", name, msg); };
          for (const auto& def : snap::all_collectors())
            if (def.name == name) r.section = def.run(in);
          r.ok = true;
        } catch (const std::exception& e) {
          r.ok = false;
          r.error = e.what();
        }
        r.elapsed_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        self->quit();
        return r;
      },
  };
}

struct meta_state {
  static inline const char* name = "meta";
  std::shared_ptr<run_context> ctx;
  engine_started engine;
  nlohmann::json warmup;
  meta_listener supervisor;
  std::map<std::string, collector_report> reports;
  std::map<std::string, int> attempts;
  std::size_t pending = 0;
  std::chrono::steady_clock::time_point started, deadline;
  std::string started_at;
};

namespace {

void ask(meta_actor::stateful_pointer<meta_state> self, const std::string& name);

void assemble(meta_actor::stateful_pointer<meta_state> self) {
  auto& s = self->state;
  const auto& cfg = s.ctx->config;
  nlohmann::json doc;
  doc["schema_version"] = 1;
  doc["bench_proxy"] = base::to_json(base::this_build());
  doc["bench_proxy"].update({{"pid", ::getpid()},
                        {"argv", s.ctx->bench_proxy_argv},
                        {"listen", s.ctx->listen_address},
                        {"run_dir", s.ctx->run_dir}});
  doc["snapshot"] = {
      {"started_at", s.started_at},
      {"created_at", base::utc_now_iso()},
      {"collect_ms", std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - s.started).count()}};
  doc["engine"] = {{"kind", cfg.engine}, {"pid", s.engine.pid}, {"port", s.engine.port}, {"exe", s.engine.exe},
                   {"supervisor_pid", s.engine.shim_pid}};
  doc["config"] = to_json(cfg);
  doc["warmup"] = s.warmup;
  nlohmann::json status = nlohmann::json::object();
  for (const auto& def : snap::all_collectors()) {
    auto it = s.reports.find(def.name);
    if (it == s.reports.end()) continue;
    auto& r = it->second;
    if (r.ok) {
      doc[def.name] = std::move(r.section);  // assembled once: a venv's section is megabytes
    } else {
      doc[def.name] = {{"ok", false}, {"error", r.error}};
    }
    status[def.name] = {{"ok", r.ok}, {"elapsed_ms", r.elapsed_ms}, {"attempts", r.attempts}};
    if (!r.ok) status[def.name]["error"] = r.error;
  }
  doc["collectors"] = status;
  // Read back (meta diff, bench, compare) with base::json_file_depth, and one level deeper inside
  // a result.json: what a config nests deeper than base::snapshot_depth is cut, and says so
  // (docs/meta-schema.md, "Limits on JSON input").
  base::cut_deeper_than(doc, base::snapshot_depth);
  cfg.redactor().redact(doc);
  auto m = std::make_shared<net::meta_document>();
  m->bytes = doc.dump() + "\n";
  m->sha256 = sha256_hex(m->bytes);
  std::string path = s.ctx->run_dir + "/meta.json";
  {
    std::ofstream f(path, std::ios::binary);
    f << m->bytes;
    if (!f) spdlog::warn("[meta] cannot write {}", path);
  }
  // The run's slot (run, sweep, try) is filled under its lock together with the publication, and
  // only when this snapshot is the one /meta serves: whoever sees /meta published and then takes
  // the slot finds exactly it.
  auto slot = s.ctx->keep_published;
  std::unique_lock<std::mutex> slot_lock;
  if (slot) slot_lock = std::unique_lock<std::mutex>(slot->mu);
  bool first = s.ctx->status->publish(m);
  if (first && slot) {
    slot->id = m->sha256;
    slot->doc = std::make_shared<nlohmann::json>(std::move(doc));
  }
  if (slot_lock) slot_lock.unlock();
  if (!first) spdlog::warn("[meta] a snapshot was already published; this one is discarded");
  spdlog::info("[meta] snapshot published: id {} ({} bytes, {})", m->sha256, m->bytes.size(), path);
  self->send(s.supervisor, atom::published::value, m->sha256, path);
  self->quit();
}

void record(meta_actor::stateful_pointer<meta_state> self, collector_report r) {
  auto& s = self->state;
  if (s.reports.count(r.name)) return;  // exactly one report per collector
  r.attempts = s.attempts[r.name];
  if (r.ok)
    spdlog::info("[meta] collector {} reported in {:.0f} ms", r.name, r.elapsed_ms);
  else
    spdlog::warn("[meta] collector {} failed: {}", r.name, r.error);
  s.reports[r.name] = std::move(r);
  if (--s.pending == 0) assemble(self);
}

void ask(meta_actor::stateful_pointer<meta_state> self, const std::string& name) {
  auto& s = self->state;
  s.attempts[name]++;
  double budget = std::chrono::duration<double>(s.deadline - std::chrono::steady_clock::now()).count();
  if (budget < 0.05) budget = 0.05;
  auto c = self->spawn<caf::detached>(collector_behavior, name, s.ctx, s.engine);
  auto t0 = std::chrono::steady_clock::now();
  // The reply timeout is the collector's deadline plus a margin: the collector is expected to
  // give up on its own first; a collector that does not is recorded as stalled.
  self->request(c, std::chrono::milliseconds(static_cast<long>(budget * 1000) + 1000), atom::collect::value, budget)
      .then([self](collector_report& r) { record(self, std::move(r)); },  // moved out of the reply: a venv section is megabytes
            [self, name, c, t0](caf::error& e) {
              auto& st = self->state;
              double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
              bool timed_out = e == caf::sec::request_timeout;
              // A collector that crashed is retried while its deadline allows; one that stalled is not.
              double left = std::chrono::duration<double>(st.deadline - std::chrono::steady_clock::now()).count();
              if (!timed_out && st.attempts[name] < 3 && left > 0.5) {
                spdlog::warn("[meta] collector {} failed ({}); retrying", name, self->system().render(e));
                return ask(self, name);
              }
              if (timed_out) self->send_exit(c, caf::exit_reason::kill);
              collector_report r;
              r.name = name;
              r.ok = false;
              r.elapsed_ms = ms;
              r.error = timed_out ? "did not report within its deadline (" +
                                        std::to_string(static_cast<long>(st.ctx->config.snapshot_timeout_s)) +
                                        " s, snapshot_timeout_s)"
                                  : "collector actor failed: " + self->system().render(e);
              record(self, std::move(r));
            });
}

}  // namespace

namespace {

meta_actor::behavior_type meta_behavior(meta_actor::stateful_pointer<meta_state> self, std::shared_ptr<run_context> ctx,
                                        engine_started engine, nlohmann::json warmup, meta_listener supervisor) {
  auto& s = self->state;
  s.ctx = ctx;
  s.engine = engine;
  s.warmup = std::move(warmup);
  s.supervisor = supervisor;
  s.started = std::chrono::steady_clock::now();
  s.started_at = base::utc_now_iso();
  s.deadline = s.started + std::chrono::milliseconds(static_cast<long>(ctx->config.snapshot_timeout_s * 1000));
  std::string fault = fault_for(ctx->faults, "meta");
  static std::atomic<bool> thrown_once{false};
  if (fault == "throw" || (fault == "throw-once" && !thrown_once.exchange(true)))
    throw std::runtime_error("injected fault: meta actor throws");
  auto defs = snap::all_collectors();
  s.pending = defs.size();
  for (const auto& d : defs) ask(self, d.name);
  return {[](atom::stop, const std::string&) {}};
}

}  // namespace

meta_actor spawn_meta_actor(caf::local_actor* parent, meta_listener listener, std::shared_ptr<run_context> ctx,
                            engine_started engine, nlohmann::json warmup) {
  return parent->spawn<caf::monitored>(meta_behavior, ctx, engine, warmup, listener);
}

}  // namespace bp
