// The verified hash cache (snapshot/hash_cache.hpp): what it trusts, what it reads again, what it
// ignores. No time bounds: every check is about which files were read and which hashes came out.
#include "snapshot/hash_cache.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <fstream>
#include <set>

#include "base/files.hpp"
#include "snapshot/collect.hpp"
#include "snapshot/diff.hpp"
#include "snapshot/merkle.hpp"

using namespace bp::snap;
namespace fs = std::filesystem;

namespace {

std::int64_t realtime_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

struct stat stat_of(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return st;
}

std::int64_t ns(const timespec& t) { return static_cast<std::int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec; }

void write(const fs::path& p, const std::string& data) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << data;
}

/// Rewrites `p` in place (same inode, same size) with `data`.
void rewrite_in_place(const fs::path& p, const std::string& data) {
  int fd = ::open(p.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, data.data(), data.size(), 0), static_cast<ssize_t>(data.size()));
  ::close(fd);
}

/// Sets p's mtime back to `mtime`, again until the kernel's ctime differs from `old_ctime_ns`
/// (a change within the same timestamp tick would keep it: that is the racy case, tested apart).
void touch_back(const fs::path& p, const timespec& mtime, std::int64_t old_ctime_ns) {
  for (;;) {
    timespec times[2] = {mtime, mtime};
    ASSERT_EQ(::utimensat(AT_FDCWD, p.c_str(), times, 0), 0);
    if (ns(stat_of(p).st_ctim) != old_ctime_ns) return;
  }
}

class HashCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    base_ = fs::temp_directory_path() / ("bp_hash_cache_" + std::to_string(::getpid()) + "_" + name);
    fs::remove_all(base_);
    root_ = base_ / "venv";
    cache_dir_ = base_ / "cache";
    fs::create_directories(root_ / "bin");
    fs::create_directories(root_ / "lib/python3.11/site-packages/pkg");
    write(root_ / "bin/python", "#!/bin/sh\n");
    for (int i = 0; i < 30; ++i)
      write(root_ / ("lib/python3.11/site-packages/pkg/m" + std::to_string(i) + ".py"), "x = " + std::to_string(i) + "\n");
    write(root_ / "lib/python3.11/site-packages/pkg/big.so", std::string(3 << 20, 'b'));
    fs::create_symlink("lib", root_ / "lib64");
    files_ = 32;
  }
  void TearDown() override { fs::remove_all(base_); }

  /// A cache as a run makes it, except for the clock: `clock_offset_ns` ahead of the wall clock
  /// (default 10 s: files written by the test a moment ago are not racily clean).
  hash_cache_options options(std::uint32_t buckets = 0) {
    hash_cache_options o;
    o.dir = cache_dir_.string();
    o.name = "venv-test";
    o.verify_buckets = buckets;
    std::int64_t off = clock_offset_ns_;
    o.now_ns = [off] { return realtime_ns() + off; };
    return o;
  }
  struct result {
    tree_hash tree;
    hash_cache_stats stats;
  };
  result run(hash_cache_options o) {
    hash_cache c(std::move(o));
    auto t = hash_tree(root_.string(), {"bin", "lib", "lib64"}, 2, std::chrono::steady_clock::time_point::max(), nullptr, &c);
    c.save();  // hash_tree saved it already: a second save does nothing
    return {t, c.stats()};
  }
  result run(std::uint32_t buckets = 0) { return run(options(buckets)); }
  std::string uncached() {
    return hash_tree(root_.string(), {"bin", "lib", "lib64"}, 1, std::chrono::steady_clock::time_point::max()).merkle_sha256;
  }
  fs::path cache_file() const { return cache_dir_ / "venv-test"; }

  fs::path base_, root_, cache_dir_;
  std::uint64_t files_ = 0;
  std::int64_t clock_offset_ns_ = 10'000'000'000;
};

}  // namespace

