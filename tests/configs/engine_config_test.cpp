#include "configs/engine_config.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "base/sha256.hpp"

namespace fs = std::filesystem;
using namespace bp;

namespace {

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("bp_config_test_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    env_ = {{"HOME", "/root"}, {"HF_TOKEN", "hf_supersecret_token_123"}, {"A", "alpha"}, {"B", "beta"},
            {"PATH", "/usr/bin:/bin"}, {"REPO_ROOT", dir_.string()}};
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    auto p = dir_ / name;
    std::ofstream(p) << text;
    return p.string();
  }
  load_result load(const std::string& yaml) { return load_config(write("c.yaml", yaml), env_); }
  static bool has_error(const load_result& r, const std::string& key, const std::string& needle) {
    for (const auto& e : r.errors)
      if (e.key == key && e.message.find(needle) != std::string::npos) return true;
    return false;
  }
  static std::string all(const load_result& r) {
    std::string s;
    for (const auto& e : r.errors) s += e.str() + "\n";
    return s;
  }
  fs::path dir_;
  env_map env_;
};

const char* kBase = "description: d\nengine: mock\ncmd: /bin/true\n";

}  // namespace

TEST_F(ConfigTest, LoadsAMinimalConfigWithDefaults) {
  auto r = load(kBase);
  ASSERT_TRUE(r.config) << all(r);
  EXPECT_EQ(r.config->warmup, 3);
  EXPECT_EQ(r.config->health_path, "/health");
  EXPECT_EQ(r.config->cwd, dir_.string());
  EXPECT_TRUE(r.config->env.empty());
}

TEST_F(ConfigTest, RejectsPortAndHostInEverySpelling) {
  for (std::string arg : {"--port", "--port=8000", "--host", "--host=0.0.0.0"}) {
    auto r = load(std::string(kBase) + "args: [serve, \"" + arg + "\", x]\n");
    EXPECT_FALSE(r.config) << arg;
    EXPECT_TRUE(has_error(r, "args[1]", "injects --host")) << all(r);
    ASSERT_FALSE(r.errors.empty());
    EXPECT_EQ(r.errors[0].line, 4);
  }
}

TEST_F(ConfigTest, RequiresANonEmptyDescription) {
  auto r = load("engine: mock\ncmd: /bin/true\n");
  EXPECT_TRUE(has_error(r, "description", "required")) << all(r);
  r = load("description: \"  \"\nengine: mock\ncmd: /bin/true\n");
  EXPECT_TRUE(has_error(r, "description", "must not be empty")) << all(r);
  EXPECT_EQ(r.errors.at(0).line, 1);
}

TEST_F(ConfigTest, UnsetVariableNamesTheVariableAndTheKey) {
  auto r = load(std::string(kBase) + "env:\n  X: $NOPE_NOT_SET\n");
  ASSERT_FALSE(r.config);
  EXPECT_TRUE(has_error(r, "env.X", "$NOPE_NOT_SET")) << all(r);
  EXPECT_EQ(r.errors[0].line, 5);
  EXPECT_NE(r.errors[0].str().find("c.yaml:5:"), std::string::npos) << r.errors[0].str();
}

TEST_F(ConfigTest, UnknownKeyIsAnErrorWithItsLine) {
  auto r = load(std::string(kBase) + "warmpu: 3\n");
  ASSERT_FALSE(r.config);
  EXPECT_TRUE(has_error(r, "warmpu", "unknown key")) << all(r);
  EXPECT_EQ(r.errors[0].line, 4);
  EXPECT_EQ(r.errors[0].column, 1);
}

TEST_F(ConfigTest, BadEngineName) {
  auto r = load("description: d\nengine: vllm2\ncmd: /bin/true\n");
  EXPECT_TRUE(has_error(r, "engine", "unknown engine 'vllm2'")) << all(r);
}

TEST_F(ConfigTest, AllErrorsOfAFileAreReportedAtOnce) {
  auto r = load("engine: nope\ncmd: x\nargs: [--port, \"1\"]\nbogus: 1\nenv:\n  Y: $UNSET_Z\n");
  EXPECT_GE(r.errors.size(), 5u) << all(r);  // description, engine, --port, bogus, $UNSET_Z
}

TEST_F(ConfigTest, DollarDollarIsALiteralDollar) {
  auto r = load(std::string(kBase) + "args: [\"cost$$5\", \"$$A\"]\n");
  ASSERT_TRUE(r.config) << all(r);
  EXPECT_EQ(r.config->args[0].value, "cost$5");
  EXPECT_EQ(r.config->args[1].value, "$A");
}

