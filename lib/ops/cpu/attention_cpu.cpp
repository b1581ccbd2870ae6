// Dense attention reference: exact softmax over all given keys, per head, fp32 dot products with a double
// normaliser. Tiles of query rows share each key/value load.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "ops/cpu/cpu_ops.h"

namespace lf::ops::cpu {

namespace {
inline float dot(const float* a, const float* b, int64_t n) {
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, acc);
  float sum = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}
}  // namespace

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale) {
  LF_CHECK(q.rank() == 3 && k.rank() == 3 && v.rank() == 3, "attention: q/k/v must be [tokens, heads, head_dim]");
  const int64_t lq = q.dim(0), heads = q.dim(1), head_dim = q.dim(2), lk = k.dim(0);
  check_shape(k, {lk, heads, head_dim}, "attention k");
  check_shape(v, {lk, heads, head_dim}, "attention v");
  LF_CHECK(lk > 0, "attention: no keys");
  Tensor out = Tensor::empty(q.shape());
  const float *qs = q.f32(), *ks = k.f32(), *vs = v.f32();
  float* os = out.f32();
  constexpr int64_t kRows = 8;
  const int64_t tiles = (lq + kRows - 1) / kRows;
  const int64_t stride = heads * head_dim;
#pragma omp parallel
  {
    std::vector<float> scores(size_t(kRows * lk));
    std::vector<double> accum(size_t(kRows * head_dim));
#pragma omp for collapse(2) schedule(static)
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t tile = 0; tile < tiles; ++tile) {
        const int64_t r0 = tile * kRows, rows = std::min(kRows, lq - r0);
        for (int64_t j = 0; j < lk; ++j)
          for (int64_t r = 0; r < rows; ++r)
            scores[size_t(r * lk + j)] =
                float(scale) * dot(qs + (r0 + r) * stride + h * head_dim, ks + j * stride + h * head_dim, head_dim);
        std::fill(accum.begin(), accum.end(), 0.0);
        for (int64_t r = 0; r < rows; ++r) {
          float* row = scores.data() + r * lk;
          const float max_score = *std::max_element(row, row + lk);
          double total = 0;
          for (int64_t j = 0; j < lk; ++j) {
            row[j] = std::exp(row[j] - max_score);
            total += row[j];
          }
          double* acc = accum.data() + r * head_dim;
          for (int64_t j = 0; j < lk; ++j) {
            const float p = row[j];
            const float* value = vs + j * stride + h * head_dim;
            for (int64_t d = 0; d < head_dim; ++d) acc[d] += double(p) * value[d];
          }
          float* o = os + (r0 + r) * stride + h * head_dim;
          for (int64_t d = 0; d < head_dim; ++d) o[d] = float(acc[d] / total);
        }
      }
    }
  }
  return out;
}

}  // namespace lf::ops::cpu
