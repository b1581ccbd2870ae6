// Dense attention reference, and the tile loop it shares with the block-sparse operator: per head and tile of
// query rows, S = Q K^T and O = P V are matmul_nt calls over chunks of keys, with an online softmax between them
// (fp32 scores and probabilities, double normaliser and double accumulation of each chunk's partial output).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "ops/cpu/cpu_ops.h"

namespace lf::ops::cpu {

namespace {

// Tuned on a 2-core Zen 5 at Lq = 768, H = 4, D = 64, Lk = 768..5376 (16 rows or 128-key chunks were clearly slower,
// 64 rows or 512-key chunks no faster). A tile's scores (rows x chunk, 32 KiB) stay in L1 and every key and value
// chunk load is shared by all rows of the tile.
constexpr int64_t kRowTile = 32;
constexpr int64_t kKeyChunk = 256;
constexpr int64_t kLanes = 8;

// e^x for x <= 0 within 1 ulp (0.92 worst seen against double exp over [-87.3, 0]); NaN stays NaN. Results below the
// smallest normal float become 0: they are under 1e-38 of the row's largest probability, which is 1.
inline __m256 exp_nonpositive(__m256 x) {
  const __m256 lowest = _mm256_set1_ps(-87.33654f);  // ln(FLT_MIN)
  const __m256 underflow = _mm256_cmp_ps(x, lowest, _CMP_LT_OQ);
  // max/min return their second operand when either is NaN, so NaN passes both clamps.
  x = _mm256_min_ps(_mm256_setzero_ps(), _mm256_max_ps(lowest, x));
  // x = n ln2 + r, |r| <= ln2 / 2, with ln2 split so that n * ln2_hi is exact.
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.42860682030941723212e-6f), r);
  // Taylor series to r^7: the truncation error is below 1e-8 relative on |r| <= ln2 / 2.
  __m256 p = _mm256_set1_ps(1.0f / 5040);
  for (const float coefficient : {1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f, 1.0f})
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(coefficient));
  // 2^n through the exponent field; n is in [-126, 0] after the clamp.
  const __m256i two_to_n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_andnot_ps(underflow, _mm256_mul_ps(p, _mm256_castsi256_ps(two_to_n)));
}

inline float max_lane(__m256 v) {
  alignas(32) float lanes[kLanes];
  _mm256_store_ps(lanes, v);
  return *std::max_element(lanes, lanes + kLanes);
}

inline double sum_lanes(__m256d a, __m256d b) {
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, _mm256_add_pd(a, b));
  return (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
}

// One row of one key chunk: scales the raw scores, moves the row's running maximum (rescaling what was
// accumulated under the old one), and turns the scores into probabilities in place. `padded` >= `count` is a
// multiple of 8; the scores in between are overwritten and end up 0.
void softmax_chunk_row(float* scores, int64_t count, int64_t padded, float scale, float& row_max, double& row_sum,
                       double* out_sum, int64_t head_dim) {
  const __m256 scale_v = _mm256_set1_ps(scale);
  __m256 max_v = _mm256_set1_ps(-INFINITY);
  int64_t j = 0;
  for (; j + kLanes <= count; j += kLanes) {
    const __m256 s = _mm256_mul_ps(scale_v, _mm256_loadu_ps(scores + j));
    _mm256_storeu_ps(scores + j, s);
    max_v = _mm256_max_ps(max_v, s);
  }
  float chunk_max = max_lane(max_v);
  for (; j < count; ++j) {
    scores[j] *= scale;
    chunk_max = std::max(chunk_max, scores[j]);
  }
  std::fill(scores + count, scores + padded, -INFINITY);
  if (chunk_max > row_max) {
    const double factor = std::exp(double(row_max) - double(chunk_max));
    row_sum *= factor;
    for (int64_t d = 0; d < head_dim; ++d) out_sum[d] *= factor;
    row_max = chunk_max;
  }
  const __m256 max_row_v = _mm256_set1_ps(row_max);
  __m256d sum_low = _mm256_setzero_pd(), sum_high = _mm256_setzero_pd();
  for (j = 0; j < padded; j += kLanes) {
    const __m256 p = exp_nonpositive(_mm256_sub_ps(_mm256_loadu_ps(scores + j), max_row_v));
    _mm256_storeu_ps(scores + j, p);
    sum_low = _mm256_add_pd(sum_low, _mm256_cvtps_pd(_mm256_castps256_ps128(p)));
    sum_high = _mm256_add_pd(sum_high, _mm256_cvtps_pd(_mm256_extractf128_ps(p, 1)));
  }
  row_sum += sum_lanes(sum_low, sum_high);
}

}  // namespace