TEST_F(HashCacheTest, UnchangedFilesComeFromTheCacheWithTheSameHashes) {
  auto a = run();
  EXPECT_EQ(a.stats.read, files_);
  EXPECT_EQ(a.stats.from_cache, 0u);
  EXPECT_EQ(a.stats.note, "no cache file yet");
  auto b = run();
  EXPECT_EQ(b.stats.from_cache, files_);
  EXPECT_EQ(b.stats.read, 0u);
  EXPECT_TRUE(b.stats.note.empty()) << b.stats.note;
  EXPECT_EQ(b.stats.generation, a.stats.generation + 1);
  EXPECT_EQ(a.tree.merkle_sha256, uncached());
  EXPECT_EQ(b.tree.merkle_sha256, a.tree.merkle_sha256);
  // Per file too, not only the rollup.
  for (std::size_t i = 0; i < a.tree.entries.size(); ++i) {
    EXPECT_EQ(a.tree.entries[i].sha256, b.tree.entries[i].sha256) << a.tree.entries[i].path;
    EXPECT_EQ(a.tree.entries[i].size, b.tree.entries[i].size) << a.tree.entries[i].path;
  }
}

TEST_F(HashCacheTest, AChangedFileIsRead) {
  run();
  write(root_ / "lib/python3.11/site-packages/pkg/m3.py", "x = 'changed'\n");
  auto b = run();
  EXPECT_EQ(b.stats.read, 1u);
  EXPECT_EQ(b.stats.from_cache, files_ - 1);
  EXPECT_EQ(b.tree.merkle_sha256, uncached());
  // A new file and a removed one.
  write(root_ / "bin/new-tool", "new\n");
  fs::remove(root_ / "lib/python3.11/site-packages/pkg/m4.py");
  auto c = run();
  EXPECT_EQ(c.stats.read, 1u);
  EXPECT_EQ(c.stats.from_cache, files_ - 1);
  EXPECT_EQ(c.tree.merkle_sha256, uncached());
}

TEST_F(HashCacheTest, AReplacedFileWithTheSameSizeAndMtimeButAnotherInodeIsRead) {
  run();
  fs::path p = root_ / "lib/python3.11/site-packages/pkg/m7.py";
  struct stat old = stat_of(p);
  fs::path tmp = root_ / "lib/python3.11/site-packages/pkg/.m7.py.new";
  write(tmp, "x = 8\n");  // same size as "x = 7\n"
  timespec times[2] = {old.st_mtim, old.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, tmp.c_str(), times, 0), 0);
  fs::rename(tmp, p);
  struct stat now = stat_of(p);
  ASSERT_EQ(now.st_size, old.st_size);
  ASSERT_EQ(ns(now.st_mtim), ns(old.st_mtim));
  ASSERT_NE(now.st_ino, old.st_ino);
  auto b = run();
  EXPECT_EQ(b.stats.read, 1u);
  EXPECT_EQ(b.tree.merkle_sha256, uncached());
}

TEST_F(HashCacheTest, AnyFieldOfTheStampMissesAlone) {
  run();
  hash_cache c(options());
  fs::path p = root_ / "lib/python3.11/site-packages/pkg/m1.py";
  struct stat st = stat_of(p);
  bp::file_stamp s;
  s.dev = st.st_dev;
  s.ino = st.st_ino;
  s.size = static_cast<std::uint64_t>(st.st_size);
  s.mtime_ns = ns(st.st_mtim);
  s.ctime_ns = ns(st.st_ctim);
  std::string hex;
  ASSERT_EQ(c.lookup(p.string(), s, hex), hash_cache::decision::hit);
  auto miss = [&](bp::file_stamp x) { return c.lookup(p.string(), x, hex) == hash_cache::decision::miss; };
  auto x = s;
  x.dev++;
  EXPECT_TRUE(miss(x));
  x = s;
  x.ino++;
  EXPECT_TRUE(miss(x));
  x = s;
  x.size++;
  EXPECT_TRUE(miss(x));
  x = s;
  x.mtime_ns++;
  EXPECT_TRUE(miss(x));
  x = s;
  x.ctime_ns++;
  EXPECT_TRUE(miss(x));
  EXPECT_EQ(c.lookup(p.string() + "x", s, hex), hash_cache::decision::miss);
}

