// The GPU planners' door into kernels/sparse (gpu_planners.h): plain types in, the planner API's out.
#include "attention/gpu_planners.h"

#if LF_HAVE_CUDA
#include "core/error.h"
#include "kernels/sparse/sparse_planner.h"
#include "kernels/speed_switches.h"

namespace lf {

namespace {

gpu::sparse::PlannerGeometry planner_geometry(const GpuPlanShape& shape) {
  gpu::sparse::PlannerGeometry g;
  g.heads = int(shape.heads);
  g.head_dim = int(shape.head_dim);
  g.query_tokens = int(shape.geometry.query_tokens);
  g.query_block = int(shape.geometry.query_block);
  g.key_frames = int(shape.geometry.key_frames);
  g.tokens_per_frame = int(shape.geometry.tokens_per_frame);
  g.key_block = int(shape.geometry.key_block);
  return g;
}

gpu::sparse::CachedPlanInputs cached_inputs(const GpuPlanRequest& r) {
  gpu::sparse::CachedPlanInputs in;
  in.q = r.q;
  in.q_row_stride = r.shape.heads * r.shape.head_dim;
  in.k = r.k;
  in.k_row_stride = r.shape.heads * r.shape.head_dim;
  in.geometry = planner_geometry(r.shape);
  in.first_new_frame = int(r.first_new_frame);
  in.pooled_keys = r.pooled_keys;
  in.pooled_keys_stride = int(r.pooled_keys_stride);
  in.workspace = r.workspace;
  in.workspace_bytes = r.workspace_bytes;
  in.given_pooled_queries = r.given_pooled_queries;
  in.given_key_blocks = r.given_key_blocks;
  in.given_first_frame = int(r.given_first_frame);
  return in;
}

}  // namespace

size_t gpu_planner_workspace_bytes(const GpuPlanShape& shape) {
  return gpu::sparse::cached_planner_workspace_bytes(planner_geometry(shape));
}

int64_t gpu_planner_max_selected(const GpuPlanShape& shape) {
  return gpu::sparse::planner_max_selected(planner_geometry(shape));
}

void gpu_plan(GpuPlanRule rule, const GpuPlanRequest& request, const GpuPlanSettings& settings, void* stream) {
  const gpu::sparse::CachedPlanInputs in = cached_inputs(request);
  const gpu::sparse::MaskOutput out{request.row_offsets, request.key_indices, nullptr};
  const int64_t past = request.shape.geometry.key_frames - settings.chunk_frames;
  switch (rule) {
    case GpuPlanRule::TopP:
      gpu::sparse::plan_topp_cached(in, float(settings.scale), float(settings.top_p), out, stream);
      return;
    case GpuPlanRule::LightForcingHsa:
      if (past > settings.keep_frames) {
        gpu::sparse::HsaParams hsa;
        hsa.chunk_frames = int(settings.chunk_frames);
        hsa.keep_frames = int(settings.keep_frames);
        hsa.keep_sink = int(settings.keep_sink);
        hsa.keep_near = int(settings.keep_near);
        hsa.topk = int(settings.topk);
        gpu::sparse::plan_hsa_cached(in, hsa, out, stream);
        return;
      }
      break;  // 1-stage: top-k
    case GpuPlanRule::TopK: break;
    case GpuPlanRule::None: fail("GPU planner: this backend plans on the host (no GPU rule)");
  }
  gpu::sparse::plan_topk_cached(in, int(settings.topk), out, stream);
}

void gpu_store_given_key_blocks(const GpuPlanRequest& request, void* stream) {
  gpu::sparse::store_given_key_blocks(cached_inputs(request), stream);
}

bool gpu_skip_planner_for_measurement() { return gpu::speed_switches().sparse_skip_planner; }

}  // namespace lf

#endif  // LF_HAVE_CUDA
