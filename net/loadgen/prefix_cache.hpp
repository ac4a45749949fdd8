#pragma once
/// Prefix-cache hygiene (--reset-prefix-cache): empty the engine's prefix cache before the
/// measured requests, the way its kind allows (configs/engine_kinds.cpp): vLLM POST
/// /reset_prefix_cache (served only with VLLM_SERVER_DEV_MODE=1), SGLang POST /flush_cache (refused
/// while requests run: retried until idle), llama.cpp POST /slots/{id}?action=erase per slot.
#include <string>

#include <nlohmann/json.hpp>

namespace bp::bench {

/// What happened: {"ok", "kind", "requests": [{"method", "path", "status", "answer"}], "error"?}.
nlohmann::json reset_prefix_cache(const std::string& kind, const std::string& host, int port, double timeout_s);

}  // namespace bp::bench
