#pragma once
// GPU ops of the umT5 text encoder beyond those the DiT uses (raw device pointers, conventions of gpu_ops.h).
#include <cstdint>

#include "kernels/ops/gpu_ops.h"

namespace lf::gpu {

// out[i, h] = sum_j softmax_j(scale * q[i, h] . k[j, h] + bias[h, i, j]) v[j, h], fp32 logits, softmax and
// accumulation; q [lq, heads, head_dim], k/v [lk, heads, head_dim], out bf16 [lq, heads, head_dim]; bias fp32
// [heads, lq, lk]. T5 attention (scale 1): a few hundred tokens at most, so the whole rows of logits stay in shared
// memory. head_dim a multiple of 16 and lk up to ~1500: tensor cores on 16-query tiles; otherwise one block per
// (query row, head). Limits: lk <= 16384, head_dim <= 128.
void attention_with_bias(const uint16_t* q, const uint16_t* k, const uint16_t* v, const float* bias, int64_t lq,
                         int64_t lk, int64_t heads, int64_t head_dim, double scale, uint16_t* out, Stream stream);

// s = softmax(s + bias) row by row, in place, fp32: s and bias [rows, cols] (rows = heads x lq). The middle step of
// the GEMM form of attention_with_bias (lib/ops/cuda/cuda_ops.cpp: S = Q K^T per head by a batched GEMM, this,
// then P V by a batched fp32 GEMM).
void softmax_rows_with_bias(float* s, const float* bias, int64_t rows, int64_t cols, Stream stream);

// bias [heads, tokens, tokens] fp32: bias[h, i, j] = table[bucket_of_offset[j - i + tokens - 1], h], table fp32
// [buckets, heads] (T5's relative-position bias, built on the device: the host-built one was 64 MB a layer at 512
// tokens and 64 heads, written with a 1 MB stride and then copied over).
void relative_position_bias(const float* table, const int32_t* bucket_of_offset, int64_t heads, int64_t tokens,
                            float* bias, Stream stream);

// out[r, c] = bf16(fp8_e4m3(x[r, c]) * scales[scale_count == 1 ? 0 : r]): an FP8 weight with per-row (or one)
// dequantisation scale made a bf16 GEMM operand (umT5's --fp8 resident weights: half the memory of bf16).
void dequantize_f8e4m3_rows(const uint8_t* x, const float* scales, int64_t scale_count, int64_t rows, int64_t cols,
                            uint16_t* out, Stream stream);

// out = bf16(a * b) elementwise (bf16 inputs, the product formed in fp32).
void multiply_bf16(const uint16_t* a, const uint16_t* b, int64_t count, uint16_t* out, Stream stream);

}  // namespace lf::gpu
