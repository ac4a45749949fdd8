#include "snapshot/gpu.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

using namespace bp::snap;

namespace {
std::string fixture(const std::string& name) {
  std::ifstream f(std::string(BP_TEST_DATA) + "/gpu/" + name);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}
}  // namespace

TEST(NvidiaSmiXml, TwoRtxA5000OnDriver590WithNewPowerElements) {
  auto j = summarize_nvidia_smi_xml(fixture("nvsmi-x_2x-rtx-a5000_590.44.01_v13.xml"));
  EXPECT_EQ(j["driver_version"], "590.44.01");
  EXPECT_EQ(j["cuda_version"], "13.1");
  ASSERT_EQ(j["gpus"].size(), 2u);
  const auto& g = j["gpus"][0];
  EXPECT_EQ(g["name"], "NVIDIA RTX A5000");
  EXPECT_EQ(g["pci_bus_id"], "00000000:81:00.0");
  EXPECT_EQ(g["power_limit"], "230.00 W");  // gpu_power_readings/current_power_limit
  EXPECT_EQ(g["persistence_mode"], "Enabled");
  EXPECT_EQ(g["ecc_mode"], "Disabled");
  EXPECT_EQ(g["max_clocks"]["sm"], "2100 MHz");
  EXPECT_TRUE(g["applications_clocks"]["graphics"].is_null());  // "deprecated" on this driver
  EXPECT_EQ(g["index"], "1");
  EXPECT_EQ(j["gpus"][1]["index"], "0");
}

TEST(NvidiaSmiXml, TeslaT4OnOlderDriverUsesPowerReadings) {
  auto j = summarize_nvidia_smi_xml(fixture("nvsmi-x_tesla-t4_515.105.01_v11.xml"));
  ASSERT_EQ(j["gpus"].size(), 1u);
  EXPECT_EQ(j["driver_version"], "515.105.01");
  EXPECT_EQ(j["gpus"][0]["power_limit"], "70.00 W");
  EXPECT_EQ(j["gpus"][0]["name"], "Tesla T4");
}

TEST(NvidiaSmiXml, A100WithMigDevices) {
  auto j = summarize_nvidia_smi_xml(fixture("nvsmi-x_a100-sxm4-80gb_mig_535.54.03_v12.xml"));
  ASSERT_EQ(j["gpus"].size(), 1u);
  EXPECT_EQ(j["gpus"][0]["mig_mode"], "Enabled");
  EXPECT_EQ(j["gpus"][0]["mig_devices"].size(), 4u);
  EXPECT_EQ(j["gpus"][0]["ecc_mode"], "Enabled");
}

TEST(NvidiaSmiXml, FourK80WithoutCudaVersionOrMigMode) {
  auto j = summarize_nvidia_smi_xml(fixture("nvsmi-x_4x-tesla-k80_430.26_v10.xml"));
  EXPECT_EQ(j["gpus"].size(), 4u);
  EXPECT_TRUE(j["cuda_version"].is_null());
  EXPECT_TRUE(j["gpus"][0]["mig_mode"].is_null());
}

TEST(NvidiaSmiXml, EveryFixtureParses) {
  for (const char* f : {"nvsmi-x_quadro-p2000_525.125.06_v12.xml", "nvsmi-x_rtx-3080_595.58.03_v13.xml",
                        "nvsmi-x_rtx-pro-6000-blackwell_590.44.01_v13.xml"}) {
    auto j = summarize_nvidia_smi_xml(fixture(f));
    EXPECT_GE(j["gpus"].size(), 1u) << f;
    EXPECT_FALSE(j["gpus"][0]["uuid"].is_null()) << f;
    EXPECT_FALSE(j["gpus"][0]["memory_total"].is_null()) << f;
  }
}

TEST(Xml, RejectsBrokenDocumentsWithAnOffset) {
  try {
    parse_xml("<a><b></a>");
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("at byte"), std::string::npos);
  }
  EXPECT_THROW(summarize_nvidia_smi_xml("<html></html>"), std::runtime_error);
}

TEST(Xml, EntitiesAttributesAndCdata) {
  auto n = parse_xml("<?xml version=\"1.0\"?><r a='1' b=\"x&amp;y\"><t>&lt;ok&gt;</t><c><![CDATA[<raw>]]></c></r>");
  EXPECT_EQ(n->attr("b"), "x&y");
  EXPECT_EQ(n->child("t")->text, "<ok>");
  EXPECT_EQ(n->child("c")->text, "<raw>");
}

TEST(NvidiaSmiCsv, H100QueryGpuWithUnitsAndNa) {
  auto rows = parse_query_gpu_csv(fixture("query-gpu-csv_h100-80gb-hbm3_590.48.01_idle.csv"));
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0]["name"], "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(rows[0]["memory.total"], "81559 MiB");  // "memory.total [MiB]" -> "memory.total"
  EXPECT_TRUE(rows[0]["module.power.limit"].is_null());  // "[N/A]"
  EXPECT_TRUE(rows[0]["clocks.applications.graphics"].is_null());  // "deprecated"
  auto j = summarize_query_gpu_csv(fixture("query-gpu-csv_h100-80gb-hbm3_590.48.01_idle.csv"));
  EXPECT_EQ(j["driver_version"], "590.48.01");
  EXPECT_EQ(j["gpus"][0]["power_limit"], "700.00 W");
  EXPECT_EQ(j["gpus"][0]["max_clocks"]["sm"], "1980 MHz");
  EXPECT_EQ(j["gpus"][0]["mig_mode"], "Disabled");
  EXPECT_EQ(j["gpus"][0]["pci_bus_id"], "00000000:00:09.0");
}

