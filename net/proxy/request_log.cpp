#include "net/proxy/request_log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <charconv>
#include <cstring>
#include <ctime>

namespace bp::net {

namespace {

void put_str(std::string& o, std::string_view v) {
  o += '"';
  for (unsigned char c : v) {
    if (c == '"' || c == '\\') {
      o += '\\';
      o += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {
      // Control bytes, and anything not ASCII (the line must stay valid JSON whatever an error
      // message holds): \u00XX.
      static const char hex[] = "0123456789abcdef";
      o += "\\u00";
      o += hex[c >> 4];
      o += hex[c & 15];
    } else {
      o += static_cast<char>(c);
    }
  }
  o += '"';
}

void put_uint(std::string& o, std::uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  o.append(buf, r.ptr);
}

void put_int(std::string& o, long long v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  o.append(buf, r.ptr);
}

/// Milliseconds with microsecond resolution; null when negative (never reached).
void put_ms(std::string& o, double v) {
  if (v < 0 || !std::isfinite(v)) {
    o += "null";
    return;
  }
  char buf[48];
  auto r = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::fixed, 3);
  o.append(buf, r.ptr);
}

void put_double(std::string& o, double v) {
  if (!std::isfinite(v)) {
    o += "null";
    return;
  }
  char buf[48];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  o.append(buf, r.ptr);
}

void put_iso_us(std::string& o, std::int64_t unix_us) {
  std::time_t t = static_cast<std::time_t>(unix_us / 1000000);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[48];
  std::size_t n = std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof(buf) - n, ".%06lldZ", static_cast<long long>(unix_us % 1000000));
  o += '"';
  o += buf;
  o += '"';
}

}  // namespace

void append_json_line(std::string& o, const request_record& r) {
  o += "{\"id\":";
  put_uint(o, r.id);
  o += ",\"connection\":";
  put_uint(o, r.connection);
  o += ",\"started_at\":";
  put_iso_us(o, r.start_unix_us);
  o += ",\"start_unix_us\":";
  put_int(o, r.start_unix_us);
  o += ",\"method\":";
  put_str(o, r.method);
  o += ",\"path\":";
  put_str(o, r.path);
  o += ",\"status\":";
  put_int(o, r.status);
  o += r.stream ? ",\"stream\":true" : ",\"stream\":false";
  o += r.local ? ",\"local\":true" : ",\"local\":false";
  o += r.client_aborted ? ",\"client_aborted\":true" : ",\"client_aborted\":false";
  o += r.upstream_error ? ",\"upstream_error\":true" : ",\"upstream_error\":false";
  o += ",\"error\":";
  if (r.error.empty())
    o += "null";
  else
    put_str(o, r.error);
  o += ",\"t_ms\":{\"request_header\":0,\"request_body\":";
  put_ms(o, r.request_body_ms);
  o += ",\"forwarded\":";
  put_ms(o, r.forwarded_ms);
  o += ",\"response_header\":";
  put_ms(o, r.response_header_ms);
  o += ",\"first_content\":";
  put_ms(o, r.first_content_ms);
  o += ",\"last_byte\":";
  put_ms(o, r.last_byte_ms);
  o += "},\"ttft_ms\":";
  put_ms(o, r.ttft_ms());
  o += ",\"e2e_ms\":";
  put_ms(o, r.e2e_ms());
  o += ",\"itl_ms\":[";
  for (std::size_t i = 1; i < r.content_ms.size(); ++i) {
    if (i > 1) o += ',';
    put_ms(o, r.content_ms[i] - r.content_ms[i - 1]);
  }
  o += "],\"content_events\":";
  put_uint(o, r.content_ms.size());
  int tokens = r.output_tokens();
  o += ",\"output_tokens\":";
  put_int(o, tokens);
  o += r.completion_tokens >= 0 ? ",\"output_tokens_source\":\"usage\"" : ",\"output_tokens_source\":\"content_events\"";
  o += ",\"output_tps\":";
  if (r.complete() && r.e2e_ms() > 0)
    put_double(o, tokens / (r.e2e_ms() / 1000.0));
  else
    o += "null";
  o += ",\"usage\":";
  if (r.completion_tokens >= 0 || r.prompt_tokens >= 0) {
    o += "{\"prompt_tokens\":";
    if (r.prompt_tokens >= 0) put_int(o, r.prompt_tokens); else o += "null";
    o += ",\"completion_tokens\":";
    if (r.completion_tokens >= 0) put_int(o, r.completion_tokens); else o += "null";
    o += '}';
  } else {
    o += "null";
  }
  o += ",\"bytes_in\":";
  put_uint(o, r.bytes_in);
  o += ",\"bytes_out\":";
  put_uint(o, r.bytes_out);
  o += '}';
}

