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

// Registers the caching allocator with lf::Tensor (idempotent) and selects device 0.
void initialize_device_memory();
AllocatorStats allocator_stats();
void reset_peak_memory();

}  // namespace lf::gpu
