// libFuzzer target: the config loader (configs/engine_config.hpp) on arbitrary text. It must never
// throw, crash or report an error without a file name.
#include <cstddef>
#include <cstdint>
#include <string>

#include "configs/engine_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  static const bp::env_map env = {{"HOME", "/root"}, {"PATH", "/usr/bin:/bin"}, {"HF_TOKEN", "hf_fuzz_token_123"},
                                  {"REPO_ROOT", "/tmp"}};
  auto r = bp::load_config_text(text, "/tmp/fuzz.yaml", env);
  if (!r.config && r.errors.empty()) __builtin_trap();
  for (const auto& e : r.errors)
    if (e.str().rfind("/tmp/fuzz.yaml", 0) != 0) __builtin_trap();
  if (r.config) {
    auto j = bp::to_json(*r.config);  // must serialise: every string is valid UTF-8
    (void)j.dump();
  }
  return 0;
}
