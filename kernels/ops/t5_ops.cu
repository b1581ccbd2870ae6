// umT5 encoder ops: attention with an additive bias and no mask, and the gated FFN's product. Correctness-first
// kernels (the encoder runs once per prompt); checked against lib/ops/cpu/biased_attention_cpu.cpp in
// tests/test_gpu_ops.cpp.
#include <cuda_fp8.h>
#include <mma.h>

#include <algorithm>
#include <cfloat>

#include "kernels/cuda_check.h"
#include "kernels/ops/device_helpers.cuh"
#include "kernels/ops/t5_ops.h"

namespace lf::gpu {

namespace {

using namespace detail;

constexpr int kAttentionThreads = 128;
constexpr int64_t kMaxKeys = 16384;
constexpr int64_t kMaxHeadDim = kAttentionThreads;  // one thread per output dimension at least

// Block-wide reduction of one value per thread (max or sum); every thread gets the result.
template <bool kMax>
__device__ float block_reduce(float value, float* scratch) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    const float other = __shfl_xor_sync(0xffffffffu, value, offset);
    value = kMax ? fmaxf(value, other) : value + other;
  }
  const int warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  __syncthreads();  // scratch may still be read by an earlier reduction
  if (lane == 0) scratch[warp] = value;
  __syncthreads();
  value = kMax ? -FLT_MAX : 0.0f;
  for (int w = 0; w < int(blockDim.x) / kWarpSize; ++w) value = kMax ? fmaxf(value, scratch[w]) : value + scratch[w];
  return value;
}

// Grid (lq, heads). Shared memory: the query row (head_dim floats), the logits (lk floats), then the partial
// outputs of the key groups (blockDim floats).
__global__ void attention_with_bias_kernel(const uint16_t* __restrict__ q, const uint16_t* __restrict__ k,
                                           const uint16_t* __restrict__ v, const float* __restrict__ bias,
                                           int64_t lq, int64_t lk, int64_t heads, int64_t head_dim, float scale,
                                           uint16_t* __restrict__ out) {
  extern __shared__ float shared[];
  float* q_row = shared;
  float* logits = q_row + head_dim;
  float* partial = logits + lk;
  __shared__ float scratch[kAttentionThreads / kWarpSize];
  const int64_t row = blockIdx.x, head = blockIdx.y, stride = heads * head_dim;
  for (int64_t d = threadIdx.x; d < head_dim; d += blockDim.x)
    q_row[d] = bf16_bits_to_float(q[row * stride + head * head_dim + d]);
  __syncthreads();
  const float* bias_row = bias + (head * lq + row) * lk;
  float local_max = -FLT_MAX;
  for (int64_t j = threadIdx.x; j < lk; j += blockDim.x) {
    const uint16_t* key = k + j * stride + head * head_dim;
    float dot = 0.0f;
    for (int64_t d = 0; d < head_dim; ++d) dot = fmaf(q_row[d], bf16_bits_to_float(key[d]), dot);
    const float logit = dot * scale + bias_row[j];
    logits[j] = logit;
    local_max = fmaxf(local_max, logit);
  }
  const float row_max = block_reduce<true>(local_max, scratch);
  float local_sum = 0.0f;
  for (int64_t j = threadIdx.x; j < lk; j += blockDim.x) {
    const float p = __expf(logits[j] - row_max);
    logits[j] = p;
    local_sum += p;
  }
  const float total = block_reduce<false>(local_sum, scratch);  // its barriers also publish the probabilities
  // Thread t accumulates dimension t % head_dim over keys j = t / head_dim (mod groups); groups are then summed.
  const int64_t groups = blockDim.x / head_dim;
  const int64_t d = threadIdx.x % head_dim, group = threadIdx.x / head_dim;
  float acc = 0.0f;
  if (group < groups)
    for (int64_t j = group; j < lk; j += groups) acc = fmaf(logits[j], bf16_bits_to_float(v[j * stride + head * head_dim + d]), acc);
  partial[threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.x < head_dim) {
    float sum = 0.0f;
    for (int64_t g = 0; g < groups; ++g) sum += partial[g * head_dim + threadIdx.x];
    out[row * stride + head * head_dim + threadIdx.x] = float_to_bf16_bits(sum / total);
  }
}

