#pragma once
// CUDA error handling shared by every kernel file: a failed call becomes an lf::Error naming the operation and
// its sizes, so `generate` exits with one line ("... out of GPU memory allocating 6.0 GB for kv cache") instead of
// crashing. Host-only header (no device code).
#include <cuda_runtime.h>
#include <fmt/format.h>

#include <string>

#include "core/error.h"

namespace lf::gpu {

[[noreturn]] inline void cuda_fail(cudaError_t status, const char* call, const std::string& context) {
  if (status == cudaErrorMemoryAllocation)
    fail("out of GPU memory in {} ({}){}", call, cudaGetErrorString(status), context.empty() ? "" : ": " + context);
  fail("CUDA error in {}: {}{}", call, cudaGetErrorString(status), context.empty() ? "" : " (" + context + ")");
}

}  // namespace lf::gpu

// LF_CUDA_CHECK(cudaMemcpy(...), "kv cache copy of {} bytes", n)
#define LF_CUDA_CHECK(call, ...)                                                          \
  do {                                                                                    \
    const cudaError_t lf_status_ = (call);                                                \
    if (lf_status_ != cudaSuccess) ::lf::gpu::cuda_fail(lf_status_, #call, fmt::format(__VA_ARGS__)); \
  } while (0)

// After a kernel launch: catches bad launch configurations immediately (asynchronous faults surface at the next
// synchronising call, which is checked too).
#define LF_CUDA_LAUNCH_CHECK(...) LF_CUDA_CHECK(cudaGetLastError(), __VA_ARGS__)