TEST_F(ConfigTest, BracedAndBareVariablesMix) {
  auto r = load(std::string(kBase) + "args: [\"${A}x$B\", \"${A}${B}\", \"$A-$B\"]\n");
  ASSERT_TRUE(r.config) << all(r);
  EXPECT_EQ(r.config->args[0].value, "alphaxbeta");
  EXPECT_EQ(r.config->args[1].value, "alphabeta");
  EXPECT_EQ(r.config->args[2].value, "alpha-beta");
}

TEST_F(ConfigTest, StrayDollarIsAnError) {
  auto r = load(std::string(kBase) + "args: [\"a$\", \"b$1\"]\n");
  EXPECT_TRUE(has_error(r, "args[0]", "stray '$'")) << all(r);
  EXPECT_TRUE(has_error(r, "args[1]", "stray '$'")) << all(r);
}

TEST_F(ConfigTest, SecretIsRedactedInJsonWithItsKeyedDigest) {
  auto r = load(std::string(kBase) + "env:\n  HF_TOKEN: { secret: $HF_TOKEN }\n  PLAIN: x\n");
  ASSERT_TRUE(r.config) << all(r);
  auto text = to_json(*r.config).dump();
  EXPECT_EQ(text.find("hf_supersecret_token_123"), std::string::npos) << text;
  EXPECT_EQ(text.find(sha256_hex("hf_supersecret_token_123")), std::string::npos) << text;  // unkeyed: guessable
  EXPECT_NE(text.find(r.config->redactor().digest("hf_supersecret_token_123")), std::string::npos) << text;
  EXPECT_NE(text.find("\"redacted\":true"), std::string::npos);
  ASSERT_EQ(r.config->secret_values().size(), 1u);
}

TEST_F(ConfigTest, ShortSecretsAreRefusedAndErrorsNeverQuoteASecret) {
  auto r = load(std::string(kBase) + "env:\n  K: { secret: \"a\" }\n  L: { secret: \"1234567\" }\n  M: { secret: \"12345678\" }\n");
  EXPECT_TRUE(has_error(r, "env.K", "at least 8 characters")) << all(r);
  EXPECT_TRUE(has_error(r, "env.L", "at least 8 characters")) << all(r);
  EXPECT_FALSE(has_error(r, "env.M", "at least")) << all(r);
  r = load(std::string(kBase) + "env:\n  K: { secret: \"hunter2-pass${not a var}\" }\n");
  EXPECT_EQ(all(r).find("hunter2"), std::string::npos) << all(r);
  EXPECT_EQ(all(r).find("not a var"), std::string::npos) << all(r);
  EXPECT_TRUE(has_error(r, "env.K", "not shown")) << all(r);
  r = load(std::string(kBase) + "args: [{ secret: \"--port=1234\" }]\n");
  EXPECT_TRUE(has_error(r, "args[0]", "not allowed")) << all(r);
  EXPECT_EQ(all(r).find("1234"), std::string::npos) << all(r);
}

TEST_F(ConfigTest, BadBytesSecondDocumentsAndKernelFilesAreConfigErrorsNamingTheFile) {
  auto path = write("u.yaml", std::string(kBase) + "description: caf\xb1\n");
  auto r = load_config(path, env_);
  ASSERT_EQ(r.errors.size(), 1u) << all(r);
  EXPECT_NE(r.errors[0].str().find("u.yaml:"), std::string::npos);
  EXPECT_NE(r.errors[0].str().find("0xb1 is not valid UTF-8"), std::string::npos) << all(r);
  EXPECT_GT(r.errors[0].line, 0);
  r = load(std::string(kBase) + "---\ndescription: second\n");
  EXPECT_TRUE(!r.config && all(r).find("second YAML document") != std::string::npos) << all(r);
  r = load_config("/proc/self/mem", env_);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_NE(r.errors[0].str().find("/proc/self/mem"), std::string::npos) << all(r);
  r = load_config("/dev/zero", env_);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_NE(r.errors[0].str().find("/dev/zero"), std::string::npos) << all(r);
}

TEST_F(ConfigTest, SecretNeverAppearsInErrors) {
  env_["TOK"] = "sekrit-value-zzz";
  auto r = load(std::string(kBase) + "env:\n  A: { secret: $TOK }\n  B: $MISSING\n");
  for (const auto& e : r.errors) EXPECT_EQ(e.str().find("sekrit-value-zzz"), std::string::npos);
}

