#pragma once
// Which key blocks each (head, query block) attends to: the output of every mask planner and the input of every
// sparse operator (CPU reference and CUDA kernel).
//
// Blocks follow frames: BlockGeometry (core/block_geometry.h, shared with the kernels) holds the rules. Keys are
// the visible frames in cache order (the current chunk last), as in AttentionCall.
//
// Rows are CSR: row r = head * query_blocks + query_block selects key blocks
// key_indices[row_offsets[r] .. row_offsets[r + 1]), ascending. Scores (optional) keep the planner's pooled
// score of every selected block, for plan-mask and the heatmaps.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/block_geometry.h"

namespace lf {

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
