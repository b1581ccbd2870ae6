#pragma once
// This process's host memory as the kernel counts it (Linux /proc/self), for reports that must show memory staying
// flat over a long run: the resident set now and its high-water mark. 0 where /proc is unavailable.
#include <cstdint>

namespace lf {

int64_t host_rss_bytes();       // resident set size now (/proc/self/statm, pages x page size)
int64_t host_peak_rss_bytes();  // the most it has been (VmHWM in /proc/self/status)

}  // namespace lf
