#include "base/redact.hpp"
#include "base/json_read.hpp"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "base/sha256.hpp"

namespace bp::base {

namespace fs = std::filesystem;

std::string load_secret_key(const std::string& explicit_path) {
  std::string path = explicit_path;
  if (path.empty())
    if (const char* e = std::getenv("BENCH_PROXY_SECRET_KEY_FILE"); e && *e) path = e;
  if (path.empty()) {
    const char* home = std::getenv("HOME");
    if (!home || !*home) home = "/root";
    path = std::string(home) + "/.config/bench-proxy/secret-key";
  }
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    fs::create_directories(fs::path(path).parent_path(), ec);
    unsigned char key[32];
    // The kernel's random source (getrandom(2)); OpenSSL's RAND_bytes would load its provider
    // machinery into every process for 32 bytes.
    for (std::size_t got = 0; got < sizeof(key);) {
      ssize_t n = ::getrandom(key + got, sizeof(key) - got, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw std::runtime_error(std::string("cannot make a secret key: getrandom: ") + std::strerror(errno));
      got += static_cast<std::size_t>(n);
    }
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
      bool ok = ::write(fd, key, sizeof(key)) == static_cast<ssize_t>(sizeof(key));
      ::close(fd);
      if (!ok) throw std::runtime_error("cannot write the secret key " + path + ": " + std::strerror(errno));
    } else if (errno != EEXIST) {
      throw std::runtime_error("cannot create the secret key " + path + ": " + std::strerror(errno));
    }
  }
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read the secret key " + path + ": " + std::strerror(errno));
  std::ostringstream ss;
  ss << f.rdbuf();
  std::string key = ss.str();
  if (key.size() < 16) throw std::runtime_error("the secret key " + path + " is shorter than 16 bytes");
  if (key.size() > 4096) throw std::runtime_error("the secret key " + path + " is longer than 4096 bytes");
  return key;
}

const std::string& secret_key() {
  static const std::string key = load_secret_key();
  return key;
}

redactor::redactor(std::vector<std::string> secrets, std::string key) : key_(std::move(key)) {
  key_id_ = sha256_hex(key_).substr(0, 12);
  for (auto& s : secrets)
    if (!s.empty()) whole_.push_back(s);
  std::vector<std::string> all = whole_;
  for (const auto& s : whole_) {
    if (s.find('\n') == std::string::npos && s.find('\r') == std::string::npos) continue;
    std::size_t pos = 0;
    while (pos <= s.size()) {
      auto nl = s.find_first_of("\r\n", pos);
      std::string line = s.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
      if (line.size() >= min_secret_length) all.push_back(line);
      if (nl == std::string::npos) break;
      pos = nl + 1;
    }
  }
  std::sort(all.begin(), all.end(), [](const std::string& a, const std::string& b) {
    return a.size() != b.size() ? a.size() > b.size() : a < b;
  });
  all.erase(std::unique(all.begin(), all.end()), all.end());
  secrets_ = std::move(all);
}

std::string redactor::digest(const std::string& secret) const {
  return hmac_sha256_hex(key_, secret);
}

std::string redactor::marker(const std::string& secret) const {
  return "[REDACTED hmac:" + digest(secret).substr(0, 12) + "]";
}

std::string redactor::scrub(std::string text) const {
  for (const auto& sec : secrets_) {
    if (text.find(sec) == std::string::npos) continue;
    std::string mark = marker(sec);
    for (std::size_t pos = 0; (pos = text.find(sec, pos)) != std::string::npos; pos += mark.size())
      text.replace(pos, sec.size(), mark);
  }
  return text;
}

nlohmann::json redactor::redacted_value(const std::string& secret) const {
  return {{"redacted", true}, {"hmac_sha256", digest(secret)}, {"key_id", key_id_}};
}

void redactor::redact(nlohmann::json& j) const {
  if (secrets_.empty()) return;
  // The walk below recurses once per level: anything deeper than a file bench-proxy writes may be
  // is cut first (without recursion), never walked (docs/meta-schema.md, "Limits on JSON input").
  if (json_value_depth(j, json_file_depth) > json_file_depth) cut_deeper_than(j, json_file_depth);
  redact_bounded(j);
}

void redactor::redact_bounded(nlohmann::json& j) const {
  if (j.is_string()) {
    const std::string& s = j.get_ref<const std::string&>();
    for (const auto& sec : whole_)
      if (s == sec) {
        j = redacted_value(sec);
        return;
      }
    std::string masked = scrub(s);
    if (masked != s) j = masked;
    return;
  }
  if (j.is_array()) {
    for (auto& e : j) redact_bounded(e);
    return;
  }
  if (!j.is_object()) return;
  nlohmann::json out = nlohmann::json::object();
  for (auto it = j.begin(); it != j.end(); ++it) {
    nlohmann::json v = std::move(it.value());
    redact_bounded(v);
    out[scrub(it.key())] = std::move(v);
  }
  j = std::move(out);
}

}  // namespace bp::base
