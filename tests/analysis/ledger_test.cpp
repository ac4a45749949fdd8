// The ledger (analysis/ledger.cpp): appending never corrupts what is there, reading keeps every
// row it can, verdicts only between rows measured interleaved, and a try's row as a campaign step.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "analysis/ledger.hpp"

using namespace bp::bench;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

struct temp_tsv {
  fs::path p;
  explicit temp_tsv(const std::string& name)
      : p(fs::temp_directory_path() / ("bp_ledger_test_" + name + "_" + std::to_string(::getpid()) + ".tsv")) {
    fs::remove(p);
  }
  ~temp_tsv() { fs::remove(p); }
  std::string str() const { return p.string(); }
  std::string text() const {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  std::vector<std::string> lines() const {
    std::vector<std::string> out;
    std::istringstream in(text());
    std::string l;
    while (std::getline(in, l)) out.push_back(l);
    return out;
  }
};

std::size_t fields(const std::string& line) { return std::count(line.begin(), line.end(), '\t') + 1; }

/// A valid result with a headline (output tokens/s, higher is better) and a ±0.5% interval.
json result(double value, const std::string& label, const std::string& group = "", const std::string& config = "") {
  json r = {{"finished_at", "2026-12-01T00:00:00Z"},
            {"valid", true},
            {"label", label},
            {"config_path", config.empty() ? label + ".yaml" : config},
            {"workload", {{"sha256", "w"}}},
            {"options", {{"concurrency", 4}, {"rate", 0}, {"max_tokens", 64}, {"requests", 100}}},
            {"summary",
             {{"requests", 100},
              {"errors", 0},
              {"output_tps", {{"median", value}}},
              {"headline", {{"metric", "output_tps"}, {"value", value}, {"ci", {value * 0.995, value * 1.005}}}}}}};
  if (!group.empty()) {
    r["interleaved_with"] = group;
    r["trials"] = 3;  // a sweep's row: three lifecycles, interleaved with the group's others
  }
  return r;
}

/// A try document as `try` writes it: the candidate's aggregate and the decision.
json try_doc(const std::string& verdict, double ratio, double low, double high, const std::string& label,
             double value, const std::string& group = "/tries/1") {
  json t = result(value, label, group);
  t["kind"] = "bench-proxy try";
  t.erase("trials");  // a try's row counts its candidate's lifecycles from "sides"
  t["schema_version"] = 1;
  t["decision"] = {{"verdict", verdict},
                   {"ratio", ratio},
                   {"low", low},
                   {"high", high},
                   {"rounds", 4},
                   {"engine_seconds", 312.5},
                   {"procedure", "group-sequential t on round-paired log ratios, 10 looks"},
                   {"baseline", "configs/base.yaml"},
                   {"metric", "output_tps"}};
  return t;
}

std::vector<std::string> verdicts(const std::vector<campaign_entry>& c) {
  std::vector<std::string> v;
  for (const auto& e : c) v.push_back(e.verdict);
  return v;
}

const char* kV2Header =
    "time\tdescription\tengine\tsnapshot_id\tvenv_merkle\trequests\terrors\tmedian_output_tps\t"
    "median_ttft_ms\tmedian_itl_ms\tp99_e2e_ms\ttotal_output_tps\tvalidity\tresult\tconfig\treasons";

}  // namespace

// ---- Fields are escaped, never altered ----

