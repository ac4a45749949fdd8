#include "configs/engine_kinds.hpp"

namespace bp {

const std::vector<engine_kind>& engine_kinds_table() {
  // Each row as the engine's own documentation describes its launch, readiness, version and resolved
  // config (what each field means: docs/config.md and docs/meta-schema.md, engine_version, engine_reported).
  // Caches: the variables and defaults each engine documents (docs/meta-schema.md, "caches").
  const cache_def triton{"triton", "TRITON_CACHE_DIR", ".triton/cache"};
  const cache_def inductor{"torchinductor", "TORCHINDUCTOR_CACHE_DIR", ""};
  const cache_def flashinfer{"flashinfer", "FLASHINFER_WORKSPACE_BASE", ".cache/flashinfer"};
  const cache_def cuda{"cuda_jit", "CUDA_CACHE_PATH", ".nv/ComputeCache"};
  static const std::vector<engine_kind> kinds = {
      {"vllm", "/health", "vllm", false, {"/version", "/v1/models"}, {},
       {{"vllm", "VLLM_CACHE_ROOT", ".cache/vllm"}, inductor, triton, flashinfer, cuda},
       {"POST", "/reset_prefix_cache", false, false, "VLLM_SERVER_DEV_MODE"},
       "/metrics", "vLLM V1 engine (0.8 and later): always on",
       {{"spec_drafts", "vllm:spec_decode_num_drafts_total"},
        {"spec_draft_tokens", "vllm:spec_decode_num_draft_tokens_total"},
        {"spec_accepted_tokens", "vllm:spec_decode_num_accepted_tokens_total"},
        {"spec_accepted_per_position", "vllm:spec_decode_num_accepted_tokens_per_pos_total", true, "position"},
        {"prefix_cache_queries", "vllm:prefix_cache_queries_total"},
        {"prefix_cache_hits", "vllm:prefix_cache_hits_total"},
        {"preemptions", "vllm:num_preemptions_total"},
        {"prompt_tokens", "vllm:prompt_tokens_total"},
        {"generation_tokens", "vllm:generation_tokens_total"},
        {"request_success", "vllm:request_success_total", true, "finished_reason"}},
       "", {"--download-dir"}, "/tokenize", false},
      {"sglang", "/health", "sglang", false, {"/get_server_info", "/get_model_info", "/v1/models"}, {},
       {inductor, triton, flashinfer, cuda}, {"POST", "/flush_cache", false, true, ""},
       "/metrics", "SGLang 0.4 and later, only when started with --enable-metrics",
       {{"prompt_tokens", "sglang:prompt_tokens_total"},
        {"generation_tokens", "sglang:generation_tokens_total"},
        {"cached_tokens", "sglang:cached_tokens_total"},
        {"retracted_requests", "sglang:num_retracted_requests_total"},
        {"spec_accept_length", "sglang:spec_accept_length", false},
        {"spec_accept_rate", "sglang:spec_accept_rate", false},
        {"cache_hit_rate", "sglang:cache_hit_rate", false}},
       "--enable-metrics", {"--download-dir", "--crash-dump-folder"}, "/tokenize", false},
      {"trt-llm", "/health", "tensorrt_llm", false, {"/version", "/v1/models"}, {},
       {{"tllm_autotuner", "TLLM_AUTOTUNER_CACHE_PATH", ""}, cuda}, {}, "", "", {}, "", {}, "", false},
      // llama-server's /props carries a random media_marker chosen at every start.
      {"llama.cpp", "/health", "", true, {"/props", "/v1/models"}, {"/props.body.media_marker"}, {},
       {"POST", "/slots/{id}?action=erase", true, false, ""},
       "/metrics", "llama-server with --metrics (builds of 2025 and later)",
       {{"prompt_tokens", "llamacpp:prompt_tokens_total"},
        {"prompt_tokens_cached", "llamacpp:prompt_tokens_cached_total"},
        {"generation_tokens", "llamacpp:tokens_predicted_total"},
        {"decode_calls", "llamacpp:n_decode_total"},
        {"spec_drafts", "llamacpp:spec_decode_num_drafts_total"},
        {"spec_draft_tokens", "llamacpp:spec_decode_num_draft_tokens_total"},
        {"spec_accepted_tokens", "llamacpp:spec_decode_num_accepted_tokens_total"}},
       "--metrics", {"--slot-save-path", "--log-file", "--lookup-cache-dynamic", "-lcd"}, "/tokenize", true},
      // The mock writes a pretend compile artefact into its cache on first start.
      {"mock", "/health", "", true, {"/version", "/v1/models"}, {}, {{"mock", "MOCK_CACHE_DIR", ".cache/mock-engine"}},
       {"POST", "/reset_prefix_cache", false, false, ""}, "", "", {}, "", {}, "", false},
  };
  return kinds;
}

const engine_kind* find_engine_kind(const std::string& name) {
  for (const auto& k : engine_kinds_table())
    if (k.name == name) return &k;
  return nullptr;
}

}  // namespace bp
