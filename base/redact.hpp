#pragma once
/// The one redaction policy (docs/config.md, "Secrets"): every place that writes or prints text or
/// JSON that could hold a secret goes through a `redactor`.
///
/// - Secrets are replaced whole, longest first (so a secret inside another leaves nothing).
/// - A secret spanning lines is also replaced line by line (logs are written a line at a time).
/// - In JSON, string values and object keys are redacted; a value equal to a secret becomes
///   {"redacted": true, "hmac_sha256": "<hex>", "key_id": "<hex>"}.
/// - The digest is keyed (HMAC-SHA256) with a key file the user controls, so equal secrets give
///   equal digests on every host that shares the key, and nobody can confirm a guessed secret
///   from a result without the key.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace bp::base {

/// Secrets shorter than this are refused (`validate` errors): redacting them out of free text
/// would mangle it, and they are guessable anyway.
inline constexpr std::size_t min_secret_length = 8;

/// The digest key: the file named by $BENCH_PROXY_SECRET_KEY_FILE, else
/// $HOME/.config/bench-proxy/secret-key, created (32 random bytes, mode 0600) when missing.
/// Throws std::runtime_error naming the file when it cannot be read or made.
std::string load_secret_key(const std::string& explicit_path = {});

/// load_secret_key() once per process (thread-safe); later calls return the same key.
const std::string& secret_key();

class redactor {
 public:
  redactor() = default;
  /// `key` empty: digests are computed with an empty HMAC key (tests; never the CLI's default).
  redactor(std::vector<std::string> secrets, std::string key);

  bool empty() const { return secrets_.empty(); }
  /// HMAC-SHA256 of `secret` under the key, hex.
  std::string digest(const std::string& secret) const;
  /// First 12 hex digits of sha256(key): which key made a digest (digests compare only under one key).
  const std::string& key_id() const { return key_id_; }
  /// "[REDACTED hmac:<12 hex>]"
  std::string marker(const std::string& secret) const;
  /// Free text with every secret replaced by its marker.
  std::string scrub(std::string text) const;
  /// A value equal to a secret: the redacted object. Otherwise nullopt.
  nlohmann::json redacted_value(const std::string& secret) const;
  /// JSON with secrets redacted in values and keys (in place). Arrays and objects nested deeper
  /// than base::json_file_depth are replaced by a "<truncated: ...>" string first.
  void redact(nlohmann::json& j) const;

 private:
  void redact_bounded(nlohmann::json& j) const;
  std::vector<std::string> secrets_;  ///< longest first, then the lines of multi-line ones
  std::vector<std::string> whole_;    ///< as given (for exact-value matches)
  std::string key_;
  std::string key_id_;
};

}  // namespace bp::base
