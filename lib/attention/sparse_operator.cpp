#include "attention/sparse_operator.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "ops/cpu/cpu_ops.h"

namespace lf {

namespace {
// Token ranges of the keys a row selects, in order; adjacent blocks (consecutive indices, across frames too)
// merge into one range so the attention tiles see long runs of keys.
void selected_key_ranges(const BlockMask& mask, int64_t row, std::vector<ops::cpu::KeyRange>& ranges) {
  ranges.clear();
  for (int32_t i = mask.row_offsets[size_t(row)]; i < mask.row_offsets[size_t(row) + 1]; ++i) {
    const int64_t block = mask.key_indices[size_t(i)];
    const int64_t first = mask.geometry.key_block_start(block), length = mask.geometry.key_block_length(block);
    if (!ranges.empty() && ranges.back().first + ranges.back().length == first)
      ranges.back().length += length;
    else
      ranges.push_back({first, length});
  }
}

void check_inputs(const Tensor& q, const Tensor& k, const Tensor& v, const BlockMask& mask) {
  LF_CHECK(q.rank() == 3 && k.rank() == 3 && k.shape() == v.shape() && q.dim(1) == k.dim(1) && q.dim(2) == k.dim(2),
           "block-sparse attention: q {} k {} v {}", shape_str(q.shape()), shape_str(k.shape()),
           shape_str(v.shape()));
  LF_CHECK(mask.heads == q.dim(1) && mask.geometry.query_tokens == q.dim(0) &&
               mask.geometry.key_tokens() == k.dim(0),
           "block-sparse attention: mask for {} heads, {} queries, {} keys; tensors have {}, {}, {}", mask.heads,
           mask.geometry.query_tokens, mask.geometry.key_tokens(), q.dim(1), q.dim(0), k.dim(0));
}
}  // namespace

Tensor block_sparse_attention(const Tensor& q, const Tensor& k, const Tensor& v, const BlockMask& mask, double scale) {
  check_inputs(q, k, v, mask);
  LF_CHECK(!q.is_cuda(), "block-sparse attention on the GPU is not wired in this build");
  const int64_t heads = q.dim(1), dim = q.dim(2), stride = heads * dim;
  const BlockGeometry& g = mask.geometry;
  const ops::cpu::AttentionKV kv(k, v);
  Tensor out = Tensor::empty(q.shape());
  const float* qs = q.f32();
  float* os = out.f32();
  // One query block of one head per task: every output row is written by one thread in a fixed order, and the
  // dynamic schedule only balances rows that select different numbers of blocks.
#pragma omp parallel
  {
    ops::cpu::AttentionScratch scratch;
    std::vector<ops::cpu::KeyRange> ranges;
#pragma omp for collapse(2) schedule(dynamic)
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t qb = 0; qb < g.query_blocks(); ++qb) {
        selected_key_ranges(mask, h * g.query_blocks() + qb, ranges);
        const int64_t offset = qb * g.query_block * stride + h * dim;
        ops::cpu::attend_rows({qs + offset, os + offset, g.query_block_length(qb), stride, h}, kv, ranges, scale,
                              scratch);
      }
    }
  }
  return out;
}

std::vector<double> attention_recall(const Tensor& q_in, const Tensor& k_in, const BlockMask& mask, double scale,
                                     int64_t row_stride) {
  const Tensor q = q_in.is_cuda() ? q_in.to(Device::CPU) : q_in;
  const Tensor k = k_in.is_cuda() ? k_in.to(Device::CPU) : k_in;
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
    std::vector<ops::cpu::KeyRange> ranges;
    double sum = 0;
    for (int64_t r0 = 0; r0 < rows; r0 += kRowTile) {
      const int64_t count = std::min(kRowTile, rows - r0);
      for (int64_t r = 0; r < count; ++r)
        std::copy_n(qf.f32() + sampled[size_t(r0 + r)] * stride + h * dim, dim, tile_q.data() + r * dim);
      ops::cpu::matmul_nt({tile_q.data(), count, dim, dim}, {kf.f32() + h * dim, keys, dim, stride},
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

}  // namespace lf
