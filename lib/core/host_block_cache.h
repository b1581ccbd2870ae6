#pragma once
// Host memory for large CPU tensors, reused across chunks (docs/long-video.md). A long run allocates the same
// frame-sized buffers (decoder activations, images) every chunk; from glibc's heap they fragment it (small
// long-lived allocations land between them, in the worker threads' arenas too), so the resident set creeps up by
// tens of KiB a chunk. Blocks of at least kHostBlockMinBytes are instead kept by size when freed and handed out again,
// up to kHostBlockIdleCapBytes held idle; smaller ones go to malloc as before (lib/core/tensor.cpp chooses). Sanitizer builds bypass the cache so a
// use after free is still caught.
#include <cstddef>

namespace lf {

inline constexpr size_t kHostBlockMinBytes = size_t(64) << 10;     // smaller requests: plain aligned_alloc / free
inline constexpr size_t kHostBlockIdleCapBytes = size_t(512) << 20;  // idle blocks beyond this are freed, oldest first

void* host_block_allocate(size_t bytes);  // bytes >= kHostBlockMinBytes; 64-byte aligned; nullptr when out of memory
void host_block_release(void* block);     // a block from host_block_allocate
size_t host_block_cached_bytes();         // held idle right now (for tests and reports)

}  // namespace lf
