#pragma once
/// A workload file (--queries): CSV or JSONL rows, each an OpenAI request plus metadata kept with
/// its result. Generated and imported workloads are net/loadgen/workloads.hpp.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace bp::bench {

/// One workload row: the OpenAI request fields (sent) and everything else (kept, never sent).
struct query {
  int line = 0;               ///< 1-based line in the workload file
  nlohmann::json request;     ///< chat completion request body without model/stream
  nlohmann::json metadata;    ///< other columns/fields
};

/// Loads CSV (header row; `prompt` or `messages` column required) or JSONL (one object per line;
/// `messages` or `prompt` required). Throws std::runtime_error naming file:line on bad rows.
/// `sha256`, when given, receives the digest of exactly the bytes parsed.
std::vector<query> load_workload(const std::string& path, std::string* sha256 = nullptr);

/// Fields of an OpenAI chat completion request that bench sends; anything else is metadata.
bool is_request_field(const std::string& name);

}  // namespace bp::bench
