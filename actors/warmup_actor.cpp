#include <spdlog/spdlog.h>

#include "actors/actors.hpp"
#include "net/client/http_client.hpp"
#include "base/json_read.hpp"

namespace bp {

namespace {

/// What the warmup keeps between its messages.
struct warmup_progress {
  net::http_connection conn;
  std::string model, payload, fault;
  std::vector<double> elapsed;
};

warmup_actor::behavior_type warmup_behavior(warmup_actor::pointer self, std::shared_ptr<run_context> ctx, int port,
                                            warmup_listener supervisor) {
  auto st = std::make_shared<warmup_progress>();
  auto fail = [self, supervisor](const std::string& why) {
    self->send(supervisor, atom::failed::value, std::string("warmup"), make_error(errc::warmup_failed, why));
    self->quit();
  };
  self->send(self, atom::start::value);
  return {
      [self, ctx, port, st, fail](atom::start) {
        const auto& cfg = ctx->config;
        st->fault = fault_for(ctx->faults, "warmup");
        if (st->fault == "throw") throw std::runtime_error("injected fault: warmup actor throws");
        std::string err;
        if (!st->conn.connect("127.0.0.1", static_cast<std::uint16_t>(port), std::chrono::seconds(5), err))
          return fail("warmup: " + err);
        st->model = cfg.model;
        if (st->model.empty()) {
          net::http_response r;
          if (!st->conn.request("GET", "/v1/models", "", {}, std::chrono::seconds(30), r, err))
            return fail("warmup: GET /v1/models: " + err);
          try {
            st->model = base::parse_json(r.body, "GET /v1/models", base::engine_json_depth).at("data").at(0).at("id").get<std::string>();
          } catch (const std::exception& e) {
            return fail("warmup: GET /v1/models gave no model id (set model: in " + cfg.source_path +
                        "): HTTP " + std::to_string(r.status));
          }
        }
        nlohmann::json body = {{"model", st->model},
                               {"messages", {{{"role", "user"}, {"content", "Warm up: reply with one short sentence."}}}},
                               {"max_tokens", 16},
                               {"temperature", 0}};
        st->payload = body.dump();
        self->send(self, atom::warmup::value, 0);
      },
      [self, ctx, st, supervisor, fail](atom::warmup, int i) {
        const auto& cfg = ctx->config;
        if (i >= cfg.warmup) {
          self->send(supervisor, atom::warmup::value, st->elapsed, st->model);
          self->quit();
          return;
        }
        if (st->fault == "fail") return fail("warmup request " + std::to_string(i + 1) + ": injected fault");
        std::string err;
        auto t0 = std::chrono::steady_clock::now();
        net::http_response r;
        if (!st->conn.request("POST", "/v1/chat/completions", st->payload, {}, std::chrono::seconds(600), r, err))
          return fail("warmup request " + std::to_string(i + 1) + " of " + std::to_string(cfg.warmup) + ": " + err);
        double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        if (r.status != 200)
          return fail("warmup request " + std::to_string(i + 1) + " of " + std::to_string(cfg.warmup) +
                      " answered HTTP " + std::to_string(r.status) + ": " + r.body.substr(0, 500));
        spdlog::info("[warmup] request {}/{}: {:.1f} ms", i + 1, cfg.warmup, ms);
        st->elapsed.push_back(ms);
        self->send(self, atom::warmup::value, i + 1);  // the next one after whatever else is in the mailbox
      },
  };
}

}  // namespace

warmup_actor spawn_warmup_actor(caf::local_actor* parent, warmup_listener listener, std::shared_ptr<run_context> ctx,
                                int port, bool detached) {
  if (!detached) return parent->spawn<caf::monitored>(warmup_behavior, ctx, port, listener);
  return parent->spawn<caf::monitored + caf::detached>(warmup_behavior, ctx, port, listener);
}

}  // namespace bp
