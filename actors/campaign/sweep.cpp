#include "actors/campaign/sweep.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <ostream>
#include <map>
#include <set>

#include <spdlog/spdlog.h>

#include "actors/engine_run.hpp"
#include "actors/campaign/campaign.hpp"
#include "actors/campaign/report.hpp"
#include "analysis/disturbance.hpp"
#include "base/files.hpp"
#include "base/json_read.hpp"
#include "base/sha256.hpp"
#include "base/text.hpp"
#include "configs/engine_config.hpp"
#include "configs/variants.hpp"

namespace bp::measure {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

/// The flock of claim_sweep_dir; the descriptor stays open (and locked) until this process exits.
/// The lock a running sweep holds in its folder (flock, its PID inside).
std::string sweep_lock_path(const std::string& dir) { return (fs::path(dir) / "sweep.lock").string(); }

void lock_sweep_dir(const std::string& dir) {
  std::string path = sweep_lock_path(dir);
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error(path + ": " + std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    char buf[32] = {};
    ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    ::close(fd);
    std::string pid = n > 0 ? std::string(base::trim(std::string_view(buf, static_cast<std::size_t>(n)))) : "unknown";
    if (e == EWOULDBLOCK)
      throw sweep_refused("--sweep-dir " + dir + " is in use by another sweep (PID " + pid + ", lock " + path + ")");
    throw std::runtime_error(path + ": " + std::strerror(e));
  }
  std::string me = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, me.data(), me.size(), 0) != static_cast<ssize_t>(me.size()))
    spdlog::warn("{}: could not write this process's PID ({})", path, std::strerror(errno));
}

}  // namespace

std::string claim_sweep_dir(const std::string& requested) {
  if (requested.empty()) {
    std::string d = base::make_unique_dir("sweeps/" + utc_stamp());
    lock_sweep_dir(d);
    return d;
  }
  const std::string& d = requested;
  std::error_code ec;
  if (fs::exists(fs::path(d) / "sweep.json", ec))
    throw sweep_refused("--sweep-dir " + d + " already holds a sweep.json (results are never overwritten)");
  fs::create_directories(d, ec);
  if (ec) throw std::runtime_error(d + ": " + ec.message());
  lock_sweep_dir(d);
  // Checked again under the lock: a sweep that finished between the first check and the lock.
  if (fs::exists(fs::path(d) / "sweep.json", ec))
    throw sweep_refused("--sweep-dir " + d + " already holds a sweep.json (results are never overwritten)");
  return d;
}

std::vector<std::string> config_dirs(const std::vector<std::string>& configs, const std::string& sweep_dir) {
  std::vector<std::string> dirs;
  for (std::size_t i = 0; i < configs.size(); ++i)
    dirs.push_back(base::make_unique_dir(
        (fs::path(sweep_dir) / (std::to_string(i + 1) + "_" + fs::path(configs[i]).stem().string())).string()));
  return dirs;
}

std::string trial_dir(int trials, const std::string& config_dir, int trial) {
  if (trials == 1) return config_dir;
  return base::make_unique_dir((fs::path(config_dir) / ("trial-" + std::to_string(trial + 1))).string());
}