TEST(LedgerAppend, FieldsWithTabsNewlinesAndBackslashesComeBackUnchanged) {
  for (std::string s : {"plain", "a\tb", "two\nlines", "back\\slash", "\\t literal", "cr\r\n", "\\", "end\\"})
    EXPECT_EQ(unescape_field(escape_field(s)), s) << s;
  EXPECT_EQ(escape_field("a\tb\nc\\d"), "a\\tb\\nc\\\\d");
  EXPECT_EQ(unescape_field("C:\\x"), "C:\\x");  // an unknown escape keeps its backslash
  temp_tsv t("escape");
  std::string cfg = "/configs/odd\tname\nwith\\backslash.yaml";
  json r = result(100, "tab\there");
  r["config_path"] = cfg;
  r["invalid_reason"] = "line one\nline two";
  append_tsv(t.str(), r, "/runs/a\tb/result.json");
  auto lines = t.lines();
  ASSERT_EQ(lines.size(), 2u);  // the header and one row: the newline stayed inside its field
  EXPECT_EQ(fields(lines[1]), fields(lines[0]));
  std::vector<std::string> w;
  auto rows = load_ledger(t.str(), &w);
  EXPECT_TRUE(w.empty());
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].config, cfg);
  EXPECT_EQ(rows[0].label, "tab\there");
  EXPECT_EQ(rows[0].result, "/runs/a\tb/result.json");
  EXPECT_EQ(rows[0].reasons, "line one\nline two");
}

// ---- Appending never corrupts ----

TEST(LedgerAppend, ALastLineWithoutItsLineEndIsEndedNotGluedOnto) {
  temp_tsv t("nofinalnl");
  append_tsv(t.str(), result(100, "first"), "/r/1");
  std::string text = t.text();
  ASSERT_EQ(text.back(), '\n');
  text.pop_back();  // as an editor or a torn write leaves it
  std::ofstream(t.p, std::ios::trunc) << text;
  append_tsv(t.str(), result(110, "second"), "/r/2");
  auto lines = t.lines();
  ASSERT_EQ(lines.size(), 3u);
  for (const auto& l : lines) EXPECT_EQ(fields(l), fields(lines[0])) << l;
  std::vector<std::string> w;
  auto rows = load_ledger(t.str(), &w);
  EXPECT_TRUE(w.empty()) << w[0];
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].label, "first");
  EXPECT_EQ(rows[1].label, "second");
  // A header alone without its line end too.
  temp_tsv h("headeronly");
  std::ofstream(h.p) << kV2Header;
  append_tsv(h.str(), result(100, "x"), "/r/x");
  ASSERT_EQ(h.lines().size(), 2u);
  EXPECT_EQ(h.lines()[0], kV2Header);
  EXPECT_EQ(fields(h.lines()[1]), 16u);
}

TEST(LedgerAppend, ATornLastRowIsReportedAndTheNewRowIsItsOwn) {
  temp_tsv t("torn");
  append_tsv(t.str(), result(100, "first"), "/r/1");
  std::string text = t.text();
  std::ofstream(t.p, std::ios::app) << "2026-12-01T00:01:00Z\tcut off in the mid";  // no line end
  append_tsv(t.str(), result(110, "third"), "/r/3");
  std::vector<std::string> w;
  auto rows = load_ledger(t.str(), &w);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].label, "third");
  EXPECT_EQ(rows[1].line, 4u);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find(t.str() + ":3: 2 fields, the header has 35"), std::string::npos) << w[0];
  // What was there is still there, byte for byte.
  EXPECT_EQ(t.text().rfind(text, 0), 0u);
}

TEST(LedgerAppend, ANewerLedgerKeepsItsUnknownColumnsWithEmptyFields) {
  temp_tsv t("newer");
  append_tsv(t.str(), result(1, "x"), "/r/x");
  std::string header = t.lines()[0];
  // A later bench-proxy added a column in the middle and one at the end.
  std::string newer = header;
  newer.insert(newer.find("\tlabel\t"), "\tfuture_mid");
  newer += "\tfuture_end";
  std::ofstream(t.p, std::ios::trunc) << newer << "\n";
  std::string row = append_tsv(t.str(), result(100, "mine", "/sweeps/a"), "/r/1");
  auto lines = t.lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], newer);
  EXPECT_EQ(fields(lines[1]), fields(newer));
  std::vector<std::string> w;
  auto rows = load_ledger(t.str(), &w);
  EXPECT_TRUE(w.empty());
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].label, "mine");  // by name, not by position
  EXPECT_EQ(rows[0].group, "/sweeps/a");
  EXPECT_EQ(*rows[0].value, 100);
  EXPECT_EQ(row.substr(row.rfind('\t')), "\t");  // future_end: empty
}