// Tensor-core path for head_dim % 16 == 0 (umT5: 64): one block of four warps per (16 query rows, head), so each
// K/V row is read once per 16 queries instead of once per query (the row kernel above re-read the whole head's K
// and V for every query: 5.6 s for umT5-XXL at 512 tokens on an H100, almost all of it here and in the host bias).
// S = Q K^T with bf16 WMMA and fp32 accumulation (the products the row kernel forms), softmax in fp32, then
// P V with P split into two bf16 terms (hi + lo, ~16 mantissa bits) so the probabilities are not rounded to bf16
// before the weighted sum: the only bf16 roundings are those of the inputs and of the output, as before.
constexpr int kTileRows = 16;
constexpr int kTileWarps = 4;
constexpr int kStageKeys = kTileWarps * 16;  // keys of K (or V) staged in shared memory per step

// Keys a warp's lane holds in registers while it turns a row of S into P (the row is read whole before P is
// written over it): the tiled kernel takes up to 32 x this many keys.
constexpr int kRowValuesPerLane = 48;

struct TiledLayout {
  int64_t keys_padded, head_ld;  // S/P row length; Q/K/V staging row length (head_dim + 8: fewer bank conflicts)
  size_t q_offset, stage_offset, scores_offset, sums_offset, bytes;
};

TiledLayout tiled_layout(int64_t lk, int64_t head_dim) {
  TiledLayout l;
  // At least head_dim columns: the scores area holds the [16, head_dim] output at the end.
  l.keys_padded = (std::max(lk, head_dim) + kStageKeys - 1) / kStageKeys * kStageKeys;
  l.head_ld = head_dim + 8;
  size_t at = 0;
  auto take = [&at](size_t bytes) {
    const size_t start = at;
    at += (bytes + 127) / 128 * 128;  // WMMA pointers must be 32-byte aligned; keep every region 128-aligned
    return start;
  };
  l.q_offset = take(size_t(kTileRows * l.head_ld) * 2);
  l.stage_offset = take(size_t(kStageKeys * l.head_ld) * 2);
  // S in fp32, then P = hi + lo in bf16 written over each row of S (hi in the row's first half, lo in the second):
  // one buffer, so ~44 KB a CTA at 512 keys and five CTAs fit an SM (separate S and P buffers: 76 KB, two).
  l.scores_offset = take(size_t(kTileRows * l.keys_padded) * 4);
  l.sums_offset = take(kTileRows * 4);
  l.bytes = at;
  return l;
}

// Copies rows [first, first + count) of one head of a [tokens, heads, head_dim] bf16 tensor into a [rows, ld]
// staging area, 16 bytes a load (the launcher checks the alignment); rows at or past `limit` are zero. The loads
// are independent and all issued before the stores: a scalar load-store loop here ran at one global latency per
// element (measured: 44 ms of attention per umT5-XXL encode on an H100, 1.8 ms a layer).
__device__ void stage_rows(const uint16_t* __restrict__ src, int64_t first, int rows, int64_t limit, int64_t stride,
                           int64_t head_offset, int head_dim, int ld, uint16_t* __restrict__ dst) {
  constexpr int kMaxPerThread = kStageKeys * 128 / 8 / (kTileWarps * 32);  // 64 rows x 128 dims in 16-byte vectors
  const int vectors_per_row = head_dim / 8, count = rows * vectors_per_row;
  uint4 values[kMaxPerThread];
#pragma unroll
  for (int k = 0; k < kMaxPerThread; ++k) {
    const int i = threadIdx.x + k * blockDim.x;
    values[k] = make_uint4(0, 0, 0, 0);
    if (i < count) {
      const int64_t row = first + i / vectors_per_row;
      if (row < limit)
        values[k] = *reinterpret_cast<const uint4*>(src + row * stride + head_offset + (i % vectors_per_row) * 8);
    }
  }
#pragma unroll
  for (int k = 0; k < kMaxPerThread; ++k) {
    const int i = threadIdx.x + k * blockDim.x;
    if (i < count) *reinterpret_cast<uint4*>(dst + (i / vectors_per_row) * ld + (i % vectors_per_row) * 8) = values[k];
  }
}