std::vector<variant_file> make_variants(const std::string& base_path, const std::vector<std::string>& specs,
                                        bool one_at_a_time) {
  std::vector<variants::axis> axes;
  for (const auto& spec : specs) {
    try {
      axes.push_back(variants::parse_axis(spec));
    } catch (const std::invalid_argument& e) {
      throw sweep_refused(e.what());
    }
    for (std::size_t i = 0; i + 1 < axes.size(); ++i)
      if (axes[i].key == axes.back().key)
        throw sweep_refused("--vary " + axes.back().key + " is given twice: put all its values in one --vary " +
                            axes.back().key + "=V1,V2,...");
  }
  std::string text;
  try {
    text = base::read_file_limited(base_path, max_config_bytes);
  } catch (const std::exception& e) {
    throw sweep_refused(std::string("--vary: ") + e.what());
  }
  auto env = process_env();
  auto base_cfg = load_config(base_path, env);
  if (!base_cfg.config) throw sweep_refused(base_cfg.errors.empty() ? base_path : base_cfg.errors[0].str());
  std::vector<variant_file> out;
  std::map<std::string, std::string> names;  // file name -> the knobs that made it
  for (const auto& knobs : variants::combinations(axes, one_at_a_time)) {
    std::string name = variants::file_stem(knobs) + ".yaml";
    std::string these;
    for (const auto& [k, v] : knobs) these += (these.empty() ? "" : ", ") + k + "=" + v;
    if (auto [it, fresh] = names.emplace(name, these); !fresh) {
      if (it->second == these) continue;  // --one-at-a-time: the base's own values once
      throw sweep_refused("--vary: the variants " + it->second + " and " + these + " would both be named " + name +
                          " (their values differ only in characters a file name cannot hold): choose values that "
                          "differ in letters, digits, '.', '-' or '_'");
    }
    std::string yaml = "# generated by bench-proxy sweep --vary from " + base_path + "\n" +
                       variants::apply_knobs(text, knobs, base_cfg.config->repo_root);
    // Loaded as if it were already in the sweep folder (relative paths were made absolute).
    const std::string as_if = (fs::path(base_path).parent_path() / name).string();
    auto r = load_config_text(yaml, as_if, env);
    std::vector<std::string> errors;
    for (const auto& e : r.errors) {
      // The variant exists only in memory yet: its errors name it as generated, not as a file.
      std::string t = e.str();
      if (t.rfind(as_if, 0) == 0) t = "(generated, not written) " + name + t.substr(as_if.size());
      errors.push_back(t);
    }
    if (r.config)
      for (const auto& e : check_launchable(*r.config)) errors.push_back(e.str());
    if (!errors.empty()) {
      std::string knob_text;
      for (const auto& [k, v] : knobs) knob_text += (knob_text.empty() ? "" : ", ") + k + "=" + v;
      throw sweep_refused("--vary " + knob_text + ": the variant of " + base_path + " is not a valid config: " +
                          errors[0]);
    }
    out.push_back({name, yaml, knobs});
  }
  return out;
}

std::vector<std::string> write_variants(const std::vector<variant_file>& variants, const std::string& sweep_dir) {
  fs::path dir = fs::path(sweep_dir) / "configs";
  fs::create_directories(dir);
  std::vector<std::string> paths;
  for (const auto& g : variants) {
    std::string path = (dir / g.name).string();
    base::write_file_atomic(path, g.yaml, true);
    paths.push_back(path);
  }
  return paths;
}

json resume_key(const sweep_options& o, const std::vector<std::string>& configs) {
  json k;
  k["configs"] = json::array();
  for (const auto& c : configs) {
    std::string hex, err;
    std::uint64_t size = 0;
    if (!sha256_file(c, hex, size, err)) throw sweep_refused(c + ": " + err);
    k["configs"].push_back(hex);
  }
  const auto& b = o.lifecycle.bench;
  k.update(measurement_key(b));
  if (!o.lifecycle.client.command.empty()) k["client"] = o.lifecycle.client.command;  // resumed only with the same client
  k["seed"] = b.seed;
  k["trials"] = o.trials;
  k["order"] = o.order;
  k["slo"] = o.slo;
  return k;
}

json measurement_key(const bench::options& b) {
  json k;
  std::string workload;
  if (b.generated.any()) {
    workload = b.generated.describe();
  } else if (!b.queries_path.empty()) {  // a --client run may have no workload
    bench::load_workload(b.queries_path, &workload);
  }
  k["workload"] = workload;
  k["requests"] = b.num_requests;
  k["repeats"] = b.repeats;
  k["warmup"] = b.warmup;
  k["max_tokens"] = b.max_tokens ? json(*b.max_tokens) : json(nullptr);
  k["stream"] = b.stream;
  k["concurrency"] = b.concurrency;
  k["rate"] = b.rate;
  k["load"] = b.load.text;
  k["duration_s"] = b.load.duration_s;
  k["headline"] = b.headline;
  return k;
}

/// The file an interrupted sweep's folder gets when a sweep resumes it: the resuming folder's path.
constexpr const char* kResumedBy = "resumed-by";

