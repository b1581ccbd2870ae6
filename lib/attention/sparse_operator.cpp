#include "attention/sparse_operator.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"

namespace lf {

namespace {
// Token ranges of the keys a row selects.
std::vector<std::pair<int64_t, int64_t>> key_ranges(const BlockMask& mask, int64_t row) {
  std::vector<std::pair<int64_t, int64_t>> ranges;
  for (int32_t i = mask.row_offsets[size_t(row)]; i < mask.row_offsets[size_t(row) + 1]; ++i) {
    const int64_t block = mask.key_indices[size_t(i)];
    ranges.emplace_back(mask.geometry.key_block_start(block), mask.geometry.key_block_length(block));
  }
  return ranges;
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
  Tensor out = Tensor::zeros(q.shape());
  const float *qs = q.f32(), *ks = k.f32(), *vs = v.f32();
  float* os = out.f32();
#pragma omp parallel for collapse(2) schedule(dynamic)
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t qb = 0; qb < g.query_blocks(); ++qb) {
      const auto ranges = key_ranges(mask, h * g.query_blocks() + qb);
      if (ranges.empty()) continue;
      std::vector<float> scores, acc(static_cast<size_t>(dim));
      for (int64_t t = qb * g.query_block; t < qb * g.query_block + g.query_block_length(qb); ++t) {
        scores.clear();
        const float* query = qs + t * stride + h * dim;
        float max_score = -INFINITY;
        for (const auto& [first, length] : ranges)
          for (int64_t j = first; j < first + length; ++j) {
            const float* key = ks + j * stride + h * dim;
            float dot = 0;
#pragma omp simd reduction(+ : dot)
            for (int64_t d = 0; d < dim; ++d) dot += query[d] * key[d];
            scores.push_back(dot * float(scale));
            max_score = std::max(max_score, scores.back());
          }
        std::fill(acc.begin(), acc.end(), 0.0f);
        double total = 0;
        size_t index = 0;
        for (const auto& [first, length] : ranges)
          for (int64_t j = first; j < first + length; ++j, ++index) {
            const float p = std::exp(scores[index] - max_score);
            total += p;
            const float* value = vs + j * stride + h * dim;
#pragma omp simd
            for (int64_t d = 0; d < dim; ++d) acc[size_t(d)] += p * value[d];
          }
        for (int64_t d = 0; d < dim; ++d) os[t * stride + h * dim + d] = float(acc[size_t(d)] / total);
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
#pragma omp parallel for schedule(static)
  for (int64_t h = 0; h < heads; ++h) {
    std::vector<double> scores(static_cast<size_t>(keys));
    std::vector<char> selected(static_cast<size_t>(keys));
    double sum = 0;
    int64_t rows = 0;
    for (int64_t t = 0; t < qf.dim(0); t += row_stride, ++rows) {
      const int64_t qb = t / g.query_block;
      std::fill(selected.begin(), selected.end(), 0);
      for (const auto& [first, length] : key_ranges(mask, h * g.query_blocks() + qb))
        std::fill(selected.begin() + first, selected.begin() + first + length, 1);
      double max_score = -INFINITY;
      for (int64_t j = 0; j < keys; ++j) {
        double s = 0;
        for (int64_t d = 0; d < dim; ++d) s += double(qf.f32()[t * stride + h * dim + d]) * kf.f32()[j * stride + h * dim + d];
        scores[size_t(j)] = s * scale;
        max_score = std::max(max_score, scores[size_t(j)]);
      }
      double total = 0, kept = 0;
      for (int64_t j = 0; j < keys; ++j) {
        const double p = std::exp(scores[size_t(j)] - max_score);
        total += p;
        if (selected[size_t(j)]) kept += p;
      }
      sum += kept / total;
    }
    recall[size_t(h)] = rows ? sum / double(rows) : 1.0;
  }
  return recall;
}

}  // namespace lf
