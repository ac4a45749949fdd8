#include "snapshot/telemetry/telemetry.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <set>
#include <sstream>

#include "base/own_children.hpp"
#include "base/text.hpp"
#include "snapshot/proc.hpp"

namespace bp::telemetry {

using json = nlohmann::json;

namespace {

std::string slurp(const std::string& path) { return snap::read_file(path, 1 << 20).value_or(std::string()); }


}  // namespace

std::string csv_header() { return "time_unix_s,source,series,value"; }

std::string csv_row(const sample& s) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(3) << s.t << "," << s.source << "," << s.series << ",";
  if (!s.text.empty()) {
    std::string t = s.text;
    for (auto& c : t)
      if (c == ',' || c == '\n' || c == '\r') c = ' ';
    os << t;
  } else {
    os << std::setprecision(6) << s.value;
  }
  return os.str();
}

std::vector<sample> read_csv(const std::string& path) {
  std::vector<sample> out;
  std::ifstream f(path);
  std::string line;
  bool header = true;
  while (std::getline(f, line)) {
    if (header) {
      header = false;
      continue;
    }
    std::vector<std::string> parts;
    std::stringstream ss(line);
    std::string p;
    while (std::getline(ss, p, ',')) parts.push_back(p);
    if (parts.size() != 4) continue;
    sample s;
    char* end = nullptr;
    s.t = std::strtod(parts[0].c_str(), &end);
    if (end == parts[0].c_str()) continue;
    s.source = parts[1];
    s.series = parts[2];
    if (s.series == "error" || s.series == "info" || s.series == "absent") {
      s.text = parts[3];
    } else {
      s.value = std::strtod(parts[3].c_str(), &end);
      if (end == parts[3].c_str()) continue;
    }
    out.push_back(s);
  }
  return out;
}

host_sampler::host_sampler(std::string proc_root, std::string sys_root, std::vector<pid_t> roots, pid_t self)
    : proc_(std::move(proc_root)), sys_(std::move(sys_root)), roots_(std::move(roots)), self_(self) {}

std::vector<sample> host_sampler::take(double t) {
  std::vector<sample> out;
  auto add = [&](const std::string& src, const std::string& series, double v) { out.push_back({t, src, series, v, ""}); };
  // Aggregate CPU time split.
  std::istringstream stat(slurp(proc_ + "/stat"));
  std::string line;
  std::vector<unsigned long long> cpu;
  int ncpu = 0;
  while (std::getline(stat, line)) {
    if (line.rfind("cpu ", 0) == 0) {
      std::istringstream is(line.substr(4));
      unsigned long long x;
      while (is >> x) cpu.push_back(x);
    } else if (line.rfind("cpu", 0) == 0) {
      ++ncpu;
    }
  }
  double dt = primed_ ? t - last_t_ : 0;
  if (cpu.size() >= 8 && last_cpu_.size() >= 8 && primed_) {
    std::vector<double> d(8);
    double total = 0;
    for (int i = 0; i < 8; ++i) {
      d[static_cast<std::size_t>(i)] = static_cast<double>(cpu[static_cast<std::size_t>(i)] - last_cpu_[static_cast<std::size_t>(i)]);
      total += d[static_cast<std::size_t>(i)];
    }
    if (total > 0) {
      // user nice system idle iowait irq softirq steal
      add("cpu", "user_pct", 100 * (d[0] + d[1]) / total);
      add("cpu", "system_pct", 100 * (d[2] + d[5] + d[6]) / total);
      add("cpu", "iowait_pct", 100 * d[4] / total);
      add("cpu", "steal_pct", 100 * d[7] / total);
      add("cpu", "busy_cores", ncpu * (total - d[3] - d[4]) / total);
    }
  }
  last_cpu_ = cpu;
  // Load and pressure.
  {
    std::istringstream la(slurp(proc_ + "/loadavg"));
    double l1 = 0;
    if (la >> l1) add("host", "load1", l1);
    add("host", "cpus", ncpu);
    for (const char* res : {"cpu", "memory", "io"}) {
      std::string psi = slurp(proc_ + "/pressure/" + res);
      auto p = psi.find("some avg10=");
      if (p != std::string::npos) add("host", std::string("psi_") + res + "_some_avg10", std::atof(psi.c_str() + p + 11));
    }
  }
  // Per-CPU frequency, where cpufreq exposes it.
  for (int i = 0; i < ncpu; ++i) {
    std::string f = slurp(sys_ + "/devices/system/cpu/cpu" + std::to_string(i) + "/cpufreq/scaling_cur_freq");
    if (!f.empty()) add("cpu" + std::to_string(i), "freq_mhz", std::atof(f.c_str()) / 1000.0);
  }
  // Processes: the engine tree against everything else (bench-proxy itself excluded).
  // One scan gives both the tree (by ppid) and every process's CPU time.
  std::map<pid_t, snap::stat_fields> procs;
  if (DIR* d = ::opendir(proc_.c_str())) {
    while (dirent* e = ::readdir(d)) {
      if (!std::isdigit(static_cast<unsigned char>(e->d_name[0]))) continue;
      if (auto raw = snap::read_file(proc_ + "/" + e->d_name + "/stat", 4096))
        if (auto ps = snap::parse_stat(*raw)) procs[ps->pid] = *ps;
    }
    ::closedir(d);
  }
  std::set<pid_t> tree(roots_.begin(), roots_.end());
  for (bool grew = true; grew;) {
    grew = false;
    for (const auto& [pid, ps] : procs)
      if (!tree.count(pid) && tree.count(ps.ppid)) {
        tree.insert(pid);
        grew = true;
      }
  }
  double tree_ticks = 0, other_ticks = 0, rss = 0;
  long hz = ::sysconf(_SC_CLK_TCK);
  long page = ::sysconf(_SC_PAGESIZE);
  std::map<pid_t, unsigned long long> now;
  for (const auto& [pid, ps] : procs) {
    unsigned long long ticks = ps.utime_ticks + ps.stime_ticks;
    now[pid] = ticks;
    auto it = last_proc_.find(pid);
    // A process that appeared since the last sample: all of its time is new (pid reuse aside).
    double delta = it == last_proc_.end() ? static_cast<double>(ticks)
                                          : static_cast<double>(ticks >= it->second ? ticks - it->second : 0);
    if (tree.count(pid)) {
      tree_ticks += delta;
      rss += static_cast<double>(ps.rss_pages) * static_cast<double>(page);
    } else if (pid != self_) {
      other_ticks += delta;
    }
  }
  if (primed_ && dt > 0 && hz > 0) {
    add("engine", "cpu_cores", tree_ticks / static_cast<double>(hz) / dt);
    add("others", "cpu_cores", other_ticks / static_cast<double>(hz) / dt);
  }
  add("engine", "rss_mb", rss / (1024.0 * 1024.0));
  add("engine", "processes", static_cast<double>(tree.size()));
  last_proc_ = std::move(now);
  last_t_ = t;
  primed_ = true;
  return out;
}

