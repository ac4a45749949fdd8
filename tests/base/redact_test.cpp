// The one redaction policy: whole secrets, longest first, line by line, keys too, keyed digests.
#include "base/redact.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
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

// The digest's HMAC-SHA256, composed over OpenSSL's SHA256_* (no EVP in bench-proxy's process):
// RFC 4231's vectors, and OpenSSL's own HMAC() for keys and messages around the block size.
TEST(Sha256, HmacMatchesRfc4231AndOpenSsl) {
  // RFC 4231, test cases 1, 2, 3 and 6 (a key longer than the block).
  EXPECT_EQ(bp::hmac_sha256_hex(std::string(20, '\x0b'), "Hi There"),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  EXPECT_EQ(bp::hmac_sha256_hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_EQ(bp::hmac_sha256_hex(std::string(20, '\xaa'), std::string(50, '\xdd')),
            "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");
  EXPECT_EQ(bp::hmac_sha256_hex(std::string(131, '\xaa'), "Test Using Larger Than Block-Size Key - Hash Key First"),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  for (std::size_t klen : {0, 1, 31, 32, 63, 64, 65, 200})
    for (std::size_t mlen : {0, 1, 55, 56, 64, 1000}) {
      std::string key(klen, '\0'), msg(mlen, '\0');
      for (std::size_t i = 0; i < klen; ++i) key[i] = static_cast<char>(i * 7 + 3);
      for (std::size_t i = 0; i < mlen; ++i) msg[i] = static_cast<char>(i * 13 + 1);
      unsigned char md[EVP_MAX_MD_SIZE];
      unsigned int len = 0;
      HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(msg.data()),
           msg.size(), md, &len);
      EXPECT_EQ(bp::hmac_sha256_hex(key, msg), bp::to_hex(md, len)) << klen << " " << mlen;
    }
}

TEST(Sha256, IncrementalPeekAndFileAgreeWithOneShot) {
  bp::sha256_hasher h;
  EXPECT_EQ(h.final_hex(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");  // ""
  h.update("ab");
  EXPECT_EQ(h.peek_hex(), bp::sha256_hex("ab"));
  h.update("c");
  EXPECT_EQ(h.final_hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");  // "abc"
  EXPECT_EQ(h.final_hex(), bp::sha256_hex(""));  // reset after final
  auto path = std::filesystem::temp_directory_path() / ("bp_sha_" + std::to_string(::getpid()));
  std::string big(600 * 1024 + 7, '\0');  // more than two read blocks
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i % 251);
  std::ofstream(path, std::ios::binary).write(big.data(), static_cast<std::streamsize>(big.size()));
  std::string hex, err;
  std::uint64_t size = 0;
  ASSERT_TRUE(bp::sha256_file(path.string(), hex, size, err)) << err;
  EXPECT_EQ(size, big.size());
  EXPECT_EQ(hex, bp::sha256_hex(big));
  std::filesystem::remove(path);
  EXPECT_FALSE(bp::sha256_file(path.string(), hex, size, err));
  EXPECT_NE(err.find(path.string()), std::string::npos) << err;
}
