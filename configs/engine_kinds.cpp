#include "configs/engine_kinds.hpp"

namespace bp {

const std::vector<engine_kind>& engine_kinds_table() {
  // Sources for each row: ../shared/docs/engines.md (launch, readiness, version, resolved config).
  // Caches: ../shared/docs/engines.md section 8 (variables and defaults).
  const cache_def triton{"triton", "TRITON_CACHE_DIR", ".triton/cache"};
  const cache_def inductor{"torchinductor", "TORCHINDUCTOR_CACHE_DIR", ""};
  const cache_def flashinfer{"flashinfer", "FLASHINFER_WORKSPACE_BASE", ".cache/flashinfer"};
  const cache_def cuda{"cuda_jit", "CUDA_CACHE_PATH", ".nv/ComputeCache"};
  static const std::vector<engine_kind> kinds = {
      {"vllm", "/health", "vllm", false, {"/version", "/v1/models"}, {},
       {{"vllm", "VLLM_CACHE_ROOT", ".cache/vllm"}, inductor, triton, flashinfer, cuda},
       {"POST", "/reset_prefix_cache", false, false, "VLLM_SERVER_DEV_MODE"}},
      {"sglang", "/health", "sglang", false, {"/get_server_info", "/get_model_info", "/v1/models"}, {},
       {inductor, triton, flashinfer, cuda}, {"POST", "/flush_cache", false, true, ""}},
      {"trt-llm", "/health", "tensorrt_llm", false, {"/version", "/v1/models"}, {},
       {{"tllm_autotuner", "TLLM_AUTOTUNER_CACHE_PATH", ""}, cuda}, {}},
      // llama-server's /props carries a random media_marker chosen at every start.
      {"llama.cpp", "/health", "", true, {"/props", "/v1/models"}, {"/props.body.media_marker"}, {},
       {"POST", "/slots/{id}?action=erase", true, false, ""}},
      // The mock writes a pretend compile artefact into its cache on first start.
      {"mock", "/health", "", true, {"/version", "/v1/models"}, {}, {{"mock", "MOCK_CACHE_DIR", ".cache/mock-engine"}},
       {"POST", "/reset_prefix_cache", false, false, ""}},
  };
  return kinds;
}

const engine_kind* find_engine_kind(const std::string& name) {
  for (const auto& k : engine_kinds_table())
    if (k.name == name) return &k;
  return nullptr;
}

}  // namespace bp