TEST(LedgerAppend, OlderLedgersKeepTheirColumns) {
  temp_tsv t("v2");
  std::ofstream(t.p) << kV2Header << "\n";
  json failed = {{"failed", true}, {"valid", false}, {"label", "broken"}, {"invalid_reason", "engine exited 1"}};
  append_tsv(t.str(), result(100, "a", "/sweeps/s"), "/r/a");
  append_tsv(t.str(), failed, "");
  auto lines = t.lines();
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(fields(lines[1]), 16u);
  EXPECT_EQ(fields(lines[2]), 16u);
  auto rows = load_ledger(t.str());
  EXPECT_EQ(rows[1].status, "failed");
  EXPECT_EQ(rows[1].reasons, "engine exited 1");
  EXPECT_EQ(rows[0].group, "");  // a v2 ledger has no group column
  // A v1 ledger (14 columns) knew only valid and invalid.
  temp_tsv v1("v1");
  std::string h1 = std::string(kV2Header).substr(0, std::string(kV2Header).find("\tconfig"));
  std::ofstream(v1.p) << h1 << "\n";
  std::string row = append_tsv(v1.str(), failed, "");
  EXPECT_EQ(fields(row), 14u);
  EXPECT_NE(row.find("\tinvalid\t"), std::string::npos) << row;
}

TEST(LedgerAppend, AFileThatIsNotALedgerIsRefusedAndLeftAlone) {
  temp_tsv t("notledger");
  std::ofstream(t.p) << "prompt,answer\nhello,world\n";
  std::string before = t.text();
  try {
    append_tsv(t.str(), result(1, "x"), "/r");
    FAIL() << "appended to a file that is not a ledger";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(t.str() + ":1: not a bench-proxy results TSV"), std::string::npos) << e.what();
  }
  EXPECT_EQ(t.text(), before);
}

// ---- Reading keeps what it can ----

TEST(LedgerLoad, ABadRowIsAWarningByLineNumberAndTheRestIsKept) {
  temp_tsv t("badrow");
  append_tsv(t.str(), result(100, "a"), "/r/a");
  std::ofstream(t.p, std::ios::app) << "t\tonly\tthree\n";
  append_tsv(t.str(), result(110, "b"), "/r/b");
  // The line an older bench-proxy glued: two rows on one line.
  std::string glued = t.lines()[1] + t.lines()[1];
  std::ofstream(t.p, std::ios::app) << glued << "\n";
  append_tsv(t.str(), result(120, "c"), "/r/c");
  std::vector<std::string> w;
  auto rows = load_ledger(t.str(), &w);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].label, "a");
  EXPECT_EQ(rows[1].label, "b");
  EXPECT_EQ(rows[1].line, 4u);
  EXPECT_EQ(rows[2].label, "c");
  ASSERT_EQ(w.size(), 2u);
  EXPECT_NE(w[0].find(":3: 3 fields, the header has 35"), std::string::npos) << w[0];
  EXPECT_NE(w[1].find(":5: 69 fields, the header has 35"), std::string::npos) << w[1];
  // Without a list the warnings go to stderr.
  testing::internal::CaptureStderr();
  EXPECT_EQ(load_ledger(t.str()).size(), 3u);
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("warning: " + t.str() + ":3:"), std::string::npos) << err;
}

// ---- Verdicts only between interleaved rows ----

TEST(LedgerCampaign, RowsMeasuredApartGetNoKeepOrDiscard) {
  temp_tsv t("apart");
  append_tsv(t.str(), result(100, "base"), "/r/1");
  append_tsv(t.str(), result(130, "alone, faster"), "/r/2");  // another time: drift or the change?
  append_tsv(t.str(), result(70, "alone, slower"), "/r/3");
  auto c = campaign(load_ledger(t.str()), 0.01);
  EXPECT_EQ(verdicts(c), (std::vector<std::string>{"keep", kNotInterleaved, kNotInterleaved}));
  EXPECT_EQ(*c[1].best_line, 2u);  // the best stays the baseline
  EXPECT_EQ(*c[2].best_line, 2u);
  EXPECT_NEAR(c[1].change, 0.30, 1e-9);  // still shown, as information
  EXPECT_EQ(*c[2].best_measured_line, 3u);  // the highest value measured, not a verdict
  std::string text = render_campaign(c, 0.01);
  EXPECT_NE(text.find("highest measured value: line 3 (130.00): a single measurement, not the running best (the best is kept only on a verdict beyond noise)"),
            std::string::npos)
      << text;
  auto j = to_json(c);
  EXPECT_EQ(j[1]["verdict"], kNotInterleaved);
  EXPECT_EQ(j[1]["best_measured_line"], 3);
}

