#pragma once
// Programmatic dependent launch (Hopper, sm_90) for the planner's chain of small kernels: pool -> scores ->
// select. Why: each is a few microseconds of work, and with plain launches every boundary also pays the next
// grid's launch and ramp after the previous one has drained. With the launch attribute the next grid is set up
// while the previous one runs; its CTAs block in wait_for_previous_grid() until that grid has completed and its
// writes are visible, so the results are those of plain launches.
// Rule for every kernel launched through launch_dependent: call wait_for_previous_grid() before its first global
// read or write (without it the grid would run unordered against its predecessor).
#include <cuda_runtime.h>

#include <atomic>
#include <utility>

namespace lf::gpu::sparse::detail {

// Whether the cached planner's kernels are launched as programmatic dependents (planner_paths in
// sparse_select_detail.h; LF_SPARSE_PDL=0 turns it off).
bool dependent_launch_enabled();

__device__ __forceinline__ void wait_for_previous_grid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Lets the next grid in the stream be launched (its CTAs still wait for this grid's completion). Called where a
// CTA has issued its main work, so the dependent's launch overlaps this grid's tail.
__device__ __forceinline__ void allow_next_grid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Launches `kernel` as a programmatic dependent of the previous work in `stream` when enabled; a plain launch
// otherwise, or when the attribute is refused here (older device or driver: remembered, never retried).
template <class... Params, class... Args>
void launch_dependent(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream,
                      Args&&... args) {
  static std::atomic<bool> refused{false};
  if (dependent_launch_enabled() && !refused.load(std::memory_order_relaxed)) {
    cudaLaunchConfig_t config{};
    config.gridDim = grid;
    config.blockDim = block;
    config.dynamicSmemBytes = shared_bytes;
    config.stream = stream;
    cudaLaunchAttribute attribute{};
    attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attribute.val.programmaticStreamSerializationAllowed = 1;
    config.attrs = &attribute;
    config.numAttrs = 1;
    if (cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...) == cudaSuccess) return;
    (void)cudaGetLastError();  // clears the refusal; the plain launch below reports a real configuration error
    refused.store(true, std::memory_order_relaxed);
  }
  kernel<<<grid, block, shared_bytes, stream>>>(std::forward<Args>(args)...);
}

}  // namespace lf::gpu::sparse::detail
