#pragma once
// GPU mask planners: mean pooling, pooled block scores and the selection rules of light-forcing.md §3.2 (1-stage
// top-k, HSA 2-stage) and of the top-p baselines (SpargeAttn / XAttention style), producing lf::BlockMask's CSR
// (lib/attention/block_mask.h) directly on the device for flash_attention_block_sparse_forward.
// Host-side API with plain C++ types: g++-compiled code includes this without CUDA headers. Every pointer is a
// device pointer; every function launches asynchronously on `stream` (a cudaStream_t; null = legacy default) and
// throws lf::Error naming the value for an unsupported argument.
//
// Semantics (the CPU planners in lib/attention/ follow the same definitions):
//   pooled query  [h, qb, :] = mean of q rows [qb * query_block, min(+query_block, query_tokens)), fp32
//   pooled key    [h, b, :]  = mean of the keys of frame-aligned key block b (core/block_geometry.h key_span)
//   pooled frame  [h, f, :]  = mean of frame f's keys
//   score         [h, qb, j] = <pooled query, pooled key j>  (raw dot product: no scale, no softmax), fp32
//   top-k   row keeps the topk highest scores, ties toward the lower block index; indices ascending
//   HSA     F = key_frames, F_past = F - chunk_frames; sink [0, keep_sink), middle [keep_sink, F_past - keep_near),
//           near [F_past - keep_near, F_past), current [F_past, F). Per row: the keep_frames - keep_sink - keep_near
//           middle frames with the highest <pooled query, pooled frame> (ties: lower frame; all middle frames when
//           there are fewer); eligible blocks = the blocks of sink, near, selected middle and current frames; then
//           top-k over the eligible blocks as above. topk must not exceed the eligible count (checked on the host:
//           it is the same for every row).
//   top-p   probabilities = softmax(scores * scale) over the row; keep the smallest set of highest-scoring blocks
//           (ties: lower index first) whose probability mass is >= p; always >= 1 block; indices ascending.
// Rows are r = head * query_blocks + query_block. Row offsets are written by the selectors (top-k/HSA: r * topk).
#include <cstddef>
#include <cstdint>

#include "core/block_geometry.h"
#include "kernels/ops/gpu_ops.h"

namespace lf::gpu::sparse {

// Shapes of one planning call: lf::BlockGeometry's rules (core/block_geometry.h) in int, plus heads and
// head_dim. query_block: any positive value here (the attention kernels support 64 and 128); k has
// key_frames * tokens_per_frame rows.
struct PlannerGeometry : BasicBlockGeometry<int> {
  int heads = 0;
  int head_dim = 0;  // multiple of 8, at most 256

