#include <spdlog/spdlog.h>

#include "actors/actors.hpp"
#include "net/client/http_client.hpp"
#include "base/json_read.hpp"

namespace bp {

namespace {

warmup_actor::behavior_type warmup_behavior(warmup_actor::pointer self, std::shared_ptr<run_context> ctx, int port,
                                            warmup_listener supervisor) {
  self->send(self, atom::start::value);
  return {
      [self, ctx, port, supervisor](atom::start) {
        const auto& cfg = ctx->config;
        auto fail = [&](const std::string& why) {
          self->send(supervisor, atom::failed::value, std::string("warmup"), make_error(errc::warmup_failed, why));
          self->quit();
        };
        std::string fault = fault_for(ctx->faults, "warmup");
        if (fault == "throw") throw std::runtime_error("injected fault: warmup actor throws");
        net::http_connection conn;
        std::string err;
        if (!conn.connect("127.0.0.1", static_cast<std::uint16_t>(port), std::chrono::seconds(5), err))
          return fail("warmup: " + err);
        std::string model = cfg.model;
        if (model.empty()) {
          net::http_response r;
          if (!conn.request("GET", "/v1/models", "", {}, std::chrono::seconds(30), r, err))
            return fail("warmup: GET /v1/models: " + err);
          try {
            model = base::parse_json(r.body, "GET /v1/models", base::engine_json_depth).at("data").at(0).at("id").get<std::string>();
          } catch (const std::exception& e) {
            return fail("warmup: GET /v1/models gave no model id (set model: in " + cfg.source_path +
                        "): HTTP " + std::to_string(r.status));
          }
        }
        nlohmann::json body = {{"model", model},
                               {"messages", {{{"role", "user"}, {"content", "Warm up: reply with one short sentence."}}}},
                               {"max_tokens", 16},
                               {"temperature", 0}};
        std::string payload = body.dump();
        std::vector<double> elapsed;
        for (int i = 0; i < cfg.warmup; ++i) {
          if (fault == "fail") return fail("warmup request " + std::to_string(i + 1) + ": injected fault");
          auto t0 = std::chrono::steady_clock::now();
          net::http_response r;
          if (!conn.request("POST", "/v1/chat/completions", payload, {}, std::chrono::seconds(600), r, err))
            return fail("warmup request " + std::to_string(i + 1) + " of " + std::to_string(cfg.warmup) + ": " + err);
          double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
          if (r.status != 200)
            return fail("warmup request " + std::to_string(i + 1) + " of " + std::to_string(cfg.warmup) +
                        " answered HTTP " + std::to_string(r.status) + ": " + r.body.substr(0, 500));
          spdlog::info("[warmup] request {}/{}: {:.1f} ms", i + 1, cfg.warmup, ms);
          elapsed.push_back(ms);
        }
        self->send(supervisor, atom::warmup::value, elapsed, model);
        self->quit();
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
