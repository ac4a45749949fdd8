// bench-proxy meta diff|show
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cmd/cli.hpp"
#include "net/client/http_client.hpp"
#include "snapshot/diff.hpp"
#include "base/files.hpp"
#include "base/json_read.hpp"
#include "base/numbers.hpp"
#include "base/sha256.hpp"

#include <signal.h>

namespace bp::cli {

namespace {

const char* kMetaAbout = R"(A and B are /meta snapshots: files (e.g. a run's meta.json) or URLs of running proxies
(http://HOST:PORT, /meta is added when no path is given). A file must be a regular file (or -
for standard input); nothing larger than --max-bytes is read.)";

const char* kDiffAbout = R"(What differs, grouped by section: argv and env per process, engine version, library
versions and hashes, venv files (with the merkle roots), inputs, host tunables, GPUs.
Instance facts (PIDs, ports, timestamps, durations) are not compared.
Exit status: 0 equal, 1 different, 2 error.)";

/// The snapshot's bytes from a file or a running proxy, and its id: the sha256 of exactly those
/// bytes (a proxy also sends it as the ETag).
std::uint64_t g_max_bytes = bp::base::default_read_limit;
double g_timeout_s = 30;

std::string read_snapshot_bytes(const std::string& src) {
  if (src.rfind("http://", 0) == 0) {
    std::string url = src;
    net::url_parts u;
    std::string err;
    if (!net::parse_url(url, u, err)) throw std::runtime_error(err);
    if (u.target == "/") url += url.back() == '/' ? "meta" : "/meta";
    auto r = net::http_fetch("GET", url, "", std::chrono::milliseconds(static_cast<long>(g_timeout_s * 1000)), err,
                             g_max_bytes);
    if (!r) throw std::runtime_error(src + ": " + err);
    if (r->status != 200)
      throw std::runtime_error(src + ": HTTP " + std::to_string(r->status) + " (snapshot not published yet?): " +
                               r->body.substr(0, 300));
    return std::move(r->body);
  }
  if (src.rfind("https://", 0) == 0) throw std::runtime_error(src + ": https is not supported (use http:// or a file)");
  // A run folder (a plain serve's, a run's): its meta.json, the bytes /meta served.
  std::error_code ec;
  if (std::filesystem::is_directory(src, ec)) {
    auto meta = std::filesystem::path(src) / "meta.json";
    if (!std::filesystem::exists(meta, ec))
      throw std::runtime_error(src + ": a directory without meta.json (give a run folder, a meta.json or a URL)");
    return base::read_file_limited(meta.string(), g_max_bytes);
  }
  return base::read_file_limited(src, g_max_bytes);
}

nlohmann::json parse_snapshot(const std::string& src, const std::string& text) {
  // Nested at most base::json_file_depth deep (docs/meta-schema.md, "Limits on JSON input"):
  // the diff, the dump and the redaction recurse once per level.
  auto j = base::parse_json(text, src, base::json_file_depth);
  if (!j.is_object() || !j.contains("schema_version"))
    throw std::runtime_error(src + ": not a bench-proxy snapshot (no schema_version)");
  return j;
}

nlohmann::json load_snapshot(const std::string& src) { return parse_snapshot(src, read_snapshot_bytes(src)); }

}  // namespace

runner define_meta(CLI::App& app, const std::vector<std::string>&) {
  struct flags {
    std::string a, b;
    bool json = false;
  };
  auto f = std::make_shared<flags>();
  app.footer(kMetaAbout);
  app.require_subcommand(1);
  app.add_option("--max-bytes", g_max_bytes, "the largest snapshot read from a file or URL (default 268435456 = 256 MiB)")
      ->type_name("N")
      ->check(whole_in(1024, 1ll << 40));
  app.add_option("--timeout", g_timeout_s,
                 "per URL: connect, send and the whole response within S seconds (default 30)")
      ->type_name("S")
      ->check(finite_in(0.1, base::max_duration_s));
  auto* diff = app.add_subcommand("diff", "what differs between snapshots A and B")->fallthrough();
  diff->footer(kDiffAbout);
  diff->add_option("A", f->a, "the baseline snapshot (file, - or URL)")->required();
  diff->add_option("B", f->b, "the other snapshot")->required();
  diff->add_flag("--json", f->json, "the differences as JSON");
  auto* show = app.add_subcommand("show", "print the snapshot, indented")->fallthrough();
  show->add_option("A", f->a, "the snapshot (file, - or URL)")->required();
  auto* summary = app.add_subcommand("summary",
                                     "a few lines: config, engine, argv, processes, warmup, libraries, venv, GPUs, host")
                      ->fallthrough();
  summary->add_option("A", f->a, "the snapshot (file, - or URL)")->required();
  return [f, diff, show, summary]() -> int {
    // Nothing here needs a graceful teardown: Ctrl-C ends a slow read at once.
    sigset_t stop = stop_signals();
    pthread_sigmask(SIG_UNBLOCK, &stop, nullptr);
    const char* name = diff->parsed() ? "diff" : show->parsed() ? "show" : "summary";
    try {
      if (diff->parsed()) {
        auto d = snap::diff_snapshots(load_snapshot(f->a), load_snapshot(f->b));
        if (f->json)
          std::cout << d.dump(2) << "\n";
        else
          std::cout << snap::render_diff(d);
        return d["equal"].get<bool>() ? 0 : 1;
      }
      if (summary->parsed()) {
        std::string bytes = read_snapshot_bytes(f->a);
        std::cout << snap::render_summary(parse_snapshot(f->a, bytes), sha256_hex(bytes));
        return 0;
      }
      std::cout << load_snapshot(f->a).dump(2) << "\n";
      return 0;
    } catch (const std::exception& e) {
      std::cerr << "bench-proxy meta " << name << ": " << e.what() << "\n";
      return 2;
    }
  };
}

}  // namespace bp::cli
