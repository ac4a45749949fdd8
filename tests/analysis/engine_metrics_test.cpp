// The engine's counters around a bench, on exposition texts written from the documented names.
#include <gtest/gtest.h>

#include "analysis/engine_metrics.hpp"

using namespace bp::bench;

namespace {

std::string vllm(double drafts, double draft_tokens, double accepted, double pos0, double pos1, double queries,
                 double hits, double prompt, double gen) {
  std::string s =
      "# HELP vllm:spec_decode_num_drafts_total Number of spec decoding drafts.\n"
      "# TYPE vllm:spec_decode_num_drafts_total counter\n";
  auto line = [&](const std::string& name, const std::string& labels, double v) {
    s += name + "{engine=\"0\",model_name=\"m\"" + labels + "} " + std::to_string(v) + "\n";
  };
  line("vllm:spec_decode_num_drafts_total", "", drafts);
  line("vllm:spec_decode_num_draft_tokens_total", "", draft_tokens);
  line("vllm:spec_decode_num_accepted_tokens_total", "", accepted);
  line("vllm:spec_decode_num_accepted_tokens_per_pos_total", ",position=\"0\"", pos0);
  line("vllm:spec_decode_num_accepted_tokens_per_pos_total", ",position=\"1\"", pos1);
  line("vllm:prefix_cache_queries_total", "", queries);
  line("vllm:prefix_cache_hits_total", "", hits);
  line("vllm:num_preemptions_total", "", 0);
  line("vllm:prompt_tokens_total", "", prompt);
  line("vllm:generation_tokens_total", "", gen);
  line("vllm:request_success_total", ",finished_reason=\"length\"", gen / 10);
  return s;
}

}  // namespace

TEST(EngineMetrics, ExpositionLinesParseWithLabelsEscapesAndTimestamps) {
  auto v = parse_exposition(
      "# TYPE x counter\nx_total{a=\"1\",b=\"q\\\"uote\"} 12.5 1700000000\nplain 3\nbroken{a=\"1\" 4\n\n");
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0].name, "x_total");
  EXPECT_EQ(v[0].labels.at("b"), "q\"uote");
  EXPECT_EQ(v[0].value, 12.5);
  EXPECT_EQ(v[1].name, "plain");
}

TEST(EngineMetrics, VllmDeltasGiveAcceptanceLengthPerPositionAndPrefixHitRate) {
  auto m = engine_metrics("vllm", vllm(100, 300, 150, 80, 40, 1000, 100, 5000, 2000),
                          vllm(200, 600, 360, 170, 110, 2000, 500, 5800, 2400), 800, 400);
  EXPECT_FALSE(m["counter_reset"].get<bool>());
  EXPECT_DOUBLE_EQ(m["series"]["spec_drafts"]["value"].get<double>(), 100);
  EXPECT_DOUBLE_EQ(m["derived"]["mean_acceptance_length"].get<double>(), 1 + 210.0 / 100);
  EXPECT_DOUBLE_EQ(m["derived"]["acceptance_rate"].get<double>(), 210.0 / 300);
  EXPECT_DOUBLE_EQ(m["derived"]["acceptance_per_position"]["0"].get<double>(), 0.9);
  EXPECT_DOUBLE_EQ(m["derived"]["acceptance_per_position"]["1"].get<double>(), 0.7);
  EXPECT_DOUBLE_EQ(m["derived"]["prefix_cache_hit_rate"].get<double>(), 0.4);
  EXPECT_TRUE(m["cross_check"]["generation_tokens"]["equal"].get<bool>());
  EXPECT_TRUE(engine_metric_warnings(m).empty());
  EXPECT_EQ(engine_metric_line(m), "mean acceptance length 3.10, acceptance 70.0%, prefix-cache hit rate 40.0%, preemptions 0");
}

TEST(EngineMetrics, MissingSeriesAreAbsentNotZeroAndResetsInvalidateLoudly) {
  std::string before = "sglang:prompt_tokens_total 100\nsglang:generation_tokens_total 50\n";
  std::string after = "sglang:prompt_tokens_total 40\nsglang:generation_tokens_total 90\nsglang:spec_accept_length 2.5\n";
  auto m = engine_metrics("sglang", before, after, -1, 40);
  EXPECT_TRUE(m["counter_reset"].get<bool>());
  bool cached_absent = false;
  for (const auto& a : m["absent"]) cached_absent = cached_absent || a == "sglang:cached_tokens_total";
  EXPECT_TRUE(cached_absent);
  EXPECT_FALSE(m["series"].contains("cached_tokens"));
  EXPECT_DOUBLE_EQ(m["derived"]["mean_acceptance_length"].get<double>(), 2.5);  // a gauge: its value at the end
  auto w = engine_metric_warnings(m);
  ASSERT_FALSE(w.empty());
  EXPECT_NE(w[0].find("went backwards"), std::string::npos);
}

TEST(EngineMetrics, TokenCountsThatDisagreeWithTheBenchAreAWarning) {
  std::string before = "llamacpp:prompt_tokens_total 0\nllamacpp:tokens_predicted_total 0\n";
  std::string after = "llamacpp:prompt_tokens_total 300\nllamacpp:tokens_predicted_total 90\n";
  auto m = engine_metrics("llama.cpp", before, after, 300, 64);
  auto w = engine_metric_warnings(m);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("the engine counted 90 generation_tokens during the bench, the bench 64"), std::string::npos) << w[0];
  EXPECT_NE(engine_metrics("mock", "", "", -1, -1).value("error", ""), "");
}
