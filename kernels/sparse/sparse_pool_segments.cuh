#pragma once
// The rows a pooling block averages, shared by the planner's pooling (sparse_pooling.cu) and the RoPE pass that
// pools for it (sparse_rope_pool.cu), so both pool exactly the same rows.
#include <cuda_runtime.h>

namespace lf::gpu::sparse::detail {

struct Segment {
  int first, count;
};

// Query block `segment`: query_block rows from row 0, the last one ragged.
__device__ __forceinline__ Segment query_segment(int segment, int query_block, int query_tokens) {
  const int first = segment * query_block;
  return {first, min(query_block, query_tokens - first)};
}

// Frame-aligned key block `segment`: key_block rows inside a frame of tokens_per_frame, the frame's last ragged.
__device__ __forceinline__ Segment key_segment(int segment, int key_block, int tokens_per_frame, int blocks_per_frame) {
  const int frame = segment / blocks_per_frame;
  const int inside = (segment - frame * blocks_per_frame) * key_block;
  return {frame * tokens_per_frame + inside, min(key_block, tokens_per_frame - inside)};
}

}  // namespace lf::gpu::sparse::detail
