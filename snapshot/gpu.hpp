#pragma once
/// nvidia-smi: finding it (one way for every user), asking it for the GPUs' names, and parsing
/// its output: a small XML reader for `nvidia-smi -q -x` and the curated per-GPU summary. Element
/// names differ between driver versions (power_readings vs gpu_power_readings, power_limit vs
/// current_power_limit); the summary looks in each known place.
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace bp::snap {

/// The nvidia-smi to run, found the same way by the gpus collector, the telemetry sampler and the
/// fleet agent's hello: `BENCH_PROXY_NVIDIA_SMI` when set (as given), else the first executable
/// file `nvidia-smi` in the directories of `path`, a PATH value (empty entries skipped); empty
/// when there is none. Each caller says whose PATH: the telemetry sampler the engine's (the YAML
/// env's), the others bench-proxy's own.
std::string find_nvidia_smi(std::string_view path);
/// find_nvidia_smi on bench-proxy's own PATH (execvp's default when PATH is unset).
std::string find_nvidia_smi();

/// The names of the GPUs nvidia-smi lists (`--query-gpu=name --format=csv,noheader`), in order;
/// empty when `exe` is empty, or nvidia-smi cannot run, fails or outlasts `timeout` (then killed).
std::vector<std::string> nvidia_gpu_names(const std::string& exe,
                                          std::chrono::milliseconds timeout = std::chrono::seconds(10));
/// The non-blank lines of `--query-gpu=name --format=csv,noheader` output, trimmed.
std::vector<std::string> parse_gpu_names(const std::string& csv);

struct xml_node {
  std::string name;
  std::vector<std::pair<std::string, std::string>> attrs;
  std::string text;  ///< concatenated character data, trimmed
  std::vector<std::unique_ptr<xml_node>> children;
  const xml_node* child(const std::string& n) const;
  /// Path lookup "a/b/c"; nullptr when absent.
  const xml_node* find(const std::string& path) const;
  std::string attr(const std::string& n) const;
};

/// Parses an XML document (no namespaces or entities beyond the five predefined ones; DOCTYPE and
/// processing instructions skipped). Throws std::runtime_error with the byte offset on bad input.
std::unique_ptr<xml_node> parse_xml(const std::string& text);

/// The curated summary of `nvidia-smi -q -x`: {driver_version, cuda_version, gpus: [...]}.
nlohmann::json summarize_nvidia_smi_xml(const std::string& xml);

/// `nvidia-smi --query-gpu=... --format=csv` output: one object per GPU, keys without their unit
/// suffix ("memory.total [MiB]" -> "memory.total"), "[N/A]" and "deprecated" values as null.
nlohmann::json parse_query_gpu_csv(const std::string& csv);

/// The same curated per-GPU fields as summarize_nvidia_smi_xml, from query-gpu CSV rows.
nlohmann::json summarize_query_gpu_csv(const std::string& csv);

/// The fields bench-proxy asks for with --query-gpu when the XML cannot be used.
const char* query_gpu_fields();

}  // namespace bp::snap