TEST(LedgerCampaign, ASweepThatReMeasuresTheBestJudgesItsRowsAgainstThatMeasurement) {
  temp_tsv t("sweep");
  append_tsv(t.str(), result(100, "base", "", "base.yaml"), "/r/1");
  // One sweep: the best's config again and two candidates, interleaved.
  append_tsv(t.str(), result(90, "base", "/sweeps/1", "base.yaml"), "/s1/1");  // the machine drifted: -10%
  append_tsv(t.str(), result(99, "bigger batch", "/sweeps/1"), "/s1/2");       // +10% against 90: keep
  append_tsv(t.str(), result(80, "smaller batch", "/sweeps/1"), "/s1/3");      // against the new best: discard
  auto c = campaign(load_ledger(t.str()), 0.01);
  EXPECT_EQ(verdicts(c), (std::vector<std::string>{"keep", kRemeasured, "keep", "discard"}));
  EXPECT_EQ(*c[1].best_line, 3u);  // the best's current measurement
  EXPECT_EQ(*c[2].against_line, 3u);
  EXPECT_NEAR(c[2].change, 0.10, 1e-9);
  EXPECT_NE(render_campaign(c, 0.01).find("+10.0%  keep"), std::string::npos) << render_campaign(c, 0.01);
  EXPECT_EQ(*c[3].against_line, 4u);
  EXPECT_EQ(*c[3].best_line, 4u);
}

TEST(LedgerCampaign, ASweepMayLogItsCandidatesBeforeItsBaseline) {
  temp_tsv t("order");
  append_tsv(t.str(), result(100, "base", "", "base.yaml"), "/r/1");
  append_tsv(t.str(), result(110, "cand", "/sweeps/2"), "/s2/1");
  append_tsv(t.str(), result(100, "base", "/sweeps/2", "base.yaml"), "/s2/2");
  auto c = campaign(load_ledger(t.str()), 0.01);
  EXPECT_EQ(c[1].verdict, "keep");
  EXPECT_EQ(*c[1].against_line, 4u);
  EXPECT_EQ(c[2].verdict, "discard");  // the old best, now judged against the kept row of its sweep
}

TEST(LedgerCampaign, AConfigThatLostInterleavedDoesNotBecomeTheBestLaterAlone) {
  // The case: lost by 25.9% in an interleaved sweep, then measured alone an hour later
  // on a quieter machine, higher than the best's old number.
  temp_tsv t("lost");
  append_tsv(t.str(), result(100, "base", "/sweeps/a", "base.yaml"), "/a/1");
  append_tsv(t.str(), result(74.1, "cand", "/sweeps/a", "cand.yaml"), "/a/2");
  append_tsv(t.str(), result(104, "cand", "", "cand.yaml"), "/later/1");
  auto c = campaign(load_ledger(t.str()), 0.01);
  EXPECT_EQ(verdicts(c), (std::vector<std::string>{"keep", "discard", kNotInterleaved}));
  EXPECT_EQ(*c[2].best_line, 2u);
}

TEST(LedgerCampaign, OldLedgersWithoutGroupsGiveOnlyTheirBaseline) {
  temp_tsv t("oldv2");
  std::ofstream(t.p) << kV2Header << "\n"
                     << "t1\td\tmock\ts\tm\t5\t0\t100.000\t1\t1\t1\t1\tvalid\t/a\tc.yaml\t\n"
                     << "t2\td\tmock\ts\tm\t5\t0\t120.000\t1\t1\t1\t1\tvalid\t/b\td.yaml\t\n";
  auto c = campaign(load_ledger(t.str()), 0.01);
  EXPECT_EQ(verdicts(c), (std::vector<std::string>{"keep", kNotInterleaved}));
}