/// Claims the interrupted sweep `dir` for the sweep in `into` (created exclusively: of two resumes
/// at once, one is refused; a marker of a resume that left no record is replaced). The
/// interrupted sweep's own files are left as they are.
void mark_resumed(const std::string& dir, const std::string& into) {
  std::string path = (fs::path(dir) / kResumedBy).string();
  std::string text = fs::absolute(into).lexically_normal().string() + "\n";
  std::error_code ec;
  if (fs::exists(path, ec)) {  // a resume that left no record (reusable_lifecycles checked): replaced
    base::write_file_atomic(path, text, false);
    return;
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    if (errno == EEXIST)
      throw sweep_refused("--resume " + dir + ": another sweep resumed it meanwhile (" + path + ")");
    throw sweep_refused("--resume " + dir + ": cannot write " + path + ": " + std::strerror(errno));
  }
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  if (!ok) throw sweep_refused("--resume " + dir + ": cannot write " + path);
}

std::vector<std::vector<outcome>> reusable_lifecycles(const std::string& dir, const json& key) {
  fs::path sj = fs::path(dir) / "sweep.json";
  if (!fs::exists(sj)) throw sweep_refused("--resume " + dir + ": no sweep.json there (not a sweep folder, or still running)");
  json doc;
  try {
    doc = base::parse_json(base::read_file_limited(sj.string()), sj.string(), base::json_file_depth);
  } catch (const std::exception& e) {
    throw sweep_refused("--resume " + dir + ": " + e.what());
  }
  if (!doc.value("interrupted", false))
    throw sweep_refused("--resume " + dir + ": that sweep finished (it was not interrupted): nothing to resume");
  if (!doc.contains("resume_key") || !doc["resume_key"].is_object())
    throw sweep_refused("--resume " + dir + ": its sweep.json has no resume_key (made by an older bench-proxy)");
  const json& old = doc["resume_key"];
  for (auto it = key.begin(); it != key.end(); ++it) {
    if (old.contains(it.key()) && old[it.key()] == it.value()) continue;
    std::string what = it.key() == "configs" ? "the configs (their sha256, in order)" : "--" + it.key();
    if (it.key() == "workload") what = "the workload (its sha256 or spec)";
    throw sweep_refused("--resume " + dir + ": not the same sweep: " + what + " differ" +
                        (it.key() == "configs" ? "" : "s") + " (" + old.value(it.key(), json()).dump() + " there, " +
                        it.value().dump() + " now)");
  }
  // Resumed once already: that sweep's record holds these lifecycles (a second resume would count
  // them again, in another group of the ledger). A resume that ended without a record of its own
  // (killed, its machine lost) does not count: its folder has no sweep.json and nobody its lock.
  if (fs::path marker = fs::path(dir) / kResumedBy; fs::exists(marker)) {
    std::string into;
    try {
      into = std::string(base::trim(base::read_file_limited(marker.string(), 4096)));
    } catch (const std::exception& e) {
      throw sweep_refused("--resume " + dir + ": " + e.what());
    }
    std::error_code ec;
    if (into.empty() || fs::exists(fs::path(into) / "sweep.json", ec))
      throw sweep_refused("--resume " + dir + ": already resumed into " + into +
                          " (resume that folder if it was interrupted)");
    std::string lock = sweep_lock_path(into);
    if (int fd = ::open(lock.c_str(), O_RDONLY | O_CLOEXEC); fd >= 0) {
      bool held = ::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
      ::close(fd);
      if (held) throw sweep_refused("--resume " + dir + ": the sweep in " + into + " is resuming it now (" + lock + ")");
    }
    spdlog::warn("--resume {}: the resume into {} ended without a record: resuming it again", dir, into);
  }
  std::vector<std::vector<outcome>> out(key.at("configs").size());
  const json& cs = doc.value("configs", json::array());
  for (std::size_t i = 0; i < cs.size() && i < out.size(); ++i)
    for (const auto& rel : cs[i].value("results", json::array())) {
      fs::path p = rel.get<std::string>();
      if (p.is_relative()) p = fs::path(dir) / p;
      outcome o;
      try {
        o.result = base::parse_json(base::read_file_limited(p.string()), p.string(), base::json_file_depth);
      } catch (const std::exception& e) {
        throw sweep_refused("--resume " + dir + ": " + e.what());
      }
      o.result_path = fs::absolute(p).lexically_normal().string();
      o.run_dir = fs::path(o.result_path).parent_path().string();
      o.started = o.published = true;
      o.valid = o.result.value("valid", false);
      o.reason = o.result.value("invalid_reason", std::string());
      o.teardown_verified = true;  // a lifecycle in a sweep's record ended with its teardown verified
      o.meta_path = (fs::path(o.run_dir) / "meta.json").string();
      out[i].push_back(std::move(o));
    }
  return out;
}

