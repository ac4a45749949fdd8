#include "net/loadgen/workloads.hpp"

#include "configs/engine_kinds.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>
#include <unordered_map>

#include "base/files.hpp"
#include "base/json_read.hpp"
#include "base/numbers.hpp"
#include "base/sha256.hpp"
#include "base/text.hpp"
#include "net/client/http_client.hpp"

namespace bp::bench::workloads {

using json = nlohmann::json;

namespace {

// One token each in llama's SentencePiece vocabulary (checked word by word and in random
// sequences of 500 with llama-server's /tokenize) and common in GPT-style BPE vocabularies.
constexpr std::array<std::string_view, 256> kWords = {
    "the", "of", "and", "to", "in", "is", "was", "for",
    "that", "on", "with", "as", "by", "at", "from", "his",
    "it", "an", "were", "are", "which", "this", "be", "or",
    "has", "had", "not", "but", "their", "have", "they", "its",
    "one", "after", "who", "first", "two", "been", "also", "new",
    "other", "all", "time", "more", "she", "when", "her", "there",
    "into", "can", "some", "would", "over", "up", "out", "about",
    "only", "year", "years", "than", "made", "most", "where", "may",
    "state", "between", "many", "such", "city", "used", "both", "during",
    "these", "three", "world", "then", "under", "school", "each", "through",
    "later", "known", "so", "same", "well", "part", "while", "what",
    "national", "since", "because", "area", "being", "them", "people", "like",
    "we", "you", "he", "him", "our", "any", "no", "just",
    "could", "should", "will", "how", "very", "make", "did", "me",
    "my", "your", "before", "great", "back", "down", "day", "way",
    "long", "little", "good", "work", "life", "own", "last", "found",
    "still", "high", "even", "house", "name", "around", "against", "end",
    "old", "another", "might", "country", "called", "including", "took", "became",
    "left", "group", "film", "along", "within", "went", "team", "much",
    "war", "until", "early", "family", "four", "second", "music", "several",
    "season", "small", "again", "near", "best", "main", "number", "based",
    "game", "place", "series", "power", "set", "water", "light", "air",
    "fire", "land", "sea", "river", "road", "street", "town", "village",
    "church", "king", "queen", "army", "party", "government", "law", "court",
    "police", "money", "market", "price", "business", "company", "service", "system",
    "program", "report", "research", "study", "history", "story", "book", "letter",
    "word", "line", "point", "case", "fact", "idea", "question", "answer",
    "problem", "reason", "result", "form", "field", "order", "level", "center",
    "side", "head", "hand", "face", "eye", "body", "heart", "mind",
    "voice", "girl", "boy", "child", "man", "woman", "father", "mother",
    "son", "brother", "friend", "member", "student", "teacher", "doctor", "president",
    "minister", "leader", "room", "door", "window", "table", "food", "color",
};

// Stream tags: every random choice draws from its own stream, so adding one kind of draw never
// shifts another's.
enum : std::uint64_t {
  kTagSynthetic = 1,
  kTagPrefixGroup = 2,
  kTagPrefixSuffix = 3,
  kTagSession = 4,
  kTagTraceBlock = 5,
  kTagTraceLine = 6,
  kTagIdKey = 8,
};

constexpr int kIdWords = 4;        // words that make a prompt unique from its first token on
constexpr int kMaxLength = 1000000;  // tokens, either way
constexpr int kSettleRounds = 8;

std::uint64_t splitmix64(std::uint64_t& x) {
  std::uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::uint64_t mix(std::uint64_t seed, std::uint64_t tag, std::uint64_t index) {
  std::uint64_t x = seed;
  std::uint64_t a = splitmix64(x);
  x = a ^ (tag * 0xD1B54A32D192ED03ull);
  std::uint64_t b = splitmix64(x);
  x = b ^ (index * 0x8CB92BA72F3D8DD7ull);
  return splitmix64(x);
}

/// xoshiro256** (Blackman and Vigna), seeded through SplitMix64.
struct rng {
  std::uint64_t s[4];
  rng(std::uint64_t seed, std::uint64_t tag, std::uint64_t index) {
    std::uint64_t x = mix(seed, tag, index);
    for (auto& v : s) v = splitmix64(x);
  }
  static std::uint64_t rotl(std::uint64_t v, int k) { return (v << k) | (v >> (64 - k)); }
  std::uint64_t next() {
    std::uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
  }
  /// [0, 1)
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  /// (0, 1]
  double uniform_pos() { return static_cast<double>((next() >> 11) + 1) * 0x1.0p-53; }
  double normal() {
    double u1 = uniform_pos(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  double exponential(double mean) { return -mean * std::log(uniform_pos()); }
};

/// A bijection of 32-bit numbers keyed by the seed: distinct indexes give distinct first words.
std::uint32_t permute(std::uint32_t x, std::uint64_t key) {
  x ^= static_cast<std::uint32_t>(key);
  x *= 0x9E3779B1u;
  x ^= x >> 16;
  x += static_cast<std::uint32_t>(key >> 32);
  x *= 0x85EBCA6Bu;
  x ^= x >> 13;
  x *= 0xC2B2AE35u;
  x ^= x >> 16;
  return x;
}

/// Words drawn eight to a 64-bit draw.
struct word_source {
  rng r;
  std::uint64_t buf = 0;
  int left = 0;
  word_source(std::uint64_t seed, std::uint64_t tag, std::uint64_t index) : r(seed, tag, index) {}
  unsigned next() {
    if (left == 0) {
      buf = r.next();
      left = 8;
    }
    unsigned b = static_cast<unsigned>(buf & 0xFF);
    buf >>= 8;
    --left;
    return b;
  }
};

void append_word(std::string& out, std::string_view w) {
  if (!out.empty()) out.push_back(' ');
  out.append(w.data(), w.size());
}

/// Each word with a leading space, padded to 16 bytes: one fixed-size copy per word.
struct padded_words {
  char text[256][16] = {};
  unsigned char len[256] = {};
  padded_words() {
    for (std::size_t i = 0; i < kWords.size(); ++i) {
      text[i][0] = ' ';
      std::memcpy(text[i] + 1, kWords[i].data(), kWords[i].size());
      len[i] = static_cast<unsigned char>(kWords[i].size() + 1);
    }
  }
};
const padded_words kPadded;

void append_words(std::string& out, word_source& src, long count) {
  if (count <= 0) return;
  // Fixed-size copies into a scratch buffer, then one append of what was written.
  thread_local std::vector<char> scratch;
  std::size_t need = static_cast<std::size_t>(count) * 16;
  if (scratch.size() < need) scratch.resize(need);
  char* p = scratch.data();
  for (long i = 0; i < count; ++i) {
    unsigned w = src.next();
    std::memcpy(p, kPadded.text[w], 16);
    p += kPadded.len[w];
  }
  std::size_t skip = out.empty() ? 1 : 0;  // no leading space on the first word
  out.append(scratch.data() + skip, static_cast<std::size_t>(p - scratch.data()) - skip);
}

/// The first min(len, 4) words: the bytes of permute(index) (most significant first).
void append_id(std::string& out, std::uint32_t id, int len) {
  for (int k = 0; k < std::min(len, kIdWords); ++k) append_word(out, kWords[(id >> (24 - 8 * k)) & 0xFF]);
}

long count_words(const std::string& s) {
  if (s.empty()) return 0;
  return 1 + static_cast<long>(std::count(s.begin(), s.end(), ' '));
}

/// Drops `k` words from the end, keeping at least `keep` words.
void remove_words(std::string& s, long k, long keep) {
  long have = count_words(s);
  k = std::min(k, have - keep);
  for (long i = 0; i < k; ++i) {
    auto p = s.rfind(' ');
    s.erase(p == std::string::npos ? 0 : p);
  }
}

/// Adjusts the end of `text` until `count(text)` is `target` (bounded rounds).
void settle(std::string& text, int target, long keep_words, word_source& src,
            const std::function<std::optional<int>(const std::string&)>& count, const std::string& source,
            const std::string& what) {
  std::optional<int> c;
  for (int round = 0; round <= kSettleRounds; ++round) {
    c = count(text);
    if (!c)
      throw std::runtime_error(what + ": the token counter (" + source + ") gave no count");
    if (*c == target) return;
    if (round == kSettleRounds) break;
    long diff = static_cast<long>(target) - *c;
    if (diff > 0) {
      append_words(text, src, diff);
    } else {
      long before = count_words(text);
      remove_words(text, -diff, keep_words);
      if (count_words(text) == before) break;  // nothing left to remove
    }
  }
  throw std::runtime_error(what + ": could not make the prompt exactly " + std::to_string(target) + " tokens by " +
                           source + " in " + std::to_string(kSettleRounds) + " rounds (last count " +
                           std::to_string(*c) + ")");
}

int draw_length(int centre, const synthetic_spec& s, rng& r) {
  double v = centre;
  if (s.dist == "uniform")
    v = centre * (1 + s.spread * (2 * r.uniform() - 1));
  else if (s.dist == "normal")
    v = centre * (1 + s.spread * r.normal());
  else if (s.dist == "lognormal")
    v = centre * std::exp(s.spread * r.normal());
  long long l = std::llround(v);
  return static_cast<int>(std::clamp<long long>(l, 1, kMaxLength));
}

std::string counted_by(const token_counter* tok) { return tok ? tok->source : std::string("estimated"); }

json user_request(std::string content, int max_tokens, bool ignore_eos) {
  json req = json::object();
  json msg = json::object();
  msg["role"] = "user";
  msg["content"] = std::move(content);
  req["messages"] = json::array({std::move(msg)});
  req["max_tokens"] = max_tokens;
  if (ignore_eos) req["ignore_eos"] = true;
  return req;
}

void check_n(std::size_t n, const char* what) {
  if (n > 0xFFFFFFFFull)
    throw std::invalid_argument(std::string(what) + ": at most 4294967296 requests (each prompt's first words encode its index)");
}

/// One generated prompt: unique id words, then seeded words; settled by the counter if given.
std::string make_prompt(std::uint64_t seed, std::uint64_t tag, std::uint64_t index, std::uint32_t id, int length,
                        const token_counter* tok, const std::string& what) {
  word_source src(seed, tag, index);
  std::string text;
  text.reserve(static_cast<std::size_t>(length) * 7 + 8);
  append_id(text, id, length);
  append_words(text, src, length - std::min(length, kIdWords));
  if (tok) settle(text, length, std::min(length, kIdWords), src, tok->count, tok->source, what);
  return text;
}

std::invalid_argument spec_error(const std::string& option, const std::string& text, const std::string& why) {
  return std::invalid_argument(option + " '" + text + "': " + why);
}

}  // namespace

const std::array<std::string_view, 256>& vocabulary() { return kWords; }

// ---- spec parsing ----------------------------------------------------------------------------

namespace {

/// Applies one key of a synthetic spec; false when the key is not a synthetic key.
bool apply_synthetic_key(synthetic_spec& s, const std::string& key, const std::string& value, const std::string& option,
                         const std::string& text, bool& dist_given) {
  if (key == "input" || key == "output") {
    auto v = base::parse_integer(value, 1, kMaxLength);
    if (!v)
      throw spec_error(option, text, "'" + key + "' must be a whole number from 1 to " + std::to_string(kMaxLength) +
                                         ", got '" + value + "'");
    (key == "input" ? s.input : s.output) = static_cast<int>(*v);
  } else if (key == "spread") {
    auto v = base::parse_number(value, 0, 10);
    if (!v) throw spec_error(option, text, "'spread' must be a number from 0 to 10, got '" + value + "'");
    s.spread = *v;
  } else if (key == "dist") {
    if (value != "fixed" && value != "uniform" && value != "normal" && value != "lognormal")
      throw spec_error(option, text, "'dist' must be fixed, uniform, normal or lognormal, got '" + value + "'");
    s.dist = value;
    dist_given = true;
  } else if (key == "ignore_eos") {
    if (value == "true" || value == "1")
      s.ignore_eos = true;
    else if (value == "false" || value == "0")
      s.ignore_eos = false;
    else
      throw spec_error(option, text, "'ignore_eos' must be true or false, got '" + value + "'");
  } else {
    return false;
  }
  return true;
}

/// Splits "k=v,k=v": calls on(key, value) for each; refuses empty items and repeated keys.
void for_each_item(const std::string& text, const std::string& option,
                   const std::function<void(const std::string&, const std::string&)>& on) {
  if (base::trim(text).empty()) throw spec_error(option, text, "empty (expected key=value,...)");
  std::vector<std::string> seen;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    auto comma = text.find(',', pos);
    std::string item(base::trim(std::string_view(text).substr(pos, comma == std::string::npos ? std::string::npos : comma - pos)));
    pos = comma == std::string::npos ? text.size() + 1 : comma + 1;
    auto eq = item.find('=');
    if (item.empty() || eq == std::string::npos || eq == 0)
      throw spec_error(option, text, "'" + item + "' is not key=value");
    std::string key(base::trim(std::string_view(item).substr(0, eq)));
    std::string value(base::trim(std::string_view(item).substr(eq + 1)));
    if (std::find(seen.begin(), seen.end(), key) != seen.end())
      throw spec_error(option, text, "'" + key + "' is given twice");
    seen.push_back(key);
    on(key, value);
  }
}

void finish_synthetic(synthetic_spec& s, bool dist_given, const std::string& option, const std::string& text) {
  if (s.spread > 0 && !dist_given) s.dist = "uniform";
  if (s.dist == "fixed" && s.spread > 0)
    throw spec_error(option, text, "dist=fixed with spread=" + base::fixed(s.spread, 3) +
                                       " (a fixed length has no spread: choose uniform, normal or lognormal)");
  if (s.dist == "uniform" && s.spread > 1)
    throw spec_error(option, text, "a uniform spread above 1 would draw negative lengths");
}

}  // namespace

synthetic_spec parse_synthetic(const std::string& text, const std::string& option) {
  synthetic_spec s;
  bool dist_given = false;
  for_each_item(text, option, [&](const std::string& k, const std::string& v) {
    if (!apply_synthetic_key(s, k, v, option, text, dist_given))
      throw spec_error(option, text, "unknown key '" + k + "' (keys: input, output, spread, dist, ignore_eos)");
  });
  finish_synthetic(s, dist_given, option, text);
  return s;
}

std::string to_string(const synthetic_spec& s) {
  return "input=" + std::to_string(s.input) + ",output=" + std::to_string(s.output) +
         ",spread=" + base::fixed(s.spread, 6) + ",dist=" + s.dist + ",ignore_eos=" + (s.ignore_eos ? "true" : "false");
}

session_spec parse_sessions(const std::string& text, const std::string& option) {
  session_spec s;
  bool dist_given = false;
  for_each_item(text, option, [&](const std::string& k, const std::string& v) {
    if (apply_synthetic_key(s.turn, k, v, option, text, dist_given)) return;
    if (k == "turns") {
      auto n = base::parse_integer(v, 1, 1000);
      if (!n) throw spec_error(option, text, "'turns' must be a whole number from 1 to 1000, got '" + v + "'");
      s.turns = static_cast<int>(*n);
    } else if (k == "think_ms") {
      auto n = base::parse_number(v, 0, base::max_duration_s * 1000);
      if (!n) throw spec_error(option, text, "'think_ms' must be a number from 0 to 86400000, got '" + v + "'");
      s.think_ms = *n;
    } else if (k == "think_dist") {
      if (v != "fixed" && v != "uniform" && v != "exponential")
        throw spec_error(option, text, "'think_dist' must be fixed, uniform or exponential, got '" + v + "'");
      s.think_dist = v;
    } else {
      throw spec_error(option, text,
                       "unknown key '" + k + "' (keys: turns, think_ms, think_dist, input, output, spread, dist, ignore_eos)");
    }
  });
  finish_synthetic(s.turn, dist_given, option, text);
  return s;
}

// ---- tokenizer endpoints ---------------------------------------------------------------------

std::string tokenizer_path(const std::string& engine_kind) {
  const bp::engine_kind* k = find_engine_kind(engine_kind);
  return k ? k->tokenize_path : "";
}

namespace {

struct counter_state {
  net::url_parts url;
  std::string kind, model, source;
  net::http_connection conn;
  std::unordered_map<std::string, int> cache;
  static constexpr std::size_t kCacheMax = 8192;
  std::string last_error;

  std::optional<int> count(const std::string& text) {
    if (auto it = cache.find(text); it != cache.end()) return it->second;
    const bp::engine_kind* k = find_engine_kind(kind);
    json body = k && k->tokenize_takes_content
                    ? json{{"content", text}, {"add_special", false}}
                    : json{{"model", model}, {"prompt", text}, {"add_special_tokens", false}};
    std::string err;
    if (!conn.connected() && !conn.connect(url.host, url.port, std::chrono::milliseconds(10000), err)) {
      last_error = err;
      return std::nullopt;
    }
    net::http_response r;
    if (!conn.request("POST", url.target, body.dump(), {{"Content-Type", "application/json"}},
                      std::chrono::milliseconds(60000), r, err, nullptr, 64u << 20)) {
      conn.close();
      last_error = err;
      return std::nullopt;
    }
    if (r.status != 200) {
      last_error = "HTTP " + std::to_string(r.status) + ": " + r.body.substr(0, 200);
      return std::nullopt;
    }
    std::optional<int> n;
    try {
      json a = base::parse_json(r.body, "POST " + source, base::engine_json_depth);
      if (a.contains("count") && a["count"].is_number_integer())
        n = a["count"].get<int>();
      else if (a.contains("tokens") && a["tokens"].is_array())
        n = static_cast<int>(a["tokens"].size());
    } catch (const std::exception& e) {
      last_error = e.what();
      return std::nullopt;
    }
    if (!n) {
      last_error = "no 'count' or 'tokens' in the answer: " + r.body.substr(0, 200);
      return std::nullopt;
    }
    if (cache.size() >= kCacheMax) cache.clear();
    cache.emplace(text, *n);
    return n;
  }
};

}  // namespace

std::optional<token_counter> engine_token_counter(const std::string& base_url, const std::string& engine_kind,
                                                  const std::string& model, std::string* why) {
  auto fail = [&](const std::string& w) -> std::optional<token_counter> {
    if (why) *why = w;
    return std::nullopt;
  };
  std::string path = tokenizer_path(engine_kind);
  if (path.empty())
    return fail("the engine kind '" + engine_kind + "' has no tokenizer endpoint: token counts are estimated");
  auto st = std::make_shared<counter_state>();
  std::string err;
  std::string base = base_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  if (!net::parse_url(base + path, st->url, err)) return fail("tokenizer URL '" + base + path + "': " + err);
  st->kind = engine_kind;
  st->model = model;
  st->source = engine_kind + " POST " + base + path;
  // One probe: an engine that does not answer as its kind should is no counter at all.
  auto probe = st->count("hello world");
  if (!probe || *probe <= 0)
    return fail(st->source + " does not count tokens" + (st->last_error.empty() ? "" : ": " + st->last_error));
  token_counter t;
  t.source = st->source;
  t.count = [st](const std::string& text) { return st->count(text); };
  return t;
}

std::string engine_base_url(const json& snapshot) {
  if (!snapshot.is_object() || !snapshot.contains("engine") || !snapshot["engine"].is_object()) return "";
  const json& e = snapshot["engine"];
  if (!e.contains("port") || !e["port"].is_number_integer() || e["port"].get<long>() <= 0) return "";
  return "http://127.0.0.1:" + std::to_string(e["port"].get<long>());
}

int estimate_tokens(std::string_view text) { return std::max<int>(1, static_cast<int>((text.size() + 2) / 4)); }

// ---- synthetic -------------------------------------------------------------------------------

std::vector<query> synthetic(const synthetic_spec& spec, std::size_t n, std::uint64_t seed, const token_counter* tok) {
  check_n(n, "--synthetic");
  std::vector<query> out;
  out.reserve(n);
  const std::uint64_t key = mix(seed, kTagIdKey, kTagSynthetic);
  const std::string by = counted_by(tok);
  for (std::size_t i = 0; i < n; ++i) {
    rng r(seed, kTagSynthetic, i);
    int in = draw_length(spec.input, spec, r);
    int outl = draw_length(spec.output, spec, r);
    query q;
    q.line = static_cast<int>(std::min<std::size_t>(i + 1, std::numeric_limits<int>::max()));
    q.request = user_request(
        make_prompt(seed, kTagSynthetic, i ^ 0x8000000000000000ull, permute(static_cast<std::uint32_t>(i), key), in,
                    tok, tok ? "synthetic request " + std::to_string(i) : std::string()),
        outl, spec.ignore_eos);
    q.metadata = {{"workload", "synthetic"}, {"index", i}, {"input_tokens", in}, {"output_tokens", outl},
                  {"tokens_counted_by", by}};
    out.push_back(std::move(q));
  }
  return out;
}

// ---- prefix groups ---------------------------------------------------------------------------

std::vector<query> prefix_workload(int groups, int prefix_len, const synthetic_spec& suffix, std::size_t n,
                                   std::uint64_t seed, const token_counter* tok) {
  if (groups < 1) throw std::invalid_argument("--prefix-groups must be at least 1, got " + std::to_string(groups));
  if (prefix_len < 1 || prefix_len > kMaxLength)
    throw std::invalid_argument("--prefix-len must be a whole number from 1 to " + std::to_string(kMaxLength) +
                                ", got " + std::to_string(prefix_len));
  check_n(n, "--prefix-groups");
  const std::uint64_t gkey = mix(seed, kTagIdKey, kTagPrefixGroup), skey = mix(seed, kTagIdKey, kTagPrefixSuffix);
  std::vector<std::string> prefixes;
  for (int g = 0; g < groups; ++g)
    prefixes.push_back(make_prompt(seed, kTagPrefixGroup, static_cast<std::uint64_t>(g),
                                   permute(static_cast<std::uint32_t>(g), gkey), prefix_len, tok,
                                   "prefix group " + std::to_string(g)));
  const std::string by = counted_by(tok);
  std::vector<query> out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    int g = static_cast<int>(i % static_cast<std::size_t>(groups));
    rng r(seed, kTagPrefixSuffix, i);
    int in = draw_length(suffix.input, suffix, r);
    int outl = draw_length(suffix.output, suffix, r);
    word_source src(seed, kTagPrefixSuffix, i ^ 0x8000000000000000ull);
    std::string suf;
    suf.reserve(static_cast<std::size_t>(in) * 6 + 8);
    append_id(suf, permute(static_cast<std::uint32_t>(i), skey), in);
    append_words(suf, src, in - std::min(in, kIdWords));
    const std::string& pre = prefixes[static_cast<std::size_t>(g)];
    if (tok) {
      auto whole = [&](const std::string& s) { return tok->count(pre + " " + s); };
      settle(suf, prefix_len + in, std::min(in, kIdWords), src, whole, tok->source,
             "prefix request " + std::to_string(i));
    }
    query q;
    q.line = static_cast<int>(std::min<std::size_t>(i + 1, std::numeric_limits<int>::max()));
    q.request = user_request(pre + " " + suf, outl, suffix.ignore_eos);
    q.metadata = {{"workload", "prefix"},         {"index", i},
                  {"prefix_group", g},            {"prefix_tokens", prefix_len},
                  {"input_tokens", prefix_len + in}, {"output_tokens", outl},
                  {"tokens_counted_by", by}};
    out.push_back(std::move(q));
  }
  return out;
}

// ---- sessions --------------------------------------------------------------------------------

std::vector<session> synthetic_sessions(const session_spec& spec, std::size_t n, std::uint64_t seed,
                                        const token_counter* tok) {
  if (spec.turns < 1) throw std::invalid_argument("--sessions: 'turns' must be at least 1");
  if (n > 0xFFFFFFFFull / static_cast<std::uint64_t>(spec.turns))
    throw std::invalid_argument("--sessions: at most 4294967296 turns in all (each turn's first words encode its index)");
  const std::uint64_t key = mix(seed, kTagIdKey, kTagSession);
  const std::string by = counted_by(tok);
  std::vector<session> out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    session s;
    s.id = "session-" + std::to_string(i);
    rng r(seed, kTagSession, i);
    for (int k = 0; k < spec.turns; ++k) {
      int in = draw_length(spec.turn.input, spec.turn, r);
      int outl = draw_length(spec.turn.output, spec.turn, r);
      if (k > 0) {
        double t = spec.think_ms;
        if (spec.think_dist == "exponential")
          t = r.exponential(spec.think_ms);
        else if (spec.think_dist == "uniform")
          t = 2 * spec.think_ms * r.uniform();
        s.think_ms.push_back(t);
      }
      // Every turn of every session starts with its own id words: no accidental sharing, while the
      // history a later turn carries is shared with the earlier turns on purpose.
      std::uint64_t idx = i * static_cast<std::uint64_t>(spec.turns) + static_cast<std::uint64_t>(k);
      query q;
      q.line = k + 1;
      q.request = user_request(make_prompt(seed, kTagSession, idx ^ 0x8000000000000000ull,
                                           permute(static_cast<std::uint32_t>(idx), key), in, tok,
                                           s.id + " turn " + std::to_string(k + 1)),
                               outl, spec.turn.ignore_eos);
      q.metadata = {{"workload", "session"}, {"session", s.id},      {"turn", k + 1},
                    {"input_tokens", in},    {"output_tokens", outl}, {"tokens_counted_by", by}};
      s.turns.push_back(std::move(q));
    }
    out.push_back(std::move(s));
  }
  return out;
}

json with_history(const session& s, std::size_t turn, const std::vector<std::string>& answers) {
  if (turn >= s.turns.size())
    throw std::invalid_argument("with_history: " + s.id + " has " + std::to_string(s.turns.size()) +
                                " turns, asked for turn index " + std::to_string(turn));
  if (answers.size() < turn)
    throw std::invalid_argument("with_history: turn index " + std::to_string(turn) + " of " + s.id + " needs " +
                                std::to_string(turn) + " answers, got " + std::to_string(answers.size()));
  json body = s.turns[turn].request;
  json msgs = json::array();
  for (std::size_t j = 0; j < turn; ++j) {
    for (const auto& m : s.turns[j].request.at("messages")) msgs.push_back(m);
    msgs.push_back({{"role", "assistant"}, {"content", answers[j]}});
  }
  for (const auto& m : s.turns[turn].request.at("messages")) msgs.push_back(m);
  body["messages"] = std::move(msgs);
  return body;
}

// ---- ShareGPT --------------------------------------------------------------------------------

namespace {

/// ShareGPT files are large (ShareGPT_V3 is ~670 MB).
constexpr std::uint64_t kShareGptMaxBytes = 2ull << 30;

struct sharegpt_turn {
  std::string role;  // system | user | assistant
  const std::string* text;
};

struct sharegpt_conversation {
  std::size_t index;
  std::string id;
  std::vector<sharegpt_turn> turns;
};

std::string conv_name(const std::string& path, std::size_t index, const std::string& id) {
  return path + ": conversation " + std::to_string(index) + (id.empty() ? "" : " (id \"" + id + "\")");
}

/// Parses and checks the whole file; conversations hold pointers into `doc`.
std::vector<sharegpt_conversation> read_sharegpt(const std::string& path, json& doc, std::string* sha256) {
  std::string text = base::read_file_limited(path, kShareGptMaxBytes);
  if (sha256) *sha256 = sha256_hex(text);
  doc = base::parse_json(text, path, base::workload_json_depth);
  text.clear();
  text.shrink_to_fit();
  if (!doc.is_array())
    throw std::runtime_error(path + ": ShareGPT JSON must be a top-level array of {\"id\", \"conversations\"}, got " +
                             std::string(doc.type_name()));
  std::vector<sharegpt_conversation> out;
  out.reserve(doc.size());
  for (std::size_t i = 0; i < doc.size(); ++i) {
    const json& c = doc[i];
    if (!c.is_object()) throw std::runtime_error(conv_name(path, i, "") + ": not an object");
    sharegpt_conversation conv{i, "", {}};
    if (c.contains("id")) conv.id = c["id"].is_string() ? c["id"].get<std::string>() : c["id"].dump();
    auto it = c.find("conversations");
    if (it == c.end()) throw std::runtime_error(conv_name(path, i, conv.id) + ": no 'conversations'");
    if (!it->is_array()) throw std::runtime_error(conv_name(path, i, conv.id) + ": 'conversations' is not an array");
    for (std::size_t k = 0; k < it->size(); ++k) {
      const json& t = (*it)[k];
      std::string where = conv_name(path, i, conv.id) + ", turn " + std::to_string(k);
      if (!t.is_object()) throw std::runtime_error(where + ": not an object");
      auto f = t.find("from");
      auto v = t.find("value");
      if (f == t.end() || !f->is_string()) throw std::runtime_error(where + ": 'from' is missing or not a string");
      if (v == t.end() || !v->is_string()) throw std::runtime_error(where + ": 'value' is missing or not a string");
      const std::string& from = f->get_ref<const std::string&>();
      std::string role;
      if (from == "human" || from == "user")
        role = "user";
      else if (from == "gpt" || from == "assistant" || from == "chatgpt" || from == "bard" || from == "bing")
        role = "assistant";
      else if (from == "system")
        role = "system";
      else
        throw std::runtime_error(where + ": 'from' is '" + from +
                                 "' (expected human, user, gpt, assistant, chatgpt, bard, bing or system)");
      conv.turns.push_back({role, &v->get_ref<const std::string&>()});
    }
    out.push_back(std::move(conv));
  }
  return out;
}

int count_text(const std::string& text, const token_counter* tok, const std::string& what) {
  if (!tok) return estimate_tokens(text);
  auto n = tok->count(text);
  if (!n) throw std::runtime_error(what + ": the token counter (" + tok->source + ") gave no count");
  return std::max(1, *n);
}

}  // namespace

std::vector<query> load_sharegpt(const std::string& path, std::string* sha256, const token_counter* tok,
                                 std::size_t* skipped) {
  json doc;
  auto convs = read_sharegpt(path, doc, sha256);
  std::vector<query> out;
  std::size_t skip = 0;
  const std::string by = counted_by(tok);
  for (const auto& c : convs) {
    const std::string* system = nullptr;
    std::size_t k = 0;
    for (; k < c.turns.size() && c.turns[k].role == "system"; ++k) system = c.turns[k].text;
    // The first human turn and the assistant turn right after it.
    while (k < c.turns.size() && c.turns[k].role != "user") ++k;
    if (k + 1 >= c.turns.size() || c.turns[k + 1].role != "assistant") {
      ++skip;
      continue;
    }
    std::string what = conv_name(path, c.index, c.id);
    int outl = count_text(*c.turns[k + 1].text, tok, what);
    json msgs = json::array();
    if (system) msgs.push_back({{"role", "system"}, {"content", *system}});
    msgs.push_back({{"role", "user"}, {"content", *c.turns[k].text}});
    query q;
    q.line = static_cast<int>(std::min<std::size_t>(c.index + 1, std::numeric_limits<int>::max()));
    q.request = {{"messages", std::move(msgs)}, {"max_tokens", outl}};
    q.metadata = {{"workload", "sharegpt"},
                  {"index", c.index},
                  {"id", c.id},
                  {"input_tokens", count_text(*c.turns[k].text, tok, what)},
                  {"output_tokens", outl},
                  {"tokens_counted_by", by}};
    out.push_back(std::move(q));
  }
  if (skipped) *skipped = skip;
  if (out.empty()) throw std::runtime_error(path + ": no conversation has a human turn followed by an answer");
  return out;
}

std::vector<session> load_sharegpt_sessions(const std::string& path, double think_ms, std::string* sha256,
                                            const token_counter* tok, std::size_t* skipped) {
  if (!(think_ms >= 0)) throw std::invalid_argument("think time must be at least 0 ms");
  json doc;
  auto convs = read_sharegpt(path, doc, sha256);
  std::vector<session> out;
  std::size_t skip = 0;
  const std::string by = counted_by(tok);
  for (const auto& c : convs) {
    session s;
    s.id = c.id.empty() ? "conversation-" + std::to_string(c.index) : c.id;
    std::string what = conv_name(path, c.index, c.id);
    const std::string* system = nullptr;
    for (std::size_t k = 0; k < c.turns.size(); ++k) {
      if (c.turns[k].role == "system" && s.turns.empty()) system = c.turns[k].text;
      if (c.turns[k].role != "user" || k + 1 >= c.turns.size() || c.turns[k + 1].role != "assistant") continue;
      json msgs = json::array();
      if (system && s.turns.empty()) msgs.push_back({{"role", "system"}, {"content", *system}});
      msgs.push_back({{"role", "user"}, {"content", *c.turns[k].text}});
      int outl = count_text(*c.turns[k + 1].text, tok, what);
      query q;
      q.line = static_cast<int>(s.turns.size() + 1);
      q.request = {{"messages", std::move(msgs)}, {"max_tokens", outl}};
      q.metadata = {{"workload", "sharegpt-session"},
                    {"session", s.id},
                    {"turn", s.turns.size() + 1},
                    {"input_tokens", count_text(*c.turns[k].text, tok, what)},
                    {"output_tokens", outl},
                    {"tokens_counted_by", by}};
      if (!s.turns.empty()) s.think_ms.push_back(think_ms);
      s.turns.push_back(std::move(q));
    }
    if (s.turns.empty()) {
      ++skip;
      continue;
    }
    out.push_back(std::move(s));
  }
  if (skipped) *skipped = skip;
  if (out.empty()) throw std::runtime_error(path + ": no conversation has a human turn followed by an answer");
  return out;
}

// ---- traces ----------------------------------------------------------------------------------

namespace {

int trace_length(const json& line, const char* key, const std::string& where, bool required) {
  auto it = line.find(key);
  if (it == line.end()) {
    if (required) throw std::runtime_error(where + ": '" + key + "' is missing");
    return -1;
  }
  if (!it->is_number_integer() && !(it->is_number_float() && std::floor(it->get<double>()) == it->get<double>()))
    throw std::runtime_error(where + ": '" + key + "' must be a whole number, got " + it->dump());
  double v = it->get<double>();
  if (v < 0) throw std::runtime_error(where + ": '" + key + "' is negative (" + it->dump() + ")");
  if (v < 1 || v > kMaxLength)
    throw std::runtime_error(where + ": '" + key + "' must be from 1 to " + std::to_string(kMaxLength) + ", got " +
                             it->dump());
  return static_cast<int>(v);
}

}  // namespace

trace load_trace(const std::string& path, double time_scale, std::uint64_t seed, const token_counter* tok,
                 std::string* sha256, int block_size) {
  if (!(time_scale > 0) || !std::isfinite(time_scale))
    throw std::invalid_argument("--time-scale must be a number above 0, got " + base::fixed(time_scale, 6));
  if (block_size < 1) throw std::invalid_argument("trace block size must be at least 1 token");
  std::string text = base::read_file_limited(path);
  if (sha256) *sha256 = sha256_hex(text);
  trace out;
  const std::uint64_t key = mix(seed, kTagIdKey, kTagTraceLine);
  const std::string by = counted_by(tok);
  std::unordered_map<std::uint64_t, std::string> blocks;
  double first = 0, prev = 0;
  int prev_line = 0;
  std::size_t pos = 0;
  int lineno = 0;
  while (pos < text.size()) {
    auto nl = text.find('\n', pos);
    std::string_view raw(text.data() + pos, (nl == std::string::npos ? text.size() : nl) - pos);
    pos = nl == std::string::npos ? text.size() : nl + 1;
    ++lineno;
    if (base::trim(raw).empty()) continue;
    std::string where = path + ":" + std::to_string(lineno);
    json j = base::parse_json(raw, path, base::workload_json_depth, static_cast<std::size_t>(lineno));
    if (!j.is_object()) throw std::runtime_error(where + ": a trace line must be a JSON object");
    auto ts = j.find("timestamp");
    if (ts == j.end()) throw std::runtime_error(where + ": 'timestamp' is missing (ms)");
    if (!ts->is_number() || !std::isfinite(ts->get<double>()))
      throw std::runtime_error(where + ": 'timestamp' must be a number (ms), got " + ts->dump());
    double t = ts->get<double>();
    if (t < 0) throw std::runtime_error(where + ": 'timestamp' is negative (" + ts->dump() + ")");
    if (out.queries.empty()) {
      first = t;
    } else if (t < prev) {
      throw std::runtime_error(where + ": timestamp " + ts->dump() + " goes backwards (line " +
                               std::to_string(prev_line) + " has " + base::fixed(prev, 3) +
                               "): a trace lists requests in arrival order");
    }
    prev = t;
    prev_line = lineno;
    int outl = trace_length(j, "output_length", where, true);
    std::size_t index = out.queries.size();
    query q;
    q.line = lineno;
    json meta = {{"workload", "trace"}, {"line", lineno}, {"timestamp_ms", t}, {"output_tokens", outl}};
    bool has_prompt = j.contains("prompt"), has_messages = j.contains("messages");
    if (has_prompt && has_messages) throw std::runtime_error(where + ": give 'prompt' or 'messages', not both");
    if (has_prompt || has_messages) {
      json msgs;
      if (has_prompt) {
        if (!j["prompt"].is_string()) throw std::runtime_error(where + ": 'prompt' must be a string");
        msgs = json::array({{{"role", "user"}, {"content", j["prompt"]}}});
      } else {
        msgs = j["messages"];
        if (!msgs.is_array() || msgs.empty()) throw std::runtime_error(where + ": 'messages' must be a non-empty array");
      }
      q.request = {{"messages", std::move(msgs)}, {"max_tokens", outl}, {"ignore_eos", true}};
      int in = trace_length(j, "input_length", where, false);
      if (in > 0) meta["input_tokens"] = in;
      meta["tokens_counted_by"] = "trace";
    } else {
      int in = trace_length(j, "input_length", where, true);
      std::string prompt;
      prompt.reserve(static_cast<std::size_t>(in) * 6 + 8);
      long shared = 0;
      word_source src(seed, kTagTraceLine, index);
      if (auto h = j.find("hash_ids"); h != j.end()) {
        if (!h->is_array()) throw std::runtime_error(where + ": 'hash_ids' must be an array of whole numbers");
        json ids = json::array();
        for (const auto& id : *h) {
          if (!id.is_number_unsigned())
            throw std::runtime_error(where + ": 'hash_ids' must hold whole numbers >= 0, got " + id.dump());
          ids.push_back(id);
          if (shared >= in) continue;
          std::uint64_t hid = id.get<std::uint64_t>();
          auto it = blocks.find(hid);
          if (it == blocks.end()) {
            word_source bsrc(seed, kTagTraceBlock, hid);
            std::string b;
            append_words(b, bsrc, block_size);
            it = blocks.emplace(hid, std::move(b)).first;
          }
          long take = std::min<long>(block_size, in - shared);
          if (take == block_size) {
            append_word(prompt, it->second);
          } else {
            std::size_t cut = 0;
            for (long w = 0; w < take; ++w) cut = it->second.find(' ', cut) + (w + 1 < take ? 1 : 0);
            append_word(prompt, std::string_view(it->second).substr(0, cut));
          }
          shared += take;
        }
        meta["hash_ids"] = std::move(ids);
      }
      long rest = in - shared;
      if (rest > 0) {
        // The part no block covers is this line's own: unique from its first word on.
        std::string own;
        append_id(own, permute(static_cast<std::uint32_t>(index), key), static_cast<int>(rest));
        append_words(own, src, rest - std::min<long>(rest, kIdWords));
        append_word(prompt, own);
      }
      if (tok) settle(prompt, in, std::min<long>(in, kIdWords), src, tok->count, tok->source, where);
      q.request = user_request(std::move(prompt), outl, true);
      meta["input_tokens"] = in;
      meta["tokens_counted_by"] = by;
    }
    for (auto it = j.begin(); it != j.end(); ++it)
      if (it.key() != "timestamp" && it.key() != "input_length" && it.key() != "output_length" &&
          it.key() != "hash_ids" && it.key() != "prompt" && it.key() != "messages")
        meta["trace_" + it.key()] = it.value();
    q.metadata = std::move(meta);
    out.queries.push_back(std::move(q));
    out.arrival_ms.push_back((t - first) * time_scale);
  }
  if (out.queries.empty()) throw std::runtime_error(path + ": no trace lines");
  return out;
}

// ---- fingerprints ----------------------------------------------------------------------------

json workload_fingerprint::to_json() const {
  return {{"sha256", sha256},
          {"requests_sha256", requests_sha256},
          {"schedule_sha256", schedule_sha256},
          {"requests", requests},
          {"arrivals", arrivals},
          {"encoding", "bench-proxy workload fingerprint v1 (docs/workloads.md)"}};
}

workload_fingerprint fingerprint(const std::vector<std::string>& bodies, const std::vector<double>& arrival_ms) {
  workload_fingerprint f;
  sha256_hasher h;
  char num[32];
  for (const auto& b : bodies) {
    int k = std::snprintf(num, sizeof num, "%zu\n", b.size());
    h.update(num, static_cast<std::size_t>(k));
    h.update(b);
    h.update("\n", 1);
  }
  f.requests_sha256 = h.final_hex();
  for (double a : arrival_ms) {
    int k = std::snprintf(num, sizeof num, "%lld\n", static_cast<long long>(std::llround(a * 1000)));
    h.update(num, static_cast<std::size_t>(k));
  }
  f.schedule_sha256 = h.final_hex();
  f.requests = bodies.size();
  f.arrivals = arrival_ms.size();
  f.sha256 = sha256_hex("bench-proxy workload fingerprint v1\nrequests " + std::to_string(f.requests) + " " +
                        f.requests_sha256 + "\nschedule " + std::to_string(f.arrivals) + " " + f.schedule_sha256 +
                        "\n");
  return f;
}

workload_fingerprint fingerprint(const std::vector<session>& sessions) {
  std::vector<std::string> bodies;
  std::vector<double> schedule;
  for (const auto& s : sessions) {
    for (const auto& t : s.turns) bodies.push_back(t.request.dump());
    schedule.push_back(0);
    for (double t : s.think_ms) schedule.push_back(t);
  }
  return fingerprint(bodies, schedule);
}

std::string fingerprint_mismatch(const json& a, const json& b) {
  auto get = [](const json& r) -> const json* {
    if (!r.is_object()) return nullptr;
    auto it = r.find("workload_fingerprint");
    return it != r.end() && it->is_object() && it->contains("sha256") ? &*it : nullptr;
  };
  const json *fa = get(a), *fb = get(b);
  if (!fa && !fb) return "";
  if (!fa || !fb) return std::string("only the ") + (fa ? "first" : "second") + " result has a workload fingerprint";
  if ((*fa)["sha256"] == (*fb)["sha256"]) return "";
  std::vector<std::string> parts;
  auto part = [&](const char* digest, const char* count, const char* name) {
    if (fa->value(digest, json()) == fb->value(digest, json())) return;
    parts.push_back(std::string(name) + " (" + fa->value(count, json()).dump() + " vs " +
                    fb->value(count, json()).dump() + ")");
  };
  part("requests_sha256", "requests", "the request bodies");
  part("schedule_sha256", "arrivals", "the arrival schedule");
  std::string why = "workload fingerprints differ (" + fa->value("sha256", std::string()).substr(0, 12) + " vs " +
                    fb->value("sha256", std::string()).substr(0, 12) + ")";
  if (!parts.empty()) {
    why += ": ";
    for (std::size_t i = 0; i < parts.size(); ++i) why += (i ? " and " : "") + parts[i];
  }
  return why;
}

}  // namespace bp::bench::workloads
