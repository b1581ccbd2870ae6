#pragma once
// This process's host memory as the kernel counts it (Linux /proc/self), for reports that must show memory staying
// flat over a long run: the resident set now and its high-water mark. 0 where /proc is unavailable.
#include <cstdint>

namespace lf {

int64_t host_rss_bytes();       // resident set size now (/proc/self/statm, pages x page size)
int64_t host_peak_rss_bytes();  // the most it has been (VmHWM in /proc/self/status)

// Pins glibc's mmap threshold at 64 KiB (the binary calls it at start-up; a no-op elsewhere). By default glibc
// raises the threshold to the size of each mmapped block freed, so after the first chunk every frame-sized buffer
// (decoder activations, images, encoder planes) comes from the heap, and the small long-lived allocations made
// between them keep the heap from shrinking: measured +90 KiB a chunk on a long MP4 run, +10 KiB with the pin
// (docs/long-video.md). Large blocks then come from mmap and go back to the system when freed.
void pin_heap_mmap_threshold();

}  // namespace lf
