// Configs made from configs: units of difference, their application, --vary knobs. Every
// generated config must load and validate like a hand-written one.
#include "configs/variants.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "configs/engine_config.hpp"

using namespace bp::variants;
namespace fs = std::filesystem;

namespace {

const char* kGood = R"(description: good
engine: mock
cmd: /bin/true
args: [pos1, --model, m, -t, "1", --flag=a, --lone]
env:
  PATH: /usr/bin:/bin
  KEEP: "1"
  GONE: "x"
warmup: 3
)";

const char* kBad = R"(description: bad
engine: mock
cmd: /bin/true
args: [pos1, --model, m, -t, "2", --flag=b, --new, v]
env:
  PATH: /usr/bin:/bin
  KEEP: "1"
  ADDED: "y"
warmup: 3
cwd: sub
)";

std::vector<std::string> keys_of(const std::vector<unit>& u) {
  std::vector<std::string> k;
  for (const auto& x : u) k.push_back(x.key);
  return k;
}

bp::load_result load_text(const std::string& text) {
  auto dir = fs::temp_directory_path() / ("bp_variants_" + std::to_string(::getpid()));
  fs::create_directories(dir / "sub");
  auto p = dir / "c.yaml";
  std::ofstream(p) << text;
  auto env = bp::process_env();
  env["REPO_ROOT"] = dir.string();
  return bp::load_config(p.string(), env);
}

}  // namespace

TEST(Variants, DifferencesAreUnitsPairedAsMetaDiffPairsArgv) {
  auto u = diff_units(kGood, "good.yaml", kBad, "bad.yaml");
  EXPECT_EQ(keys_of(u), (std::vector<std::string>{"args.-t", "args.--flag", "args.--lone", "args.--new", "env.GONE",
                                                  "env.ADDED", "cwd"}));
  EXPECT_EQ(u[0].from, "-t 1");
  EXPECT_EQ(u[0].to, "-t 2");
  EXPECT_EQ(u[2].to, "(absent)");
  EXPECT_EQ(u[3].from, "(absent)");
  EXPECT_EQ(u[3].to, "--new v");
  // The same file against itself: nothing.
  EXPECT_TRUE(diff_units(kGood, "a", kGood, "b").empty());
}

TEST(Variants, ApplyingEveryUnitGivesBadsBehaviourAndNoneGivesGoods) {
  auto all = keys_of(diff_units(kGood, "good.yaml", kBad, "bad.yaml"));
  std::string full = apply_units(kGood, kBad, all, "/tmp");
  EXPECT_TRUE(diff_units(full, "full", kBad, "bad.yaml").size() == 1);  // cwd made absolute: /repo/sub
  auto d = diff_units(full, "full", kBad, "bad.yaml");
  EXPECT_EQ(d[0].key, "cwd");
  EXPECT_EQ(d[0].from, "/tmp/sub");
  EXPECT_TRUE(diff_units(apply_units(kGood, kBad, {}, "/tmp"), "none", kGood, "good").empty());
}

TEST(Variants, OneUnitChangesExactlyThatUnit) {
  for (const auto& k : keys_of(diff_units(kGood, "good.yaml", kBad, "bad.yaml"))) {
    std::string one = apply_units(kGood, kBad, {k}, "/tmp");
    auto d = diff_units(kGood, "good", one, "one");
    ASSERT_EQ(d.size(), 1u) << k << "\n" << one;
    EXPECT_EQ(d[0].key, k == "cwd" ? "cwd" : k);
  }
}

