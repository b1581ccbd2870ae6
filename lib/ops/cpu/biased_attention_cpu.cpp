// Attention with an additive per-head bias on the logits (T5's relative-position bias), and the elementwise
// product of the gated FFN. Plain references: fp32 scores through matmul_nt, softmax and the weighted sum of
// values in double, so the GPU kernels and the parity fixtures are checked against something tighter than both.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "ops/cpu/cpu_ops.h"

namespace lf::ops::cpu {

Tensor attention_with_bias(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& bias, double scale) {
  LF_CHECK(q.rank() == 3 && k.rank() == 3 && v.rank() == 3,
           "attention_with_bias: q/k/v must be [tokens, heads, head_dim], found {} {} {}", shape_str(q.shape()),
           shape_str(k.shape()), shape_str(v.shape()));
  const int64_t lq = q.dim(0), heads = q.dim(1), head_dim = q.dim(2), lk = k.dim(0);
  check_shape(k, {lk, heads, head_dim}, "attention_with_bias k");
  check_shape(v, {lk, heads, head_dim}, "attention_with_bias v");
  check_shape(bias, {heads, lq, lk}, "attention_with_bias bias");
  LF_CHECK(lk > 0, "attention_with_bias: no keys");
  Tensor out = Tensor::empty(q.shape());
  const float* qs = q.f32();
  const float* ks = k.f32();
  const float* vs = v.f32();
  const float* bs = bias.f32();
  float* os = out.f32();
  const int64_t stride = heads * head_dim;
#pragma omp parallel
  {
    std::vector<float> scores(size_t(lq * lk));
    std::vector<double> probabilities(static_cast<size_t>(lk)), row(static_cast<size_t>(head_dim));
#pragma omp for schedule(dynamic)
    for (int64_t h = 0; h < heads; ++h) {
      matmul_nt({qs + h * head_dim, lq, head_dim, stride}, {ks + h * head_dim, lk, head_dim, stride},
                {scores.data(), lq, lk, lk});
      for (int64_t i = 0; i < lq; ++i) {
        const float* logits = scores.data() + i * lk;
        const float* bias_row = bs + (h * lq + i) * lk;
        double row_max = -INFINITY;
        for (int64_t j = 0; j < lk; ++j) {
          probabilities[size_t(j)] = double(logits[j]) * scale + double(bias_row[j]);
          row_max = std::max(row_max, probabilities[size_t(j)]);
        }
        double total = 0;
        for (int64_t j = 0; j < lk; ++j) {
          probabilities[size_t(j)] = std::exp(probabilities[size_t(j)] - row_max);
          total += probabilities[size_t(j)];
        }
        std::fill(row.begin(), row.end(), 0.0);
        for (int64_t j = 0; j < lk; ++j) {
          const float* value = vs + j * stride + h * head_dim;
          const double p = probabilities[size_t(j)];
          for (int64_t d = 0; d < head_dim; ++d) row[size_t(d)] += p * value[d];
        }
        float* o = os + i * stride + h * head_dim;
        for (int64_t d = 0; d < head_dim; ++d) o[d] = float(row[size_t(d)] / total);
      }
    }
  }
  return out;
}

Tensor relative_position_bias(const Tensor& table, const Tensor& bucket_of_offset) {
  LF_CHECK(table.rank() == 2 && table.dtype() == DType::F32, "relative_position_bias: table must be f32 [buckets, "
           "heads], found {} {}", dtype_name(table.dtype()), shape_str(table.shape()));
  LF_CHECK(bucket_of_offset.rank() == 1 && bucket_of_offset.dtype() == DType::I32 && bucket_of_offset.dim(0) % 2 == 1,
           "relative_position_bias: bucket_of_offset must be i32 [2 tokens - 1], found {} {}",
           dtype_name(bucket_of_offset.dtype()), shape_str(bucket_of_offset.shape()));
  const int64_t buckets = table.dim(0), heads = table.dim(1), tokens = (bucket_of_offset.dim(0) + 1) / 2;
  const auto* bucket = static_cast<const int32_t*>(bucket_of_offset.raw());
  for (int64_t i = 0; i < bucket_of_offset.numel(); ++i)
    LF_CHECK(bucket[i] >= 0 && bucket[i] < buckets, "relative_position_bias: bucket {} at offset {} is outside the "
             "table's {} buckets", bucket[i], i - (tokens - 1), buckets);
  Tensor bias = Tensor::empty({heads, tokens, tokens});
  float* out = bias.f32();
  const float* values = table.f32();
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < tokens; ++i)
      for (int64_t j = 0; j < tokens; ++j) out[(h * tokens + i) * tokens + j] = values[bucket[j - i + tokens - 1] * heads + h];
  return bias;
}

Tensor multiply(const Tensor& a, const Tensor& b) {
  LF_CHECK(a.shape() == b.shape(), "multiply: shapes {} and {} differ", shape_str(a.shape()), shape_str(b.shape()));
  Tensor out = Tensor::empty(a.shape());
  const float* as = a.f32();
  const float* bs = b.f32();
  float* os = out.f32();
  const int64_t count = a.numel();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < count; ++i) os[i] = as[i] * bs[i];
  return out;
}

}  // namespace lf::ops::cpu
