#include "net/proxy/run_status.hpp"

#include <nlohmann/json.hpp>

namespace bp::net {

const char* to_string(run_state s) {
  switch (s) {
    case run_state::starting: return "starting";
    case run_state::warming: return "warming";
    case run_state::snapshotting: return "snapshotting";
    case run_state::ready: return "ready";
    case run_state::stopping: return "stopping";
    case run_state::failed: return "failed";
  }
  return "unknown";
}

run_status::run_status()
    : started_(std::chrono::steady_clock::now()), started_wall_(std::chrono::system_clock::now()) {}

void run_status::set_config_description(std::string d) {
  std::lock_guard<std::mutex> g(mu_);
  description_ = std::move(d);
}

std::string run_status::config_description() const {
  std::lock_guard<std::mutex> g(mu_);
  return description_;
}

void run_status::set_detail(std::string d) {
  std::lock_guard<std::mutex> g(mu_);
  detail_ = std::move(d);
}

bool run_status::publish(std::shared_ptr<const meta_document> doc) {
  std::lock_guard<std::mutex> g(mu_);
  if (meta_) return false;
  meta_ = std::move(doc);
  return true;
}

std::shared_ptr<const meta_document> run_status::meta() const {
  std::lock_guard<std::mutex> g(mu_);
  return meta_;
}

std::string run_status::healthz_json() const {
  using namespace std::chrono;
  nlohmann::json j;
  j["state"] = to_string(state());
  pid_t p = engine_pid();
  j["engine_pid"] = p > 0 ? nlohmann::json(p) : nlohmann::json(nullptr);
  j["uptime_s"] = duration<double>(steady_clock::now() - started_).count();
  j["upstream_timeouts"] = upstream_timeouts();
  std::lock_guard<std::mutex> g(mu_);
  j["config"] = description_;
  j["snapshot_id"] = meta_ ? nlohmann::json(meta_->sha256) : nlohmann::json(nullptr);
  if (!detail_.empty()) j["detail"] = detail_;
  return j.dump();
}

std::string run_status::meta_pending_json() const {
  nlohmann::json j;
  j["state"] = to_string(state());
  j["error"] = "snapshot not published yet";
  std::lock_guard<std::mutex> g(mu_);
  if (!detail_.empty()) j["detail"] = detail_;
  return j.dump();
}

}  // namespace bp::net
