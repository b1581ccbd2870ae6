#pragma once
// The GPU memory behind lf::Tensor: a caching allocator. Blocks freed by tensors go to per-size free lists and are
// handed out again, so after the first chunk the chunk loop makes no cudaMalloc calls (the statistics prove it),
// and the peak is what the run really needs. Plain C++ header.
#include <cstddef>
#include <cstdint>

namespace lf::gpu {

struct AllocatorStats {
  int64_t cuda_malloc_calls = 0;  // real device allocations so far
  size_t reserved_bytes = 0;      // held from the driver (in use + cached)
  size_t in_use_bytes = 0;
  size_t peak_in_use_bytes = 0;
};

// Registers the caching allocator with lf::Tensor and selects GPU `device_index` (cudaSetDevice) for the process.
// Idempotent for the same index; the allocator's blocks belong to one device, so another index is refused.
void initialize_device_memory(int device_index = 0);
int selected_device();  // the index chosen by initialize_device_memory (0 before it)
AllocatorStats allocator_stats();
void reset_peak_memory();

}  // namespace lf::gpu