// ---- A try's row ----

TEST(LedgerTry, ATryRowStoresItsDecisionInItsOwnColumns) {
  temp_tsv t("try");
  std::string row = append_tsv(t.str(), try_doc("faster", 1.034, 1.021, 1.046, "bigger batch", 103.4), "/tries/1/try.json");
  auto lines = t.lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(fields(row), fields(lines[0]));
  for (const char* c : {"\tgroup\t", "\tdecision\t", "\tratio\t", "\tratio_ci_low\t", "\tratio_ci_high\t", "\trounds\t",
                        "\tengine_seconds\t", "\tprocedure\t"})
    EXPECT_NE(lines[0].find(c), std::string::npos) << c;
  auto rows = load_ledger(t.str());
  ASSERT_EQ(rows.size(), 1u);
  const auto& r = rows[0];
  EXPECT_EQ(r.decision, "faster");
  EXPECT_DOUBLE_EQ(*r.ratio, 1.034);
  EXPECT_DOUBLE_EQ(*r.ratio_low, 1.021);
  EXPECT_DOUBLE_EQ(*r.ratio_high, 1.046);
  EXPECT_EQ(*r.rounds, 4);
  EXPECT_DOUBLE_EQ(*r.engine_seconds, 312.5);
  EXPECT_EQ(r.procedure, "group-sequential t on round-paired log ratios, 10 looks");
  EXPECT_EQ(r.baseline, "configs/base.yaml");
  EXPECT_EQ(r.group, "/tries/1");
  EXPECT_EQ(r.metric, "output_tps");
  EXPECT_EQ(r.result, "/tries/1/try.json");
  EXPECT_EQ(r.trials, 1);  // no sides: the column is empty
}

TEST(LedgerTry, ATryRowNamesItsCandidatesDescriptionEngineAndValidLifecycles) {
  temp_tsv t("try-fields");
  json doc = try_doc("slower", 0.9, 0.85, 0.95, "", 90);
  doc["description"] = "tp 2, chunked prefill";
  doc["engine"] = "vllm";
  doc["sides"] = {{"baseline", {{"lifecycles", json::array({{{"valid", true}}, {{"valid", true}}})}}},
                  {"candidate", {{"lifecycles", json::array({{{"valid", true}}, {{"valid", false}}, {{"valid", true}},
                                                             {{"valid", true}}})}}}};
  append_tsv(t.str(), doc, "/tries/1/try.json");
  auto rows = load_ledger(t.str());
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].description, "tp 2, chunked prefill");
  EXPECT_EQ(rows[0].trials, 3);  // the candidate's valid lifecycles, whose headline the row carries
  EXPECT_NE(t.lines()[1].find("\tvllm\t"), std::string::npos) << t.lines()[1];
}

