#pragma once
// Device-side building blocks shared by the op files: vector loads/stores of fp32 and bf16 (as uint16_t bits),
// warp reductions, launch-size arithmetic and the alignment test that decides whether an op can use them.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <initializer_list>

#include "core/error.h"

namespace lf::gpu::detail {

constexpr int kWarpSize = 32;

__device__ __forceinline__ float bf16_bits_to_float(uint32_t bits) { return __uint_as_float(bits << 16); }

// Round to nearest even, as the CPU's f32_to_bf16 and PyTorch.
__device__ __forceinline__ uint16_t float_to_bf16_bits(float value) {
  return __bfloat16_as_ushort(__float2bfloat16_rn(value));
}

// kVec consecutive elements as floats. kVec = 4 reads 16 bytes (fp32) or 8 bytes (bf16) at once; the caller
// guarantees the alignment (see vector_width below).
template <int kVec>
__device__ __forceinline__ void load_vec(const float* p, float (&v)[kVec]) {
  if constexpr (kVec == 4) {
    const float4 q = *reinterpret_cast<const float4*>(p);
    v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
  } else if constexpr (kVec == 2) {
    const float2 q = *reinterpret_cast<const float2*>(p);
    v[0] = q.x, v[1] = q.y;
  } else {
#pragma unroll
    for (int k = 0; k < kVec; ++k) v[k] = p[k];
  }
}

template <int kVec>
__device__ __forceinline__ void load_vec(const uint16_t* p, float (&v)[kVec]) {
  if constexpr (kVec == 4) {
    const uint2 q = *reinterpret_cast<const uint2*>(p);
    v[0] = bf16_bits_to_float(q.x & 0xffffu), v[1] = bf16_bits_to_float(q.x >> 16);
    v[2] = bf16_bits_to_float(q.y & 0xffffu), v[3] = bf16_bits_to_float(q.y >> 16);
  } else if constexpr (kVec == 2) {
    const uint32_t q = *reinterpret_cast<const uint32_t*>(p);
    v[0] = bf16_bits_to_float(q & 0xffffu), v[1] = bf16_bits_to_float(q >> 16);
  } else {
#pragma unroll
    for (int k = 0; k < kVec; ++k) v[k] = bf16_bits_to_float(p[k]);
  }
}

template <int kVec>
__device__ __forceinline__ void store_vec(float* p, const float (&v)[kVec]) {
  if constexpr (kVec == 4) {
    *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
  } else if constexpr (kVec == 2) {
    *reinterpret_cast<float2*>(p) = make_float2(v[0], v[1]);
  } else {
#pragma unroll
    for (int k = 0; k < kVec; ++k) p[k] = v[k];
  }
}

template <int kVec>
__device__ __forceinline__ void store_vec(uint16_t* p, const float (&v)[kVec]) {
  if constexpr (kVec == 4) {
    const uint32_t low = uint32_t(float_to_bf16_bits(v[0])) | (uint32_t(float_to_bf16_bits(v[1])) << 16);
    const uint32_t high = uint32_t(float_to_bf16_bits(v[2])) | (uint32_t(float_to_bf16_bits(v[3])) << 16);
    *reinterpret_cast<uint2*>(p) = make_uint2(low, high);
  } else if constexpr (kVec == 2) {
    *reinterpret_cast<uint32_t*>(p) =
        uint32_t(float_to_bf16_bits(v[0])) | (uint32_t(float_to_bf16_bits(v[1])) << 16);
  } else {
#pragma unroll
    for (int k = 0; k < kVec; ++k) p[k] = float_to_bf16_bits(v[k]);
  }
}

__device__ __forceinline__ float warp_sum(float value) {
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) value += __shfl_xor_sync(0xffffffffu, value, offset);
  return value;
}

// ---- host side ------------------------------------------------------------------------------------------------

inline cudaStream_t as_stream(void* stream) { return static_cast<cudaStream_t>(stream); }

inline unsigned blocks_for(int64_t work_items, int threads_per_block) {
  const int64_t blocks = (work_items + threads_per_block - 1) / threads_per_block;
  LF_CHECK(blocks < (int64_t(1) << 31), "GPU launch of {} work items is too large for one grid", work_items);
  return unsigned(blocks);
}

// Largest of 4, 2, 1 elements that every (pointer, row stride) pair and the row width allow: a vector access must
// be aligned to its own size, in every row. `element_bytes` is 4 for fp32, 2 for bf16.
struct StridedPointer {
  const void* pointer;
  int64_t row_stride;  // elements
  int element_bytes;
};
inline int vector_width(int64_t width, std::initializer_list<StridedPointer> operands) {
  for (int vec : {4, 2}) {
    bool fits = width % vec == 0;
    for (const StridedPointer& operand : operands) {
      if (operand.pointer == nullptr) continue;
      const uintptr_t bytes = uintptr_t(vec) * uintptr_t(operand.element_bytes);
      fits = fits && reinterpret_cast<uintptr_t>(operand.pointer) % bytes == 0 && operand.row_stride % vec == 0;
    }
    if (fits) return vec;
  }
  return 1;
}

}  // namespace lf::gpu::detail