request_log::request_log(std::size_t window) : window_(std::max<std::size_t>(1, window)) {}

request_log::~request_log() { close_file(); }

void request_log::add(request_record&& r) {
  std::lock_guard<std::mutex> g(mu_);
  ++total_;
  pending_.push_back(std::move(r));
}

std::size_t request_log::recorded() const {
  std::lock_guard<std::mutex> g(mu_);
  return total_;
}

void request_log::drain() const {
  // Formatting and writing happen outside mu_, so an I/O thread handing a record over never
  // waits for them; each line is formatted into one reused buffer and goes to the FILE's buffer
  // (no batch-sized strings: peak memory is the window, not the load).
  std::lock_guard<std::mutex> fg(format_mu_);
  std::vector<request_record> batch;
  std::FILE* f;
  {
    std::lock_guard<std::mutex> g(mu_);
    batch.swap(pending_);
    f = file_;
  }
  if (batch.empty()) return;
  if (f) {
    std::string line;
    line.reserve(1024);
    for (const auto& r : batch) {
      line.clear();
      append_json_line(line, r);
      line += '\n';
      std::fwrite(line.data(), 1, line.size(), f);
    }
    std::fflush(f);
  }
  std::lock_guard<std::mutex> g(mu_);
  for (auto& r : batch) recent_.push_back(std::move(r));
  while (recent_.size() > window_) recent_.pop_front();
}

std::vector<std::string> request_log::after(std::uint64_t after, std::size_t limit, bool* more,
                                            std::uint64_t* last) const {
  drain();
  std::vector<const request_record*> hits;
  std::vector<std::string> out;
  std::lock_guard<std::mutex> g(mu_);
  for (const auto& r : recent_)
    if (r.id > after) hits.push_back(&r);
  // Records arrive in completion order; ids in arrival order.
  std::sort(hits.begin(), hits.end(), [](const auto* a, const auto* b) { return a->id < b->id; });
  if (more) *more = hits.size() > limit;
  if (hits.size() > limit) hits.resize(limit);
  if (last) *last = hits.empty() ? after : hits.back()->id;
  out.reserve(hits.size());
  for (const auto* h : hits) out.push_back(to_json_line(*h));
  return out;
}

bool request_log::open_file(const std::string& path, std::string& err) {
  std::lock_guard<std::mutex> g(mu_);
  if (file_) {
    err = "requests log already open at " + path_;
    return false;
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    err = "cannot create " + path + ": " + std::strerror(errno) +
          (errno == EEXIST ? " (results are never overwritten)" : "");
    return false;
  }
  file_ = ::fdopen(fd, "w");
  if (!file_) {
    ::close(fd);
    err = "cannot open " + path + ": " + std::strerror(errno);
    return false;
  }
  path_ = path;
  stop_ = false;
  thread_ = std::thread([this] { writer(); });
  return true;
}

void request_log::writer() {
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    // A timed wake, not one per request: the I/O threads never signal.
    cv_.wait_for(lk, std::chrono::milliseconds(200), [this] { return stop_; });
    bool stopping = stop_;
    lk.unlock();
    drain();
    lk.lock();
    if (stopping && pending_.empty()) return;
  }
}

void request_log::close_file() {
  {
    std::lock_guard<std::mutex> g(mu_);
    if (!file_) return;
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  drain();  // anything handed over after the writer's last look
  std::lock_guard<std::mutex> fg(format_mu_);  // no drain is writing to it any more
  std::lock_guard<std::mutex> g(mu_);
  std::fclose(file_);
  file_ = nullptr;
}

}  // namespace bp::net