namespace {
const char* kReasons[] = {"sw_power_cap", "hw_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown",
                          "sw_thermal_slowdown"};
const char* kGpuSeries[] = {"index",  "uuid",          "sm_clock_mhz", "mem_clock_mhz", "power_w",   "power_limit_w",
                            "temp_c", "util_gpu_pct", "mem_used_mib", "pstate"};
}  // namespace

std::vector<std::string> gpu_query_fields(bool legacy) {
  std::vector<std::string> f = {"index",           "uuid",           "clocks.sm",   "clocks.mem", "power.draw",
                                "power.limit",     "temperature.gpu", "utilization.gpu", "memory.used", "pstate"};
  for (const char* r : kReasons) f.push_back(std::string(legacy ? "clocks_throttle_reasons." : "clocks_event_reasons.") + r);
  return f;
}

std::vector<sample> parse_gpu_line(const std::string& line, double t, std::string& err) {
  std::vector<std::string> v;
  std::stringstream ss(line);
  std::string p;
  while (std::getline(ss, p, ',')) v.push_back(std::string(base::trim(p)));
  std::size_t want = std::size(kGpuSeries) + std::size(kReasons);
  if (v.size() != want) {
    err = "expected " + std::to_string(want) + " fields, got " + std::to_string(v.size()) + ": " + line.substr(0, 200);
    return {};
  }
  std::string src = "gpu" + v[0];
  std::vector<sample> out;
  auto num = [&](std::size_t i, const char* series) {
    char* end = nullptr;
    double x = std::strtod(v[i].c_str(), &end);
    if (end != v[i].c_str()) out.push_back({t, src, series, x, ""});  // "[N/A]" is left out, never zero
  };
  for (std::size_t i = 2; i < std::size(kGpuSeries); ++i) {
    if (std::string(kGpuSeries[i]) == "pstate") {
      if (v[i].size() > 1 && v[i][0] == 'P') out.push_back({t, src, "pstate", std::atof(v[i].c_str() + 1), ""});
      continue;
    }
    num(i, kGpuSeries[i]);
  }
  for (std::size_t r = 0; r < std::size(kReasons); ++r) {
    const std::string& x = v[std::size(kGpuSeries) + r];
    if (x == "Active" || x == "Not Active") out.push_back({t, src, kReasons[r], x == "Active" ? 1.0 : 0.0, ""});
  }
  out.push_back({t, src, "info", 0, "uuid " + v[1]});
  return out;
}

gpu_stream::gpu_stream(std::string nvidia_smi, int interval_ms) : exe_(std::move(nvidia_smi)), interval_ms_(interval_ms) {
  reader_ = std::thread([this] { run(); });
}

gpu_stream::~gpu_stream() {
  stop_ = true;
  pid_t p = pid_.load();
  if (p > 0) ::kill(p, SIGKILL);  // a streaming query has nothing to flush
  if (reader_.joinable()) reader_.join();
}

