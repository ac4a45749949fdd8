#include "snapshot/collect.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "base/sha256.hpp"

using namespace bp::snap;
using json = nlohmann::json;
namespace fs = std::filesystem;

TEST(RunProgram, CapturesOutputAndReportsFailures) {
  EXPECT_EQ(run_program({"/bin/echo", "hi"}, std::chrono::seconds(5)), "hi\n");
  EXPECT_THROW(run_program({"/bin/false"}, std::chrono::seconds(5)), std::runtime_error);
  EXPECT_THROW(run_program({"definitely-not-a-program-xyz"}, std::chrono::seconds(5)), std::runtime_error);
  // A program past its deadline is killed and reported (how fast is perf/'s business, not a test's).
  try {
    run_program({"/bin/sleep", "10"}, std::chrono::milliseconds(200));
    ADD_FAILURE() << "no timeout";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("did not finish within 200 ms"), std::string::npos) << e.what();
  }
}

TEST(Collect, GpusWithoutNvidiaSmiSaysWhy) {
  collect_input in;
  in.nvidia_smi = "/nonexistent/nvidia-smi";
  auto j = collect_gpus(in);
  EXPECT_EQ(j["available"], false);
  EXPECT_FALSE(j["reason"].get<std::string>().empty());
}

TEST(Collect, GpusWhenNoNvidiaSmiWasFoundSaysNotFound) {
  collect_input in;
  in.nvidia_smi = "";  // find_nvidia_smi found none
  EXPECT_EQ(collect_gpus(in), (json{{"available", false}, {"reason", "nvidia-smi: not found"}}));
}

