#include "attention/gpu_sparse_attention.h"

#include "attention/cag_schedule.h"
#include "core/error.h"
#include "ops/ops.h"
#if LF_HAVE_CUDA
#include "attention/flash_attention.h"
#include "sparse/block_sparse_attention.h"
#include "runtime/op_timer.h"
#include "sparse/sparse_planner.h"
#endif

namespace lf {

#if LF_HAVE_CUDA
namespace {

Tensor int_tensor_on_gpu(const std::vector<int32_t>& values) {
  Tensor host = Tensor::empty({int64_t(values.size())}, DType::I32);
  std::copy(values.begin(), values.end(), static_cast<int32_t*>(host.raw()));
  return host.to(Device::CUDA);
}

std::vector<int32_t> to_host_ints(const Tensor& device, int64_t count) {
  const Tensor host = device.to(Device::CPU);
  const auto* data = static_cast<const int32_t*>(host.raw());
  return std::vector<int32_t>(data, data + count);
}

}  // namespace

Tensor gpu_planned_attention(const AttentionCall& call, const AttentionConfig& config, MaskPlanner& planner,
                             BlockMask* host_mask) {
  const Tensor& q = *call.q;
  const BlockGeometry geometry = geometry_for(call, config);
  const int64_t heads = q.dim(1), rows = heads * geometry.query_blocks();
  const int64_t past = call.frames_visible - call.frames_in_chunk;
  const bool dense = planner.plans_dense(call);
  if (dense) {
    if (host_mask) *host_mask = BlockMask::dense(heads, geometry);
    return ops::attention(q, *call.k, *call.v, call.scale);
  }
  // Planning and the sparse kernel are timed together as self-attention GPU time (bench's op classes).
  struct Timed {
    int slot = gpu::op_timer_begin();
    ~Timed() { gpu::op_timer_end(slot, "self_attention"); }
  } timed;
  Tensor row_offsets, key_indices;
  if (config.backend == "sliding-tile" || config.backend == "radial") {
    BlockMask mask = planner.plan(call);
    row_offsets = int_tensor_on_gpu(mask.row_offsets);
    key_indices = int_tensor_on_gpu(mask.key_indices);
    if (host_mask) *host_mask = std::move(mask);
  } else {
    gpu::sparse::PlannerGeometry pg;
    pg.heads = int(heads);
    pg.head_dim = int(q.dim(2));
    pg.query_tokens = int(q.dim(0));
    pg.query_block = int(config.query_block);
    pg.key_frames = int(call.frames_visible);
    pg.tokens_per_frame = int(call.tokens_per_frame);
    pg.key_block = int(config.key_block);
    const size_t workspace_bytes = gpu::sparse::planner_workspace_bytes(pg);
    Tensor workspace = Tensor::empty({int64_t(workspace_bytes)}, DType::U8, Device::CUDA);
    row_offsets = Tensor::empty({rows + 1}, DType::I32, Device::CUDA);
    key_indices = Tensor::empty({gpu::sparse::planner_max_selected(pg)}, DType::I32, Device::CUDA);
    gpu::sparse::MaskOutput out{static_cast<int*>(row_offsets.raw()), static_cast<int*>(key_indices.raw()), nullptr};
    const int64_t row_stride = heads * q.dim(2);
    const int topk = int(std::max<int64_t>(1, topk_for(planner.target_sparsity(call.chunk), geometry.key_blocks())));
    if (config.backend == "block-topp") {
      gpu::sparse::plan_topp(q.raw(), row_stride, call.k->raw(), row_stride, pg, float(call.scale),
                             float(config.top_p), workspace.raw(), workspace_bytes, out);
    } else if (config.backend == "lightforcing" && past > config.keep_frames) {
      gpu::sparse::HsaParams hsa;
      hsa.chunk_frames = int(call.frames_in_chunk);
      hsa.keep_frames = int(config.keep_frames);
      hsa.keep_sink = int(config.keep_sink);
      hsa.keep_near = int(config.keep_near);
      hsa.topk = topk;
      gpu::sparse::plan_hsa(q.raw(), row_stride, call.k->raw(), row_stride, pg, hsa, workspace.raw(), workspace_bytes,
                            out);
    } else {  // lightforcing 1-stage and block-topk
      gpu::sparse::plan_topk(q.raw(), row_stride, call.k->raw(), row_stride, pg, topk, workspace.raw(),
                             workspace_bytes, out);
    }
    if (host_mask) {
      host_mask->heads = heads;
      host_mask->geometry = geometry;
      host_mask->row_offsets = to_host_ints(row_offsets, rows + 1);
      host_mask->key_indices = to_host_ints(key_indices, host_mask->row_offsets.back());
    }
  }
  Tensor output = Tensor::empty(q.shape(), DType::BF16, Device::CUDA);
  gpu::FlashAttentionParams params;
  params.q = q.raw();
  params.k = call.k->raw();
  params.v = call.v->raw();
  params.out = output.raw();
  params.q_row_stride = params.out_row_stride = heads * q.dim(2);
  params.k_row_stride = params.v_row_stride = heads * q.dim(2);
  params.lq = int(q.dim(0));
  params.lk = int(call.k->dim(0));
  params.heads = int(heads);
  params.head_dim = int(q.dim(2));
  params.scale = float(call.scale);
  gpu::BlockSparseLayout layout;
  layout.row_offsets = static_cast<const int*>(row_offsets.raw());
  layout.key_indices = static_cast<const int*>(key_indices.raw());
  layout.query_block = int(config.query_block);
  layout.key_block = int(config.key_block);
  layout.tokens_per_frame = int(call.tokens_per_frame);
  layout.heads = int(heads);
  layout.query_blocks = int(geometry.query_blocks());
  gpu::flash_attention_block_sparse_forward(params, layout);
  return output;
}

#else

Tensor gpu_planned_attention(const AttentionCall&, const AttentionConfig&, MaskPlanner&, BlockMask*) {
  fail("GPU attention in a build without CUDA");
}

#endif

}  // namespace lf