  LF_HOST_DEVICE int rows() const { return heads * query_blocks(); }
};

// The most key blocks a row may have for the selectors (their per-row sort lives in shared memory).
constexpr int kMaxKeyBlocksPerRow = 4096;

// Where a selector writes its CSR mask. row_offsets: rows + 1 ints; key_indices: up to rows * key_blocks ints
// (top-k / HSA: exactly rows * topk); selected_scores: optional (null = not written), same indexing as
// key_indices, the pooled score of each selected block (lf::BlockMask::scores).
struct MaskOutput {
  int* row_offsets = nullptr;
  int* key_indices = nullptr;
  float* selected_scores = nullptr;
};

struct HsaParams {
  int chunk_frames = 3;  // frames of the current chunk (the last chunk_frames of the keys)
  int keep_frames = 6;
  int keep_sink = 1;
  int keep_near = 2;
  int topk = 0;  // int((1 - sparsity) * key_blocks), computed by the caller
};

// ---- building blocks ------------------------------------------------------------------------------------------
// q: bf16 [query_tokens, heads, head_dim], row stride in elements (multiple of 8, 16-byte aligned base).
// pooled_queries: [heads, query_blocks, head_dim] fp32.
void pool_queries(const void* q, int64_t q_row_stride, const PlannerGeometry& geometry, float* pooled_queries,
                  void* stream = nullptr);

// k: bf16 [key_tokens, heads, head_dim]. pooled_keys: [heads, key_blocks, head_dim]; pooled_frame_keys (optional,
// null = skipped): [heads, key_frames, head_dim].
void pool_keys(const void* k, int64_t k_row_stride, const PlannerGeometry& geometry, float* pooled_keys,
               float* pooled_frame_keys, void* stream = nullptr);

// scores[h, qb, j] = <queries[h, qb, :], keys[h, j, :]> for j < key_count (key blocks or frames).
void block_scores(const float* pooled_queries, const float* pooled_keys, int heads, int query_blocks, int key_count,
                  int head_dim, float* scores, void* stream = nullptr);

// scores: [rows, key_blocks]. 0 <= topk <= key_blocks.
void select_topk(const float* scores, int rows, int key_blocks, int topk, const MaskOutput& out,
                 void* stream = nullptr);

// Eligible blocks per row under HSA (the same for every row); select_hsa refuses topk above it.
int hsa_eligible_blocks(const PlannerGeometry& geometry, const HsaParams& hsa);

// block_scores: [rows, key_blocks]; frame_scores: [rows, key_frames] (block_scores of the pooled frame keys).
void select_hsa(const float* block_scores, const float* frame_scores, const PlannerGeometry& geometry,
                const HsaParams& hsa, const MaskOutput& out, void* stream = nullptr);

// 0 < p <= 1, scale finite and > 0 (usually 1/sqrt(head_dim)). Needs select_topp_workspace_bytes of scratch.
size_t select_topp_workspace_bytes(int rows, int key_blocks);
void select_topp(const float* scores, int rows, int key_blocks, float scale, float p, const MaskOutput& out,
                 void* workspace, size_t workspace_bytes, void* stream = nullptr);

// ---- whole planners with one workspace ------------------------------------------------------------------------
// The workspace holds the pooled blocks, the scores and the top-p scratch; allocate planner_workspace_bytes once
// for the largest geometry (the sizes grow with every dimension). planner_buffers shows where each part lives, for
// callers that want the pooled data or the scores (heatmaps) after a plan.
struct PlannerBuffers {
  float* pooled_queries;     // [heads, query_blocks, head_dim]
  float* pooled_keys;        // [heads, key_blocks, head_dim]
  float* pooled_frame_keys;  // [heads, key_frames, head_dim]
  float* scores;             // [rows, key_blocks]
  float* frame_scores;       // [rows, key_frames]
  void* topp_scratch;
  size_t topp_scratch_bytes;
};
size_t planner_workspace_bytes(const PlannerGeometry& geometry);
PlannerBuffers planner_buffers(void* workspace, const PlannerGeometry& geometry);
// Capacity key_indices / selected_scores need for any selector: rows * key_blocks.
int64_t planner_max_selected(const PlannerGeometry& geometry);

void plan_topk(const void* q, int64_t q_row_stride, const void* k, int64_t k_row_stride,
               const PlannerGeometry& geometry, int topk, void* workspace, size_t workspace_bytes,
               const MaskOutput& out, void* stream = nullptr);
void plan_hsa(const void* q, int64_t q_row_stride, const void* k, int64_t k_row_stride, const PlannerGeometry& geometry,
              const HsaParams& hsa, void* workspace, size_t workspace_bytes, const MaskOutput& out,
              void* stream = nullptr);
void plan_topp(const void* q, int64_t q_row_stride, const void* k, int64_t k_row_stride,
               const PlannerGeometry& geometry, float scale, float p, void* workspace, size_t workspace_bytes,
               const MaskOutput& out, void* stream = nullptr);

// ---- incremental planning with a per-layer pooled-key cache ---------------------------------------------------
// Why: in the chunk loop a layer's past frames are the same in every call of a chunk (its denoising steps and
// its refresh pass rewrite only the chunk's own frames), and re-pooling all of Lk each call streamed up to
// 100 MB (Lk 32760) per call. A caller keeps the pooled keys of each layer in `pooled_keys` and passes the first
// frame whose keys may have changed; only the query blocks and the key blocks from that frame on are pooled.
// The whole plan is three launches (HSA four, top-p five): pool (queries + new key blocks), [HSA: frame keys from
// the pooled blocks, into the workspace], scores (HSA's frame scores in the same launch), select; on Hopper they
// are programmatic dependent launches (each grid is set up while the previous one runs). No host
// synchronisation, no host round trip. The arithmetic is that of the building blocks above (the same pooled
// values, frame keys, scores and selection), so the mask equals plan_topk / plan_hsa / plan_topp bit for bit.
struct CachedPlanInputs {
  const void* q = nullptr;  // bf16 [query_tokens, heads, head_dim]
  int64_t q_row_stride = 0;
  const void* k = nullptr;  // bf16 [key_tokens, heads, head_dim]
  int64_t k_row_stride = 0;
  PlannerGeometry geometry;
  // Frames [0, first_new_frame) of `pooled_keys` hold the pooled blocks of exactly these keys (the caller's
  // promise); 0 pools every key block, key_frames pools none.
  int first_new_frame = 0;
  float* pooled_keys = nullptr;  // [heads, pooled_keys_stride, head_dim] fp32, updated in place
  // Blocks per head in pooled_keys; 0 = key_blocks. A fixed stride (the caller's capacity) keeps a frame's
  // blocks where they are when the visible frames grow, so a cache can stay valid from one chunk to the next.
  int pooled_keys_stride = 0;
  void* workspace = nullptr;     // cached_planner_workspace_bytes
  size_t workspace_bytes = 0;
  // Optional, from rope_and_pool in the RoPE pass (so this call reads neither q nor the chunk's keys again):
  // the pooled queries [heads, query_blocks, head_dim], and the pooled key blocks of frames
  // [given_first_frame, key_frames) as [heads, (key_frames - given_first_frame) * blocks_per_frame, head_dim].
  // Given blocks are read from there and not written to `pooled_keys` (a chunk's later calls re-pool its own
  // frames anyway); frames [first_new_frame, given_first_frame) are pooled into the cache as usual.
  const float* given_pooled_queries = nullptr;
  const float* given_key_blocks = nullptr;
  int given_first_frame = 0;  // with given_key_blocks: first_new_frame <= given_first_frame <= key_frames
};
// Pooled queries, scores [rows, key_blocks + key_frames], frame keys [heads, key_frames, head_dim], top-p scratch.
size_t cached_planner_workspace_bytes(const PlannerGeometry& geometry);
void plan_topk_cached(const CachedPlanInputs& in, int topk, const MaskOutput& out, void* stream = nullptr);
void plan_hsa_cached(const CachedPlanInputs& in, const HsaParams& hsa, const MaskOutput& out, void* stream = nullptr);
void plan_topp_cached(const CachedPlanInputs& in, float scale, float p, const MaskOutput& out, void* stream = nullptr);
// Copies the given key blocks (frames [given_first_frame, key_frames)) into pooled_keys at their place, so that
// the cache then holds every frame: a chunk's last call (its refresh pass) does this, and the next chunk's first
// call reuses all its past frames instead of pooling them again. One strided copy, asynchronous on `stream`.
void store_given_key_blocks(const CachedPlanInputs& in, void* stream = nullptr);

// ---- RoPE and pooling in one pass (sparse_rope_pool.cu) -------------------------------------------------------
// x: bf16 [tokens, heads, head_dim] (row stride in elements, 0 = heads * head_dim, 16-byte aligned rows), roped
// in place exactly as gpu::rope_apply(x, row_stride, tokens, layout, frame_positions, frame_count) does; pooled:
// [heads, rope_pool_blocks(...), head_dim] fp32, the mean of each block of the roped rows exactly as
// pool_queries (frame_aligned false: blocks of `block` rows from row 0) or pool_keys (frame_aligned true: blocks
// of `block` inside each frame of layout.tokens_per_frame, the last one ragged; tokens a whole number of frames)
// give for the roped x. At most 64 frames (one RoPE launch).
int64_t rope_pool_blocks(int64_t tokens, int64_t tokens_per_frame, int block, bool frame_aligned);
void rope_and_pool(uint16_t* x, int64_t row_stride, int64_t tokens, const RopeLayout& layout,
                   const int64_t* frame_positions, int64_t frame_count, int block, bool frame_aligned, float* pooled,
                   void* stream = nullptr);

}  // namespace lf::gpu::sparse
