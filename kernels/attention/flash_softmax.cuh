#pragma once
// fp32 online softmax over accumulator fragments, shared by both kernels.
//
// Both mma.sync m16n8 and wgmma m64nN give each warp a 16-row slice in the same fragment layout: per 8-column
// tile j, a thread holds frag[j][0..1] = row (lane / 4), columns 8j + 2 (lane % 4) + {0, 1}, and frag[j][2..3]
// = the same columns of row (lane / 4) + 8. So every thread owns 2 rows; the 4 threads of a quad (lanes 4r..4r+3)
// together hold a row, and row reductions are two xor-shuffles.
//
// Scores stay in raw units (q.k); the scale is folded into the exponent: p = exp2(s * scale_log2 - m * scale_log2)
// is one FFMA + one MUFU.EX2 per score. The running sum is kept per thread and reduced across the quad once, at
// the end, instead of every block.
#include <cuda_bf16.h>

#include <cstdint>

namespace lf::gpu::flash {

__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));  // exp2(-inf) = +0, which masking relies on
  return y;
}

__device__ __forceinline__ uint32_t pack_bf16x2(float low, float high) {
  const __nv_bfloat162 pair = __floats2bfloat162_rn(low, high);
  return *reinterpret_cast<const uint32_t*>(&pair);
}

// Scores of columns >= valid_cols become -inf (keys past a ragged block's end).
template <int kColTiles>
__device__ __forceinline__ void mask_columns(float (&s)[kColTiles][4], int valid_cols, int lane) {
  const int col0 = 2 * (lane & 3);
#pragma unroll
  for (int j = 0; j < kColTiles; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e)
      if (8 * j + col0 + (e & 1) >= valid_cols) s[j][e] = -INFINITY;
}

template <int kColTiles>
struct OnlineSoftmax {
  float row_max[2];  // running max of raw scores, rows (lane/4) and (lane/4)+8
  float row_sum[2];  // running sum of this thread's probabilities only (quad-reduced in finish)

  __device__ __forceinline__ void init() {
    row_max[0] = row_max[1] = -INFINITY;
    row_sum[0] = row_sum[1] = 0.f;
  }

  // Folds one block of scores into the running state. On return `s` holds unnormalised probabilities relative to
  // the new running max and `rescale` the factor the output accumulator (built on the old max) must be
  // multiplied by before adding this block's P V.
  __device__ __forceinline__ void update(float (&s)[kColTiles][4], float scale_log2, float (&rescale)[2]) {
    float block_max[2] = {row_max[0], row_max[1]};
#pragma unroll
    for (int j = 0; j < kColTiles; ++j) {
      block_max[0] = fmaxf(block_max[0], fmaxf(s[j][0], s[j][1]));
      block_max[1] = fmaxf(block_max[1], fmaxf(s[j][2], s[j][3]));
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      block_max[r] = fmaxf(block_max[r], __shfl_xor_sync(0xffffffffu, block_max[r], 1));
      block_max[r] = fmaxf(block_max[r], __shfl_xor_sync(0xffffffffu, block_max[r], 2));
    }
    float max_scaled[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      // A row with no valid key so far keeps max -inf; subtracting 0 instead keeps exp2(-inf - -inf) from
      // becoming NaN (only a sparse schedule can produce such a row).
      max_scaled[r] = block_max[r] == -INFINITY ? 0.f : block_max[r] * scale_log2;
      rescale[r] = fast_exp2(row_max[r] * scale_log2 - max_scaled[r]);
      row_max[r] = block_max[r];
    }
    float block_sum[2] = {0.f, 0.f};
#pragma unroll
    for (int j = 0; j < kColTiles; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[j][e] = fast_exp2(fmaf(s[j][e], scale_log2, -max_scaled[e >> 1]));
        block_sum[e >> 1] += s[j][e];
      }
#pragma unroll
    for (int r = 0; r < 2; ++r) row_sum[r] = row_sum[r] * rescale[r] + block_sum[r];
  }

  // 1 / (row sum) for the epilogue; 0 for a row that saw no key (its output is then 0, never NaN).
  __device__ __forceinline__ void finish(float (&inv_sum)[2]) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float total = row_sum[r];
      total += __shfl_xor_sync(0xffffffffu, total, 1);
      total += __shfl_xor_sync(0xffffffffu, total, 2);
      inv_sum[r] = total > 0.f ? 1.f / total : 0.f;
    }
  }
};

template <int kColTiles>
__device__ __forceinline__ void scale_rows(float (&acc)[kColTiles][4], const float (&factor)[2]) {
#pragma unroll
  for (int j = 0; j < kColTiles; ++j) {
    acc[j][0] *= factor[0];
    acc[j][1] *= factor[0];
    acc[j][2] *= factor[1];
    acc[j][3] *= factor[1];
  }
}

// Probabilities of key columns [16 kk, 16 kk + 16) as the A operand of an m16n8k16 (or wgmma k16) step: the
// accumulator layout of two adjacent 8-column tiles is exactly the A-fragment layout, so no shuffles are needed.
template <int kColTiles>
__device__ __forceinline__ void probabilities_to_a_fragments(const float (&p)[kColTiles][4],
                                                             uint32_t (&a)[kColTiles / 2][4]) {
#pragma unroll
  for (int kk = 0; kk < kColTiles / 2; ++kk) {
    a[kk][0] = pack_bf16x2(p[2 * kk][0], p[2 * kk][1]);
    a[kk][1] = pack_bf16x2(p[2 * kk][2], p[2 * kk][3]);
    a[kk][2] = pack_bf16x2(p[2 * kk + 1][0], p[2 * kk + 1][1]);
    a[kk][3] = pack_bf16x2(p[2 * kk + 1][2], p[2 * kk + 1][3]);
  }
}

// Epilogue shared by both kernels: a warp's 16 x (8 kColTiles) output slice, divided by the row sums, as bf16
// pairs. Rows at or past `valid_rows` (ragged last query block) are not written.
template <int kColTiles>
__device__ __forceinline__ void store_output_rows(const float (&acc)[kColTiles][4], const float (&inv_sum)[2],
                                                  __nv_bfloat16* out_first_row, int64_t out_row_stride,
                                                  int warp_first_row, int valid_rows, int lane) {
  const int row0 = warp_first_row + (lane >> 2);
  const int col0 = 2 * (lane & 3);
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int row = row0 + 8 * half;
    if (row >= valid_rows) continue;
    __nv_bfloat16* dst = out_first_row + int64_t(row) * out_row_stride + col0;
#pragma unroll
    for (int j = 0; j < kColTiles; ++j)
      *reinterpret_cast<__nv_bfloat162*>(dst + 8 * j) =
          __floats2bfloat162_rn(acc[j][2 * half] * inv_sum[half], acc[j][2 * half + 1] * inv_sum[half]);
  }
}

}  // namespace lf::gpu::flash
