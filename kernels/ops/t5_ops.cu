// umT5 encoder ops: attention with an additive bias and no mask, and the gated FFN's product. Correctness-first
// kernels (the encoder runs once per prompt); checked against lib/ops/cpu/biased_attention_cpu.cpp in
// tests/test_gpu_ops.cpp.
#include <algorithm>
#include <cfloat>

#include "cuda_check.h"
#include "ops/device_helpers.cuh"
#include "ops/t5_ops.h"

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

__global__ void multiply_bf16_kernel(const uint16_t* __restrict__ a, const uint16_t* __restrict__ b, int64_t count,
                                     uint16_t* __restrict__ out) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = float_to_bf16_bits(bf16_bits_to_float(a[i]) * bf16_bits_to_float(b[i]));
}

}  // namespace

void attention_with_bias(const uint16_t* q, const uint16_t* k, const uint16_t* v, const float* bias, int64_t lq,
                         int64_t lk, int64_t heads, int64_t head_dim, double scale, uint16_t* out, Stream stream) {
  LF_CHECK(lq > 0 && lk > 0 && lk <= kMaxKeys && heads > 0 && heads <= 65535 && head_dim > 0 &&
               head_dim <= kMaxHeadDim,
           "attention_with_bias: lq {} lk {} heads {} head_dim {} outside the kernel's limits (lk <= {}, head_dim <= "
           "{})", lq, lk, heads, head_dim, kMaxKeys, kMaxHeadDim);
  const int threads = kAttentionThreads;
  const size_t shared_bytes = size_t(head_dim + lk + threads) * sizeof(float);
  if (shared_bytes > 48 * 1024)
    LF_CUDA_CHECK(cudaFuncSetAttribute(attention_with_bias_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       int(shared_bytes)),
                  "attention_with_bias: {} bytes of shared memory", shared_bytes);
  attention_with_bias_kernel<<<dim3(unsigned(lq), unsigned(heads)), threads, shared_bytes,
                               static_cast<cudaStream_t>(stream)>>>(q, k, v, bias, lq, lk, heads, head_dim,
                                                                    float(scale), out);
  LF_CUDA_LAUNCH_CHECK("attention_with_bias lq {} lk {} heads {} head_dim {}", lq, lk, heads, head_dim);
}

void multiply_bf16(const uint16_t* a, const uint16_t* b, int64_t count, uint16_t* out, Stream stream) {
  if (count == 0) return;
  constexpr int kThreads = 256;
  const unsigned blocks = unsigned(std::min<int64_t>(132 * 32, (count + kThreads - 1) / kThreads));
  multiply_bf16_kernel<<<blocks, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(a, b, count, out);
  LF_CUDA_LAUNCH_CHECK("multiply_bf16 count {}", count);
}

}  // namespace lf::gpu
