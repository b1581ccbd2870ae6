#pragma once
// The rows a pooling block averages, shared by the planner's pooling (sparse_pooling.cu) and the RoPE pass that
// pools for it (sparse_rope_pool.cu), so both pool exactly the same rows.
#include <cuda_runtime.h>

#include "core/block_geometry.h"

namespace lf::gpu::sparse::detail {

struct Segment {
  int first, count;
};

// Query block `segment`: query_block rows from row 0, the last one ragged.
__device__ __forceinline__ Segment query_segment(int segment, int query_block, int query_tokens) {
  return {segment * query_block, frame_blocks::query_block_length(segment, query_tokens, query_block)};
}

// Frame-aligned key block `segment`: key_block rows inside a frame of tokens_per_frame, the frame's last ragged.
__device__ __forceinline__ Segment key_segment(int segment, int key_block, int tokens_per_frame, int blocks_per_frame) {
  const frame_blocks::KeySpan<int> span =
      frame_blocks::key_span(segment, tokens_per_frame, key_block, blocks_per_frame);
  return {span.first, span.length};
}

}  // namespace lf::gpu::sparse::detail
