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