__global__ void __launch_bounds__(kTileWarps * 32)
    attention_with_bias_tiled_kernel(const uint16_t* __restrict__ q, const uint16_t* __restrict__ k,
                                     const uint16_t* __restrict__ v, const float* __restrict__ bias, int64_t lq,
                                     int64_t lk, int64_t heads, int head_dim, float scale, TiledLayout l,
                                     uint16_t* __restrict__ out) {
  using namespace nvcuda;
  extern __shared__ __align__(128) unsigned char smem[];
  auto* q_tile = reinterpret_cast<__nv_bfloat16*>(smem + l.q_offset);
  auto* stage = reinterpret_cast<__nv_bfloat16*>(smem + l.stage_offset);
  auto* scores = reinterpret_cast<float*>(smem + l.scores_offset);
  // Row r of P: hi at bf16 index r * 2 keys_ld, lo keys_ld after it (over row r of S; see tiled_layout).
  auto* p_hi = reinterpret_cast<__nv_bfloat16*>(smem + l.scores_offset);
  auto* p_lo = p_hi + l.keys_padded;
  auto* sums = reinterpret_cast<float*>(smem + l.sums_offset);
  const int warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  const int64_t first_row = int64_t(blockIdx.x) * kTileRows, head = blockIdx.y, stride = heads * head_dim;
  const int64_t head_offset = head * head_dim;
  const int ld = int(l.head_ld), keys_ld = int(l.keys_padded);

  stage_rows(q, first_row, kTileRows, lq, stride, head_offset, head_dim, ld, reinterpret_cast<uint16_t*>(q_tile));
  // S = Q K^T, 64 keys a step: warp w computes the 16 x 16 block of keys [key0 + 16 w, key0 + 16 w + 16).
  for (int64_t key0 = 0; key0 < l.keys_padded; key0 += kStageKeys) {
    __syncthreads();  // the previous step's stage (and, the first time, q_tile) is complete / consumed
    stage_rows(k, key0, kStageKeys, lk, stride, head_offset, head_dim, ld, reinterpret_cast<uint16_t*>(stage));
    __syncthreads();
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    wmma::fill_fragment(acc, 0.0f);
    for (int d = 0; d < head_dim; d += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> a;
      wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> b;  // K^T: K's rows as columns
      wmma::load_matrix_sync(a, q_tile + d, ld);
      wmma::load_matrix_sync(b, stage + warp * 16 * ld + d, ld);
      wmma::mma_sync(acc, a, b, acc);
    }
    wmma::store_matrix_sync(scores + key0 + warp * 16, acc, keys_ld, wmma::mem_row_major);
  }
  __syncthreads();
  // Softmax of each row in fp32 (warp w takes rows w, w + 4, ...); P = hi + lo in bf16, padding keys 0. The row is
  // read whole into registers first: P is then written over it.
  for (int r = warp; r < kTileRows; r += kTileWarps) {
    const int64_t row = first_row + r;
    const float* s = scores + r * keys_ld;
    const float* __restrict__ bias_row = bias + (head * lq + row) * lk;
    const bool real_row = row < lq;
    float values[kRowValuesPerLane];
    float row_max = -FLT_MAX;
#pragma unroll
    for (int i = 0; i < kRowValuesPerLane; ++i) {
      const int j = lane + i * kWarpSize;
      values[i] = 0.0f;
      if (real_row && j < int(lk)) {
        values[i] = s[j] * scale + bias_row[j];
        row_max = fmaxf(row_max, values[i]);
      }
    }
    for (int offset = kWarpSize / 2; offset > 0; offset /= 2)
      row_max = fmaxf(row_max, __shfl_xor_sync(0xffffffffu, row_max, offset));
    __syncwarp();  // every lane has read its part of the row before any lane writes P over it
    float total = 0.0f;
    __nv_bfloat16* hi_row = p_hi + r * 2 * keys_ld;
    __nv_bfloat16* lo_row = p_lo + r * 2 * keys_ld;
#pragma unroll
    for (int i = 0; i < kRowValuesPerLane; ++i) {
      const int j = lane + i * kWarpSize;
      if (j < keys_ld) {
        const float p = (real_row && j < int(lk)) ? __expf(values[i] - row_max) : 0.0f;
        total += p;
        const __nv_bfloat16 hi = __float2bfloat16_rn(p);
        hi_row[j] = hi;
        lo_row[j] = __float2bfloat16_rn(p - __bfloat162float(hi));
      }
    }
    for (int offset = kWarpSize / 2; offset > 0; offset /= 2) total += __shfl_xor_sync(0xffffffffu, total, offset);
    if (lane == 0) sums[r] = total;
  }
  // O = P V, 64 keys a step; warp w owns output columns [16 c, 16 c + 16) for c = w, w + 4, ... (<= 2 at 128).
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> out_acc[2];
  wmma::fill_fragment(out_acc[0], 0.0f);
  wmma::fill_fragment(out_acc[1], 0.0f);
  const int column_tiles = head_dim / 16;
  for (int64_t key0 = 0; key0 < l.keys_padded; key0 += kStageKeys) {
    __syncthreads();
    stage_rows(v, key0, kStageKeys, lk, stride, head_offset, head_dim, ld, reinterpret_cast<uint16_t*>(stage));
    __syncthreads();
    for (int t = 0; t < 2; ++t) {
      const int c = warp + t * kTileWarps;
      if (c >= column_tiles) break;
      for (int kk = 0; kk < kStageKeys; kk += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> a_hi, a_lo;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> b;
        wmma::load_matrix_sync(a_hi, p_hi + key0 + kk, 2 * keys_ld);
        wmma::load_matrix_sync(a_lo, p_lo + key0 + kk, 2 * keys_ld);
        wmma::load_matrix_sync(b, stage + kk * ld + c * 16, ld);
        wmma::mma_sync(out_acc[t], a_hi, b, out_acc[t]);
        wmma::mma_sync(out_acc[t], a_lo, b, out_acc[t]);
      }
    }
  }
  // Through shared memory (the scores area is free now) to divide by the row sums and round once to bf16.
  __syncthreads();
  for (int t = 0; t < 2; ++t) {
    const int c = warp + t * kTileWarps;
    if (c < column_tiles) wmma::store_matrix_sync(scores + c * 16, out_acc[t], keys_ld, wmma::mem_row_major);
  }
  __syncthreads();
  for (int i = threadIdx.x; i < kTileRows * head_dim; i += blockDim.x) {
    const int r = i / head_dim, d = i % head_dim;
    const int64_t row = first_row + r;
    if (row < lq) out[row * stride + head_offset + d] = float_to_bf16_bits(scores[r * keys_ld + d] / sums[r]);
  }
}