bool gpu_stream::spawn(bool legacy) {
  std::string fields;
  for (const auto& f : gpu_query_fields(legacy)) fields += (fields.empty() ? "" : ",") + f;
  std::vector<std::string> args = {exe_, "--query-gpu=" + fields, "--format=csv,noheader,nounits",
                                   "-lms", std::to_string(interval_ms_)};
  int p[2];
  if (::pipe2(p, O_CLOEXEC) < 0) return false;
  std::vector<char*> av;
  for (auto& a : args) av.push_back(a.data());
  av.push_back(nullptr);
  auto own = base::own_children::guard();
  pid_t pid = ::fork();
  if (pid == 0) {
    // bench-proxy blocks SIGINT/SIGTERM in every thread; a child must not inherit that mask.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::dup2(p[1], 1);
    ::dup2(p[1], 2);
    ::execv(av[0], av.data());
    ::_exit(127);
  }
  ::close(p[1]);
  if (pid < 0) {
    ::close(p[0]);
    return false;
  }
  base::own_children::add(pid);
  pid_ = pid;
  fd_ = p[0];
  return true;
}

void gpu_stream::run() {
  auto now = [] { return base::unix_now(); };
  auto fail = [&](const std::string& why) {
    std::lock_guard<std::mutex> g(mu_);
    pending_.push_back({now(), "gpu", "error", 0, why});
  };
  for (bool legacy : {false, true}) {
    if (!spawn(legacy)) return fail("cannot start " + exe_);
    std::string buf, output;
    bool any = false, rejected = false;
    for (;;) {
      pollfd pf{fd_, POLLIN, 0};
      int r = ::poll(&pf, 1, 200);
      if (stop_) break;
      if (r <= 0) continue;
      char tmp[4096];
      ssize_t n = ::read(fd_, tmp, sizeof tmp);
      if (n <= 0) break;
      buf.append(tmp, static_cast<std::size_t>(n));
      for (auto nl = buf.find('\n'); nl != std::string::npos; nl = buf.find('\n')) {
        std::string line = buf.substr(0, nl);
        buf.erase(0, nl + 1);
        if (line.empty()) continue;
        if (line.find("is not a valid field") != std::string::npos) rejected = true;
        std::string err;
        auto s = parse_gpu_line(line, now(), err);
        if (s.empty()) {
          if (output.size() < 2000) output += line + "\n";
          continue;
        }
        any = true;
        std::lock_guard<std::mutex> g(mu_);
        for (auto& x : s) pending_.push_back(std::move(x));
      }
    }
    ::close(fd_);
    pid_t pid = pid_.exchange(-1);
    int status = 0;
    if (pid > 0) {
      if (stop_) ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      base::own_children::remove(pid);
    }
    if (stop_) return;
    if (rejected && !any && !legacy) continue;  // an older driver: the clocks_throttle_reasons names
    std::string why = exe_ + " ended" + (WIFEXITED(status) ? " with status " + std::to_string(WEXITSTATUS(status)) : "");
    if (!output.empty()) why += ": " + std::string(base::trim(output)).substr(0, 300);
    return fail(why);
  }
}

std::vector<sample> gpu_stream::drain() {
  std::lock_guard<std::mutex> g(mu_);
  std::vector<sample> out;
  out.swap(pending_);
  return out;
}

json summarize(const std::vector<sample>& samples, double t0, double t1) {
  std::map<std::string, std::map<std::string, std::vector<double>>> series;
  json errors = json::object();
  std::map<std::string, std::string> absent;
  std::set<double> times;
  for (const auto& s : samples) {
    if (s.series == "error") {
      errors[s.source] = s.text;  // a failed sampler: its whole section is an error
      continue;
    }
    if (s.series == "absent") {
      errors[s.source] = nullptr;
      absent[s.source] = s.text;
      continue;
    }
    if (s.series == "info" || s.t < t0 || s.t > t1) continue;
    series[s.source][s.series].push_back(s.value);
    times.insert(std::round(s.t * 10) / 10);
  }
  json sources = json::object();
  for (auto& [src, m] : series) {
    json j = json::object();
    for (auto& [name, v] : m) {
      std::sort(v.begin(), v.end());
      double sum = 0;
      for (double x : v) sum += x;
      bool reason = std::find_if(std::begin(kReasons), std::end(kReasons), [&](const char* r) { return name == r; }) !=
                    std::end(kReasons);
      if (reason) {
        j["clock_event_reasons"][name] = {{"share", sum / static_cast<double>(v.size())}, {"n", v.size()}};
        continue;
      }
      double med = v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
      j[name] = {{"min", v.front()}, {"median", med}, {"max", v.back()}, {"mean", sum / static_cast<double>(v.size())},
                 {"n", v.size()}};
    }
    sources[src] = j;
  }
  for (auto it = errors.begin(); it != errors.end(); ++it)
    sources[it.key()] = it.value().is_null() ? json{{"absent", absent[it.key()]}} : json{{"error", it.value()}};
  return {{"window", {t0, t1}}, {"sample_times", times.size()}, {"sources", sources}};
}

}  // namespace bp::telemetry
