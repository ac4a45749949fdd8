#include "snapshot/gpu.hpp"

#include "base/text.hpp"
#include "snapshot/collect.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <sstream>
#include <stdexcept>

namespace bp::snap {

std::string find_nvidia_smi(std::string_view path) {
  if (const char* p = std::getenv("BENCH_PROXY_NVIDIA_SMI"); p && *p) return p;
  std::stringstream ss{std::string(path)};
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    if (dir.empty()) continue;
    std::string exe = dir + "/nvidia-smi";
    struct stat st{};
    if (::stat(exe.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(exe.c_str(), X_OK) == 0) return exe;
  }
  return {};
}

std::string find_nvidia_smi() {
  const char* p = std::getenv("PATH");
  return find_nvidia_smi(p ? p : "/bin:/usr/bin");
}

std::vector<std::string> parse_gpu_names(const std::string& csv) {
  std::vector<std::string> out;
  std::stringstream ss(csv);
  std::string line;
  while (std::getline(ss, line)) {
    std::string name(base::trim(line));
    if (!name.empty()) out.push_back(std::move(name));
  }
  return out;
}

std::vector<std::string> nvidia_gpu_names(const std::string& exe, std::chrono::milliseconds timeout) {
  if (exe.empty()) return {};
  try {
    return parse_gpu_names(run_program({exe, "--query-gpu=name", "--format=csv,noheader"}, timeout));
  } catch (const std::exception&) {
    return {};  // no driver, no GPU, a hung nvidia-smi: no names, as with no nvidia-smi at all
  }
}

const xml_node* xml_node::child(const std::string& n) const {
  for (const auto& c : children)
    if (c->name == n) return c.get();
  return nullptr;
}

const xml_node* xml_node::find(const std::string& path) const {
  const xml_node* cur = this;
  std::size_t pos = 0;
  while (cur && pos <= path.size()) {
    auto slash = path.find('/', pos);
    cur = cur->child(path.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos));
    if (slash == std::string::npos) break;
    pos = slash + 1;
  }
  return cur;
}

std::string xml_node::attr(const std::string& n) const {
  for (const auto& [k, v] : attrs)
    if (k == n) return v;
  return {};
}

namespace {

std::string decode_entities(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out.push_back(s[i]);
      continue;
    }
    auto semi = s.find(';', i);
    if (semi == std::string::npos) {
      out.push_back('&');
      continue;
    }
    std::string ent = s.substr(i + 1, semi - i - 1);
    if (ent == "lt") out.push_back('<');
    else if (ent == "gt") out.push_back('>');
    else if (ent == "amp") out.push_back('&');
    else if (ent == "quot") out.push_back('"');
    else if (ent == "apos") out.push_back('\'');
    else if (!ent.empty() && ent[0] == '#') {
      long code = ent.size() > 1 && ent[1] == 'x' ? std::strtol(ent.c_str() + 2, nullptr, 16)
                                                  : std::strtol(ent.c_str() + 1, nullptr, 10);
      if (code > 0 && code < 128) out.push_back(static_cast<char>(code));
    } else {
      out += "&" + ent + ";";
    }
    i = semi;
  }
  return out;
}

std::string trim(const std::string& s) { return std::string(base::trim(s)); }

class xml_reader {
 public:
  explicit xml_reader(const std::string& t) : t_(t) {}
  std::unique_ptr<xml_node> document() {
    skip_misc();
    if (i_ >= t_.size() || t_[i_] != '<') fail("expected the root element");
    auto root = element();
    skip_misc();
    return root;
  }

