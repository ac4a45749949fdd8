#include "net/loadgen/prefix_cache.hpp"

#include <chrono>
#include <thread>

#include "configs/engine_kinds.hpp"
#include "base/json_read.hpp"
#include "net/client/http_client.hpp"

namespace bp::bench {

using json = nlohmann::json;

json reset_prefix_cache(const std::string& kind, const std::string& host, int port, double timeout_s) {
  json out = {{"kind", kind}, {"ok", false}, {"requests", json::array()}};
  const engine_kind* k = find_engine_kind(kind);
  if (!k || k->reset.method.empty()) {
    out["error"] = "the engine kind '" + kind + "' has no prefix-cache reset";
    return out;
  }
  std::string base = "http://" + host + ":" + std::to_string(port);
  auto timeout = std::chrono::milliseconds(static_cast<long>(timeout_s * 1000));
  auto call = [&](const std::string& method, const std::string& path) -> std::optional<net::http_response> {
    std::string err;
    auto r = net::http_fetch(method, base + path, method == "POST" ? "" : "", timeout, err, 1 << 20);
    json rec = {{"method", method}, {"path", path}};
    if (r) {
      rec["status"] = r->status;
      rec["answer"] = r->body.substr(0, 500);
    } else {
      rec["error"] = err;
    }
    out["requests"].push_back(rec);
    return r;
  };
  std::vector<std::string> paths;
  if (k->reset.per_slot) {
    auto slots = call("GET", "/slots");
    if (!slots || slots->status != 200) {
      out["error"] = "GET /slots did not answer 200 (llama-server lists its slots unless started with --no-slots)";
      return out;
    }
    try {
      for (const auto& s : base::parse_json(slots->body, "GET /slots", base::engine_json_depth)) {
        std::string p = k->reset.path;
        p.replace(p.find("{id}"), 4, std::to_string(s.value("id", 0)));
        paths.push_back(p);
      }
    } catch (const std::exception& e) {
      out["error"] = std::string("GET /slots: not a JSON list of slots: ") + e.what();
      return out;
    }
  } else {
    paths.push_back(k->reset.path);
  }
  for (const auto& p : paths) {
    std::optional<net::http_response> r;
    // SGLang refuses a flush while requests are running: ask again until it is idle (5 s).
    for (int attempt = 0; attempt < (k->reset.retry_until_idle ? 50 : 1); ++attempt) {
      r = call(k->reset.method, p);
      if (r && r->status / 100 == 2) break;
      if (k->reset.retry_until_idle) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (!r || r->status / 100 != 2) {
      out["error"] = k->reset.method + " " + p + (r ? " answered " + std::to_string(r->status) : " failed") +
                     (!k->reset.needs_env.empty() && r && r->status == 404
                          ? " (vLLM serves it only with " + k->reset.needs_env + "=1 in the engine's env)"
                          : k->reset.per_slot && r && r->status == 501
                                ? " (llama-server allows slot actions only when started with --slot-save-path DIR)"
                                : "");
      return out;
    }
  }
  out["ok"] = true;
  return out;
}

}  // namespace bp::bench