TEST(LedgerTry, ATryIsACampaignStepJudgedByItsOwnDecision) {
  temp_tsv t("trycampaign");
  append_tsv(t.str(), result(100, "base", "", "configs/base.yaml"), "/r/1");
  append_tsv(t.str(), try_doc("faster", 1.034, 1.021, 1.046, "bigger batch", 103.4, "/tries/1"), "/tries/1");
  append_tsv(t.str(), try_doc("slower", 0.95, 0.93, 0.97, "smaller batch", 98.0, "/tries/2"), "/tries/2");
  append_tsv(t.str(), try_doc("no change", 1.001, 0.995, 1.006, "tweak", 103.5, "/tries/3"), "/tries/3");
  append_tsv(t.str(), try_doc("inconclusive", 1.02, 0.98, 1.06, "noisy", 105.0, "/tries/4"), "/tries/4");
  json nc = try_doc("not comparable", 0, 0, 0, "other workload", 0, "/tries/5");
  nc["valid"] = false;
  nc["decision"].erase("ratio");
  nc["decision"].erase("low");
  nc["decision"].erase("high");
  nc["summary"] = json::object();
  append_tsv(t.str(), nc, "/tries/5");
  json bad = try_doc("faster", 1.1, 1.05, 1.15, "engine died", 110, "/tries/6");
  bad["valid"] = false;
  bad["invalid_reason"] = "the engine exited during the measurement";
  append_tsv(t.str(), bad, "/tries/6");
  auto c = campaign(load_ledger(t.str()), 0.01);
  EXPECT_EQ(verdicts(c), (std::vector<std::string>{"keep", "keep", "discard", "within noise", "inconclusive",
                                                   "not comparable", "invalid"}));
  EXPECT_EQ(*c[1].best_line, 3u);  // a kept try is the new best
  for (std::size_t i = 2; i < c.size(); ++i) EXPECT_EQ(*c[i].best_line, 3u) << i;
  EXPECT_NEAR(c[1].change, 0.034, 1e-9);
  EXPECT_NEAR(*c[1].change_low, 0.021, 1e-9);
  EXPECT_NEAR(*c[1].change_high, 0.046, 1e-9);
  std::string text = render_campaign(c, 0.01);
  EXPECT_NE(text.find("try: faster +3.4% [+2.1%, +4.6%] after 4 rounds, 312 s of engine time, against configs/base.yaml"),
            std::string::npos)
      << text;
  auto j = to_json(c);
  EXPECT_EQ(j[1]["try"]["decision"], "faster");
  EXPECT_EQ(j[1]["try"]["rounds"], 4);
  EXPECT_EQ(j[1]["try"]["procedure"], "group-sequential t on round-paired log ratios, 10 looks");
  EXPECT_EQ(j[0]["try"], nullptr);
  // The first try's baseline was the best's config; the second's (configs/base.yaml) no longer was.
  EXPECT_EQ(j[1]["try"]["baseline_is_best"], true);
  EXPECT_EQ(j[2]["try"]["baseline_is_best"], false);
  EXPECT_NE(text.find("against configs/base.yaml (not the running best's config)"), std::string::npos) << text;
  // A row of a later sweep that re-measures the try's candidate is judged against it only when
  // interleaved: alone, it is not.
  append_tsv(t.str(), result(120, "alone"), "/r/8");
  auto c2 = campaign(load_ledger(t.str()), 0.01);
  EXPECT_EQ(c2.back().verdict, kNotInterleaved);
}

TEST(LedgerTry, AnOlderLedgerCannotHoldADecisionAndSaysSo) {
  temp_tsv t("tryv2");
  std::ofstream(t.p) << kV2Header << "\n";
  testing::internal::CaptureStderr();
  std::string row = append_tsv(t.str(), try_doc("faster", 1.034, 1.021, 1.046, "x", 103.4), "/tries/1");
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(fields(row), 16u);
  EXPECT_NE(err.find(t.str() + " predates the columns group, decision"), std::string::npos) << err;
}

TEST(LedgerAppend, APreflightCanAskWhetherARowCouldBeAppended) {
  temp_tsv t("preflight");
  EXPECT_EQ(ledger_problem(t.str()), "");  // missing: the first row creates it
  std::ofstream(t.p) << "";
  EXPECT_EQ(ledger_problem(t.str()), "");
  append_tsv(t.str(), result(1, "x"), "/r");
  EXPECT_EQ(ledger_problem(t.str()), "");
  std::ofstream(t.p, std::ios::trunc) << "prompt,answer\n";
  EXPECT_EQ(ledger_problem(t.str()), t.str() + ":1: not a bench-proxy results TSV (no time and validity columns)");
  EXPECT_NE(ledger_problem(fs::temp_directory_path().string()).find("must be a regular file"), std::string::npos);
  EXPECT_THROW(append_tsv(fs::temp_directory_path().string(), result(1, "x"), "/r"), std::runtime_error);
}

