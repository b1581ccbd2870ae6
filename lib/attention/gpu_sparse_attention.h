#pragma once
// The GPU side of planned attention: GPU planners (kernels/sparse) build the BlockMask in device memory and the
// block-sparse flash kernel consumes it, so nothing crosses to the host in the loop. Static planners (positions
// only) plan on the host and upload their small CSR once per geometry.
#include <memory>
#include <vector>

#include "attention/attention_call.h"
#include "attention/backend_registry.h"
#include "attention/block_mask.h"
#include "attention/planners.h"

namespace lf {

// What one backend keeps on the device between its GPU calls: each layer's pooled keys (reused while a chunk's
// past frames stay the same), the planner workspace and mask buffers (grown, never shrunk), a static planner's
// uploaded mask and the phase timer. Holds no CUDA types here, so the CPU build links it too.
class GpuSparseState {
 public:
  GpuSparseState();
  ~GpuSparseState();
  GpuSparseState(const GpuSparseState&) = delete;
  GpuSparseState& operator=(const GpuSparseState&) = delete;
  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// GPU time of one call's phases, from CUDA events (filled only when asked for: reading them waits for the call).
struct GpuSparseTimes {
  double planner_ms = 0;  // pooling, scores and selection (or a static mask's upload); 0 for dense calls
  double kernel_ms = 0;   // the block-sparse (or dense) attention kernel
};

// Runs `backend` (the entry of config.backend) for a GPU call. `target_sparsity` comes from the planner (CAG for lightforcing).
// host_mask (optional) receives the mask for statistics (a device-to-host copy after the kernel);
// times (optional) receives the phase times. With the op timer on (bench), the planner is reported as op class
// "sparse_planner" and the kernel as "self_attention".
Tensor gpu_planned_attention(const AttentionCall& call, const AttentionConfig& config,
                             const AttentionBackendEntry& backend, MaskPlanner& planner, GpuSparseState& state, BlockMask* host_mask = nullptr, GpuSparseTimes* times = nullptr);

// Issues the planner of a GPU call whose pooled q and new key blocks came from the RoPE pass (call.pooled) on a
// second stream, before the caller writes the chunk's keys and values into the KV cache: that plan reads q, the
// pooled blocks and the cache's past frames only, so it runs beside the copy. The following
// gpu_planned_attention for the same call joins the streams and runs the kernel on the mask. Returns false
// (and plans nothing) where the call cannot be planned ahead: dense calls, static planners, no pooled blocks.
// `timed`: mark the planner phase for GpuSparseTimes (pass the same as gpu_planned_attention's times != null).
bool gpu_plan_ahead(const AttentionCall& call, const AttentionConfig& config, const AttentionBackendEntry& backend,
                    MaskPlanner& planner, GpuSparseState& state, bool timed);

// Kept dense-softmax mass per head of the mask that the last gpu_planned_attention call with `state` used,
// averaged over the query rows 0, row_stride, 2 row_stride, ... (1 = every row), computed on the GPU where q/k
// are (fp32 scores; the CPU reference accumulates in double). Dense calls have recall 1.
std::vector<double> gpu_attention_recall(const AttentionCall& call, const AttentionConfig& config, MaskPlanner& planner,
                                         GpuSparseState& state, int64_t row_stride);

}  // namespace lf