// One warp a row: s = softmax(s + bias) in place, fp32 (the rows are a few hundred keys: three passes through L1).
__global__ void softmax_rows_with_bias_kernel(float* __restrict__ s, const float* __restrict__ bias, int64_t rows,
                                              int64_t cols) {
  const int64_t row = int64_t(blockIdx.x) * (blockDim.x / kWarpSize) + threadIdx.x / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;
  if (row >= rows) return;
  float* r = s + row * cols;
  const float* b = bias + row * cols;
  float row_max = -FLT_MAX;
  for (int64_t j = lane; j < cols; j += kWarpSize) {
    const float x = r[j] + b[j];
    r[j] = x;
    row_max = fmaxf(row_max, x);
  }
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2)
    row_max = fmaxf(row_max, __shfl_xor_sync(0xffffffffu, row_max, offset));
  float sum = 0.0f;
  for (int64_t j = lane; j < cols; j += kWarpSize) {
    const float e = expf(r[j] - row_max);
    r[j] = e;
    sum += e;
  }
  sum = warp_sum(sum);
  for (int64_t j = lane; j < cols; j += kWarpSize) r[j] = r[j] / sum;
}

// bias[h, i, j] = table[bucket_of_offset[j - i + tokens - 1], h]: one thread per (i, j), all heads (coalesced in j).
__global__ void relative_position_bias_kernel(const float* __restrict__ table, const int32_t* __restrict__ buckets,
                                              int64_t heads, int64_t tokens, float* __restrict__ bias) {
  const int64_t plane = tokens * tokens;
  for (int64_t ij = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; ij < plane; ij += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = ij / tokens, j = ij % tokens;
    const float* row = table + int64_t(buckets[j - i + tokens - 1]) * heads;
    for (int64_t h = 0; h < heads; ++h) bias[h * plane + ij] = row[h];
  }
}