TEST_F(ConfigTest, BareCmdIsFoundOnTheYamlPathNotTheLaunchers) {
  fs::create_directories(dir_ / "venv/bin");
  auto exe = dir_ / "venv/bin/fake-engine";
  std::ofstream(exe) << "#!/bin/sh\nexit 0\n";
  fs::permissions(exe, fs::perms::owner_all);
  env_["PATH"] = "/usr/bin:/bin";  // the launcher's PATH does not have it
  auto r = load("description: d\nengine: vllm\ncmd: fake-engine\nenv:\n  PATH: $REPO_ROOT/venv/bin:$PATH\n");
  ASSERT_TRUE(r.config) << all(r);
  std::string why;
  auto resolved = resolve_command(*r.config, why);
  ASSERT_TRUE(resolved) << why;
  EXPECT_EQ(*resolved, exe.string());
  // And a command only on the launcher's PATH is not found.
  r = load("description: d\nengine: vllm\ncmd: sh\nenv:\n  PATH: $REPO_ROOT/venv/bin\n");
  ASSERT_TRUE(r.config);
  EXPECT_FALSE(resolve_command(*r.config, why));
  EXPECT_NE(why.find("not found on the PATH given in env"), std::string::npos) << why;
}

TEST_F(ConfigTest, RepoRootDefaultsToTheNearestGitAncestor) {
  fs::create_directories(dir_ / "proj/.git");
  fs::create_directories(dir_ / "proj/configs/sub");
  env_.erase("REPO_ROOT");
  std::string p = (dir_ / "proj/configs/sub/c.yaml").string();
  std::ofstream(p) << "description: d\nengine: mock\ncmd: /bin/true\ncwd: work\nvenv: v/.venv\n";
  auto r = load_config(p, env_);
  ASSERT_TRUE(r.config) << all(r);
  EXPECT_EQ(r.config->repo_root, (dir_ / "proj").string());
  EXPECT_EQ(r.config->cwd, (dir_ / "proj/work").string());
  EXPECT_EQ(r.config->venv, (dir_ / "proj/v/.venv").string());
}

TEST_F(ConfigTest, SyntaxErrorNamesLineAndColumn) {
  auto r = load("description: d\nengine: [mock\n");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_GT(r.errors[0].line, 0);
  EXPECT_NE(r.errors[0].message.find("YAML syntax"), std::string::npos);
}

TEST_F(ConfigTest, MissingFileIsAClearError) {
  auto r = load_config((dir_ / "nope.yaml").string(), env_);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_NE(r.errors[0].str().find("nope.yaml"), std::string::npos);
}

TEST_F(ConfigTest, WarmupAndTimeoutsAreValidated) {
  auto r = load(std::string(kBase) + "warmup: -1\nready_timeout_s: soon\nstop_grace_s: 0\n");
  EXPECT_TRUE(has_error(r, "warmup", "whole number")) << all(r);
  EXPECT_TRUE(has_error(r, "ready_timeout_s", "greater than 0 and at most 86400")) << all(r);
  EXPECT_TRUE(has_error(r, "stop_grace_s", "greater than 0 and at most 86400")) << all(r);
  r = load(std::string(kBase) + "warmup: 0\nready_timeout_s: 1800\n");
  ASSERT_TRUE(r.config) << all(r);
  EXPECT_EQ(r.config->warmup, 0);
  EXPECT_EQ(r.config->ready_timeout_s, 1800);
}

TEST_F(ConfigTest, DurationsMustBeFiniteAndAtMostADay) {
  for (const char* v : {"nan", "NaN", "inf", "-inf", "infinity", ".inf", "1e10", "1e20", "86400.5", "-5", "0x10p9999"})
    for (const char* key : {"ready_timeout_s", "stop_grace_s", "drain_timeout_s", "snapshot_timeout_s"}) {
      auto r = load(std::string(kBase) + key + ": " + v + "\n");
      EXPECT_FALSE(r.config) << key << "=" << v;
      EXPECT_TRUE(has_error(r, key, "at most 86400")) << key << "=" << v << ": " << all(r);
    }
  auto r = load(std::string(kBase) + "stop_grace_s: 86400\nready_timeout_s: 0.5\n");
  ASSERT_TRUE(r.config) << all(r);
  EXPECT_EQ(r.config->stop_grace_s, 86400);
}

TEST_F(ConfigTest, EnvValuesMustBeStringsOrSecrets) {
  auto r = load(std::string(kBase) + "env:\n  A: [1, 2]\n  B:\n  C: { secret: x, other: y }\n  1BAD: x\n");
  EXPECT_TRUE(has_error(r, "env.A", "got a list")) << all(r);
  EXPECT_TRUE(has_error(r, "env.B", "needs a value")) << all(r);
  EXPECT_TRUE(has_error(r, "env.C", "secret")) << all(r);
  EXPECT_TRUE(has_error(r, "env.1BAD", "invalid environment variable name")) << all(r);
}

