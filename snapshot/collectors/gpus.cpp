// The `gpus` collector (docs/meta-schema.md). Registered in snapshot/collectors/registry.cpp.
#include "snapshot/collect.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "snapshot/gpu.hpp"
#include "snapshot/collectors/common.hpp"

namespace fs = std::filesystem;

namespace bp::snap {

using namespace detail;

json collect_gpus(const collect_input& in) {
  if (in.nvidia_smi.empty()) return {{"available", false}, {"reason", "nvidia-smi: not found"}};
  std::string xml;
  try {
    xml = run_program({in.nvidia_smi, "-q", "-x"}, std::chrono::milliseconds(std::min(remaining_ms(in), 60000)));
  } catch (const std::exception& e) {
    return {{"available", false}, {"reason", e.what()}};
  }
  json j;
  try {
    j = summarize_nvidia_smi_xml(xml);
    j["source"] = "nvidia-smi -q -x";
  } catch (const std::exception& e) {
    // An XML this parser does not understand: fall back to the stable --query-gpu interface.
    std::string csv = run_program({in.nvidia_smi, std::string("--query-gpu=") + query_gpu_fields(), "--format=csv"},
                                  std::chrono::milliseconds(std::min(remaining_ms(in), 60000)));
    j = summarize_query_gpu_csv(csv);
    j["source"] = "nvidia-smi --query-gpu";
    j["xml_error"] = e.what();
    j["raw_csv"] = csv;
  }
  j["available"] = true;
  j["raw_xml"] = xml;
  return j;
}

}  // namespace bp::snap
