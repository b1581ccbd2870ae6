#pragma once
// The GPU planners' one door into the kernels (kernels/sparse/sparse_planner.h), in plain C++ types: the engine's
// cached planner of a registry rule, its buffer sizes, the refresh pass's store of given key blocks and the
// measurement-only skip switch. gpu_sparse_attention.cpp keeps the policy (which frames are pooled
// again, which buffers are reused); this file only translates. CUDA builds only.
#include <cstddef>
#include <cstdint>

#include "attention/backend_registry.h"
#include "core/block_geometry.h"

namespace lf {

// One planning call: the block geometry (key_frames may be a capacity, for buffer sizes) and the q/k shape.
struct GpuPlanShape {
  BlockGeometry geometry;
  int64_t heads = 0, head_dim = 0;
};
size_t gpu_planner_workspace_bytes(const GpuPlanShape& shape);
int64_t gpu_planner_max_selected(const GpuPlanShape& shape);  // key_indices capacity

// What one cached plan reads and where it writes (kernels/sparse/sparse_planner.h CachedPlanInputs: the same
// fields and promises). q / k: bf16 rows of heads x head_dim.
struct GpuPlanRequest {
  GpuPlanShape shape;
  const void* q = nullptr;
  const void* k = nullptr;
  int64_t first_new_frame = 0;
  float* pooled_keys = nullptr;
  int64_t pooled_keys_stride = 0;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  const float* given_pooled_queries = nullptr;
  const float* given_key_blocks = nullptr;
  int64_t given_first_frame = 0;
  int32_t* row_offsets = nullptr;
  int32_t* key_indices = nullptr;
};

// The rule's settings for one call. HSA applies only while past frames > keep_frames (else top-k).
struct GpuPlanSettings {
  int64_t topk = 0;
  double scale = 0, top_p = 0;
  int64_t chunk_frames = 0, keep_frames = 0, keep_sink = 0, keep_near = 0;
};

// Issues the cached planner of `rule` on `stream` (asynchronous).
void gpu_plan(GpuPlanRule rule, const GpuPlanRequest& request, const GpuPlanSettings& settings, void* stream);
// Copies the given key blocks into the pooled-key cache (a chunk's refresh pass, see sparse_planner.h).
void gpu_store_given_key_blocks(const GpuPlanRequest& request, void* stream);
// LF_SPARSE_SKIP_PLANNER (speed switches, measurement only).
bool gpu_skip_planner_for_measurement();

}  // namespace lf
