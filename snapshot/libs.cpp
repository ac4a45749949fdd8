#include "snapshot/libs.hpp"

#include <cctype>
#include <sstream>

namespace bp::snap {

std::optional<map_entry> parse_maps_line(const std::string& line) {
  // 7f2c1a000000-7f2c1a021000 r-xp 00000000 08:01 1234567   /usr/lib/x.so (deleted)
  std::istringstream is(line);
  std::string range, perms, offset, dev;
  std::uint64_t inode = 0;
  if (!(is >> range >> perms >> offset >> dev >> inode)) return std::nullopt;
  auto dash = range.find('-');
  if (dash == std::string::npos || perms.size() != 4) return std::nullopt;
  map_entry m;
  try {
    m.start = std::stoull(range.substr(0, dash), nullptr, 16);
    m.end = std::stoull(range.substr(dash + 1), nullptr, 16);
    m.offset = std::stoull(offset, nullptr, 16);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  m.perms = perms;
  m.dev = dev;
  m.inode = inode;
  std::string rest;
  std::getline(is, rest);
  auto first = rest.find_first_not_of(" \t");
  if (first != std::string::npos) m.path = rest.substr(first);
  const std::string del = " (deleted)";
  if (m.path.size() > del.size() && m.path.compare(m.path.size() - del.size(), del.size(), del) == 0) {
    m.deleted = true;
    m.path.resize(m.path.size() - del.size());
  }
  return m;
}

static std::string basename_of(const std::string& p) {
  auto s = p.rfind('/');
  return s == std::string::npos ? p : p.substr(s + 1);
}

bool is_shared_object(const std::string& path) {
  std::string b = basename_of(path);
  auto pos = b.find(".so");
  while (pos != std::string::npos) {
    std::size_t after = pos + 3;
    if (after == b.size()) return true;
    if (b[after] == '.') {
      // the rest must be a dotted numeric suffix: .so.1, .so.1.2.3
      bool ok = after + 1 < b.size();
      for (std::size_t i = after + 1; i < b.size(); ++i)
        if (!std::isdigit(static_cast<unsigned char>(b[i])) && b[i] != '.') ok = false;
      if (ok) return true;
    }
    pos = b.find(".so", pos + 1);
  }
  return false;
}

std::string version_from_filename(const std::string& path) {
  std::string b = basename_of(path);
  auto pos = b.rfind(".so");
  while (pos != std::string::npos) {
    std::size_t after = pos + 3;
    if (after == b.size()) break;
    if (b[after] == '.') {
      std::string v = b.substr(after + 1);
      bool ok = !v.empty() && std::isdigit(static_cast<unsigned char>(v[0]));
      for (char c : v)
        if (!std::isdigit(static_cast<unsigned char>(c)) && c != '.') ok = false;
      if (ok) return v;
    }
    if (pos == 0) return {};
    pos = b.rfind(".so", pos - 1);
  }
  if (pos == std::string::npos) return {};
  // libLLVM-15.so, libfoo-1.2.3.so: a dash-separated numeric tail before ".so"
  std::string stem = b.substr(0, pos);
  auto dash = stem.rfind('-');
  if (dash == std::string::npos || dash + 1 >= stem.size()) return {};
  std::string v = stem.substr(dash + 1);
  if (!std::isdigit(static_cast<unsigned char>(v[0]))) return {};
  for (char c : v)
    if (!std::isdigit(static_cast<unsigned char>(c)) && c != '.') return {};
  return v;
}

}  // namespace bp::snap
