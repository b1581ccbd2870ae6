#pragma once
// GPU ops of the umT5 text encoder beyond those the DiT uses (raw device pointers, conventions of gpu_ops.h).
#include <cstdint>

#include "ops/gpu_ops.h"

namespace lf::gpu {

// out[i, h] = sum_j softmax_j(scale * q[i, h] . k[j, h] + bias[h, i, j]) v[j, h], fp32 logits, softmax and
// accumulation; q [lq, heads, head_dim], k/v [lk, heads, head_dim], out bf16 [lq, heads, head_dim]; bias fp32
// [heads, lq, lk]. T5 attention (scale 1): a few hundred tokens at most, so one block per (query row, head) keeps
// the whole row of logits in shared memory. Limits: lk <= 16384, head_dim <= 128.
void attention_with_bias(const uint16_t* q, const uint16_t* k, const uint16_t* v, const float* bias, int64_t lq,
                         int64_t lk, int64_t heads, int64_t head_dim, double scale, uint16_t* out, Stream stream);

// out = bf16(a * b) elementwise (bf16 inputs, the product formed in fp32).
void multiply_bf16(const uint16_t* a, const uint16_t* b, int64_t count, uint16_t* out, Stream stream);

}  // namespace lf::gpu