TEST_F(ConfigTest, ShippedConfigsValidateOnceTheirVariablesAreSet) {
  env_map env = env_;
  env["CUDA_HOME"] = "/usr/local/cuda";
  env["MODELS"] = "/models";
  env["HF_HOME"] = "/hf";
  env["LLAMA_SERVER"] = "/opt/llama/llama-server";
  env["LLAMA_MODEL"] = "/opt/llama/tiny.gguf";
  env["LLAMA_SLOT_DIR"] = "/opt/llama/slots";
  env.erase("REPO_ROOT");
  for (const auto& e : fs::directory_iterator(fs::path(BP_TEST_DATA).parent_path().parent_path() / "configs")) {
    if (e.path().extension() != ".yaml") continue;
    auto r = load_config(e.path().string(), env);
    EXPECT_TRUE(r.config) << e.path() << "\n" << all(r);
  }
}

TEST_F(ConfigTest, AStrayCommaIsAnErrorNotAHang) {
  // yaml-cpp 0.7's LoadAll loops forever on these (found by the fuzzer): the loader must not.
  for (const char* text : {",\n", "# vLLM se}\n ,HF_TOKEN\n", "description: d\n,\n"}) {
    auto r = load(text);
    EXPECT_FALSE(r.config) << text;
    ASSERT_FALSE(r.errors.empty()) << text;
    EXPECT_NE(r.errors[0].str().find("c.yaml:"), std::string::npos) << all(r);
  }
}

TEST_F(ConfigTest, PlacementIsAMapOfLabelsForFleetAgents) {
  auto r = load(std::string(kBase) + "placement:\n  gpu: h100\n  count: 2\n");
  ASSERT_TRUE(r.config) << all(r);
  EXPECT_EQ(r.config->placement.at("gpu"), "h100");
  EXPECT_EQ(r.config->placement.at("count"), "2");
  r = load(std::string(kBase) + "placement: h100\n");
  EXPECT_TRUE(has_error(r, "placement", "expected a mapping")) << all(r);
  EXPECT_EQ(r.errors.at(0).line, 4);
}

TEST_F(ConfigTest, HashCacheIsOnUnlessTurnedOff) {
  auto r = load(kBase);
  ASSERT_TRUE(r.config) << all(r);
  EXPECT_TRUE(r.config->hash_cache);
  EXPECT_EQ(bp::to_json(*r.config)["hash_cache"], "on");
  r = load(std::string(kBase) + "hash_cache: off\n");
  ASSERT_TRUE(r.config) << all(r);
  EXPECT_FALSE(r.config->hash_cache);
  EXPECT_EQ(bp::to_json(*r.config)["hash_cache"], "off");
  r = load(std::string(kBase) + "hash_cache: on\n");
  ASSERT_TRUE(r.config) << all(r);
  EXPECT_TRUE(r.config->hash_cache);
  for (const char* bad : {"hash_cache: yes\n", "hash_cache: [on]\n", "hash_cache: 0\n"}) {
    r = load(std::string(kBase) + bad);
    EXPECT_FALSE(r.config) << bad;
    EXPECT_TRUE(has_error(r, "hash_cache", "expected on")) << all(r);
    EXPECT_EQ(r.errors.at(0).line, 4) << bad;
  }
}

TEST_F(ConfigTest, AnEngineThatCannotBeLaunchedHereIsNamedWithItsLineAndColumn) {
  // Issue 27 item 9: a missing engine binary, cwd or venv names where the file says it.
  auto r = load("description: d\nengine: mock\ncmd:   /nonexistent/engine\ncwd: no-such-dir\nvenv: no-venv\n");
  ASSERT_TRUE(r.config) << all(r);
  auto errs = check_launchable(*r.config);
  ASSERT_EQ(errs.size(), 3u);
  std::string file = (dir_ / "c.yaml").string();
  EXPECT_EQ(errs[0].str(), file + ":3:8: cmd: cmd '/nonexistent/engine' (/nonexistent/engine) is not an executable file");
  EXPECT_EQ(errs[1].str().rfind(file + ":4:6: cwd: directory ", 0), 0u) << errs[1].str();
  EXPECT_EQ(errs[2].str().rfind(file + ":5:7: venv: directory ", 0), 0u) << errs[2].str();
  // A bare name not on the env's PATH, too.
  r = load("description: d\nengine: mock\ncmd: no-such-engine\nenv:\n  PATH: /nonexistent\n");
  ASSERT_TRUE(r.config) << all(r);
  errs = check_launchable(*r.config);
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0].str().rfind(file + ":3:6: cmd: cmd 'no-such-engine' was not found on the PATH", 0), 0u)
      << errs[0].str();
}