sweep_plan::sweep_plan(sweep_options o, sweep_lifecycle_fn lifecycle, const interrupt_state& st, std::ostream& out)
    : o_(std::move(o)), lifecycle_(std::move(lifecycle)), st_(st), out_(out) {
  const auto& o_ref = o_;
  configs_ = o_ref.configs;
  // --vary: the variants are made and validated in memory first; nothing is written or started
  // when one of them is wrong.
  std::vector<variant_file> generated;
  if (!o_ref.vary.empty()) {
    if (configs_.size() != 1)
      throw sweep_refused("--vary makes variants of one config: give exactly one CONFIG (got " +
                          std::to_string(configs_.size()) + ")");
    generated = make_variants(configs_[0], o_ref.vary, o_ref.one_at_a_time);
  }
  // Every config and the workload are checked before the first engine starts.
  if (o_ref.preflight) o_ref.preflight(generated.empty() ? configs_ : std::vector<std::string>{configs_[0]});
  // --resume: the same sweep's finished lifecycles (checked before anything is claimed or started).
  std::vector<std::vector<outcome>> reused;
  if (generated.empty()) key_ = resume_key(o_ref, configs_);
  if (!o_ref.resume.empty()) {
    if (!generated.empty())
      throw sweep_refused("--resume with --vary: resume the sweep of the generated configs (DIR/configs/*.yaml) instead");
    reused = reusable_lifecycles(o_ref.resume, key_);
  }
  sweep_dir_ = claim_sweep_dir(o_ref.sweep_dir);
  if (!o_ref.resume.empty()) mark_resumed(o_ref.resume, sweep_dir_);
  if (!generated.empty()) {
    for (auto& p : write_variants(generated, sweep_dir_)) configs_.push_back(std::move(p));
    out_ << "variants: " << generated.size() << " configs in " << (fs::path(sweep_dir_) / "configs").string() << "\n";
  }
  if (key_.is_null()) key_ = resume_key(o_ref, configs_);  // --vary: the generated configs as written
  entries_.resize(configs_.size());
  for (std::size_t i = 0; i < configs_.size(); ++i) entries_[i].config = configs_[i];
  for (std::size_t i = 0; i < reused.size() && i < entries_.size(); ++i)
    for (auto& r : reused[i]) {
      if (entries_[i].trials.size() >= static_cast<std::size_t>(o_ref.trials)) break;
      resumed_.push_back({{"config", configs_[i]}, {"trial", entries_[i].trials.size() + 1}, {"result", r.result_path}});
      entries_[i].trials.push_back(std::move(r));
    }
  if (!o_ref.resume.empty())
    out_ << "resuming " << o_ref.resume << ": reused " << resumed_.size() << " finished lifecycle"
         << (resumed_.size() == 1 ? "" : "s") << (resumed_.empty() ? "" : " (results stay where they are)") << "\n";
  // The variants' knob values (the base config, first, has none): a column of the table.
  for (std::size_t i = 0; i < generated.size(); ++i)
    for (const auto& [k, v] : generated[i].knobs) entries_[i + 1].variant[k] = v;
  dirs_ = config_dirs(configs_, sweep_dir_);
  // One trial: each run writes its own ledger row (as a single run does); several: one row per
  // config at the end, for all its trials.
  each_ = o_ref.lifecycle;
  if (o_ref.trials > 1) each_.results_tsv.clear();
  order_ = trial_order(configs_.size(), o_ref.trials, o_ref.order == "shuffled", o_ref.lifecycle.bench.seed);
  start_ = std::chrono::steady_clock::now();
}

void sweep_plan::stop(const std::string& why) { stopped_ = why; }