 private:
  [[noreturn]] void fail(const std::string& what) {
    throw std::runtime_error("XML: " + what + " at byte " + std::to_string(i_));
  }
  void skip_ws() {
    while (i_ < t_.size() && std::isspace(static_cast<unsigned char>(t_[i_]))) ++i_;
  }
  void skip_misc() {
    for (;;) {
      skip_ws();
      if (t_.compare(i_, 4, "<!--") == 0) {
        auto e = t_.find("-->", i_);
        if (e == std::string::npos) fail("unterminated comment");
        i_ = e + 3;
      } else if (t_.compare(i_, 2, "<?") == 0) {
        auto e = t_.find("?>", i_);
        if (e == std::string::npos) fail("unterminated processing instruction");
        i_ = e + 2;
      } else if (t_.compare(i_, 2, "<!") == 0) {
        auto e = t_.find('>', i_);
        if (e == std::string::npos) fail("unterminated declaration");
        i_ = e + 1;
      } else {
        return;
      }
    }
  }
  std::string name() {
    std::size_t b = i_;
    while (i_ < t_.size() && (std::isalnum(static_cast<unsigned char>(t_[i_])) || t_[i_] == '_' || t_[i_] == '-' ||
                              t_[i_] == ':' || t_[i_] == '.'))
      ++i_;
    if (b == i_) fail("expected a name");
    return t_.substr(b, i_ - b);
  }
  std::unique_ptr<xml_node> element() {
    ++i_;  // '<'
    auto n = std::make_unique<xml_node>();
    n->name = name();
    for (;;) {
      skip_ws();
      if (i_ >= t_.size()) fail("unterminated tag <" + n->name + ">");
      if (t_[i_] == '/') {
        if (t_.compare(i_, 2, "/>") != 0) fail("bad empty tag");
        i_ += 2;
        return n;
      }
      if (t_[i_] == '>') {
        ++i_;
        break;
      }
      std::string an = name();
      skip_ws();
      if (i_ >= t_.size() || t_[i_] != '=') fail("expected '=' after attribute " + an);
      ++i_;
      skip_ws();
      char q = i_ < t_.size() ? t_[i_] : 0;
      if (q != '"' && q != '\'') fail("expected a quoted attribute value");
      auto e = t_.find(q, i_ + 1);
      if (e == std::string::npos) fail("unterminated attribute value");
      n->attrs.emplace_back(an, decode_entities(t_.substr(i_ + 1, e - i_ - 1)));
      i_ = e + 1;
    }
    std::string text;
    for (;;) {
      if (i_ >= t_.size()) fail("unterminated element <" + n->name + ">");
      if (t_[i_] == '<') {
        if (t_.compare(i_, 2, "</") == 0) {
          i_ += 2;
          std::string close = name();
          if (close != n->name) fail("</" + close + "> closes <" + n->name + ">");
          skip_ws();
          if (i_ >= t_.size() || t_[i_] != '>') fail("bad closing tag");
          ++i_;
          n->text = trim(decode_entities(text));
          return n;
        }
        if (t_.compare(i_, 4, "<!--") == 0 || t_.compare(i_, 2, "<?") == 0) {
          skip_misc();
          continue;
        }
        if (t_.compare(i_, 9, "<![CDATA[") == 0) {
          auto e = t_.find("]]>", i_);
          if (e == std::string::npos) fail("unterminated CDATA");
          text += t_.substr(i_ + 9, e - i_ - 9);
          i_ = e + 3;
          continue;
        }
        n->children.push_back(element());
      } else {
        auto e = t_.find('<', i_);
        if (e == std::string::npos) e = t_.size();
        text += t_.substr(i_, e - i_);
        i_ = e;
      }
    }
  }
  const std::string& t_;
  std::size_t i_ = 0;
};

nlohmann::json val(const xml_node* n) {
  if (!n || n->text.empty() || n->text == "N/A" || n->text == "Requested functionality has been deprecated")
    return nullptr;
  return n->text;
}

nlohmann::json first_of(const xml_node& g, std::initializer_list<const char*> paths) {
  for (const char* p : paths) {
    auto v = val(g.find(p));
    if (!v.is_null()) return v;
  }
  return nullptr;
}

}  // namespace

std::unique_ptr<xml_node> parse_xml(const std::string& text) { return xml_reader(text).document(); }

