#include "net/loadgen/workloads.hpp"
#include "net/loadgen/load_profile.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "base/sha256.hpp"

using namespace bp::bench;
using namespace bp::bench::workloads;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string write_tmp(const std::string& name, const std::string& text) {
  auto p = fs::temp_directory_path() / ("bp_wlg_" + std::to_string(::getpid()) + "_" + name);
  std::ofstream(p) << text;
  return p.string();
}

std::vector<std::string> bodies(const std::vector<query>& qs) {
  std::vector<std::string> out;
  for (const auto& q : qs) out.push_back(q.request.dump());
  return out;
}

std::string content(const query& q) { return q.request["messages"].back()["content"].get<std::string>(); }

std::vector<std::string> words(const std::string& s) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos <= s.size()) {
    auto sp = s.find(' ', pos);
    out.push_back(s.substr(pos, sp == std::string::npos ? std::string::npos : sp - pos));
    pos = sp == std::string::npos ? s.size() + 1 : sp + 1;
  }
  return out;
}

/// A tokenizer unlike the estimate: "house" and "water" are two tokens each, everything else one.
struct fake_counter {
  int calls = 0;
  token_counter counter() {
    token_counter t;
    t.source = "fake /tokenize";
    t.count = [this](const std::string& text) -> std::optional<int> {
      ++calls;
      int n = 0;
      for (const auto& w : words(text)) n += (w == "house" || w == "water") ? 2 : 1;
      return n;
    };
    return t;
  }
};

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(WorkloadSpec, ParsesEveryKeyAndDefaultsSpreadToUniform) {
  auto s = parse_synthetic("input=256, output=32,spread=0.25");
  EXPECT_EQ(s.input, 256);
  EXPECT_EQ(s.output, 32);
  EXPECT_DOUBLE_EQ(s.spread, 0.25);
  EXPECT_EQ(s.dist, "uniform");
  EXPECT_TRUE(s.ignore_eos);
  s = parse_synthetic("input=8,output=4,spread=0.5,dist=lognormal,ignore_eos=false");
  EXPECT_EQ(s.dist, "lognormal");
  EXPECT_FALSE(s.ignore_eos);
  EXPECT_EQ(to_string(s), "input=8,output=4,spread=0.500000,dist=lognormal,ignore_eos=false");
  EXPECT_EQ(parse_synthetic("input=1").output, 128);
}

