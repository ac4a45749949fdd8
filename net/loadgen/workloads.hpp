#pragma once
/// Generated and imported workloads (issue 30 item 4; docs/workloads.md): synthetic prompts of
/// controlled lengths, ShareGPT conversations, shared-prefix groups, multi-turn sessions and
/// trace replay, each returned as bench::query values (plus a schedule where the workload has
/// one), and the workload fingerprint. A pure library: no threads, no clock, no globals; the
/// only I/O is reading the named files and, with a token_counter, the engine's /tokenize.
///
/// Determinism: every random choice comes from a SplitMix64/xoshiro256** stream derived from
/// (seed, what, index), never from std:: distributions (whose output differs between standard
/// libraries), so the same seed gives byte-identical requests with the same build (and, with a
/// token counter, the same tokenizer).
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "net/loadgen/bench.hpp"

namespace bp::bench::workloads {

/// The words prompts are made of: 256 common lower-case English words, each one token (with or
/// without a leading space) in llama's SentencePiece vocabulary (checked with llama-server's
/// /tokenize) and in the common GPT-style BPE vocabularies, so a prompt of N words is an
/// estimate of N tokens that is usually exact.
const std::array<std::string_view, 256>& vocabulary();

/// --synthetic input=512,output=128[,spread=0.2][,dist=uniform][,ignore_eos=true]
struct synthetic_spec {
  int input = 512;   ///< prompt tokens (the centre of the distribution)
  int output = 128;  ///< max_tokens (the centre)
  double spread = 0;  ///< relative: uniform ±spread, normal σ = spread·L, lognormal σ(ln) = spread
  std::string dist = "fixed";  ///< fixed | uniform | normal | lognormal
  bool ignore_eos = true;      ///< sent as "ignore_eos": the engine generates exactly max_tokens
};

/// Parses the spec; `option` names the command-line option in errors. Throws
/// std::invalid_argument naming the option and the bad key or value. A spread without a dist
/// means uniform; dist=fixed with a spread is refused (it would silently be ignored).
synthetic_spec parse_synthetic(const std::string& text, const std::string& option = "--synthetic");

/// The canonical text of a spec (every key, fixed order): what result.json records.
std::string to_string(const synthetic_spec& s);

/// Counts the tokens of a text with the engine's own tokenizer; nullopt when it could not.
/// Not thread-safe (one connection, one cache): one per thread.
struct token_counter {
  std::function<std::optional<int>(const std::string& text)> count;
  std::string source;  ///< e.g. "llama.cpp POST http://127.0.0.1:8081/tokenize"
};

/// The engine kind's tokenizer endpoint (the engine-kind table's tokenize_path: "/tokenize" for
/// llama.cpp, vLLM and SGLang); "" for kinds without one (trt-llm, mock).
std::string tokenizer_path(const std::string& engine_kind);

/// A counter that talks to `base_url` (http://HOST:PORT of the ENGINE, not of bench-proxy: the
/// proxy forwards only /v1/*, and the engines serve /tokenize at the root), asking for the text's
/// tokens without special tokens (llama.cpp: {"content", "add_special": false} -> "tokens";
/// vLLM and SGLang: {"model", "prompt", "add_special_tokens": false} -> "count"). Probes once
/// with a short text: nullopt (and `why`) for a kind without an endpoint or an engine that does
/// not answer as expected. Counts are cached by text (bounded).
std::optional<token_counter> engine_token_counter(const std::string& base_url, const std::string& engine_kind,
                                                  const std::string& model, std::string* why = nullptr);

/// The engine's own base URL from a /meta snapshot: http://127.0.0.1:<engine.port>; "" without one.
std::string engine_base_url(const nlohmann::json& snapshot);

/// N synthetic requests. Each prompt starts with four words that encode a seeded bijection of
/// its index (no two requests of one workload share even their first token by accident), then
/// seeded words up to its drawn input length. request: {"messages": [{"role": "user",
/// "content"}], "max_tokens", "ignore_eos"?}; metadata: {"workload": "synthetic", "index",
/// "input_tokens", "output_tokens", "tokens_counted_by": "estimated" | counter source}.
/// With a counter each prompt is adjusted (words added or removed, at most 8 rounds) until the
/// counter says exactly the drawn length; a prompt it cannot settle throws std::runtime_error.
std::vector<query> synthetic(const synthetic_spec& spec, std::size_t n, std::uint64_t seed,
                             const token_counter* tok = nullptr);

/// The estimate used where no tokenizer counts: words for generated text, bytes/4 (at least 1)
/// for imported text (ShareGPT answers).
int estimate_tokens(std::string_view text);

/// ShareGPT JSON: a top-level array of {"id", "conversations": [{"from", "value"}]}; "from" is
/// human|user, gpt|assistant|chatgpt|bard|bing, or system. One query per conversation that has a
/// human turn followed by an assistant turn: the system turn (if any) and the first human turn
/// are the messages, the following assistant turn's length (counted by `tok`, else estimated)
/// is max_tokens. Conversations without such a pair are skipped and counted in `*skipped`.
/// Malformed files throw std::runtime_error naming the file and, for syntax, line and column;
/// for a bad conversation its index and id.
std::vector<query> load_sharegpt(const std::string& path, std::string* sha256 = nullptr,
                                 const token_counter* tok = nullptr, std::size_t* skipped = nullptr);

/// G prefixes of P tokens each (distinct from the first word on), and n requests assigned to
/// the groups round-robin (request i: group i % G), each prompt = its group's prefix + a unique
/// suffix drawn from `suffix` (input = suffix length, output = max_tokens). metadata adds
/// "prefix_group", "prefix_tokens"; input_tokens counts prefix + suffix.
std::vector<query> prefix_workload(int groups, int prefix_len, const synthetic_spec& suffix, std::size_t n,
                                   std::uint64_t seed, const token_counter* tok = nullptr);

/// Multi-turn sessions: the turns' own requests (user message only, no history) and the think
/// time before each turn after the first (think_ms.size() == turns.size() - 1).
struct session {
  std::string id;
  std::vector<query> turns;
  std::vector<double> think_ms;
};

/// --sessions turns=4,think_ms=2000[,think_dist=exponential] plus every --synthetic key (the
/// length of each user turn and of each answer).
struct session_spec {
  synthetic_spec turn;
  int turns = 3;
  double think_ms = 1000;                ///< mean think time before turns 2..K
  std::string think_dist = "exponential";  ///< fixed | uniform (0..2·mean) | exponential
};
session_spec parse_sessions(const std::string& text, const std::string& option = "--sessions");

std::vector<session> synthetic_sessions(const session_spec& spec, std::size_t n, std::uint64_t seed,
                                        const token_counter* tok = nullptr);

/// Sessions from ShareGPT conversations: every human turn is a turn (the system turn, if any, is
/// kept on the first), max_tokens is the length of the assistant turn that answered it; think
/// time `think_ms` between turns (0: none). Conversations without a human turn are skipped.
std::vector<session> load_sharegpt_sessions(const std::string& path, double think_ms = 0,
                                            std::string* sha256 = nullptr, const token_counter* tok = nullptr,
                                            std::size_t* skipped = nullptr);

/// The request body for turn `turn` of `s`: the turn's request with "messages" = the earlier
/// turns' messages, each followed by the assistant's actual answer `answers[j]`, then this turn's
/// user message. Needs answers.size() >= turn (std::invalid_argument otherwise).
nlohmann::json with_history(const session& s, std::size_t turn, const std::vector<std::string>& answers);

/// A trace: queries and their arrival times (ms after the first, already scaled).
struct trace {
  std::vector<query> queries;
  std::vector<double> arrival_ms;
};

/// JSONL trace, one request a line (Mooncake / AIPerf style): {"timestamp": ms, "input_length":
/// N, "output_length": M, "hash_ids"?: [..]} or with an explicit "prompt" (string) or
/// "messages" instead of input_length. hash_ids name blocks of `block_size` tokens shared by
/// every line that names them (prefix-cache traces); the rest of the prompt is unique. Every
/// request asks for "ignore_eos": the trace's output length is what the engine generates. Arrival =
/// (timestamp - first timestamp) * time_scale. Throws std::runtime_error "FILE:LINE: why" for
/// malformed JSON, missing or mistyped fields, negative lengths or timestamps, and timestamps
/// going backwards; std::invalid_argument naming --time-scale for a scale that is not > 0.
trace load_trace(const std::string& path, double time_scale = 1, std::uint64_t seed = 1,
                 const token_counter* tok = nullptr, std::string* sha256 = nullptr, int block_size = 512);

// Open-loop schedules are the load profile's (net/loadgen/load_profile.hpp: arrival_schedule,
// ramp_schedule); a trace brings its own (load_trace).

/// The workload fingerprint (docs/workloads.md, "Fingerprint"): sha256 over the exact request
/// bodies in send order and over the arrival schedule, and one digest of both.
struct workload_fingerprint {
  std::string sha256;           ///< what compare compares
  std::string requests_sha256;  ///< bodies only
  std::string schedule_sha256;  ///< schedule only (empty schedule: closed loop)
  std::size_t requests = 0, arrivals = 0;
  nlohmann::json to_json() const;
};
workload_fingerprint fingerprint(const std::vector<std::string>& bodies_in_order,
                                 const std::vector<double>& arrival_ms);

/// Sessions' fingerprint: each turn's own request body (request.dump(), no history: the answers
/// are not known in advance) in session order, and the think times as the schedule.
workload_fingerprint fingerprint(const std::vector<session>& sessions);

/// Why two results' workload fingerprints (result["workload_fingerprint"]) differ, "" when they
/// are equal. A result without one differs from one with one.
std::string fingerprint_mismatch(const nlohmann::json& a, const nlohmann::json& b);

}  // namespace bp::bench::workloads