__global__ void multiply_bf16_kernel(const uint16_t* __restrict__ a, const uint16_t* __restrict__ b, int64_t count,
                                     uint16_t* __restrict__ out) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = float_to_bf16_bits(bf16_bits_to_float(a[i]) * bf16_bits_to_float(b[i]));
}

__global__ void dequantize_f8e4m3_rows_kernel(const uint8_t* __restrict__ x, const float* __restrict__ scales,
                                              int64_t scale_count, int64_t rows, int64_t cols,
                                              uint16_t* __restrict__ out) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < rows * cols;
       i += int64_t(gridDim.x) * blockDim.x) {
    __nv_fp8_e4m3 value;
    value.__x = x[i];
    const float scale = scales == nullptr ? 1.0f : scales[scale_count == 1 ? 0 : i / cols];
    out[i] = float_to_bf16_bits(float(value) * scale);
  }
}

}  // namespace

void dequantize_f8e4m3_rows(const uint8_t* x, const float* scales, int64_t scale_count, int64_t rows, int64_t cols,
                            uint16_t* out, Stream stream) {
  LF_CHECK(scales == nullptr || scale_count == 1 || scale_count == rows,
           "dequantize_f8e4m3_rows: {} scales for {} rows", scale_count, rows);
  if (rows * cols == 0) return;
  constexpr int kThreads = 256;
  const unsigned blocks = unsigned(std::min<int64_t>(132 * 32, (rows * cols + kThreads - 1) / kThreads));
  dequantize_f8e4m3_rows_kernel<<<blocks, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(x, scales, scale_count,
                                                                                             rows, cols, out);
  LF_CUDA_LAUNCH_CHECK("dequantize_f8e4m3_rows {}x{}", rows, cols);
}

