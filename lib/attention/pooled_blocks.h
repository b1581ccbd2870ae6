#pragma once
// Mean-pooled q / k blocks of one call as the CPU planners score them (and the GPU planners' tests compare with).
// At the bottom of lib/attention with block_mask.h.
#include <cstdint>
#include <vector>

#include "attention/block_mask.h"

namespace lf {

// Mean-pooled blocks (f32, CPU): queries [heads, query_blocks, D], keys [heads, key_blocks, D],
// frame keys [heads, key_frames, D] (the mean of the frame's keys).
struct PooledBlocks {
  BlockGeometry geometry;
  int64_t heads = 0, head_dim = 0;
  std::vector<float> queries, keys, frame_keys;
  const float* query(int64_t h, int64_t qb) const { return queries.data() + (h * geometry.query_blocks() + qb) * head_dim; }
  const float* key(int64_t h, int64_t kb) const { return keys.data() + (h * geometry.key_blocks() + kb) * head_dim; }
  const float* frame_key(int64_t h, int64_t f) const {
    return frame_keys.data() + (h * geometry.key_frames + f) * head_dim;
  }
};

}  // namespace lf