nlohmann::json summarize_nvidia_smi_xml(const std::string& xml) {
  auto root = parse_xml(xml);
  if (root->name != "nvidia_smi_log") throw std::runtime_error("not nvidia-smi XML: root is <" + root->name + ">");
  nlohmann::json out;
  out["driver_version"] = val(root->child("driver_version"));
  out["cuda_version"] = val(root->child("cuda_version"));
  if (out["cuda_version"] == "Not Found") out["cuda_version"] = nullptr;
  out["attached_gpus"] = val(root->child("attached_gpus"));
  nlohmann::json gpus = nlohmann::json::array();
  for (const auto& c : root->children) {
    if (c->name != "gpu") continue;
    const xml_node& g = *c;
    nlohmann::json j;
    j["index"] = val(g.child("minor_number"));
    j["name"] = val(g.child("product_name"));
    j["architecture"] = val(g.child("product_architecture"));
    j["uuid"] = val(g.child("uuid"));
    j["serial"] = val(g.child("serial"));
    j["pci_bus_id"] = first_of(g, {"pci/pci_bus_id"});
    if (j["pci_bus_id"].is_null() && !g.attr("id").empty()) j["pci_bus_id"] = g.attr("id");
    j["vbios_version"] = val(g.child("vbios_version"));
    j["memory_total"] = first_of(g, {"fb_memory_usage/total"});
    j["power_limit"] = first_of(g, {"gpu_power_readings/current_power_limit", "power_readings/power_limit",
                                    "gpu_power_readings/power_limit"});
    j["enforced_power_limit"] = first_of(g, {"gpu_power_readings/enforced_power_limit",
                                             "power_readings/enforced_power_limit", "gpu_power_readings/current_power_limit"});
    j["default_power_limit"] = first_of(g, {"gpu_power_readings/default_power_limit", "power_readings/default_power_limit"});
    j["max_power_limit"] = first_of(g, {"gpu_power_readings/max_power_limit", "power_readings/max_power_limit"});
    j["clocks"] = {{"graphics", val(g.find("clocks/graphics_clock"))},
                   {"sm", val(g.find("clocks/sm_clock"))},
                   {"mem", val(g.find("clocks/mem_clock"))}};
    j["max_clocks"] = {{"graphics", val(g.find("max_clocks/graphics_clock"))},
                       {"sm", val(g.find("max_clocks/sm_clock"))},
                       {"mem", val(g.find("max_clocks/mem_clock"))}};
    j["applications_clocks"] = {{"graphics", val(g.find("applications_clocks/graphics_clock"))},
                                {"mem", val(g.find("applications_clocks/mem_clock"))}};
    j["persistence_mode"] = val(g.child("persistence_mode"));
    j["mig_mode"] = first_of(g, {"mig_mode/current_mig"});
    j["ecc_mode"] = first_of(g, {"ecc_mode/current_ecc"});
    j["compute_mode"] = val(g.child("compute_mode"));
    j["performance_state"] = first_of(g, {"performance_state", "gpu_power_readings/power_state", "power_readings/power_state"});
    nlohmann::json migs = nlohmann::json::array();
    if (const xml_node* md = g.child("mig_devices"))
      for (const auto& m : md->children)
        if (m->name == "mig_device")
          migs.push_back({{"index", val(m->child("index"))},
                          {"gpu_instance_id", val(m->child("gpu_instance_id"))},
                          {"compute_instance_id", val(m->child("compute_instance_id"))},
                          {"multiprocessor_count", val(m->find("device_attributes/shared/multiprocessor_count"))},
                          {"memory_total", val(m->find("fb_memory_usage/total"))}});
    j["mig_devices"] = migs;
    gpus.push_back(std::move(j));
  }
  out["gpus"] = std::move(gpus);
  return out;
}

namespace {

std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  bool q = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (q) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        cur.push_back('"');
        ++i;
      } else if (c == '"') {
        q = false;
      } else {
        cur.push_back(c);
      }
    } else if (c == '"') {
      q = true;
    } else if (c == ',') {
      out.push_back(trim(cur));
      cur.clear();
    } else if (c != '\r') {
      cur.push_back(c);
    }
  }
  out.push_back(trim(cur));
  return out;
}

}  // namespace