TEST_F(HashCacheTest, AFileTouchedBackToItsOldMtimeIsReadBecauseItsCtimeMoved) {
  run();
  fs::path p = root_ / "lib/python3.11/site-packages/pkg/m5.py";
  struct stat old = stat_of(p);
  rewrite_in_place(p, "x = 6\n");
  touch_back(p, old.st_mtim, ns(old.st_ctim));
  struct stat now = stat_of(p);
  ASSERT_EQ(now.st_ino, old.st_ino);
  ASSERT_EQ(now.st_size, old.st_size);
  ASSERT_EQ(ns(now.st_mtim), ns(old.st_mtim));
  auto b = run();
  EXPECT_EQ(b.stats.read, 1u);
  EXPECT_EQ(b.tree.merkle_sha256, uncached());
}

TEST_F(HashCacheTest, ARacilyCleanEntryIsReadAgainUntilItWasHashedLaterThanItsLastChange) {
  // The clock says the files were hashed 1 s after they were written: within the 2 s margin, a
  // change in the same timestamp tick could keep the stamp, so nothing is trusted yet.
  std::int64_t newest = 0;
  for (auto& e : fs::recursive_directory_iterator(root_))
    if (e.is_regular_file()) newest = std::max(newest, ns(stat_of(e.path()).st_ctim));
  auto racy = options();
  racy.now_ns = [newest] { return newest + 1'000'000'000; };
  auto a = run(racy);
  EXPECT_EQ(a.stats.read, files_);
  auto b = run(racy);
  EXPECT_EQ(b.stats.read, files_);
  EXPECT_EQ(b.stats.from_cache, 0u);
  // Hashed again well after the last change: trusted from then on.
  run();
  auto d = run();
  EXPECT_EQ(d.stats.from_cache, files_);
  EXPECT_EQ(d.tree.merkle_sha256, uncached());
}

TEST_F(HashCacheTest, ACacheTornByACrashedWriterIsIgnoredNeverTrusted) {
  run();
  std::string whole = bp::base::read_file_limited(cache_file().string());
  const std::string truth = uncached();
  // A writer that died: its temporary file left behind, and (as if the rename had happened on a
  // file system that lost the tail) a truncated cache file; then one with a flipped byte; then
  // one cut at every entry boundary we try; then bytes that are no cache at all.
  write(cache_dir_ / ".venv-test.tmp-AbC123", whole.substr(0, whole.size() / 3));
  std::vector<std::string> bad = {whole.substr(0, whole.size() / 2), whole.substr(0, whole.size() - 1), whole.substr(0, 10),
                                  std::string(), "not a cache at all\n"};
  std::string flipped = whole;
  flipped[whole.size() / 2] ^= 0x01;
  bad.push_back(flipped);
  std::string extended = whole + "x";
  bad.push_back(extended);
  for (const auto& bytes : bad) {
    write(cache_file(), bytes);
    auto r = run();
    EXPECT_EQ(r.stats.read, files_) << bytes.size();
    EXPECT_EQ(r.stats.from_cache, 0u);
    EXPECT_NE(r.stats.note.find("ignored"), std::string::npos) << r.stats.note;
    EXPECT_EQ(r.tree.merkle_sha256, truth);
    // The save replaced it with a whole one: the next run trusts it again.
    auto next = run();
    EXPECT_EQ(next.stats.from_cache, files_) << next.stats.note;
    EXPECT_EQ(next.tree.merkle_sha256, truth);
    whole = bp::base::read_file_limited(cache_file().string());
  }
  // A cache whose checksum is right but whose entry table lies about its length is refused too.
  std::uint64_t gen = 0;
  std::unordered_map<std::string, hash_cache::entry> entries;
  std::string why;
  ASSERT_TRUE(hash_cache::parse(whole, gen, entries, why)) << why;
  EXPECT_EQ(entries.size(), files_);
}

TEST_F(HashCacheTest, SampledReReadsCatchContentChangedWithoutAStampChangeWithinOneRoundOfBuckets) {
  run(4);
  const std::string truth = uncached();
  // Content that changed while every field of the stamp stayed (a restored disk image, a file
  // system that keeps times): made here by a cache that holds a wrong hash for a valid stamp.
  std::string whole = bp::base::read_file_limited(cache_file().string());
  std::uint64_t gen = 0;
  std::unordered_map<std::string, hash_cache::entry> entries;
  std::string why;
  ASSERT_TRUE(hash_cache::parse(whole, gen, entries, why)) << why;
  const std::string victim = (root_ / "lib/python3.11/site-packages/pkg/m9.py").string();
  ASSERT_TRUE(entries.count(victim));
  entries[victim].digest[0] ^= 0xff;
  bp::base::write_file_atomic(cache_file().string(), hash_cache::serialize(gen, entries), false);

  // Over four runs with 1/4 re-read each, every cached file is re-read exactly once; the lie is
  // found in exactly one of them, reported, and that run's hashes are the file's true ones.
  std::set<std::string> verified_paths;
  int caught = 0;
  std::uint64_t verified = 0;
  for (int i = 0; i < 4; ++i) {
    auto r = run(4);
    verified += r.stats.verified;
    EXPECT_EQ(r.stats.from_cache + r.stats.read, files_);
    EXPECT_EQ(r.stats.read, r.stats.verified);  // nothing else changed
    if (!r.stats.mismatched.empty()) {
      ++caught;
      EXPECT_EQ(r.stats.mismatched, std::vector<std::string>{victim});
      EXPECT_EQ(r.tree.merkle_sha256, truth);
    } else if (caught == 0) {
      EXPECT_NE(r.tree.merkle_sha256, truth);  // the limit, said plainly: until it is sampled, the lie stands
    } else {
      EXPECT_EQ(r.tree.merkle_sha256, truth);  // corrected in the cache when it was caught
    }
  }
  EXPECT_EQ(caught, 1);
  EXPECT_EQ(verified, files_);
  // The same runs again: deterministic, by generation.
  auto again = run(1);
  EXPECT_EQ(again.stats.verified, files_);
  EXPECT_TRUE(again.stats.mismatched.empty());
}

TEST_F(HashCacheTest, TwoProcessesAtOnceNeverSeeATornCacheAndLoseNothing) {
  run();
  const std::string truth = uncached();
  std::vector<pid_t> kids;
  for (int k = 0; k < 2; ++k) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      int bad = 0;
      for (int i = 0; i < 15; ++i) {
        // Each writes a file of its own too, so a save that dropped the other's work would show.
        write(root_ / ("bin/from-" + std::to_string(k) + "-" + std::to_string(i)), "x");
        auto r = run();
        if (r.tree.merkle_sha256.empty() || !r.stats.note.empty() || !r.stats.save_error.empty()) ++bad;
      }
      ::_exit(bad == 0 ? 0 : 1);
    }
    kids.push_back(pid);
  }
  for (pid_t pid : kids) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "a process saw a torn cache or failed to save";
  }
  std::uint64_t gen = 0;
  std::unordered_map<std::string, hash_cache::entry> entries;
  std::string why;
  ASSERT_TRUE(hash_cache::parse(bp::base::read_file_limited(cache_file().string()), gen, entries, why)) << why;
  EXPECT_EQ(gen, 31u);  // one save per run, none lost
  // Every file either process hashed is in the merged cache: nothing is read again.
  auto last = run();
  EXPECT_EQ(last.stats.read, 0u);
  EXPECT_EQ(last.stats.from_cache, files_ + 30);
  EXPECT_EQ(last.tree.merkle_sha256, uncached());
  // No temporary file left behind.
  for (auto& e : fs::directory_iterator(cache_dir_))
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
}