AttentionKV::AttentionKV(const Tensor& k, const Tensor& v) {
  LF_CHECK(k.rank() == 3 && v.shape() == k.shape(), "attention: k {} and v {} must both be [tokens, heads, head_dim]",
           shape_str(k.shape()), shape_str(v.shape()));
  k_ = k.f32();
  keys_ = k.dim(0), heads_ = k.dim(1), head_dim_ = k.dim(2);
  const int64_t keys = keys_, heads = heads_, dim = head_dim_, stride = heads * dim;
  // Every element is written below, so no zero fill (megabytes, at every layer).
  values_t_ = std::make_unique_for_overwrite<float[]>(size_t(heads * dim * keys));
  const float* vs = v.f32();
  float* values_t = values_t_.get();
  // Blocks of keys keep the transpose's reads and writes within a few pages.
  constexpr int64_t kKeyBlock = 64;
  const int64_t blocks = (keys + kKeyBlock - 1) / kKeyBlock;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t block = 0; block < blocks; ++block) {
      const int64_t first = block * kKeyBlock, last = std::min(keys, first + kKeyBlock);
      for (int64_t d = 0; d < dim; ++d)
        for (int64_t j = first; j < last; ++j) values_t[(h * dim + d) * keys + j] = vs[j * stride + h * dim + d];
    }
  }
}

void attend_rows(const HeadRows& rows, const AttentionKV& kv, std::span<const KeyRange> ranges, double scale,
                 AttentionScratch& scratch) {
  const int64_t dim = kv.head_dim();
  int64_t selected = 0;
  for (const KeyRange& range : ranges) {
    LF_CHECK(range.first >= 0 && range.length >= 0 && range.first + range.length <= kv.keys(),
             "attention: key range [{}, {}) outside the {} keys", range.first, range.first + range.length, kv.keys());
    selected += range.length;
  }
  if (selected == 0) {
    for (int64_t r = 0; r < rows.rows; ++r) std::fill_n(rows.out + r * rows.stride, dim, 0.0f);
    return;
  }
  scratch.scores.resize(size_t(kRowTile * kKeyChunk));
  scratch.partial_out.resize(size_t(kRowTile * dim));
  scratch.out_sum.resize(size_t(kRowTile * dim));
  scratch.row_max.resize(size_t(kRowTile));
  scratch.row_sum.resize(size_t(kRowTile));
  const ConstMatrixView keys = kv.head_keys(rows.head), values_t = kv.head_values_t(rows.head);
  float* scores = scratch.scores.data();
  float* partial = scratch.partial_out.data();
  double* out_sum = scratch.out_sum.data();
  for (int64_t r0 = 0; r0 < rows.rows; r0 += kRowTile) {
    const int64_t tile_rows = std::min(kRowTile, rows.rows - r0);
    const ConstMatrixView queries{rows.q + r0 * rows.stride, tile_rows, dim, rows.stride};
    std::fill(scratch.out_sum.begin(), scratch.out_sum.end(), 0.0);
    std::fill(scratch.row_sum.begin(), scratch.row_sum.end(), 0.0);
    std::fill(scratch.row_max.begin(), scratch.row_max.end(), -INFINITY);
    for (const KeyRange& range : ranges) {
      for (int64_t first = range.first; first < range.first + range.length; first += kKeyChunk) {
        const int64_t count = std::min(kKeyChunk, range.first + range.length - first);
        const int64_t padded = (count + kLanes - 1) / kLanes * kLanes;
        matmul_nt(queries, {keys.data + first * keys.stride, count, dim, keys.stride},
                  {scores, tile_rows, count, kKeyChunk});
        for (int64_t r = 0; r < tile_rows; ++r)
          softmax_chunk_row(scores + r * kKeyChunk, count, padded, float(scale), scratch.row_max[size_t(r)],
                            scratch.row_sum[size_t(r)], out_sum + r * dim, dim);
        matmul_nt({scores, tile_rows, count, kKeyChunk}, {values_t.data + first, dim, count, values_t.stride},
                  {partial, tile_rows, dim, dim});
        for (int64_t i = 0; i < tile_rows * dim; ++i) out_sum[i] += double(partial[i]);
      }
    }
    for (int64_t r = 0; r < tile_rows; ++r) {
      float* out = rows.out + (r0 + r) * rows.stride;
      const double total = scratch.row_sum[size_t(r)];
      for (int64_t d = 0; d < dim; ++d) out[d] = float(out_sum[r * dim + d] / total);
    }
  }
}

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale) {
  LF_CHECK(q.rank() == 3 && k.rank() == 3 && v.rank() == 3, "attention: q/k/v must be [tokens, heads, head_dim]");
  const int64_t lq = q.dim(0), heads = q.dim(1), head_dim = q.dim(2), lk = k.dim(0);
  check_shape(k, {lk, heads, head_dim}, "attention k");
  check_shape(v, {lk, heads, head_dim}, "attention v");
  LF_CHECK(lk > 0, "attention: no keys");
  const AttentionKV kv(k, v);
  Tensor out = Tensor::empty(q.shape());
  const float* qs = q.f32();
  float* os = out.f32();
  const int64_t tiles = (lq + kRowTile - 1) / kRowTile, stride = heads * head_dim;
  const KeyRange all_keys{0, lk};
#pragma omp parallel
  {
    AttentionScratch scratch;
#pragma omp for collapse(2) schedule(dynamic)
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t tile = 0; tile < tiles; ++tile) {
        const int64_t r0 = tile * kRowTile, offset = r0 * stride + h * head_dim;
        attend_rows({qs + offset, os + offset, std::min(kRowTile, lq - r0), stride, h}, kv, {&all_keys, 1}, scale,
                    scratch);
      }
    }
  }
  return out;
}

}  // namespace lf::ops::cpu
