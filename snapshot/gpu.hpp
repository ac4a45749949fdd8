#pragma once
/// nvidia-smi output parsing: a small XML reader for `nvidia-smi -q -x` and the curated per-GPU
/// summary. Element names differ between driver versions (power_readings vs gpu_power_readings,
/// power_limit vs current_power_limit); the summary looks in each known place.
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace bp::snap {

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
