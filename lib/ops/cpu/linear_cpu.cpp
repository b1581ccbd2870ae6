// y = x W^T + b on the CPU, through matmul_nt: both operands are read along their contiguous K axis, so every
// output is a dot product; a register tile of AVX2 accumulators reuses each loaded x and W vector several times.
// Each output element is produced by exactly one thread in a fixed order, so results are deterministic.
#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "core/error.h"
#include "ops/cpu/cpu_ops.h"

namespace lf::ops::cpu {

namespace {

// Lane i of the result is the sum of the lanes l of v_i, always formed as ((l0 + l1) + (l2 + l3)) + ((l4 + l5) +
// (l6 + l7)), so an element's bits do not depend on its place in a tile or on the tile shape.
inline __m128 horizontal_sums(__m256 v0, __m256 v1, __m256 v2, __m256 v3) {
  const __m256 quads = _mm256_hadd_ps(_mm256_hadd_ps(v0, v1), _mm256_hadd_ps(v2, v3));
  return _mm_add_ps(_mm256_castps256_ps128(quads), _mm256_extractf128_ps(quads, 1));
}

// Stores lanes [0, Count) of v.
template <int Count>
inline void store_lanes(float* out, __m128 v) {
  if constexpr (Count == 4) _mm_storeu_ps(out, v);
  if constexpr (Count == 2 || Count == 3) _mm_storel_pi(reinterpret_cast<__m64*>(out), v);
  if constexpr (Count == 3) _mm_store_ss(out + 2, _mm_movehl_ps(v, v));
  if constexpr (Count == 1) _mm_store_ss(out, v);
}

template <int Rows, int Cols>
void dot_tile(const float* a, int64_t a_stride, const float* b, int64_t b_stride, int64_t k, float* out,
              int64_t out_stride) {
  // Four columns of accumulators whatever Cols is: the unused ones stay zero and pad the horizontal sums.
  __m256 acc[Rows][4];
  for (int r = 0; r < Rows; ++r)
    for (int c = 0; c < 4; ++c) acc[r][c] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= k; i += 8) {
    __m256 bv[Cols];
    for (int c = 0; c < Cols; ++c) bv[c] = _mm256_loadu_ps(b + c * b_stride + i);
    for (int r = 0; r < Rows; ++r) {
      const __m256 av = _mm256_loadu_ps(a + r * a_stride + i);
      for (int c = 0; c < Cols; ++c) acc[r][c] = _mm256_fmadd_ps(av, bv[c], acc[r][c]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < Rows; ++r) {
    __m128 sums = horizontal_sums(acc[r][0], acc[r][1], acc[r][2], acc[r][3]);
    if (i < k) {  // k is not a multiple of 8: the last terms one by one
      alignas(16) float lanes[4];
      _mm_store_ps(lanes, sums);
      for (int c = 0; c < Cols; ++c)
        for (int64_t j = i; j < k; ++j) lanes[c] += a[r * a_stride + j] * b[c * b_stride + j];
      sums = _mm_load_ps(lanes);
    }
    store_lanes<Cols>(out + r * out_stride, sums);
  }
}

// AVX2 has 16 vector registers: 4 x 3 accumulators, 3 loaded b vectors and one a vector fill them exactly (a 4 x 4
// tile spills). Per 8-wide step: 7 loads for 12 FMAs.
constexpr int kTileRows = 4, kTileCols = 3;
using TileKernel = void (*)(const float*, int64_t, const float*, int64_t, int64_t, float*, int64_t);
// Full tiles and the ragged edges of the output, indexed [rows - 1][cols - 1].
constexpr TileKernel kTiles[kTileRows][kTileCols] = {
    {dot_tile<1, 1>, dot_tile<1, 2>, dot_tile<1, 3>},
    {dot_tile<2, 1>, dot_tile<2, 2>, dot_tile<2, 3>},
    {dot_tile<3, 1>, dot_tile<3, 2>, dot_tile<3, 3>},
    {dot_tile<4, 1>, dot_tile<4, 2>, dot_tile<4, 3>},
};


// Column panels of 96 outputs (whole 3-column tiles) keep a slab of W hot in L2 while all row tiles stream past it.
void linear_f32_weight(const float* xs, int64_t rows, const float* ws, int64_t in, int64_t out_features, float* ys) {
  constexpr int64_t kPanel = 96, kRowTile = 4;
  const int64_t row_tiles = (rows + kRowTile - 1) / kRowTile, panels = (out_features + kPanel - 1) / kPanel;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t panel = 0; panel < panels; ++panel) {
    for (int64_t tile = 0; tile < row_tiles; ++tile) {
      const int64_t r0 = tile * kRowTile, c0 = panel * kPanel;
      const int64_t tile_rows = std::min(kRowTile, rows - r0), panel_cols = std::min(kPanel, out_features - c0);
      matmul_nt({xs + r0 * in, tile_rows, in, in}, {ws + c0 * in, panel_cols, in, in},
                {ys + r0 * out_features + c0, tile_rows, panel_cols, out_features});
    }
  }
}

// Weights stored as bf16 / fp16 / fp8 (mmap'd, too large to hold in f32: umT5-XXL is 11 GB in bf16): each thread
// converts a panel of weight rows to f32 (times the FP8 row scales) into its own buffer and multiplies every row
// of x against it. The panel (~256 KiB) stays in L2 while x streams past; every output is the same dot product
// as with f32 weights, so the result equals linear() on weight.to(F32) bit for bit.
void linear_stored_weight(const float* xs, int64_t rows, const Tensor& weight, float* ys) {
  const int64_t in = weight.dim(1), out_features = weight.dim(0);
  const Tensor* scales = weight.scales();
  LF_CHECK(!scales || scales->numel() == 1 || scales->numel() == out_features,
           "linear: weight scales {} for weight {}", shape_str(scales->shape()), shape_str(weight.shape()));
  const size_t element = dtype_size(weight.dtype());
  const auto* stored = static_cast<const uint8_t*>(weight.raw());
  constexpr int64_t kPanelBytes = 256 * 1024, kRowTile = 4;
  const int64_t panel_rows = std::max<int64_t>(kTileCols, kPanelBytes / (in * 4) / kTileCols * kTileCols);
  const int64_t panels = (out_features + panel_rows - 1) / panel_rows;
#pragma omp parallel
  {
    std::vector<float> panel_f32(size_t(panel_rows * in));
#pragma omp for schedule(dynamic)
    for (int64_t panel = 0; panel < panels; ++panel) {
      const int64_t c0 = panel * panel_rows, panel_cols = std::min(panel_rows, out_features - c0);
      convert_to_f32(stored + size_t(c0 * in) * element, weight.dtype(), size_t(panel_cols * in), panel_f32.data());
      if (scales) {
        for (int64_t c = 0; c < panel_cols; ++c) {
          const float scale = scales->f32()[scales->numel() == 1 ? 0 : c0 + c];
          for (int64_t i = 0; i < in; ++i) panel_f32[size_t(c * in + i)] *= scale;
        }
      }
      for (int64_t r0 = 0; r0 < rows; r0 += kRowTile) {
        const int64_t tile_rows = std::min(kRowTile, rows - r0);
        matmul_nt({xs + r0 * in, tile_rows, in, in}, {panel_f32.data(), panel_cols, in, in},
                  {ys + r0 * out_features + c0, tile_rows, panel_cols, out_features});
      }
    }
  }
}

}  // namespace

void matmul_nt(const ConstMatrixView& a, const ConstMatrixView& b, const MatrixView& c) {
  LF_CHECK(a.cols == b.cols && c.rows == a.rows && c.cols == b.rows,
           "matmul_nt: a {}x{}, b {}x{}, c {}x{}: need c = a b^T", a.rows, a.cols, b.rows, b.cols, c.rows, c.cols);
  // Columns outermost: a strip of b stays in L1 while the rows of a (the smaller operand in every caller) stream
  // past it.
  for (int64_t col = 0; col < b.rows; col += kTileCols) {
    const int cols = int(std::min<int64_t>(kTileCols, b.rows - col));
    for (int64_t row = 0; row < a.rows; row += kTileRows) {
      const int rows = int(std::min<int64_t>(kTileRows, a.rows - row));
      kTiles[rows - 1][cols - 1](a.data + row * a.stride, a.stride, b.data + col * b.stride, b.stride, a.cols,
                                 c.data + row * c.stride + col, c.stride);
    }
  }
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  LF_CHECK(weight.rank() == 2, "linear: weight must be 2-D, found {}", shape_str(weight.shape()));
  LF_CHECK(dtype_is_float(weight.dtype()) && weight.dtype() != DType::F64, "linear: weight dtype {} is not f32, bf16, "
           "f16 or f8e4m3", dtype_name(weight.dtype()));
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
  float* ys = y.f32();
  if (weight.dtype() != DType::F32) {
    linear_stored_weight(xs, rows, weight, ys);
  } else {
    linear_f32_weight(xs, rows, weight.f32(), in, out_features, ys);
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
