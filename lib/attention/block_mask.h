#pragma once
// Which key blocks each (head, query block) attends to: the output of every mask planner and the input of every
// sparse operator (CPU reference and CUDA kernel).
//
// Blocks follow frames. Query blocks tile the chunk's query tokens uniformly (query_block tokens each, the last
// one ragged): pooling and the kernel's query tiles both use them. Key blocks never straddle two frames: frame f
// holds blocks [f * blocks_per_frame, (f + 1) * blocks_per_frame), each key_block tokens long except the frame's
// last one, which is ragged when tokens_per_frame is not a multiple (1560 = 24 x 64 + 24: 25 blocks of which the
// last holds 24 tokens). Keys are the visible frames in cache order (the current chunk last), as in AttentionCall.
//
// Rows are CSR: row r = head * query_blocks + query_block selects key blocks
// key_indices[row_offsets[r] .. row_offsets[r + 1]), ascending. Scores (optional) keep the planner's pooled
// score of every selected block, for plan-mask and the heatmaps.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace lf {

struct BlockGeometry {
  int64_t tokens_per_frame = 0;
  int64_t query_tokens = 0;   // current chunk's tokens
  int64_t key_frames = 0;     // visible frames (cache + chunk)
  int64_t query_block = 64;   // 64 or 128
  int64_t key_block = 64;     // 64 or 128

  int64_t query_blocks() const { return (query_tokens + query_block - 1) / query_block; }
  int64_t blocks_per_frame() const { return (tokens_per_frame + key_block - 1) / key_block; }
  int64_t key_blocks() const { return key_frames * blocks_per_frame(); }
  int64_t key_tokens() const { return key_frames * tokens_per_frame; }
  // First key token and length of key block b.
  int64_t key_block_start(int64_t b) const {
    return (b / blocks_per_frame()) * tokens_per_frame + (b % blocks_per_frame()) * key_block;
  }
  int64_t key_block_length(int64_t b) const {
    const int64_t inside = (b % blocks_per_frame()) * key_block;
    return tokens_per_frame - inside < key_block ? tokens_per_frame - inside : key_block;
  }
  int64_t key_block_frame(int64_t b) const { return b / blocks_per_frame(); }
  int64_t query_block_length(int64_t qb) const {
    return query_tokens - qb * query_block < query_block ? query_tokens - qb * query_block : query_block;
  }
};

struct BlockMask {
  int64_t heads = 0;
  BlockGeometry geometry;
  std::vector<int32_t> row_offsets;  // [heads * query_blocks + 1]
  std::vector<int32_t> key_indices;  // ascending within a row
  std::vector<float> scores;         // empty, or one per key_indices entry

  int64_t rows() const { return heads * geometry.query_blocks(); }
  int64_t row_size(int64_t row) const { return row_offsets[size_t(row) + 1] - row_offsets[size_t(row)]; }
  // Selected blocks / all visible blocks (block count, not token count).
  double density() const;
  // Selected key tokens / visible key tokens, weighting each query block by its rows: the fraction of the dense
  // attention work the sparse kernel does.
  double token_density() const;

  static BlockMask dense(int64_t heads, const BlockGeometry& geometry);
};

// Checks the CSR structure (sizes, bounds, ascending indices); throws lf::Error naming what is wrong.
void validate(const BlockMask& mask);

}  // namespace lf
