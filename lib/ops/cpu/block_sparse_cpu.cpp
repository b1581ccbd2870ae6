// CPU references of the block-sparse ops (ops.h): attention over each row's selected key blocks through the same
// tile loop as dense attention (attend_rows), and the kept softmax mass of a mask.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "ops/cpu/cpu_ops.h"

namespace lf::ops::cpu {

namespace {
// Token ranges of the keys a row selects, in order; adjacent blocks (consecutive indices, across frames too)
// merge into one range so the attention tiles see long runs of keys.
void selected_key_ranges(const BlockSparseMaskView& mask, int64_t row, std::vector<KeyRange>& ranges) {
  ranges.clear();
  for (int32_t i = mask.row_offsets[row]; i < mask.row_offsets[row + 1]; ++i) {
    const int64_t block = mask.key_indices[i];
    const int64_t first = mask.geometry.key_block_start(block), length = mask.geometry.key_block_length(block);
    if (!ranges.empty() && ranges.back().first + ranges.back().length == first)
      ranges.back().length += length;
    else
      ranges.push_back({first, length});
  }
}
}  // namespace

Tensor block_sparse_attention(const Tensor& q, const Tensor& k, const Tensor& v, const BlockSparseMaskView& mask,
                              double scale) {
  const int64_t heads = q.dim(1), dim = q.dim(2), stride = heads * dim;
  const BlockGeometry& g = mask.geometry;
  const AttentionKV kv(k, v);
  Tensor out = Tensor::empty(q.shape());
  const float* qs = q.f32();
  float* os = out.f32();
  // One query block of one head per task: every output row is written by one thread in a fixed order, and the
  // dynamic schedule only balances rows that select different numbers of blocks.
#pragma omp parallel
  {
    AttentionScratch scratch;
    std::vector<KeyRange> ranges;
#pragma omp for collapse(2) schedule(dynamic)
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t qb = 0; qb < g.query_blocks(); ++qb) {
        selected_key_ranges(mask, h * g.query_blocks() + qb, ranges);
        const int64_t offset = qb * g.query_block * stride + h * dim;
        attend_rows({qs + offset, os + offset, g.query_block_length(qb), stride, h}, kv, ranges, scale, scratch);
      }
    }
  }
  return out;
}

std::vector<double> block_sparse_recall(const Tensor& q, const Tensor& k, const BlockSparseMaskView& mask,
                                        double scale, int64_t row_stride) {
  const Tensor qf = q.dtype() == DType::F32 ? q : q.to(DType::F32);
  const Tensor kf = k.dtype() == DType::F32 ? k : k.to(DType::F32);
  const int64_t heads = qf.dim(1), dim = qf.dim(2), stride = heads * dim, keys = kf.dim(0);
  const BlockGeometry& g = mask.geometry;
  std::vector<double> recall(size_t(heads), 0.0);
  // Scores are the operator's own fp32 dot products (the same matmul_nt), so recall describes the attention that
  // runs; the softmax masses are summed in double. The sampled rows are gathered into a contiguous [rows, D] block
  // per head, which makes the score matrix one tiled product instead of a dot product per (row, key).
  std::vector<int64_t> sampled;
  for (int64_t t = 0; t < qf.dim(0); t += row_stride) sampled.push_back(t);
  const int64_t rows = int64_t(sampled.size());
  constexpr int64_t kRowTile = 32;
#pragma omp parallel for schedule(static)
  for (int64_t h = 0; h < heads; ++h) {
    std::vector<float> tile_q(static_cast<size_t>(kRowTile * dim)), scores(static_cast<size_t>(kRowTile * keys));
    std::vector<char> selected(static_cast<size_t>(keys));
    std::vector<KeyRange> ranges;
    double sum = 0;
    for (int64_t r0 = 0; r0 < rows; r0 += kRowTile) {
      const int64_t count = std::min(kRowTile, rows - r0);
      for (int64_t r = 0; r < count; ++r)
        std::copy_n(qf.f32() + sampled[size_t(r0 + r)] * stride + h * dim, dim, tile_q.data() + r * dim);
      matmul_nt({tile_q.data(), count, dim, dim}, {kf.f32() + h * dim, keys, dim, stride},
                {scores.data(), count, keys, keys});
      for (int64_t r = 0; r < count; ++r) {
        const int64_t t = sampled[size_t(r0 + r)];
        std::fill(selected.begin(), selected.end(), 0);
        selected_key_ranges(mask, h * g.query_blocks() + t / g.query_block, ranges);
        for (const auto& [first, length] : ranges)
          std::fill(selected.begin() + first, selected.begin() + first + length, 1);
        const float* row = scores.data() + r * keys;
        const double max_score = double(*std::max_element(row, row + keys)) * scale;
        double total = 0, kept = 0;
        for (int64_t j = 0; j < keys; ++j) {
          const double p = std::exp(double(row[j]) * scale - max_score);
          total += p;
          if (selected[size_t(j)]) kept += p;
        }
        sum += kept / total;
      }
    }
    recall[size_t(h)] = rows ? sum / double(rows) : 1.0;
  }
  return recall;
}

}  // namespace lf::ops::cpu
