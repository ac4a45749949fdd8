// The telemetry actor: one per run, from the start of warmup to the end of the run, owning one
// sampler per source (host and processes; NVIDIA GPUs through a streaming nvidia-smi child). It
// appends each sample to telemetry.csv in the run folder; measure() summarises the bench's
// window of it (docs/telemetry.md). A sampler that fails writes an error row and its section
// becomes an error; the run goes on.
#include <fcntl.h>
#include <unistd.h>

#include <ctime>
#include <fstream>

#include <spdlog/spdlog.h>

#include "actors/actors.hpp"
#include "base/text.hpp"
#include "snapshot/gpu.hpp"
#include "snapshot/telemetry/telemetry.hpp"

namespace bp {

struct telemetry_state {
  static inline const char* name = "telemetry";
  std::unique_ptr<telemetry::host_sampler> host;
  std::unique_ptr<telemetry::gpu_stream> gpu;
  std::ofstream csv;
  int interval_ms = 200;
  bool host_failed = false;
};

namespace {

telemetry_actor::behavior_type telemetry_behavior(telemetry_actor::stateful_pointer<telemetry_state> self,
                                                  std::shared_ptr<run_context> ctx, engine_started engine) {
  auto& s = self->state;
  s.interval_ms = ctx->telemetry_interval_ms;
  std::string path = ctx->run_dir + "/telemetry.csv";
  s.csv.open(path, std::ios::app);
  s.csv << telemetry::csv_header() << "\n";
  std::vector<pid_t> roots = {engine.pid};
  if (engine.shim_pid > 0) roots.push_back(engine.shim_pid);
  s.host = std::make_unique<telemetry::host_sampler>("/proc", "/sys", roots, ::getpid());
  // nvidia-smi on the engine's PATH (the YAML env's), as the engine would find it.
  std::string smi = snap::find_nvidia_smi(ctx->config.env_path());
  if (smi.empty()) {
    s.csv << telemetry::csv_row({base::unix_now(), "gpu", "absent", 0, "no nvidia-smi on the engine's PATH: no GPU telemetry"})
          << "\n";
  } else {
    s.gpu = std::make_unique<telemetry::gpu_stream>(smi, s.interval_ms);
  }
  spdlog::info("[telemetry] sampling every {} ms into {}{}", s.interval_ms, path, smi.empty() ? "" : " (GPUs: " + smi + ")");
  self->send(self, atom::poll::value);
  return {
      [self](atom::poll) {
        auto& s = self->state;
        double t = base::unix_now();
        if (!s.host_failed) {
          try {
            for (const auto& x : s.host->take(t)) s.csv << telemetry::csv_row(x) << "\n";
          } catch (const std::exception& e) {
            s.host_failed = true;
            s.csv << telemetry::csv_row({t, "host", "error", 0, e.what()}) << "\n";
          }
        }
        if (s.gpu)
          for (const auto& x : s.gpu->drain()) s.csv << telemetry::csv_row(x) << "\n";
        s.csv.flush();
        self->delayed_send(self, std::chrono::milliseconds(s.interval_ms), atom::poll::value);
      },
  };
}

}  // namespace

telemetry_actor spawn_telemetry_actor(caf::local_actor* parent, std::shared_ptr<run_context> ctx,
                                      engine_started engine) {
  return parent->spawn<caf::monitored + caf::detached>(telemetry_behavior, ctx, engine);
}

}  // namespace bp