TEST_F(HashCacheTest, FilesByWholePathThroughTheCachedLanesAreReadOnceThenAnsweredByTheCache) {
  // As the loaded-libraries collector hashes: whole paths, each with its stat's stamp.
  fs::path p = root_ / "bin/python", missing = root_ / "bin/missing";
  hash_cache_options o = options();
  o.name = "loaded_libs";
  std::string want, err;
  std::uint64_t size = 0;
  ASSERT_TRUE(bp::sha256_file(p.string(), want, size, err)) << err;
  struct result {
    std::string hex, err;
    std::uint64_t size = 0;
  };
  auto hash = [&](hash_cache& c) {
    std::map<std::size_t, result> got;
    cached_file_lanes lanes(&c, [&](std::size_t i, std::string&& hex, std::uint64_t n, std::string&& e) {
      got[i] = {std::move(hex), std::move(e), n};
    });
    lanes.add(p.string(), 0, bp::stamp_of(stat_of(p)));
    bp::file_stamp gone;  // a stamp for a file that is not there (its stat failed after the caller's)
    gone.size = 10;
    lanes.add(missing.string(), 1, gone);
    lanes.finish();
    return got;
  };
  {
    hash_cache c(o);
    auto got = hash(c);
    EXPECT_EQ(c.stats().read, 1u);
    EXPECT_EQ(got[0].hex, want);
    c.save();
  }
  hash_cache c(o);
  auto got = hash(c);
  EXPECT_EQ(c.stats().from_cache, 1u);
  EXPECT_EQ(got[0].hex, want);
  EXPECT_EQ(got[0].size, 10u);
  EXPECT_TRUE(got[0].err.empty());
  EXPECT_EQ(got[1].err, missing.string() + ": " + std::strerror(ENOENT));
  EXPECT_TRUE(got[1].hex.empty());
}