std::shared_ptr<lifecycle_job> sweep_plan::next() {
  const auto& o = o_;
  if (redo_ == 0) {
    // The next step of the order that is not reused by --resume.
    for (;;) {
      if (st_.interrupted() || !stopped_.empty() || at_ >= order_.size()) return nullptr;
      auto [ci, t] = order_[at_];
      if (static_cast<std::size_t>(t) < entries_[ci].trials.size()) {  // reused by --resume
        ++at_;
        continue;
      }
      break;
    }
    auto [ci, t] = order_[at_];
    sweep_lifecycle& l = current_;  // every field is set below
    l.run = each_;
    l.run.config_path = configs_[ci];
    l.run.run_dir = trial_dir(o.trials, dirs_[ci], t);
    l.step = ++step_;
    l.steps = order_.size();
    spdlog::info("[sweep] {}/{}: {}{}", l.step, l.steps, configs_[ci],
                 o.trials > 1 ? " (trial " + std::to_string(t + 1) + ")" : "");
    // One line per lifecycle: which config of how many, which trial, requests, errors, ETA.
    double done_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    l.label = "[" + std::to_string(step_) + "/" + std::to_string(order_.size()) + "] config " + std::to_string(ci + 1) +
              "/" + std::to_string(configs_.size()) + " " + fs::path(configs_[ci]).stem().string() + ", trial " +
              std::to_string(t + 1) + "/" + std::to_string(o.trials);
    l.lifecycles_after = order_.size() - step_;
    l.mean_lifecycle_s = step_ > 1 ? done_s / static_cast<double>(step_ - 1) : 0;
  } else if (st_.interrupted() || !stopped_.empty()) {
    return nullptr;
  }
  auto job = std::make_shared<lifecycle_job>();
  job->what = current_.label;
  job->run = [f = lifecycle_, l = current_] { return f(l); };
  return job;
}

void sweep_plan::done(lifecycle_job& job) {
  const auto& o = o_;
  auto [ci, t] = order_[at_];
  outcome r = std::move(job.out);
  // A trial whose measured window was disturbed (analysis/disturbance.hpp) is run again, at
  // most redo_disturbed times; with one trial per config (each run its own ledger row) it is
  // only said: a single lifecycle is never a verdict anyway.
  if (o.trials > 1 && r.valid && !st_.interrupted() && redo_ < o.redo_disturbed) {
    auto d = analysis::disturbances(r.result.value("conditions", json()), {o.disturbance_cores});
    if (!d.empty()) {
      ++redo_;
      spdlog::warn("[sweep] {} trial {} disturbed ({}): run again", configs_[ci], t + 1, d[0]);
      entries_[ci].disturbed.push_back({{"trial", t + 1}, {"run_dir", r.run_dir}, {"reasons", d}});
      current_.run.run_dir = base::make_unique_dir(current_.run.run_dir + "-redo-" + std::to_string(redo_));
      return;  // next() runs it again
    }
  }
  if (r.valid && o.trials > 1 && o.redo_disturbed > 0) {  // 0: disturbed trials are only said (warnings)
    auto d = analysis::disturbances(r.result.value("conditions", json()), {o.disturbance_cores});
    if (!d.empty()) {
      spdlog::warn("[sweep] {} trial {} still disturbed ({}): the machine was busy", configs_[ci], t + 1, d[0]);
      bench::add_invalid_reason(r.result, "disturbed: " + d[0] + " (the machine was busy through " +
                                              std::to_string(o.redo_disturbed) + " redos)");
      r.valid = false;
      r.reason = "the machine was busy: " + d[0];
    }
  }
  if (r.valid)
    spdlog::info("[sweep] {}: {:.2f} {} (teardown verified: {})", configs_[ci], bench::headline(r.result),
                 o.lifecycle.bench.headline, r.teardown_verified);
  else
    spdlog::warn("[sweep] {}: {}", configs_[ci], r.reason);
  entries_[ci].trials.push_back(std::move(r));
  redo_ = 0;
  ++at_;
}

sweep_result sweep_plan::finish() {
  json extra = {{"resume_key", key_}};
  if (!o_.resume.empty()) {
    extra["resumed_from"] = fs::absolute(o_.resume).lexically_normal().string();
    extra["reused"] = resumed_;
  }
  return record_sweep(o_, std::move(entries_), dirs_, sweep_dir_, st_.interrupted() || !stopped_.empty(), extra, out_);
}

sweep_result run_sweep(const sweep_options& o, const sweep_lifecycle_fn& lifecycle, const interrupt_state& st,
                       std::ostream& out) {
  sweep_plan plan(o, lifecycle, st, out);
  drive(plan, steady_now_s);
  return plan.finish();
}

