// The one redaction policy: whole secrets, longest first, line by line, keys too, keyed digests.
#include "base/redact.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "base/sha256.hpp"

using bp::base::redactor;
using json = nlohmann::json;

TEST(Redactor, ReplacesExactAndEmbeddedSecretsInValues) {
  redactor r({"hf_abcdef123"}, "k1k1k1k1k1k1k1k1");
  json j = {{"env", {{"HF_TOKEN", "hf_abcdef123"}, {"X", "1"}}},
            {"argv", {"serve", "--api-key=hf_abcdef123"}},
            {"deep", {{"raw", "token hf_abcdef123 in a log line"}}}};
  r.redact(j);
  auto text = j.dump();
  EXPECT_EQ(text.find("hf_abcdef123"), std::string::npos) << text;
  EXPECT_EQ(j["env"]["HF_TOKEN"]["redacted"], true);
  EXPECT_EQ(j["env"]["HF_TOKEN"]["hmac_sha256"], r.digest("hf_abcdef123"));
  EXPECT_EQ(j["env"]["HF_TOKEN"]["key_id"], r.key_id());
  EXPECT_EQ(j["argv"][1], "--api-key=" + r.marker("hf_abcdef123"));
  EXPECT_EQ(j["env"]["X"], "1");
}

TEST(Redactor, ASecretInsideAnotherLeavesNoPlaintextWhicheverOrderTheyCameIn) {
  for (auto secrets : {std::vector<std::string>{"INNERPART", "OUTERPART-INNERPART-TAILPART"},
                       std::vector<std::string>{"OUTERPART-INNERPART-TAILPART", "INNERPART"}}) {
    redactor r(secrets, "k1k1k1k1k1k1k1k1");
    auto s = r.scrub("x=OUTERPART-INNERPART-TAILPART y=INNERPART");
    EXPECT_EQ(s.find("PART"), std::string::npos) << s;
    EXPECT_EQ(s, "x=" + r.marker("OUTERPART-INNERPART-TAILPART") + " y=" + r.marker("INNERPART"));
  }
}

TEST(Redactor, AMultiLineSecretIsRedactedLineByLineToo) {
  redactor r({"first-line-of-it\nsecond-line-of-it"}, "k1k1k1k1k1k1k1k1");
  // Logs arrive one line at a time: each line must go on its own.
  EXPECT_EQ(r.scrub("got first-line-of-it").find("first-line"), std::string::npos);
  EXPECT_EQ(r.scrub("second-line-of-it!").find("second-line"), std::string::npos);
  auto whole = r.scrub("[first-line-of-it\nsecond-line-of-it]");
  EXPECT_EQ(whole.find("line-of-it"), std::string::npos) << whole;
}

TEST(Redactor, SecretsInJsonKeysAreRedacted) {
  redactor r({"MY_SECRET_ENV_NAME"}, "k1k1k1k1k1k1k1k1");
  json j = {{"env", {{"MY_SECRET_ENV_NAME", "1"}, {"PREFIX_MY_SECRET_ENV_NAME", "2"}}}};
  r.redact(j);
  EXPECT_EQ(j.dump().find("MY_SECRET_ENV_NAME"), std::string::npos) << j.dump();
  EXPECT_EQ(j["env"].size(), 2u);
}

TEST(Redactor, DigestsAreKeyedSoAGuessCannotBeConfirmedWithoutTheKey) {
  redactor a({"password123"}, "key-one-key-one-"), b({"password123"}, "key-two-key-two-"),
      a2({"password123"}, "key-one-key-one-");
  EXPECT_NE(a.digest("password123"), bp::sha256_hex("password123"));
  EXPECT_NE(a.digest("password123"), b.digest("password123"));
  EXPECT_EQ(a.digest("password123"), a2.digest("password123"));  // same key: comparable across hosts
  EXPECT_NE(a.key_id(), b.key_id());
  // RFC 4231 test case 2: HMAC-SHA256(key "Jefe", "what do ya want for nothing?").
  redactor rfc({}, "Jefe");
  EXPECT_EQ(rfc.digest("what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(SecretKey, IsCreatedOnceWithMode0600AndReadBackTheSame) {
  auto dir = std::filesystem::temp_directory_path() / ("bp_key_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  auto path = (dir / "sub" / "secret-key").string();
  auto k1 = bp::base::load_secret_key(path);
  auto k2 = bp::base::load_secret_key(path);
  EXPECT_EQ(k1, k2);
  EXPECT_EQ(k1.size(), 32u);
  auto perms = std::filesystem::status(path).permissions();
  EXPECT_EQ(perms & std::filesystem::perms::all, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  std::ofstream(dir / "short") << "abc";
  EXPECT_THROW(bp::base::load_secret_key((dir / "short").string()), std::runtime_error);
  std::filesystem::remove_all(dir);
}