TEST_F(HashCacheTest, TheDefaultFolderIsOutsideRunFoldersAndOverridable) {
  const char* old = std::getenv("BENCH_PROXY_CACHE_DIR");
  std::string saved = old ? old : "";
  ::setenv("BENCH_PROXY_CACHE_DIR", "/some/where", 1);
  EXPECT_EQ(hash_cache::default_dir(), "/some/where");
  ::unsetenv("BENCH_PROXY_CACHE_DIR");
  if (!std::getenv("XDG_CACHE_HOME") && std::getenv("HOME")) {
    EXPECT_EQ(hash_cache::default_dir(), std::string(std::getenv("HOME")) + "/.cache/bench-proxy/hashes");
  }
  if (old) ::setenv("BENCH_PROXY_CACHE_DIR", saved.c_str(), 1);
  EXPECT_EQ(hash_cache::name_for("venv", "/a/b").substr(0, 5), "venv-");
  EXPECT_NE(hash_cache::name_for("venv", "/a/b"), hash_cache::name_for("venv", "/a/c"));
}

TEST(HashCacheMeta, HowAHashWasObtainedIsNoDifferenceInMetaDiff) {
  nlohmann::json a = {{"venv", {{"merkle_sha256", "aa"}, {"hash_cache", {{"enabled", true}, {"from_cache", 10}, {"read", 0}}}}}};
  nlohmann::json b = {{"venv", {{"merkle_sha256", "aa"}, {"hash_cache", {{"enabled", false}}}}}};
  EXPECT_TRUE(diff_snapshots(a, b)["equal"].get<bool>()) << diff_snapshots(a, b).dump();
  b["venv"]["merkle_sha256"] = "bb";
  EXPECT_FALSE(diff_snapshots(a, b)["equal"].get<bool>());
}