TEST(LedgerCampaign, TheBestsConfigIsRecognisedHoweverItsPathIsSpelled) {
  temp_tsv t("spelling");
  append_tsv(t.str(), result(100, "base", "", "configs/base.yaml"), "/r/1");
  append_tsv(t.str(), result(100, "base", "/sweeps/3", "./configs//base.yaml"), "/s3/1");
  append_tsv(t.str(), result(120, "cand", "/sweeps/3"), "/s3/2");
  auto c = campaign(load_ledger(t.str()), 0.01);
  EXPECT_EQ(verdicts(c), (std::vector<std::string>{"keep", kRemeasured, "keep"}));
}

TEST(LedgerAppend, WhateverBytesFollowTheHeaderTheAppendedRowReadsBackAsWritten) {
  // Seeded random tails: torn rows, glued rows, stray tabs, CRs, backslashes, NULs, no line end.
  temp_tsv t("random");
  append_tsv(t.str(), result(1, "seed"), "/r");
  const std::string header = t.lines()[0];
  std::uint64_t s = 0x9e3779b97f4a7c15ULL;
  auto next = [&] {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  };
  const char alphabet[] = {'\t', '\n', '\r', '\\', 'n', 't', 'a', '0', ' ', '\0', '\xff', '.'};
  for (int i = 0; i < 500; ++i) {
    std::string tail;
    for (std::uint64_t n = next() % 200; n > 0; --n) tail += alphabet[next() % sizeof alphabet];
    {
      std::ofstream f(t.p, std::ios::trunc | std::ios::binary);
      f << header << "\n" << tail;
    }
    std::string label = "row " + std::to_string(i) + (i % 3 == 0 ? "\twith\\tab\n" : "");
    json r = result(100 + i, label);
    append_tsv(t.str(), r, "/r/" + std::to_string(i));
    std::vector<std::string> w;
    std::vector<ledger_row> rows;
    ASSERT_NO_THROW(rows = load_ledger(t.str(), &w)) << i;
    ASSERT_FALSE(rows.empty()) << i;
    EXPECT_EQ(rows.back().label, label) << i;
    EXPECT_EQ(*rows.back().value, 100 + i) << i;
    EXPECT_EQ(t.text().rfind(header + "\n" + tail, 0), 0u) << i;  // what was there is untouched
  }
}

TEST(LedgerLoad, BytesThatAreNotUtf8AreKeptAndShownAsReplacementCharactersInJson) {
  // Found by tests/fuzz/ledger_fuzz.cpp: `results --json` threw type_error.316 on a Latin-1 label.
  temp_tsv t("latin1");
  json r = result(100, "x");
  append_tsv(t.str(), r, "/r/caf\xe9");
  std::string text = t.text();
  text.replace(text.find("\tx\t"), 3, "\tna\xefve \xff\t");
  std::ofstream(t.p, std::ios::trunc | std::ios::binary) << text;
  auto rows = load_ledger(t.str());
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].label, "na\xefve \xff");  // the bytes as they are
  EXPECT_EQ(rows[0].result, "/r/caf\xe9");
  std::string dumped;
  ASSERT_NO_THROW(dumped = to_json(campaign(rows, 0.01)).dump());
  EXPECT_NE(dumped.find("na\xef\xbf\xbdve \xef\xbf\xbd"), std::string::npos) << dumped;
  EXPECT_NE(dumped.find("/r/caf\xef\xbf\xbd"), std::string::npos) << dumped;
}

// A try judged by another headline keeps its own decision but does not become the running best
// of this one (`try --against best` then finds the best of its own headline).
TEST(LedgerTry, AKeptTryOfAnotherHeadlineDoesNotReplaceTheBest) {
  temp_tsv t("tryheadline");
  append_tsv(t.str(), result(100, "base", "", "configs/base.yaml"), "/r/1");
  json other = try_doc("faster", 0.9, 0.88, 0.92, "latency try", 9.0, "/tries/1");
  other["summary"]["headline"]["metric"] = "itl_p50";
  other["decision"]["metric"] = "itl_p50";
  append_tsv(t.str(), other, "/tries/1");
  auto c = campaign(load_ledger(t.str()), 0.01);
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[1].verdict, "keep");   // its own decision
  EXPECT_EQ(*c[1].best_line, 2u);    // the output_tps best is still the first row
}
