#include "base/text.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <vector>

namespace bp::base {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

void for_each_line(std::string_view text,
                   const std::function<bool(std::string_view line, std::size_t line_no, bool complete)>& fn) {
  std::size_t at = 0, line_no = 0;
  while (at < text.size()) {
    std::size_t nl = text.find('\n', at);
    bool complete = nl != std::string_view::npos;
    std::string_view line = text.substr(at, (complete ? nl : text.size()) - at);
    at = complete ? nl + 1 : text.size();
    ++line_no;
    if (trim(line).empty()) continue;
    if (!fn(line, line_no, complete)) return;
  }
}

std::optional<std::size_t> first_invalid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  std::size_t n = s.size(), i = 0;
  while (i < n) {
    unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len;
    unsigned lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      if (c == 0xe0) lo = 0xa0;
      if (c == 0xed) hi = 0x9f;  // no surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      if (c == 0xf0) lo = 0x90;
      if (c == 0xf4) hi = 0x8f;  // nothing above U+10FFFF
    } else {
      return i;
    }
    if (i + len > n) return i;
    if (p[i + 1] < lo || p[i + 1] > hi) return i;
    for (std::size_t k = 2; k < len; ++k)
      if (p[i + k] < 0x80 || p[i + k] > 0xbf) return i;
    i += len;
  }
  return std::nullopt;
}

text_position position_of(std::string_view s, std::size_t offset) {
  text_position pos;
  for (std::size_t i = 0; i < offset && i < s.size(); ++i) {
    if (s[i] == '\n') {
      ++pos.line;
      pos.column = 1;
    } else {
      ++pos.column;
    }
  }
  return pos;
}

namespace {
std::tm utc_tm(std::chrono::system_clock::time_point t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  return tm;
}
}  // namespace

std::string utc_now_iso() {
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm = utc_tm(now);
  char buf[96];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, v);
  return buf;
}

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string utc_now_compact() {
  std::tm tm = utc_tm(std::chrono::system_clock::now());
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::string shorten_middle(const std::string& s, std::size_t width) {
  if (s.size() <= width || width < 5) return s;
  std::size_t keep = width - 3, head = keep / 2, tail = keep - head;
  // Never cut inside a UTF-8 sequence: move each cut to a character boundary.
  auto cont = [&](std::size_t i) { return i < s.size() && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80; };
  while (head > 0 && cont(head)) --head;
  std::size_t from = s.size() - tail;
  while (from < s.size() && cont(from)) ++from;
  return s.substr(0, head) + "..." + s.substr(from);
}

std::string one_line_reason(const std::string& reason) {
  std::string first = reason.substr(0, reason.find('\n'));
  if (std::string e = engine_error_line(reason); !e.empty() && first.find(e) == std::string::npos) first += " " + e;
  return first;
}

std::string engine_error_line(std::string reason) {
  for (std::size_t at; (at = reason.find("\\n")) != std::string::npos;) reason.replace(at, 2, "\n");
  auto at = reason.find("Last output:");
  if (at == std::string::npos) return "";
  std::vector<std::string> lines;
  std::size_t pos = at + 12;
  while (pos <= reason.size()) {
    auto nl = reason.find('\n', pos);
    std::string l = reason.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    if (auto tr = l.find("; trial "); tr != std::string::npos) l.resize(tr);  // the next trial's reason
    auto b = l.find_first_not_of(" \t|");
    l = b == std::string::npos ? "" : l.substr(b);
    while (!l.empty() && (l.back() == ' ' || l.back() == '\r' || l.back() == '\t')) l.pop_back();
    if (!l.empty()) lines.push_back(l);
    if (nl == std::string::npos) break;
    pos = nl + 1;
  }
  if (lines.empty()) return "";
  auto lower = [](std::string x) {
    std::transform(x.begin(), x.end(), x.begin(), [](unsigned char c) { return std::tolower(c); });
    return x;
  };
  for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
    std::string l = lower(*it);
    for (const char* w : {"error", "fatal", "exception", "panic"})
      if (l.find(w) != std::string::npos) {
        auto e = l.find("error:");  // a word of its own: "ValueError: x" stays whole
        while (e != std::string::npos && e > 0 && l[e - 1] != ' ') e = l.find("error:", e + 1);
        return e == std::string::npos ? *it : it->substr(e);
      }
  }
  return lines.back();
}

}  // namespace bp::base
