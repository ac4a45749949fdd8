// bench-proxy meta diff|show
#include <fstream>
#include <iostream>
#include <sstream>

#include "cmd/cli_common.hpp"
#include "cmd/commands.hpp"
#include "net/client/http_client.hpp"
#include "snapshot/diff.hpp"
#include "base/files.hpp"
#include "base/numbers.hpp"
#include "base/sha256.hpp"

#include <signal.h>

namespace bp::cli {

namespace {

const char* kMetaUsage = R"(usage: bench-proxy meta diff A B [--json]
       bench-proxy meta show A
       bench-proxy meta summary A

A and B are /meta snapshots: files (e.g. a run's meta.json) or URLs of running proxies
(http://HOST:PORT, /meta is added when no path is given).

diff   what differs, grouped by section: argv and env per process, engine version, library
       versions and hashes, venv files (with the merkle roots), inputs, host tunables, GPUs.
       Instance facts (PIDs, ports, timestamps, durations) are not compared.
       Exit status: 0 equal, 1 different, 2 error.
show     print the snapshot, indented
summary  a few lines: config, engine, argv, processes, warmup, libraries, venv, GPUs, host

A file must be a regular file (or - for standard input); nothing larger than --max-bytes is read.
  --max-bytes N   the largest snapshot read from a file or URL (default 268435456 = 256 MiB)
  --timeout S     per URL: connect, send and the whole response within S seconds (default 30)
)";

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
  return base::read_file_limited(src, g_max_bytes);
}

nlohmann::json parse_snapshot(const std::string& src, const std::string& text) {
  try {
    auto j = nlohmann::json::parse(text);
    if (!j.is_object() || !j.contains("schema_version"))
      throw std::runtime_error("not a bench-proxy snapshot (no schema_version)");
    return j;
  } catch (const nlohmann::json::parse_error& e) {
    throw std::runtime_error(src + ": not JSON: " + e.what());
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(src + ": " + e.what());
  }
}

nlohmann::json load_snapshot(const std::string& src) { return parse_snapshot(src, read_snapshot_bytes(src)); }

}  // namespace

int cmd_meta(const std::vector<std::string>& argv) {
  // Nothing here needs a graceful teardown: Ctrl-C ends a slow read at once.
  sigset_t stop = stop_signals();
  pthread_sigmask(SIG_UNBLOCK, &stop, nullptr);
  args a(argv, {"--max-bytes", "--timeout"}, {"--json", "--help", "-h"});
  if (a.flag("--help") || a.flag("-h")) {
    std::cout << kMetaUsage;
    return 0;
  }
  const auto& pos = a.positionals();
  if (pos.empty()) throw usage_error("meta needs a subcommand: diff or show");
  g_max_bytes = static_cast<std::uint64_t>(a.integer("--max-bytes", static_cast<long>(g_max_bytes), 1024, 1l << 40));
  g_timeout_s = a.number("--timeout", 30, 0.1, base::max_duration_s);
  try {
    if (pos[0] == "diff") {
      if (pos.size() != 3) throw usage_error("meta diff needs exactly two snapshots A and B");
      auto d = snap::diff_snapshots(load_snapshot(pos[1]), load_snapshot(pos[2]));
      if (a.flag("--json"))
        std::cout << d.dump(2) << "\n";
      else
        std::cout << snap::render_diff(d);
      return d["equal"].get<bool>() ? 0 : 1;
    }
    if (pos[0] == "summary") {
      if (pos.size() != 2) throw usage_error("meta summary needs one snapshot");
      std::string bytes = read_snapshot_bytes(pos[1]);
      std::cout << snap::render_summary(parse_snapshot(pos[1], bytes), sha256_hex(bytes));
      return 0;
    }
    if (pos[0] == "show") {
      if (pos.size() != 2) throw usage_error("meta show needs one snapshot");
      std::cout << load_snapshot(pos[1]).dump(2) << "\n";
      return 0;
    }
  } catch (const usage_error&) {
    throw;
  } catch (const std::exception& e) {
    std::cerr << "bench-proxy meta " << pos[0] << ": " << e.what() << "\n";
    return 2;
  }
  throw usage_error("unknown meta subcommand '" + pos[0] + "' (diff or show)");
}

}  // namespace bp::cli