TEST(NvidiaSmiCsv, MigEnabledAndH200) {
  auto mig = summarize_query_gpu_csv(fixture("query-gpu-csv_h100-80gb-hbm3_mig_590.48.01_idle.csv"));
  EXPECT_EQ(mig["gpus"][0]["mig_mode"], "Enabled");
  auto h200 = summarize_query_gpu_csv(fixture("query-gpu-csv_h200_590.48.01_idle.csv"));
  EXPECT_EQ(h200["gpus"][0]["name"], "NVIDIA H200");
  EXPECT_FALSE(h200["gpus"][0]["memory_total"].is_null());
}

TEST(NvidiaSmiCsv, RaggedRowsAreErrors) {
  EXPECT_THROW(parse_query_gpu_csv("a, b\n1\n"), std::runtime_error);
  EXPECT_THROW(parse_query_gpu_csv(""), std::runtime_error);
}

// ---- finding nvidia-smi: one function for the gpus collector, telemetry and the fleet's hello ----

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

namespace {

namespace fs = std::filesystem;

/// A folder of its own under the temp dir, removed at the end of the test.
struct temp_dir {
  fs::path path = fs::temp_directory_path() /
                  ("bp_find_smi_" + std::to_string(::getpid()) + "_" +
                   ::testing::UnitTest::GetInstance()->current_test_info()->name());
  temp_dir() { fs::create_directories(path); }
  ~temp_dir() { fs::remove_all(path); }
  /// DIR/nvidia-smi with `body`, executable or not.
  std::string script(const std::string& dir, const std::string& body, bool executable = true) const {
    fs::create_directories(path / dir);
    auto f = path / dir / "nvidia-smi";
    std::ofstream(f) << "#!/bin/sh\n" << body;
    fs::permissions(f, executable ? fs::perms::owner_all : fs::perms::owner_read | fs::perms::owner_write);
    return f.string();
  }
};

/// Unsets BENCH_PROXY_NVIDIA_SMI for the test, restores it after.
struct no_override {
  std::string saved;
  bool had = false;
  no_override() {
    if (const char* p = std::getenv("BENCH_PROXY_NVIDIA_SMI")) {
      had = true;
      saved = p;
    }
    ::unsetenv("BENCH_PROXY_NVIDIA_SMI");
  }
  ~no_override() {
    if (had) ::setenv("BENCH_PROXY_NVIDIA_SMI", saved.c_str(), 1);
    else ::unsetenv("BENCH_PROXY_NVIDIA_SMI");
  }
};

}  // namespace

TEST(FindNvidiaSmi, TheFirstExecutableFileOnThePathWins) {
  no_override clean;
  temp_dir t;
  t.script("plain", "exit 0\n", false);                    // not executable: skipped
  fs::create_directories(t.path / "folder" / "nvidia-smi");  // a directory of that name: skipped
  std::string fake = t.script("fake", "exit 0\n");
  std::string later = t.script("later", "exit 0\n");
  std::string path = (t.path / "missing").string() + "::" + (t.path / "plain").string() + ":" +
                     (t.path / "folder").string() + ":" + (t.path / "fake").string() + ":" + (t.path / "later").string();
  EXPECT_EQ(find_nvidia_smi(path), fake);
  EXPECT_EQ(find_nvidia_smi((t.path / "later").string() + ":" + (t.path / "fake").string()), later);
  EXPECT_EQ(find_nvidia_smi((t.path / "plain").string()), "");
  EXPECT_EQ(find_nvidia_smi(""), "");
}

TEST(FindNvidiaSmi, BenchProxysOwnPathIsItsEnvironmentsPath) {
  no_override clean;
  temp_dir t;
  std::string fake = t.script("bin", "exit 0\n");
  std::string saved = std::getenv("PATH") ? std::getenv("PATH") : "";
  ::setenv("PATH", ((t.path / "bin").string() + ":" + saved).c_str(), 1);
  std::string found = find_nvidia_smi();
  ::setenv("PATH", saved.c_str(), 1);
  EXPECT_EQ(found, fake);
}

TEST(FindNvidiaSmi, TheEnvironmentOverrideWinsAsGiven) {
  no_override clean;
  temp_dir t;
  std::string fake = t.script("bin", "exit 0\n");
  ::setenv("BENCH_PROXY_NVIDIA_SMI", "/opt/elsewhere/nvidia-smi", 1);
  EXPECT_EQ(find_nvidia_smi((t.path / "bin").string()), "/opt/elsewhere/nvidia-smi");
  EXPECT_EQ(find_nvidia_smi(), "/opt/elsewhere/nvidia-smi");
}

TEST(NvidiaGpuNames, OneNamePerGpuFromTheQueryOrNoneOnFailure) {
  temp_dir t;
  // Answers only the exact query, so a changed command line fails the test.
  std::string fake = t.script("ok",
                              "[ \"$1\" = --query-gpu=name ] && [ \"$2\" = --format=csv,noheader ] || exit 9\n"
                              "printf 'NVIDIA H100 80GB HBM3\\n  NVIDIA H200 \\n\\n'\n"
                              "echo 'a warning' >&2\n");
  EXPECT_EQ(nvidia_gpu_names(fake), (std::vector<std::string>{"NVIDIA H100 80GB HBM3", "NVIDIA H200"}));
  std::string failing = t.script("failing", "echo 'NVIDIA-SMI has failed because it could not communicate'; exit 9\n");
  EXPECT_TRUE(nvidia_gpu_names(failing).empty());
  EXPECT_TRUE(nvidia_gpu_names("").empty());
  EXPECT_TRUE(nvidia_gpu_names((t.path / "none" / "nvidia-smi").string()).empty());
  EXPECT_EQ(parse_gpu_names("A\r\n\n B \n"), (std::vector<std::string>{"A", "B"}));
}