TEST(Collect, GpusFromAFakeNvidiaSmi) {
  fs::path dir = fs::temp_directory_path() / ("bp_smi_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto script = dir / "nvidia-smi";
  std::ofstream(script) << "#!/bin/sh\ncat " << BP_TEST_DATA << "/gpu/nvsmi-x_2x-rtx-a5000_590.44.01_v13.xml\n";
  fs::permissions(script, fs::perms::owner_all);
  collect_input in;
  in.nvidia_smi = script.string();
  auto j = collect_gpus(in);
  EXPECT_EQ(j["available"], true);
  EXPECT_EQ(j["gpus"].size(), 2u);
  EXPECT_NE(j["raw_xml"].get<std::string>().find("<nvidia_smi_log>"), std::string::npos);
  fs::remove_all(dir);
}

TEST(Collect, HostFromFixtureRoots) {
  fs::path root = fs::temp_directory_path() / ("bp_host_" + std::to_string(::getpid()));
  fs::create_directories(root / "proc/sys/kernel");
  fs::create_directories(root / "proc/sys/vm");
  fs::create_directories(root / "sys/kernel/mm/transparent_hugepage");
  fs::create_directories(root / "sys/devices/system/cpu/cpu0/cpufreq");
  fs::create_directories(root / "sys/devices/system/cpu/cpu1/cpufreq");
  fs::create_directories(root / "sys/devices/system/cpu/cpufreq");
  fs::create_directories(root / "sys/devices/system/node/node0");
  fs::create_directories(root / "etc");
  std::ofstream(root / "proc/sys/kernel/hostname") << "gpu-host-7\n";
  std::ofstream(root / "proc/sys/kernel/osrelease") << "6.8.0-45-generic\n";
  std::ofstream(root / "proc/sys/kernel/numa_balancing") << "0\n";
  std::ofstream(root / "proc/sys/vm/swappiness") << "10\n";
  std::ofstream(root / "proc/cmdline") << "BOOT_IMAGE=/vmlinuz isolcpus=2-3\n";
  std::ofstream(root / "proc/cpuinfo") << "processor\t: 0\nmodel name\t: Intel Xeon Platinum 8480+\nphysical id\t: 0\ncore id\t: 0\n\n"
                                          "processor\t: 1\nmodel name\t: Intel Xeon Platinum 8480+\nphysical id\t: 1\ncore id\t: 0\n\n";
  std::ofstream(root / "proc/meminfo") << "MemTotal:       2113420000 kB\nHugepagesize:       2048 kB\n";
  std::ofstream(root / "sys/kernel/mm/transparent_hugepage/enabled") << "always [madvise] never\n";
  std::ofstream(root / "sys/kernel/mm/transparent_hugepage/defrag") << "[always] defer madvise never\n";
  std::ofstream(root / "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor") << "performance\n";
  std::ofstream(root / "sys/devices/system/cpu/cpu1/cpufreq/scaling_governor") << "powersave\n";
  std::ofstream(root / "sys/devices/system/cpu/cpufreq/boost") << "1\n";
  std::ofstream(root / "sys/devices/system/cpu/isolated") << "2-3\n";
  std::ofstream(root / "sys/devices/system/node/node0/cpulist") << "0-1\n";
  std::ofstream(root / "sys/devices/system/node/node0/meminfo") << "Node 0 MemTotal:       1056710000 kB\n";
  std::ofstream(root / "etc/os-release") << "PRETTY_NAME=\"Ubuntu 22.04.4 LTS\"\nID=ubuntu\nVERSION_ID=\"22.04\"\n";
  collect_input in;
  in.proc_root = (root / "proc").string();
  in.sys_root = (root / "sys").string();
  in.etc_root = (root / "etc").string();
  auto h = collect_host(in);
  EXPECT_EQ(h["hostname"], "gpu-host-7");
  EXPECT_EQ(h["cpu"]["sockets"], 2);
  EXPECT_EQ(h["cpu"]["model"], "Intel Xeon Platinum 8480+");
  EXPECT_EQ(h["transparent_hugepages"]["enabled"], "madvise");
  EXPECT_EQ(h["transparent_hugepages"]["defrag"], "always");
  EXPECT_EQ(h["cpufreq"]["governors"]["performance"], 1);
  EXPECT_EQ(h["cpufreq"]["governors"]["powersave"], 1);
  EXPECT_EQ(h["cpufreq"]["boost"], true);
  EXPECT_EQ(h["isolated_cpus"], "2-3");
  EXPECT_EQ(h["numa_nodes"][0]["cpus"], "0-1");
  EXPECT_EQ(h["numa_nodes"][0]["memory_total_kib"], 1056710000);
  EXPECT_EQ(h["numa_balancing"], "0");
  EXPECT_EQ(h["swappiness"], "10");
  EXPECT_EQ(h["os_release"]["PRETTY_NAME"], "Ubuntu 22.04.4 LTS");
  fs::remove_all(root);
}

TEST(Collect, EngineVersionFromDistInfoWithoutImporting) {
  fs::path venv = fs::temp_directory_path() / ("bp_venv_" + std::to_string(::getpid()));
  auto site = venv / "lib/python3.12/site-packages";
  fs::create_directories(site / "vllm-0.19.1.dist-info");
  fs::create_directories(site / "torch-2.8.0.dist-info");
  fs::create_directories(site / "tensorrt_llm-1.1.0.dist-info");
  std::ofstream(site / "vllm-0.19.1.dist-info/METADATA") << "Metadata-Version: 2.1\nName: vllm\nVersion: 0.19.1\n\nbody";
  std::ofstream(site / "torch-2.8.0.dist-info/METADATA") << "Name: torch\nVersion: 2.8.0\n";
  std::ofstream(site / "tensorrt_llm-1.1.0.dist-info/METADATA") << "Name: tensorrt-llm\nVersion: 1.1.0\n";
  std::ofstream(venv / "pyvenv.cfg") << "home = /usr/bin\nversion_info = 3.12.3\n";
  collect_input in;
  in.venv = venv.string();
  in.engine_kind = "vllm";
  auto j = collect_engine_version(in);
  EXPECT_EQ(j["version"], "0.19.1");
  EXPECT_EQ(j["python"], "3.12.3");
  EXPECT_EQ(j["packages"]["torch"]["version"], "2.8.0");
  in.engine_kind = "trt-llm";
  j = collect_engine_version(in);
  EXPECT_EQ(j["version"], "1.1.0");  // "tensorrt-llm" normalised to tensorrt_llm
  in.engine_kind = "sglang";
  j = collect_engine_version(in);
  EXPECT_TRUE(j["version"].is_null());
  EXPECT_NE(j["reason"].get<std::string>().find("no sglang"), std::string::npos);
  fs::remove_all(venv);
}

TEST(Collect, InputsRecordFilesAndHfSnapshots) {
  fs::path dir = fs::temp_directory_path() / ("bp_inputs_" + std::to_string(::getpid()));
  auto snapdir = dir / "hub/models--Qwen--Qwen2.5-0.5B/snapshots/abc123rev";
  fs::create_directories(snapdir);
  fs::create_directories(dir / "hub/models--Qwen--Qwen2.5-0.5B/blobs");
  std::ofstream(dir / "hub/models--Qwen--Qwen2.5-0.5B/blobs/deadbeef") << "{}";
  fs::create_symlink("../../blobs/deadbeef", snapdir / "config.json");
  std::ofstream(dir / "extra.yaml") << "kv_cache_config:\n  free_gpu_memory_fraction: 0.9\n";
  // A fake process tree: /proc/<pid>/{stat,cmdline,cwd}.
  fs::path proc = dir / "proc";
  fs::create_directories(proc / "77");
  std::ofstream(proc / "77/stat") << "77 (trtllm-serve) S 1 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0\n";
  std::string cmd = std::string("trtllm-serve\0serve\0", 19) + snapdir.string() + std::string("\0--extra_llm_api_options\0", 25) +
                    "extra.yaml" + std::string("\0", 1);
  std::ofstream(proc / "77/cmdline", std::ios::binary) << cmd;
  fs::create_symlink(dir, proc / "77/cwd");
  collect_input in;
  in.proc_root = proc.string();
  in.engine_pid = 77;
  auto j = collect_inputs(in);
  ASSERT_EQ(j["files"].size(), 1u) << j.dump(2);
  EXPECT_EQ(j["files"][0]["path"], (dir / "extra.yaml").string());
  EXPECT_NE(j["files"][0]["content"].get<std::string>().find("free_gpu_memory_fraction"), std::string::npos);
  ASSERT_EQ(j["directories"].size(), 1u);
  EXPECT_EQ(j["directories"][0]["hf_repo"], "Qwen/Qwen2.5-0.5B");
  EXPECT_EQ(j["directories"][0]["hf_revision"], "abc123rev");
  EXPECT_EQ(j["directories"][0]["files"][0]["link"], "../../blobs/deadbeef");
  fs::remove_all(dir);
}

namespace {

/// A fake /proc/<pid> under `dir` whose cmdline is `argv` and whose cwd is `dir`.
fs::path fake_proc(const fs::path& dir, const std::vector<std::string>& argv) {
  fs::path proc = dir / "proc";
  fs::create_directories(proc / "78");
  std::ofstream(proc / "78/stat") << "78 (llama-server) S 1 78 78 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0\n";
  std::string cmd;
  for (const auto& a : argv) cmd += a + std::string("\0", 1);
  std::ofstream(proc / "78/cmdline", std::ios::binary) << cmd;
  fs::create_symlink(dir, proc / "78/cwd");
  return proc;
}

}  // namespace

TEST(Collect, InputsNeverWalkTheEngineKindsOutputFoldersOrSharedScratchSpace) {
  fs::path dir = fs::temp_directory_path() / ("bp_outputs_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "slots");
  fs::create_directories(dir / "logs");
  fs::create_directories(dir / "scratch");
  fs::create_directories(dir / "model");
  for (int i = 0; i < 50; ++i) {
    std::ofstream(dir / "slots" / ("other-users-file-" + std::to_string(i))) << i;
    std::ofstream(dir / "scratch" / ("f" + std::to_string(i))) << i;
  }
  std::ofstream(dir / "model/weights.gguf") << "GGUF";
  // A world-writable folder with the sticky bit, like /tmp.
  fs::permissions(dir / "scratch", fs::perms::all | fs::perms::sticky_bit);
  auto proc = fake_proc(dir, {"llama-server", "-m", (dir / "model").string(), "--slot-save-path", (dir / "slots").string(),
                              "--log-file=logs", "--path", (dir / "scratch").string()});
  collect_input in;
  in.proc_root = proc.string();
  in.engine_pid = 78;
  in.engine_kind = "llama.cpp";
  auto j = collect_inputs(in);
  ASSERT_EQ(j["directories"].size(), 1u) << j.dump(2);
  EXPECT_EQ(j["directories"][0]["path"], (dir / "model").string());
  ASSERT_EQ(j["not_walked"].size(), 3u) << j.dump(2);
  EXPECT_EQ(j["not_walked"][0]["option"], "--slot-save-path");
  EXPECT_EQ(j["not_walked"][0]["path"], (dir / "slots").string());
  EXPECT_NE(j["not_walked"][0]["reason"].get<std::string>().find("an output, not an input"), std::string::npos);
  EXPECT_EQ(j["not_walked"][1]["option"], "--log-file");  // --option=value, relative to the cwd
  EXPECT_EQ(j["not_walked"][1]["path"], (dir / "logs").string());
  EXPECT_EQ(j["not_walked"][2]["path"], (dir / "scratch").string());
  EXPECT_NE(j["not_walked"][2]["reason"].get<std::string>().find("sticky bit"), std::string::npos);
  EXPECT_EQ(j.dump().find("other-users-file"), std::string::npos);
  // The same folder behind an option another kind does not know is an input of that kind.
  in.engine_kind = "mock";
  j = collect_inputs(in);
  EXPECT_EQ(j["directories"].size(), 3u) << j.dump(2);  // model, slots, logs (scratch never)
  fs::remove_all(dir);
}

TEST(Collect, InputsListAtMostTheDocumentedNumberOfEntriesAndSayTheyWereCut) {
  fs::path dir = fs::temp_directory_path() / ("bp_bigdir_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "big");
  for (int i = 0; i < 10050; ++i) std::ofstream(dir / "big" / std::to_string(i));
  auto proc = fake_proc(dir, {"engine", "big"});
  collect_input in;
  in.proc_root = proc.string();
  in.engine_pid = 78;
  in.engine_kind = "mock";
  auto j = collect_inputs(in);
  ASSERT_EQ(j["directories"].size(), 1u);
  EXPECT_EQ(j["directories"][0]["files"].size(), 10000u);
  EXPECT_EQ(j["directories"][0]["truncated"], true);
  EXPECT_NE(j["directories"][0]["truncated_reason"].get<std::string>().find("more than 10000 entries"), std::string::npos);
  fs::remove_all(dir);
}

TEST(Collect, GpusFallBackToQueryGpuCsvWhenTheXmlIsUnusable) {
  fs::path dir = fs::temp_directory_path() / ("bp_smi_csv_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto script = dir / "nvidia-smi";
  std::ofstream(script) << "#!/bin/sh\ncase \"$1\" in\n  -q) echo '<not-xml';;\n  --query-gpu=*) cat " << BP_TEST_DATA
                        << "/gpu/query-gpu-csv_h200_590.48.01_idle.csv;;\nesac\n";
  fs::permissions(script, fs::perms::owner_all);
  collect_input in;
  in.nvidia_smi = script.string();
  auto j = collect_gpus(in);
  EXPECT_EQ(j["available"], true);
  EXPECT_EQ(j["source"], "nvidia-smi --query-gpu");
  EXPECT_EQ(j["gpus"][0]["name"], "NVIDIA H200");
  EXPECT_FALSE(j["xml_error"].get<std::string>().empty());
  fs::remove_all(dir);
}

// engine_reported asks the engine through the function its owner hands it (the snapshot library
// opens no sockets): each endpoint's answer, a 404 as missing, a failed GET as its error, and no
// function at all said per endpoint.
TEST(EngineReported, AsksThroughTheOwnersFunctionAndRecordsEachAnswer) {
  collect_input in;
  in.engine_kind = "llama.cpp";
  std::vector<std::string> asked;
  in.engine_get = [&](const std::string& path, std::chrono::milliseconds, std::uint64_t max_bytes,
                      std::string& err) -> std::optional<collect_input::engine_answer> {
    asked.push_back(path);
    EXPECT_GT(max_bytes, 0u);
    if (path == "/props") return collect_input::engine_answer{200, R"({"n_ctx": 2048})"};
    err = "connection refused";
    return std::nullopt;
  };
  json out = collect_engine_reported(in);
  EXPECT_EQ(asked, (std::vector<std::string>{"/props", "/v1/models"}));
  EXPECT_EQ(out["/props"]["body"]["n_ctx"], 2048);
  EXPECT_TRUE(out["/props"]["ok"].get<bool>());
  EXPECT_FALSE(out["/v1/models"]["ok"].get<bool>());
  EXPECT_EQ(out["/v1/models"]["error"], "connection refused");
  in.engine_get = nullptr;
  out = collect_engine_reported(in);
  EXPECT_NE(out["/props"]["error"].get<std::string>().find("engine_get is not set"), std::string::npos) << out.dump();
}
