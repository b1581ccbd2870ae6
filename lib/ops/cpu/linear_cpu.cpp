// y = x W^T + b on the CPU. Both operands are read along their contiguous K axis, so every output is a dot
// product; a 4x4 register tile of AVX2 accumulators reuses each loaded x and W vector four times.
// Each output element is produced by exactly one thread in a fixed order, so results are deterministic.
#include <immintrin.h>

#include "core/error.h"
#include "ops/cpu/cpu_ops.h"

namespace lf::ops::cpu {

namespace {

inline float horizontal_sum(__m256 v) {
  __m128 low = _mm256_castps256_ps128(v);
  __m128 high = _mm256_extractf128_ps(v, 1);
  low = _mm_add_ps(low, high);
  low = _mm_hadd_ps(low, low);
  low = _mm_hadd_ps(low, low);
  return _mm_cvtss_f32(low);
}

template <int Rows, int Cols>
void dot_tile(const float* x, const float* w, int64_t k, int64_t row_stride, float* out, int64_t out_stride) {
  __m256 acc[Rows][Cols];
  for (int r = 0; r < Rows; ++r)
    for (int c = 0; c < Cols; ++c) acc[r][c] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= k; i += 8) {
    __m256 wv[Cols];
    for (int c = 0; c < Cols; ++c) wv[c] = _mm256_loadu_ps(w + c * row_stride + i);
    for (int r = 0; r < Rows; ++r) {
      const __m256 xv = _mm256_loadu_ps(x + r * row_stride + i);
      for (int c = 0; c < Cols; ++c) acc[r][c] = _mm256_fmadd_ps(xv, wv[c], acc[r][c]);
    }
  }
  for (int r = 0; r < Rows; ++r) {
    for (int c = 0; c < Cols; ++c) {
      float sum = horizontal_sum(acc[r][c]);
      for (int64_t j = i; j < k; ++j) sum += x[r * row_stride + j] * w[c * row_stride + j];
      out[r * out_stride + c] = sum;
    }
  }
}

// Dispatches the ragged edges of the output to smaller tiles.
void dot_block(const float* x, const float* w, int64_t k, int rows, int cols, float* out, int64_t out_stride) {
  using Kernel = void (*)(const float*, const float*, int64_t, int64_t, float*, int64_t);
  static constexpr Kernel kTiles[4][4] = {
      {dot_tile<1, 1>, dot_tile<1, 2>, dot_tile<1, 3>, dot_tile<1, 4>},
      {dot_tile<2, 1>, dot_tile<2, 2>, dot_tile<2, 3>, dot_tile<2, 4>},
      {dot_tile<3, 1>, dot_tile<3, 2>, dot_tile<3, 3>, dot_tile<3, 4>},
      {dot_tile<4, 1>, dot_tile<4, 2>, dot_tile<4, 3>, dot_tile<4, 4>},
  };
  kTiles[rows - 1][cols - 1](x, w, k, k, out, out_stride);
}

}  // namespace

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  LF_CHECK(weight.rank() == 2, "linear: weight must be 2-D, found {}", shape_str(weight.shape()));
  const int64_t in = weight.dim(1), out_features = weight.dim(0);
  LF_CHECK(x.rank() >= 1 && x.dim(-1) == in, "linear: input {} does not match weight {}", shape_str(x.shape()),
           shape_str(weight.shape()));
  LF_CHECK(!bias.defined() || bias.numel() == 0 || bias.numel() == out_features,
           "linear: bias {} does not match weight {}", shape_str(bias.shape()), shape_str(weight.shape()));
  const int64_t rows = x.numel() / in;
  Shape out_shape = x.shape();
  out_shape.back() = out_features;
  Tensor y = Tensor::empty(out_shape);
  const float* xs = x.f32();
  const float* ws = weight.f32();
  float* ys = y.f32();
  // Column panels of 64 outputs keep a slab of W hot in L2 while all row tiles stream past it.
  constexpr int64_t kPanel = 64;
  const int64_t row_tiles = (rows + 3) / 4, panels = (out_features + kPanel - 1) / kPanel;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t panel = 0; panel < panels; ++panel) {
    for (int64_t tile = 0; tile < row_tiles; ++tile) {
      const int64_t r0 = tile * 4;
      const int tile_rows = int(std::min<int64_t>(4, rows - r0));
      const int64_t c_end = std::min(out_features, (panel + 1) * kPanel);
      for (int64_t c0 = panel * kPanel; c0 < c_end; c0 += 4) {
        const int tile_cols = int(std::min<int64_t>(4, c_end - c0));
        dot_block(xs + r0 * in, ws + c0 * in, in, tile_rows, tile_cols, ys + r0 * out_features + c0, out_features);
      }
    }
  }
  if (bias.defined() && bias.numel() == out_features) {
    const float* bs = bias.f32();
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < out_features; ++c) ys[r * out_features + c] += bs[c];
  }
  return y;
}

}  // namespace lf::ops::cpu
