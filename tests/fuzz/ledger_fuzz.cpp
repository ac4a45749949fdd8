// libFuzzer target: the ledger (analysis/ledger.cpp), issue 26 item 8. The first byte picks how
// the rest is used:
//   0: the rest is a whole results TSV: reading it must keep every row it can (a bad row is a
//      warning naming its line), never crash, and throw only for a missing header; the campaign
//      over what was read must keep its rules (keep or discard only against a row of the same
//      non-empty group, at most one baseline), and render.
//   1: the rest, after a ledger header, is whatever a torn write, an editor or an older version
//      left; up to the first NUL it is the tail, after it a label and config path to append: the
//      appended row must read back with exactly that label and path, and the bytes that were there
//      must be untouched.
//   2: the rest is one field: unescape(escape(x)) == x, and escape(x) holds no tab, CR or newline.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>

#include "analysis/ledger.hpp"

namespace {

using json = nlohmann::json;
using namespace bp::bench;

const std::string& path() {
  static const std::string p = "/tmp/bp_ledger_fuzz_" + std::to_string(::getpid()) + ".tsv";
  return p;
}

void write(const std::string& bytes) {
  std::ofstream f(path(), std::ios::binary | std::ios::trunc);
  f << bytes;
}

std::string read() {
  std::ifstream in(path(), std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

void check_campaign(const std::vector<ledger_row>& rows) {
  auto c = campaign(rows, 0.01);
  if (c.size() != rows.size()) __builtin_trap();
  int baselines = 0;
  for (const auto& e : c) {
    if (!e.row.decision.empty()) continue;  // a try's own decision
    if (e.verdict == "keep" && !e.against_line) ++baselines;
    if ((e.verdict == "discard" || e.verdict == "within noise") && !e.against_line) __builtin_trap();
    if (e.against_line && e.verdict != kRemeasured) {  // a re-measurement names the best it re-measured
      const ledger_row* a = nullptr;
      for (const auto& r : rows)
        if (r.line == *e.against_line) a = &r;
      if (!a || a->group.empty() || a->group != e.row.group) __builtin_trap();
    }
  }
  if (baselines > 1) __builtin_trap();
  (void)render_campaign(c, 0.01);
  (void)to_json(c).dump();
}

const char* kHeader =
    "time\tdescription\tengine\tsnapshot_id\tvenv_merkle\trequests\terrors\tmedian_output_tps\t"
    "median_ttft_ms\tmedian_itl_ms\tp99_e2e_ms\ttotal_output_tps\tvalidity\tresult\tconfig\treasons\t"
    "label\trepo_commit\trepo_dirty\tworkload_sha256\tload_shape\ttrials\theadline_metric\theadline\t"
    "headline_ci_low\theadline_ci_high\tgroup\tdecision\tratio\tratio_ci_low\tratio_ci_high\trounds\t"
    "engine_seconds\tprocedure\tbaseline";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0: {
      write(rest);
      std::vector<std::string> warnings;
      std::vector<ledger_row> rows;
      try {
        rows = load_ledger(path(), &warnings);
      } catch (const std::runtime_error& e) {
        std::string m = e.what();
        if (m.rfind(path(), 0) != 0) __builtin_trap();  // every error names the file
        if (m.find("no header") == std::string::npos && m.find(":1: not a bench-proxy results TSV") == std::string::npos)
          __builtin_trap();
        return 0;
      }
      for (const auto& w : warnings)
        if (w.rfind(path() + ":", 0) != 0) __builtin_trap();
      check_campaign(rows);
      break;
    }
    case 1: {
      auto nul = rest.find('\0');
      std::string tail = rest.substr(0, nul);
      std::string text = nul == std::string::npos ? std::string("label") : rest.substr(nul + 1);
      std::string before = std::string(kHeader) + "\n" + tail;
      write(before);
      json r = {{"valid", true},
                {"label", text},
                {"config_path", text},
                {"interleaved_with", text},
                {"summary", {{"headline", {{"metric", "output_tps"}, {"value", 1.5}}}}}};
      append_tsv(path(), r, "/r");
      std::string after = read();
      if (after.compare(0, before.size(), before) != 0) __builtin_trap();
      std::vector<std::string> warnings;
      auto rows = load_ledger(path(), &warnings);
      if (rows.empty() || rows.back().label != text || rows.back().config != text || rows.back().group != text ||
          !rows.back().value || *rows.back().value != 1.5)
        __builtin_trap();
      check_campaign(rows);
      break;
    }
    default: {
      std::string e = escape_field(rest);
      if (e.find_first_of("\t\r\n") != std::string::npos) __builtin_trap();
      if (unescape_field(e) != rest) __builtin_trap();
    }
  }
  return 0;
}
