#include "configs/engine_kinds.hpp"

namespace bp {

const std::vector<engine_kind>& engine_kinds_table() {
  // Sources for each row: ../shared/docs/engines.md (launch, readiness, version, resolved config).
  static const std::vector<engine_kind> kinds = {
      {"vllm", "/health", "vllm", false, {"/version", "/v1/models"}, {}},
      {"sglang", "/health", "sglang", false, {"/get_server_info", "/get_model_info", "/v1/models"}, {}},
      {"trt-llm", "/health", "tensorrt_llm", false, {"/version", "/v1/models"}, {}},
      // llama-server's /props carries a random media_marker chosen at every start.
      {"llama.cpp", "/health", "", true, {"/props", "/v1/models"}, {"/props.body.media_marker"}},
      {"mock", "/health", "", true, {"/version", "/v1/models"}, {}},
  };
  return kinds;
}

const engine_kind* find_engine_kind(const std::string& name) {
  for (const auto& k : engine_kinds_table())
    if (k.name == name) return &k;
  return nullptr;
}

}  // namespace bp