sweep_result record_sweep(const sweep_options& o, std::vector<sweep_entry> entries, const std::vector<std::string>& dirs,
                          const std::string& sweep_dir, bool interrupted, const json& extra, std::ostream& out) {
  const bench::options& bo = o.lifecycle.bench;
  const std::string& ledger = o.lifecycle.results_tsv;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    auto& e = entries[i];
    // A lifecycle Ctrl-C cut short is left out of the config's record (its folder stays); the
    // finished ones keep their validity.
    if (interrupted && o.trials > 1) {
      auto cut = std::remove_if(e.trials.begin(), e.trials.end(), [](const outcome& t) {
        return t.error && code_of(t.error) == errc::interrupted && !t.valid;
      });
      e.interrupted_trials = static_cast<int>(std::distance(cut, e.trials.end()));
      e.trials.erase(cut, e.trials.end());
    }
    e.aggregate = aggregate_trials(e.config, e.trials, bo, dirs[i]);
    if (!o.lifecycle.label.empty()) e.aggregate["label"] = o.lifecycle.label;
    // The ledger's rows of one sweep were measured interleaved: verdicts between them are fair.
    e.aggregate["interleaved_with"] = fs::absolute(sweep_dir).lexically_normal().string();
    if (!e.disturbed.empty()) {
      e.aggregate["disturbed"] = e.disturbed;
      e.aggregate["warnings"].push_back(std::to_string(e.disturbed.size()) +
                                        " trial(s) run again: their measured windows were disturbed (" +
                                        e.disturbed[0]["reasons"][0].get<std::string>() + ")");
    }
    if (o.trials > 1) {
      if (e.trials.size() < static_cast<std::size_t>(o.trials) && !interrupted)
        bench::add_invalid_reason(e.aggregate, "not every trial ran");
      else if (e.trials.size() < static_cast<std::size_t>(o.trials) || e.interrupted_trials > 0)
        e.aggregate["warnings"].push_back("interrupted: " + std::to_string(e.trials.size()) + " of " +
                                          std::to_string(o.trials) + " trials finished (they keep their validity)");
      std::string path = (fs::path(dirs[i]) / "trials.json").string();
      base::write_file_atomic(path, e.aggregate.dump(2, ' ', false, json::error_handler_t::replace) + "\n", true);
      if (!ledger.empty()) {
        try {
          bench::append_tsv(ledger, e.aggregate, fs::absolute(path).string());
        } catch (const std::exception& ex) {
          spdlog::error("{}", ex.what());
        }
      }
    }
  }
  bench::compare_options co;
  co.noise = o.noise;
  co.confidence = bo.stats.confidence;
  co.resamples = 10000;  // as compare does by default: the table and `compare DIR` agree
  co.seed = bo.seed;
  auto rep = report_sweep(entries, bo, co, sweep_dir, interrupted, o.trials);
  rep.doc["order"] = o.order;
  // Each config's trials record (--trials K >= 2): `results DIR` reads one row per config from it,
  // as the ledger has them.
  if (o.trials > 1)
    for (std::size_t i = 0; i < dirs.size() && i < rep.doc["configs"].size(); ++i)
      rep.doc["configs"][i]["trials_record"] =
          (fs::path(dirs[i]).lexically_relative(fs::path(sweep_dir)) / "trials.json").string();
  for (auto it = extra.begin(); it != extra.end(); ++it) rep.doc[it.key()] = it.value();
  std::string sweep_json = (fs::path(sweep_dir) / "sweep.json").string();
  base::write_file_atomic(sweep_json, rep.doc.dump(2, ' ', false, json::error_handler_t::replace) + "\n", true);
  out << rep.table;
  out << "sweep: " << fs::absolute(sweep_json).string() << "\n";
  try {  // a report that cannot be made is logged, never fatal
    out << "report: " << write_report({sweep_dir}, (fs::path(sweep_dir) / "report.html").string()) << "\n";
  } catch (const std::exception& e) {
    spdlog::warn("no report.html: {}", e.what());
  }
  out << rep.best_line << "\n";
  sweep_result res;
  res.doc = std::move(rep.doc);
  res.sweep_dir = sweep_dir;
  res.entries = std::move(entries);
  res.interrupted = interrupted;
  res.any_bad = rep.any_bad;
  return res;
}

}  // namespace bp::measure