TEST(Sha256File, OneBufferForManyFilesGivesTheHashesOfTheirBytesAtEveryBlockBoundary) {
  fs::path dir = fs::temp_directory_path() / ("bp_sha256_file_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  bp::read_buffer buf(4096);  // small, so the sizes below cross block boundaries
  for (std::size_t n : {0ul, 1ul, 4095ul, 4096ul, 4097ul, 8192ul, 3 * 4096ul + 17}) {
    std::string data(n, '\0');
    for (std::size_t i = 0; i < n; ++i) data[i] = static_cast<char>(i * 131 + 7);
    fs::path p = dir / ("f" + std::to_string(n));
    write(p, data);
    std::string hex, err;
    std::uint64_t size = 0;
    bp::file_stamp st;
    bool stable = false;
    ASSERT_TRUE(bp::sha256_file(p.string(), hex, size, err, buf, &st, &stable)) << err;
    EXPECT_EQ(hex, bp::sha256_hex(data)) << n;
    EXPECT_EQ(size, n);
    EXPECT_TRUE(stable);
    EXPECT_EQ(st.size, n);
    EXPECT_EQ(st.ino, static_cast<std::uint64_t>(stat_of(p).st_ino));
  }
  std::string hex, err;
  std::uint64_t size = 0;
  EXPECT_FALSE(bp::sha256_file((dir / "none").string(), hex, size, err, buf));
  EXPECT_NE(err.find("none"), std::string::npos);
  fs::create_symlink("f1", dir / "link");
  EXPECT_FALSE(bp::sha256_file((dir / "link").string(), hex, size, err, buf));  // O_NOFOLLOW
  fs::remove_all(dir);
}

TEST_F(HashCacheTest, TheVenvCollectorReportsWhereEachHashCameFromAndTheSameTree) {
  collect_input in;
  in.venv = root_.string();
  in.threads = 2;
  in.hash_cache = true;
  in.hash_cache_dir = cache_dir_.string();
  auto a = collect_venv(in);
  ASSERT_TRUE(a["hash_cache"]["enabled"].get<bool>()) << a["hash_cache"].dump();
  EXPECT_EQ(a["hash_cache"]["read"], files_);
  EXPECT_EQ(a["hash_cache"]["from_cache"], 0);
  EXPECT_EQ(a["hash_cache"]["file"], (cache_dir_ / hash_cache::name_for("venv", root_.string())).string());
  EXPECT_EQ(a["hash_cache"]["verify_fraction"], "1/16");
  // Files written a moment ago are racily clean with the real clock: read again, never trusted
  // yet; either way every file is accounted for and the tree is the same.
  auto b = collect_venv(in);
  EXPECT_EQ(b["hash_cache"]["read"].get<std::uint64_t>() + b["hash_cache"]["from_cache"].get<std::uint64_t>(), files_);
  EXPECT_EQ(b["merkle_sha256"], a["merkle_sha256"]);
  EXPECT_EQ(b["files"], a["files"]);
  EXPECT_EQ(a["merkle_sha256"], uncached());
  // Off (the config's hash_cache: off, --rehash): no cache file is touched.
  in.hash_cache = false;
  in.hash_cache_dir = (base_ / "other-cache").string();
  auto c = collect_venv(in);
  EXPECT_EQ(c["hash_cache"], nlohmann::json({{"enabled", false}}));
  EXPECT_FALSE(fs::exists(base_ / "other-cache"));
  EXPECT_EQ(c["merkle_sha256"], a["merkle_sha256"]);
}

TEST_F(HashCacheTest, ACacheFileOthersMayWriteIsNotTrusted) {
  run();
  EXPECT_EQ(stat_of(cache_file()).st_mode & 0777, 0600u);
  ASSERT_EQ(::chmod(cache_file().c_str(), 0666), 0);
  auto r = run();
  EXPECT_EQ(r.stats.read, files_);
  EXPECT_NE(r.stats.note.find("writable by others"), std::string::npos) << r.stats.note;
  auto next = run();  // the save replaced it with one of this user's, mode 0600
  EXPECT_EQ(next.stats.from_cache, files_) << next.stats.note;
}
