#include "net/proxy/request_log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <ctime>

namespace bp::net {

using json = nlohmann::json;

namespace {

json ms_or_null(double v) { return v < 0 ? json(nullptr) : json(std::round(v * 1000.0) / 1000.0); }

std::string iso_us(std::int64_t unix_us) {
  std::time_t s = static_cast<std::time_t>(unix_us / 1000000);
  std::tm tm{};
  ::gmtime_r(&s, &tm);
  char buf[48];
  std::size_t n = std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof(buf) - n, ".%06lldZ", static_cast<long long>(unix_us % 1000000));
  return buf;
}

}  // namespace

json to_json(const request_record& r) {
  json j;
  j["id"] = r.id;
  j["connection"] = r.connection;
  j["started_at"] = iso_us(r.start_unix_us);
  j["start_unix_us"] = r.start_unix_us;
  j["method"] = r.method;
  j["path"] = r.path;
  j["status"] = r.status;
  j["stream"] = r.stream;
  j["local"] = r.local;
  j["client_aborted"] = r.client_aborted;
  j["upstream_error"] = r.upstream_error;
  j["error"] = r.error.empty() ? json(nullptr) : json(r.error);
  j["t_ms"] = {{"request_header", 0.0},
               {"request_body", ms_or_null(r.request_body_ms)},
               {"forwarded", ms_or_null(r.forwarded_ms)},
               {"response_header", ms_or_null(r.response_header_ms)},
               {"first_content", ms_or_null(r.first_content_ms)},
               {"last_byte", ms_or_null(r.last_byte_ms)}};
  j["ttft_ms"] = ms_or_null(r.ttft_ms());
  j["e2e_ms"] = ms_or_null(r.e2e_ms());
  json itl = json::array();
  for (std::size_t i = 1; i < r.content_ms.size(); ++i)
    itl.push_back(std::round((r.content_ms[i] - r.content_ms[i - 1]) * 1000.0) / 1000.0);
  j["itl_ms"] = std::move(itl);
  j["content_events"] = r.content_ms.size();
  int tokens = r.output_tokens();
  j["output_tokens"] = tokens;
  j["output_tokens_source"] = r.completion_tokens >= 0 ? "usage" : "content_events";
  j["output_tps"] = r.complete() && r.e2e_ms() > 0 ? json(tokens / (r.e2e_ms() / 1000.0)) : json(nullptr);
  j["usage"] = r.completion_tokens >= 0 || r.prompt_tokens >= 0
                   ? json{{"prompt_tokens", r.prompt_tokens >= 0 ? json(r.prompt_tokens) : json(nullptr)},
                          {"completion_tokens", r.completion_tokens >= 0 ? json(r.completion_tokens) : json(nullptr)}}
                   : json(nullptr);
  j["bytes_in"] = r.bytes_in;
  j["bytes_out"] = r.bytes_out;
  return j;
}

request_log::request_log(std::size_t window) : window_(std::max<std::size_t>(1, window)) {}

request_log::~request_log() { close_file(); }

void request_log::add(request_record&& r) {
  std::lock_guard<std::mutex> g(mu_);
  ++total_;
  if (file_) pending_.push_back(r);
  recent_.push_back(std::move(r));
  if (recent_.size() > window_) recent_.pop_front();
}

std::size_t request_log::recorded() const {
  std::lock_guard<std::mutex> g(mu_);
  return total_;
}

std::vector<request_record> request_log::after(std::uint64_t after, std::size_t limit, bool* more) const {
  std::vector<request_record> out;
  {
    std::lock_guard<std::mutex> g(mu_);
    for (const auto& r : recent_)
      if (r.id > after) out.push_back(r);
  }
  // Records arrive in completion order; ids in arrival order.
  std::sort(out.begin(), out.end(), [](const request_record& a, const request_record& b) { return a.id < b.id; });
  if (more) *more = out.size() > limit;
  if (out.size() > limit) out.resize(limit);
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
    std::vector<request_record> batch;
    batch.swap(pending_);
    bool stopping = stop_;
    std::FILE* f = file_;
    lk.unlock();
    std::string lines;
    for (const auto& r : batch) {
      lines += to_json(r).dump(-1, ' ', false, json::error_handler_t::replace);
      lines += '\n';
    }
    if (!lines.empty()) {
      std::fwrite(lines.data(), 1, lines.size(), f);
      std::fflush(f);
    }
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
  std::lock_guard<std::mutex> g(mu_);
  std::fclose(file_);
  file_ = nullptr;
}

}  // namespace bp::net
