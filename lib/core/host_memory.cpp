#include "core/host_memory.h"

#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

namespace lf {

int64_t host_rss_bytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t total_pages = 0, resident_pages = 0;
  if (!(statm >> total_pages >> resident_pages)) return 0;
  return resident_pages * int64_t(sysconf(_SC_PAGESIZE));
}

int64_t host_peak_rss_bytes() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmHWM:", 0) != 0) continue;
    std::istringstream fields(line.substr(6));
    int64_t kib = 0;
    return fields >> kib ? kib * 1024 : 0;  // the kernel writes "VmHWM:  12345 kB"
  }
  return 0;
}

}  // namespace lf