TEST(WorkloadSpec, BadSpecsNameTheOptionAndTheKey) {
  auto e = error_of([] { parse_synthetic("input=512,outptu=128"); });
  EXPECT_NE(e.find("--synthetic"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown key 'outptu'"), std::string::npos) << e;
  e = error_of([] { parse_synthetic("input=abc"); });
  EXPECT_NE(e.find("'input' must be a whole number"), std::string::npos) << e;
  EXPECT_NE(e.find("'abc'"), std::string::npos) << e;
  e = error_of([] { parse_synthetic("input=0"); });
  EXPECT_NE(e.find("'input'"), std::string::npos) << e;
  e = error_of([] { parse_synthetic("input=5,input=6"); });
  EXPECT_NE(e.find("'input' is given twice"), std::string::npos) << e;
  e = error_of([] { parse_synthetic("input=5,,output=3"); });
  EXPECT_NE(e.find("is not key=value"), std::string::npos) << e;
  e = error_of([] { parse_synthetic("dist=zipf"); });
  EXPECT_NE(e.find("'dist' must be"), std::string::npos) << e;
  e = error_of([] { parse_synthetic("spread=0.2,dist=fixed"); });
  EXPECT_NE(e.find("dist=fixed"), std::string::npos) << e;
  e = error_of([] { parse_synthetic("spread=-1"); });
  EXPECT_NE(e.find("'spread'"), std::string::npos) << e;
  e = error_of([] { parse_synthetic(""); });
  EXPECT_NE(e.find("--synthetic"), std::string::npos) << e;
  e = error_of([] { parse_sessions("turns=x"); });
  EXPECT_NE(e.find("--sessions"), std::string::npos) << e;
  EXPECT_NE(e.find("'turns'"), std::string::npos) << e;
  e = error_of([] { parse_synthetic("input=5", "--prefix-suffix"); });
  EXPECT_EQ(e, "(no error)");
}

TEST(WorkloadSynthetic, SameSeedGivesIdenticalBytesAndFingerprint) {
  auto spec = parse_synthetic("input=64,output=16,spread=0.3,dist=normal");
  auto a = synthetic(spec, 200, 42), b = synthetic(spec, 200, 42), c = synthetic(spec, 200, 43);
  EXPECT_EQ(bodies(a), bodies(b));
  EXPECT_NE(bodies(a), bodies(c));
  auto sa = bp::bench::arrival_schedule(10, 0.25, 200, 0, 42), sb = bp::bench::arrival_schedule(10, 0.25, 200, 0, 42);
  EXPECT_EQ(sa, sb);
  auto fa = fingerprint(bodies(a), sa), fb = fingerprint(bodies(b), sb), fc = fingerprint(bodies(c), sa);
  EXPECT_EQ(fa.sha256, fb.sha256);
  EXPECT_NE(fa.sha256, fc.sha256);
  EXPECT_EQ(fa.schedule_sha256, fc.schedule_sha256);
  EXPECT_NE(fa.requests_sha256, fc.requests_sha256);
  EXPECT_EQ(fa.sha256.size(), 64u);
  // A prefix of the workload is the same requests: index-keyed streams, not one long one.
  auto d = synthetic(spec, 10, 42);
  auto ba = bodies(a);
  EXPECT_EQ(bodies(d), std::vector<std::string>(ba.begin(), ba.begin() + 10));
}

TEST(WorkloadSynthetic, FixedLengthsAreExactWordCountsAndAskForIgnoreEos) {
  auto qs = synthetic(parse_synthetic("input=100,output=7"), 50, 1);
  for (const auto& q : qs) {
    EXPECT_EQ(words(content(q)).size(), 100u);
    EXPECT_EQ(q.request["max_tokens"], 7);
    EXPECT_EQ(q.request["ignore_eos"], true);
    EXPECT_EQ(q.request["messages"].size(), 1u);
    EXPECT_EQ(q.request["messages"][0]["role"], "user");
    EXPECT_EQ(q.metadata["input_tokens"], 100);
    EXPECT_EQ(q.metadata["output_tokens"], 7);
    EXPECT_EQ(q.metadata["tokens_counted_by"], "estimated");
    EXPECT_FALSE(q.request.contains("model"));
    EXPECT_FALSE(q.request.contains("stream"));
    for (const auto& w : words(content(q)))
      EXPECT_NE(std::find(vocabulary().begin(), vocabulary().end(), w), vocabulary().end()) << w;
  }
  auto no_eos = synthetic(parse_synthetic("input=5,output=3,ignore_eos=false"), 1, 1);
  EXPECT_FALSE(no_eos[0].request.contains("ignore_eos"));
}

TEST(WorkloadSynthetic, LengthsStayWithinTheUniformSpreadAndVary) {
  auto qs = synthetic(parse_synthetic("input=200,output=50,spread=0.2"), 500, 7);
  std::set<int> seen_in;
  for (const auto& q : qs) {
    int in = q.metadata["input_tokens"], out = q.metadata["output_tokens"];
    EXPECT_GE(in, 160);
    EXPECT_LE(in, 240);
    EXPECT_GE(out, 40);
    EXPECT_LE(out, 60);
    EXPECT_EQ(static_cast<int>(words(content(q)).size()), in);
    EXPECT_EQ(q.request["max_tokens"], out);
    seen_in.insert(in);
  }
  EXPECT_GT(seen_in.size(), 40u);
  // normal and lognormal: at least one token, centred near the input.
  for (const char* d : {"normal", "lognormal"}) {
    auto n = synthetic(parse_synthetic(std::string("input=100,output=10,spread=0.5,dist=") + d), 2000, 3);
    double sum = 0;
    for (const auto& q : n) {
      EXPECT_GE(q.metadata["input_tokens"].get<int>(), 1);
      sum += q.metadata["input_tokens"].get<int>();
    }
    EXPECT_GT(sum / 2000, 80) << d;
    EXPECT_LT(sum / 2000, 130) << d;
  }
}

TEST(WorkloadSynthetic, NoTwoRequestsShareTheirFirstWord) {
  auto qs = synthetic(parse_synthetic("input=32,output=4"), 256, 9);
  std::set<std::string> first_four, first_word;
  for (const auto& q : qs) {
    auto w = words(content(q));
    first_four.insert(w[0] + " " + w[1] + " " + w[2] + " " + w[3]);
    first_word.insert(w[0]);
  }
  EXPECT_EQ(first_four.size(), 256u);
  // The id words are a seeded bijection of the index: 256 requests are spread, not counted up.
  EXPECT_GT(first_word.size(), 100u);
}

TEST(WorkloadSynthetic, ACounterMakesEachPromptExactlyTheDrawnLength) {
  fake_counter fc;
  auto tok = fc.counter();
  auto qs = synthetic(parse_synthetic("input=300,output=8,spread=0.1"), 40, 5, &tok);
  for (const auto& q : qs) {
    EXPECT_EQ(*tok.count(content(q)), q.metadata["input_tokens"].get<int>());
    EXPECT_EQ(q.metadata["tokens_counted_by"], "fake /tokenize");
  }
  // One count per prompt plus a few fix-up rounds, not one per word.
  EXPECT_LT(fc.calls, 40 * 4 + 40);
  // With the same tokenizer the bytes are the same.
  fake_counter fc2;
  auto tok2 = fc2.counter();
  EXPECT_EQ(bodies(qs), bodies(synthetic(parse_synthetic("input=300,output=8,spread=0.1"), 40, 5, &tok2)));
}

TEST(WorkloadSynthetic, ACounterThatGivesNoCountIsAnError) {
  token_counter dead{[](const std::string&) -> std::optional<int> { return std::nullopt; }, "dead /tokenize"};
  auto e = error_of([&] { synthetic(parse_synthetic("input=10,output=2"), 1, 1, &dead); });
  EXPECT_NE(e.find("dead /tokenize"), std::string::npos) << e;
  EXPECT_NE(e.find("synthetic request 0"), std::string::npos) << e;
}

TEST(WorkloadPrefix, GroupsShareExactlyTheirPrefix) {
  const int G = 3, P = 50;
  auto qs = prefix_workload(G, P, parse_synthetic("input=20,output=5"), 12, 11);
  ASSERT_EQ(qs.size(), 12u);
  std::vector<std::vector<std::string>> pre(G);
  for (std::size_t i = 0; i < qs.size(); ++i) {
    auto w = words(content(qs[i]));
    ASSERT_EQ(w.size(), static_cast<std::size_t>(P + 20));
    int g = qs[i].metadata["prefix_group"];
    EXPECT_EQ(g, static_cast<int>(i % G));
    EXPECT_EQ(qs[i].metadata["prefix_tokens"], P);
    EXPECT_EQ(qs[i].metadata["input_tokens"], P + 20);
    std::vector<std::string> p(w.begin(), w.begin() + P);
    if (pre[g].empty())
      pre[g] = p;
    else
      EXPECT_EQ(pre[g], p);
  }
  // Within a group the requests part right after the prefix; groups part at their first word.
  for (std::size_t i = 0; i < qs.size(); ++i)
    for (std::size_t j = i + 1; j < qs.size(); ++j) {
      auto a = words(content(qs[i])), b = words(content(qs[j]));
      std::size_t common = 0;
      while (common < a.size() && common < b.size() && a[common] == b[common]) ++common;
      if (qs[i].metadata["prefix_group"] == qs[j].metadata["prefix_group"])
        EXPECT_LT(common, static_cast<std::size_t>(P + 4)) << i << " " << j;
      else
        EXPECT_EQ(common, 0u) << i << " " << j;
    }
  EXPECT_EQ(bodies(qs), bodies(prefix_workload(G, P, parse_synthetic("input=20,output=5"), 12, 11)));
  auto e = error_of([] { prefix_workload(0, 5, synthetic_spec{}, 1, 1); });
  EXPECT_NE(e.find("--prefix-groups"), std::string::npos) << e;
  e = error_of([] { prefix_workload(2, 0, synthetic_spec{}, 1, 1); });
  EXPECT_NE(e.find("--prefix-len"), std::string::npos) << e;
}

TEST(WorkloadPrefix, ACounterSettlesPrefixAndWholePrompt) {
  fake_counter fc;
  auto tok = fc.counter();
  auto qs = prefix_workload(2, 64, parse_synthetic("input=30,output=5"), 6, 2, &tok);
  std::string p0;
  for (const auto& q : qs) EXPECT_EQ(*tok.count(content(q)), 94);
}

TEST(WorkloadSessions, HistoryCarriesEveryEarlierTurnAndItsAnswer) {
  auto spec = parse_sessions("turns=3,think_ms=500,think_dist=fixed,input=10,output=4");
  EXPECT_EQ(spec.turns, 3);
  EXPECT_EQ(spec.turn.input, 10);
  auto ss = synthetic_sessions(spec, 2, 4);
  ASSERT_EQ(ss.size(), 2u);
  const auto& s = ss[0];
  ASSERT_EQ(s.turns.size(), 3u);
  EXPECT_EQ(s.think_ms, (std::vector<double>{500, 500}));
  auto b0 = with_history(s, 0, {});
  EXPECT_EQ(b0, s.turns[0].request);
  auto b2 = with_history(s, 2, {"first answer", "second answer"});
  ASSERT_EQ(b2["messages"].size(), 5u);
  EXPECT_EQ(b2["messages"][0], s.turns[0].request["messages"][0]);
  EXPECT_EQ(b2["messages"][1], (json{{"role", "assistant"}, {"content", "first answer"}}));
  EXPECT_EQ(b2["messages"][2], s.turns[1].request["messages"][0]);
  EXPECT_EQ(b2["messages"][3], (json{{"role", "assistant"}, {"content", "second answer"}}));
  EXPECT_EQ(b2["messages"][4], s.turns[2].request["messages"][0]);
  EXPECT_EQ(b2["max_tokens"], s.turns[2].request["max_tokens"]);
  auto e = error_of([&] { with_history(s, 2, {"only one"}); });
  EXPECT_NE(e.find("needs 2 answers"), std::string::npos) << e;
  e = error_of([&] { with_history(s, 3, {"a", "b", "c"}); });
  EXPECT_NE(e.find("has 3 turns"), std::string::npos) << e;
  // Exponential think times: seeded, positive, and the sessions' fingerprint is stable.
  auto ex = synthetic_sessions(parse_sessions("turns=4,think_ms=1000"), 3, 8);
  for (const auto& x : ex)
    for (double t : x.think_ms) EXPECT_GT(t, 0);
  EXPECT_EQ(fingerprint(ex).sha256, fingerprint(synthetic_sessions(parse_sessions("turns=4,think_ms=1000"), 3, 8)).sha256);
  EXPECT_NE(fingerprint(ex).sha256, fingerprint(synthetic_sessions(parse_sessions("turns=4,think_ms=1000"), 3, 9)).sha256);
}

TEST(WorkloadShareGpt, FirstHumanTurnWithSystemAndAnswerLength) {
  auto p = write_tmp("sg.json", R"([
  {"id": "a1", "conversations": [
     {"from": "system", "value": "Be brief."},
     {"from": "human", "value": "What is a bank?"},
     {"from": "gpt", "value": "A place that keeps money safe for people, forty bytes."},
     {"from": "human", "value": "And a loan?"},
     {"from": "gpt", "value": "Borrowed money."}]},
  {"id": "only-gpt", "conversations": [{"from": "gpt", "value": "hello"}]},
  {"id": "b2", "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hey"}]}
])");
  std::string sha;
  std::size_t skipped = 0;
  auto qs = load_sharegpt(p, &sha, nullptr, &skipped);
  ASSERT_EQ(qs.size(), 2u);
  EXPECT_EQ(skipped, 1u);
  EXPECT_EQ(sha.size(), 64u);
  EXPECT_EQ(qs[0].request["messages"],
            (json::array({{{"role", "system"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", "What is a bank?"}}})));
  EXPECT_EQ(qs[0].request["max_tokens"], estimate_tokens("A place that keeps money safe for people, forty bytes."));
  EXPECT_EQ(qs[0].metadata["id"], "a1");
  EXPECT_EQ(qs[0].metadata["tokens_counted_by"], "estimated");
  EXPECT_EQ(qs[1].request["max_tokens"], 1);
  EXPECT_EQ(qs[1].metadata["index"], 2);
  // As sessions: every human turn with its answer.
  auto ss = load_sharegpt_sessions(p, 250);
  ASSERT_EQ(ss.size(), 2u);
  ASSERT_EQ(ss[0].turns.size(), 2u);
  EXPECT_EQ(ss[0].id, "a1");
  EXPECT_EQ(ss[0].think_ms, std::vector<double>{250});
  EXPECT_EQ(ss[0].turns[1].request["messages"], (json::array({{{"role", "user"}, {"content", "And a loan?"}}})));
  auto b = with_history(ss[0], 1, {"A place."});
  EXPECT_EQ(b["messages"].size(), 4u);
  EXPECT_EQ(b["messages"][0]["role"], "system");
}

TEST(WorkloadShareGpt, MalformedFilesNameFileIndexAndLine) {
  auto p = write_tmp("bad1.json", "[\n {\"id\": \"x\",\n  \"conversations\": [ {\"from\": \"human\" \"value\": 1} ]}\n]");
  auto e = error_of([&] { load_sharegpt(p); });
  EXPECT_NE(e.find(p + ":3:"), std::string::npos) << e;
  p = write_tmp("bad2.json", R"([{"id": "ok", "conversations": []}, {"id": "c7", "conversations": [{"from": "robot", "value": "x"}]}])");
  e = error_of([&] { load_sharegpt(p); });
  EXPECT_NE(e.find(p + ": conversation 1 (id \"c7\"), turn 0: 'from' is 'robot'"), std::string::npos) << e;
  p = write_tmp("bad3.json", R"({"conversations": []})");
  e = error_of([&] { load_sharegpt(p); });
  EXPECT_NE(e.find("top-level array"), std::string::npos) << e;
  p = write_tmp("bad4.json", R"([{"id": 5}])");
  e = error_of([&] { load_sharegpt(p); });
  EXPECT_NE(e.find("conversation 0 (id \"5\"): no 'conversations'"), std::string::npos) << e;
  p = write_tmp("bad5.json", R"([{"conversations": [{"from": "human", "value": ["x"]}]}])");
  e = error_of([&] { load_sharegpt(p); });
  EXPECT_NE(e.find("'value' is missing or not a string"), std::string::npos) << e;
}

TEST(WorkloadTrace, TimestampsRelativeToTheFirstAndScaled) {
  auto p = write_tmp("t.jsonl",
                     "{\"timestamp\": 1000, \"input_length\": 12, \"output_length\": 3}\n"
                     "\n"
                     "{\"timestamp\": 1500, \"input_length\": 700, \"output_length\": 2, \"hash_ids\": [7, 8]}\n"
                     "{\"timestamp\": 1500, \"input_length\": 600, \"output_length\": 2, \"hash_ids\": [7, 9], \"tenant\": \"b\"}\n"
                     "{\"timestamp\": 2500, \"prompt\": \"hello there\", \"output_length\": 4}\n");
  std::string sha;
  auto t = load_trace(p, 0.5, 3, nullptr, &sha, 512);
  ASSERT_EQ(t.queries.size(), 4u);
  EXPECT_EQ(t.arrival_ms, (std::vector<double>{0, 250, 250, 750}));
  EXPECT_EQ(t.queries[1].line, 3);
  EXPECT_EQ(words(content(t.queries[0])).size(), 12u);
  auto a = words(content(t.queries[1])), b = words(content(t.queries[2]));
  ASSERT_EQ(a.size(), 700u);
  ASSERT_EQ(b.size(), 600u);
  // Block 7 (512 tokens) is shared; then 8 and 9 differ.
  EXPECT_EQ(std::vector<std::string>(a.begin(), a.begin() + 512), std::vector<std::string>(b.begin(), b.begin() + 512));
  EXPECT_NE(std::vector<std::string>(a.begin() + 512, a.begin() + 600), std::vector<std::string>(b.begin() + 512, b.end()));
  EXPECT_EQ(t.queries[2].metadata["trace_tenant"], "b");
  EXPECT_EQ(t.queries[2].metadata["hash_ids"], json::array({7, 9}));
  EXPECT_EQ(content(t.queries[3]), "hello there");
  EXPECT_EQ(t.queries[3].request["max_tokens"], 4);
  EXPECT_EQ(t.queries[3].request["ignore_eos"], true);
  EXPECT_EQ(t.queries[0].request["ignore_eos"], true);
  EXPECT_EQ(bodies(t.queries), bodies(load_trace(p, 0.5, 3).queries));
  EXPECT_NE(bodies(t.queries), bodies(load_trace(p, 0.5, 4).queries));
}

TEST(WorkloadTrace, BadLinesNameFileAndLine) {
  auto bad = [](const std::string& name, const std::string& text) {
    auto p = write_tmp(name, text);
    return std::make_pair(p, error_of([&] { load_trace(p); }));
  };
  auto [p1, e1] = bad("b1.jsonl",
                      "{\"timestamp\": 10, \"input_length\": 5, \"output_length\": 1}\n"
                      "{\"timestamp\": 5, \"input_length\": 5, \"output_length\": 1}\n");
  EXPECT_NE(e1.find(p1 + ":2: timestamp 5 goes backwards (line 1 has 10.000)"), std::string::npos) << e1;
  auto [p2, e2] = bad("b2.jsonl", "{\"timestamp\": 1, \"input_length\": -5, \"output_length\": 1}\n");
  EXPECT_NE(e2.find(p2 + ":1: 'input_length' is negative"), std::string::npos) << e2;
  auto [p3, e3] = bad("b3.jsonl", "{\"timestamp\": 1, \"input_length\": 5, \"output_length\": 1}\n{\"timestamp\": 2, \"input_length\": 5\n");
  EXPECT_NE(e3.find(p3 + ":2:"), std::string::npos) << e3;
  auto [p4, e4] = bad("b4.jsonl", "{\"input_length\": 5, \"output_length\": 1}\n");
  EXPECT_NE(e4.find(p4 + ":1: 'timestamp' is missing"), std::string::npos) << e4;
  auto [p5, e5] = bad("b5.jsonl", "{\"timestamp\": 0, \"output_length\": 1}\n");
  EXPECT_NE(e5.find(p5 + ":1: 'input_length' is missing"), std::string::npos) << e5;
  auto [p6, e6] = bad("b6.jsonl", "{\"timestamp\": \"soon\", \"input_length\": 5, \"output_length\": 1}\n");
  EXPECT_NE(e6.find(p6 + ":1: 'timestamp' must be a number"), std::string::npos) << e6;
  auto [p7, e7] = bad("b7.jsonl", "{\"timestamp\": 0, \"input_length\": 5.5, \"output_length\": 1}\n");
  EXPECT_NE(e7.find(p7 + ":1: 'input_length' must be a whole number"), std::string::npos) << e7;
  auto [p8, e8] = bad("b8.jsonl", "{\"timestamp\": 0, \"input_length\": 5, \"output_length\": 1, \"hash_ids\": [-1]}\n");
  EXPECT_NE(e8.find(p8 + ":1: 'hash_ids'"), std::string::npos) << e8;
  auto [p9, e9] = bad("b9.jsonl", "\n\n");
  EXPECT_NE(e9.find("no trace lines"), std::string::npos) << e9;
  auto e10 = error_of([&] { load_trace(p1, 0); });
  EXPECT_NE(e10.find("--time-scale"), std::string::npos) << e10;
}

TEST(WorkloadFingerprint, EncodingIsTheDocumentedOne) {
  std::vector<std::string> b = {"{\"a\":1}", ""};
  std::vector<double> s = {0, 1.2345678, 250};
  auto f = fingerprint(b, s);
  EXPECT_EQ(f.requests_sha256, bp::sha256_hex("7\n{\"a\":1}\n0\n\n"));
  EXPECT_EQ(f.schedule_sha256, bp::sha256_hex("0\n1235\n250000\n"));
  EXPECT_EQ(f.sha256, bp::sha256_hex("bench-proxy workload fingerprint v1\nrequests 2 " + f.requests_sha256 +
                                     "\nschedule 3 " + f.schedule_sha256 + "\n"));
  // Moving bytes between bodies changes it (lengths are part of the encoding).
  EXPECT_NE(fingerprint({"ab", "c"}, {}).sha256, fingerprint({"a", "bc"}, {}).sha256);
  EXPECT_NE(fingerprint({"a"}, {}).sha256, fingerprint({"a"}, {0}).sha256);
  json r1 = {{"workload_fingerprint", f.to_json()}}, r2 = r1;
  EXPECT_EQ(fingerprint_mismatch(r1, r2), "");
  r2["workload_fingerprint"] = fingerprint(b, {0, 1, 2}).to_json();
  auto why = fingerprint_mismatch(r1, r2);
  EXPECT_NE(why.find("the arrival schedule"), std::string::npos) << why;
  EXPECT_EQ(why.find("request bodies"), std::string::npos) << why;
  EXPECT_NE(fingerprint_mismatch(r1, json::object()).find("only the first"), std::string::npos);
  EXPECT_EQ(fingerprint_mismatch(json::object(), json::object()), "");
}

TEST(WorkloadTokenizer, KindsWithAnEndpointAndTheSnapshotsPort) {
  EXPECT_EQ(tokenizer_path("llama.cpp"), "/tokenize");
  EXPECT_EQ(tokenizer_path("vllm"), "/tokenize");
  EXPECT_EQ(tokenizer_path("sglang"), "/tokenize");
  EXPECT_EQ(tokenizer_path("trt-llm"), "");
  EXPECT_EQ(tokenizer_path("mock"), "");
  std::string why;
  EXPECT_FALSE(engine_token_counter("http://127.0.0.1:1", "trt-llm", "m", &why));
  EXPECT_NE(why.find("no tokenizer endpoint"), std::string::npos) << why;
  // Nothing listens on port 1: no counter, and the reason says where it asked.
  EXPECT_FALSE(engine_token_counter("http://127.0.0.1:1", "llama.cpp", "m", &why));
  EXPECT_NE(why.find("llama.cpp POST http://127.0.0.1:1/tokenize"), std::string::npos) << why;
  EXPECT_EQ(engine_base_url(json{{"engine", {{"port", 8123}}}}), "http://127.0.0.1:8123");
  EXPECT_EQ(engine_base_url(json::object()), "");
}

TEST(WorkloadTrace, ACounterSettlesGeneratedPromptsAndLeavesGivenOnesAlone) {
  auto p = write_tmp("tc.jsonl",
                     "{\"timestamp\": 0, \"input_length\": 600, \"output_length\": 3, \"hash_ids\": [1, 2]}\n"
                     "{\"timestamp\": 3, \"input_length\": 40, \"output_length\": 3}\n"
                     "{\"timestamp\": 4, \"messages\": [{\"role\": \"user\", \"content\": \"water water\"}], \"output_length\": 3}\n");
  fake_counter fc;
  auto tok = fc.counter();
  auto t = load_trace(p, 1, 1, &tok);
  EXPECT_EQ(*tok.count(content(t.queries[0])), 600);
  EXPECT_EQ(*tok.count(content(t.queries[1])), 40);
  EXPECT_EQ(t.queries[1].metadata["tokens_counted_by"], "fake /tokenize");
  EXPECT_EQ(content(t.queries[2]), "water water");
  EXPECT_EQ(t.queries[2].metadata["tokens_counted_by"], "trace");
}

TEST(WorkloadSessions, ACounterSettlesEveryTurn) {
  fake_counter fc;
  auto tok = fc.counter();
  auto ss = synthetic_sessions(parse_sessions("turns=2,input=50,output=5,spread=0.2"), 5, 3, &tok);
  for (const auto& s : ss)
    for (const auto& q : s.turns) EXPECT_EQ(*tok.count(content(q)), q.metadata["input_tokens"].get<int>());
  // First words are unique across every turn of every session.
  std::set<std::string> firsts;
  for (const auto& s : ss)
    for (const auto& q : s.turns) {
      auto w = words(content(q));
      firsts.insert(w[0] + " " + w[1] + " " + w[2] + " " + w[3]);
    }
  EXPECT_EQ(firsts.size(), 10u);
}