TEST(Variants, AGeneratedConfigResolvesItsPathsAsItsBaseDoes) {
  // The base has no cwd: it runs in its $REPO_ROOT. Its variant lives in another folder, and must
  // still run there, with $REPO_ROOT in its values meaning the same folder.
  char tmpl[] = "/tmp/bp_variant_root_XXXXXX";
  std::string root = ::mkdtemp(tmpl);
  const std::string base =
      "description: b\nengine: mock\ncmd: /bin/true\nargs: [--chat-template, tmpl.txt]\nenv:\n  DATA: $REPO_ROOT/x\n";
  for (const std::string& text : {apply_knobs(base, {{"env.KNOB", "a"}}, root),
                                  apply_units(base, base + "warmup: 3\n", {"warmup"}, root)}) {
    EXPECT_NE(text.find("repo_root: " + root), std::string::npos) << text;
    auto r = load_text(text);  // written elsewhere (load_text's own folder)
    ASSERT_TRUE(r.config.has_value()) << r.errors[0].str();
    EXPECT_EQ(r.config->repo_root, root);
    EXPECT_EQ(r.config->cwd, root);
    ASSERT_FALSE(r.config->env.empty());
    EXPECT_EQ(r.config->env[0].first, "DATA");
    EXPECT_EQ(r.config->env[0].second.value, root + "/x");
  }
  // repo_root is no unit of a bisect, and a relative or missing folder is refused, naming the key.
  EXPECT_TRUE(diff_units(base, "a", apply_knobs(base, {}, root), "b").empty());
  auto rel = load_text(base + "repo_root: some/where\n");
  ASSERT_FALSE(rel.errors.empty());
  EXPECT_NE(rel.errors[0].str().find("repo_root: expected an absolute path"), std::string::npos) << rel.errors[0].str();
  auto gone = load_text(base + "repo_root: " + root + "/gone\n");
  ASSERT_FALSE(gone.errors.empty());
  EXPECT_NE(gone.errors[0].str().find("not a directory"), std::string::npos) << gone.errors[0].str();
  std::filesystem::remove_all(root);
}

TEST(Variants, GeneratedConfigsLoadAndValidate) {
  auto all = keys_of(diff_units(kGood, "good.yaml", kBad, "bad.yaml"));
  for (std::size_t i = 0; i <= all.size(); ++i) {
    std::vector<std::string> some(all.begin(), all.begin() + static_cast<long>(i));
    auto r = load_text(apply_units(kGood, kBad, some, "/tmp"));
    EXPECT_TRUE(r.config.has_value()) << (r.errors.empty() ? "" : r.errors[0].str());
  }
}

TEST(Variants, VaryAxesAreParsedStrictly) {
  auto a = parse_axis("args.--flag=1,2,4");
  EXPECT_EQ(a.key, "args.--flag");
  EXPECT_EQ(a.values, (std::vector<std::string>{"1", "2", "4"}));
  EXPECT_EQ(parse_axis("env.NAME=a,b").values.size(), 2u);
  EXPECT_EQ(parse_axis("warmup=1,3").key, "warmup");
  for (const char* bad : {"noequals", "=1", "env.NAME=", "env.NAME=a,,b", "env.1X=a", "args.flag=1", "nosuchkey=1",
                          "args=1", "env=1", "engine=vllm", "env.N=a,a"})
    EXPECT_THROW(parse_axis(bad), std::invalid_argument) << bad;
}

TEST(Variants, KnobsReplaceOrAddAndTheResultValidates) {
  std::string v = apply_knobs(kGood, {{"args.-t", "4"}, {"args.--flag", "z"}, {"env.NEW", "q"}, {"warmup", "1"},
                                      {"args.--added", "9"}},
                              "/tmp");
  auto d = diff_units(kGood, "good", v, "variant");
  std::map<std::string, std::string> to;
  for (const auto& u : d) to[u.key] = u.to;
  EXPECT_EQ(to["args.-t"], "-t 4");
  EXPECT_EQ(to["args.--flag"], "--flag=z");
  EXPECT_EQ(to["env.NEW"], "q");
  EXPECT_EQ(to["warmup"], "1");
  EXPECT_EQ(to["args.--added"], "--added 9");
  EXPECT_EQ(d.size(), 5u);
  auto r = load_text(v);
  ASSERT_TRUE(r.config.has_value()) << r.errors[0].str();
  EXPECT_EQ(r.config->warmup, 1);
  EXPECT_NE(r.config->description.find("[args.-t=4"), std::string::npos) << r.config->description;
  // A value the loader refuses is refused there, naming the key.
  auto bad = load_text(apply_knobs(kGood, {{"warmup", "-3"}}, "/tmp"));
  ASSERT_FALSE(bad.config.has_value());
  EXPECT_EQ(bad.errors[0].key, "warmup");
}

TEST(Variants, GridAndOneAtATime) {
  std::vector<axis> axes = {{"env.A", {"1", "2"}}, {"args.-t", {"1", "2", "4"}}};
  auto grid = combinations(axes, false);
  EXPECT_EQ(grid.size(), 6u);
  EXPECT_EQ(grid[0], (std::vector<std::pair<std::string, std::string>>{{"env.A", "1"}, {"args.-t", "1"}}));
  EXPECT_EQ(combinations(axes, true).size(), 5u);
  EXPECT_EQ(file_stem(grid[5]), "env.A=2_args.-t=4");
  EXPECT_LE(file_stem({{"env.X", std::string(300, 'a')}}).size(), 120u);
}