void attention_with_bias(const uint16_t* q, const uint16_t* k, const uint16_t* v, const float* bias, int64_t lq,
                         int64_t lk, int64_t heads, int64_t head_dim, double scale, uint16_t* out, Stream stream) {
  LF_CHECK(lq > 0 && lk > 0 && lk <= kMaxKeys && heads > 0 && heads <= 65535 && head_dim > 0 &&
               head_dim <= kMaxHeadDim,
           "attention_with_bias: lq {} lk {} heads {} head_dim {} outside the kernel's limits (lk <= {}, head_dim <= "
           "{})", lq, lk, heads, head_dim, kMaxKeys, kMaxHeadDim);
  const cudaStream_t on = static_cast<cudaStream_t>(stream);
  // The tiled kernel when its shapes fit (16-aligned head_dim, the rows of S and P within shared memory);
  // otherwise the row kernel.
  constexpr size_t kTiledSharedLimit = 200 * 1024;
  const TiledLayout layout = tiled_layout(lk, head_dim);
  // 16-byte loads of q/k/v rows: the bases must be 16-byte aligned (head_dim % 16 keeps every row so).
  const bool aligned = (reinterpret_cast<uintptr_t>(q) | reinterpret_cast<uintptr_t>(k) | reinterpret_cast<uintptr_t>(v)) % 16 == 0;
  if (head_dim % 16 == 0 && aligned && layout.bytes <= kTiledSharedLimit &&
      layout.keys_padded <= int64_t(kRowValuesPerLane) * kWarpSize) {
    LF_CUDA_CHECK(cudaFuncSetAttribute(attention_with_bias_tiled_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       int(layout.bytes)),
                  "attention_with_bias: {} bytes of shared memory", layout.bytes);
    attention_with_bias_tiled_kernel<<<dim3(unsigned((lq + kTileRows - 1) / kTileRows), unsigned(heads)),
                                       kTileWarps * kWarpSize, layout.bytes, on>>>(q, k, v, bias, lq, lk, heads,
                                                                                   int(head_dim), float(scale), layout,
                                                                                   out);
    LF_CUDA_LAUNCH_CHECK("attention_with_bias (tiled) lq {} lk {} heads {} head_dim {}", lq, lk, heads, head_dim);
    return;
  }
  const int threads = kAttentionThreads;
  const size_t shared_bytes = size_t(head_dim + lk + threads) * sizeof(float);
  if (shared_bytes > 48 * 1024)
    LF_CUDA_CHECK(cudaFuncSetAttribute(attention_with_bias_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       int(shared_bytes)),
                  "attention_with_bias: {} bytes of shared memory", shared_bytes);
  attention_with_bias_kernel<<<dim3(unsigned(lq), unsigned(heads)), threads, shared_bytes, on>>>(
      q, k, v, bias, lq, lk, heads, head_dim, float(scale), out);
  LF_CUDA_LAUNCH_CHECK("attention_with_bias lq {} lk {} heads {} head_dim {}", lq, lk, heads, head_dim);
}

void softmax_rows_with_bias(float* s, const float* bias, int64_t rows, int64_t cols, Stream stream) {
  if (rows == 0 || cols == 0) return;
  constexpr int kWarps = 8;
  softmax_rows_with_bias_kernel<<<blocks_for(rows, kWarps), kWarps * kWarpSize, 0, static_cast<cudaStream_t>(stream)>>>(
      s, bias, rows, cols);
  LF_CUDA_LAUNCH_CHECK("softmax_rows_with_bias rows {} cols {}", rows, cols);
}

void relative_position_bias(const float* table, const int32_t* bucket_of_offset, int64_t heads, int64_t tokens,
                            float* bias, Stream stream) {
  if (tokens == 0 || heads == 0) return;
  constexpr int kThreads = 256;
  const unsigned blocks = unsigned(std::min<int64_t>(132 * 16, (tokens * tokens + kThreads - 1) / kThreads));
  relative_position_bias_kernel<<<blocks, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(table, bucket_of_offset,
                                                                                             heads, tokens, bias);
  LF_CUDA_LAUNCH_CHECK("relative_position_bias heads {} tokens {}", heads, tokens);
}

void multiply_bf16(const uint16_t* a, const uint16_t* b, int64_t count, uint16_t* out, Stream stream) {
  if (count == 0) return;
  constexpr int kThreads = 256;
  const unsigned blocks = unsigned(std::min<int64_t>(132 * 32, (count + kThreads - 1) / kThreads));
  multiply_bf16_kernel<<<blocks, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(a, b, count, out);
  LF_CUDA_LAUNCH_CHECK("multiply_bf16 count {}", count);
}

}  // namespace lf::gpu