nlohmann::json parse_query_gpu_csv(const std::string& csv) {
  std::vector<std::string> lines;
  std::size_t pos = 0;
  while (pos < csv.size()) {
    auto nl = csv.find('\n', pos);
    std::string l = csv.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    if (!trim(l).empty()) lines.push_back(l);
    if (nl == std::string::npos) break;
    pos = nl + 1;
  }
  if (lines.empty()) throw std::runtime_error("empty query-gpu output");
  auto header = split_csv_line(lines[0]);
  for (auto& h : header) {
    auto br = h.find(" [");
    if (br != std::string::npos) h = h.substr(0, br);
  }
  nlohmann::json rows = nlohmann::json::array();
  for (std::size_t i = 1; i < lines.size(); ++i) {
    auto cells = split_csv_line(lines[i]);
    if (cells.size() != header.size())
      throw std::runtime_error("query-gpu row " + std::to_string(i) + " has " + std::to_string(cells.size()) +
                               " fields, the header " + std::to_string(header.size()));
    nlohmann::json row = nlohmann::json::object();
    for (std::size_t c = 0; c < header.size(); ++c) {
      const std::string& v = cells[c];
      bool na = v.empty() || v == "[N/A]" || v == "N/A" || v.find("deprecated") != std::string::npos ||
                v == "[Not Supported]";
      row[header[c]] = na ? nlohmann::json(nullptr) : nlohmann::json(v);
    }
    rows.push_back(row);
  }
  return rows;
}

nlohmann::json summarize_query_gpu_csv(const std::string& csv) {
  auto rows = parse_query_gpu_csv(csv);
  nlohmann::json out;
  nlohmann::json gpus = nlohmann::json::array();
  auto get = [](const nlohmann::json& r, const char* k) { return r.contains(k) ? r[k] : nlohmann::json(nullptr); };
  for (const auto& r : rows) {
    if (out.is_null() || !out.contains("driver_version")) out["driver_version"] = get(r, "driver_version");
    nlohmann::json g;
    g["index"] = get(r, "index");
    g["name"] = get(r, "name");
    g["uuid"] = get(r, "uuid");
    g["serial"] = get(r, "serial");
    g["pci_bus_id"] = get(r, "pci.bus_id");
    g["vbios_version"] = get(r, "vbios_version");
    g["memory_total"] = get(r, "memory.total");
    g["power_limit"] = get(r, "power.limit");
    g["enforced_power_limit"] = get(r, "enforced.power.limit");
    g["default_power_limit"] = get(r, "power.default_limit");
    g["max_power_limit"] = get(r, "power.max_limit");
    g["clocks"] = {{"graphics", get(r, "clocks.gr")}, {"sm", get(r, "clocks.sm")}, {"mem", get(r, "clocks.mem")}};
    g["max_clocks"] = {{"graphics", get(r, "clocks.max.gr")}, {"sm", get(r, "clocks.max.sm")}, {"mem", get(r, "clocks.max.mem")}};
    g["applications_clocks"] = {{"graphics", get(r, "clocks.applications.graphics")},
                                {"mem", get(r, "clocks.applications.memory")}};
    g["persistence_mode"] = get(r, "persistence_mode");
    g["mig_mode"] = get(r, "mig.mode.current");
    g["ecc_mode"] = get(r, "ecc.mode.current");
    g["compute_mode"] = get(r, "compute_mode");
    g["performance_state"] = get(r, "pstate");
    gpus.push_back(g);
  }
  out["cuda_version"] = nullptr;  // not a query-gpu field
  out["gpus"] = gpus;
  return out;
}

const char* query_gpu_fields() {
  return "index,name,uuid,serial,pci.bus_id,vbios_version,driver_version,memory.total,power.limit,"
         "enforced.power.limit,power.default_limit,power.max_limit,clocks.gr,clocks.sm,clocks.mem,clocks.max.gr,"
         "clocks.max.sm,clocks.max.mem,clocks.applications.graphics,clocks.applications.memory,persistence_mode,"
         "mig.mode.current,ecc.mode.current,compute_mode,pstate";
}

}  // namespace bp::snap
