// Standalone RoPE in place on [tokens, heads, head_dim] (bf16 or fp32): the relative-position path ropes cached
// keys on every read, and queries/keys that did not come through rms_norm_rope.
//
// One thread per (token, vector of 2 or 4 elements of a head): the angles depend on the token and the pairs only,
// so their cos/sin are computed once and applied to every head; a warp covers 32 neighbouring vectors of one head
// at a time (256 contiguous bytes of bf16 at head_dim 128), so each head's accesses are coalesced.
#include "kernels/cuda_check.h"
#include "kernels/ops/device_helpers.cuh"
#include "kernels/ops/gpu_ops.h"
#include "kernels/ops/rope_params.cuh"

namespace lf::gpu {

namespace {

using namespace detail;

constexpr int kRopeThreads = 256;

template <typename T, int kVec>
__global__ void __launch_bounds__(kRopeThreads)
    rope_kernel(T* __restrict__ x, int64_t row_stride, int64_t tokens, int heads,
                const __grid_constant__ RopeParams params) {
  static_assert(kVec == 2 || kVec == 4, "a vector holds one or two whole pairs");
  __shared__ RopeShared shared;
  rope_load_shared(params, shared);
  const int vectors_per_head = params.head_dim / kVec;
  const int64_t index = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (index >= tokens * vectors_per_head) return;
  const int64_t token = index / vectors_per_head;
  const int vector = int(index - token * vectors_per_head);
  const TokenPosition position = rope_token_position(params, shared, token);
  float cos_angle[kVec / 2], sin_angle[kVec / 2];
#pragma unroll
  for (int p = 0; p < kVec / 2; ++p)
    rope_cos_sin(params, shared, position, vector * (kVec / 2) + p, cos_angle[p], sin_angle[p]);
  T* element = x + token * row_stride + vector * kVec;
#pragma unroll 4
  for (int head = 0; head < heads; ++head) {
    float v[kVec];
    load_vec<kVec>(element + int64_t(head) * params.head_dim, v);
#pragma unroll
    for (int p = 0; p < kVec / 2; ++p) rope_rotate(v[2 * p], v[2 * p + 1], cos_angle[p], sin_angle[p]);
    store_vec<kVec>(element + int64_t(head) * params.head_dim, v);
  }
}

template <typename T>
void rope_apply_any(const char* name, T* x, int64_t row_stride, int64_t tokens, const RopeLayout& layout,
                    const int64_t* frame_positions, int64_t frame_count, void* stream) {
  const int64_t width = layout.heads * layout.head_dim;
  if (row_stride == 0) row_stride = width;
  LF_CHECK(tokens == 0 || x != nullptr, "{}: null input", name);
  LF_CHECK(row_stride >= width, "{}: row stride {} below heads x head_dim {}", name, row_stride, width);
  for_each_rope_launch(name, layout, tokens, frame_positions, frame_count,
                       [&](int64_t first_token, int64_t count, const RopeParams& params) {
                         // Vectors never cross a head (head_dim is even: checked); a pair needs 2 aligned elements.
                         const int vec = vector_width(layout.head_dim, {{x, row_stride, int(sizeof(T))}});
                         LF_CHECK(vec >= 2, "{}: rows must be aligned to 2 elements (pointer and row stride)", name);
                         const unsigned blocks = blocks_for(count * (params.head_dim / vec), kRopeThreads);
                         T* first = x + first_token * row_stride;
                         if (vec == 4)
                           rope_kernel<T, 4><<<blocks, kRopeThreads, 0, as_stream(stream)>>>(
                               first, row_stride, count, int(layout.heads), params);
                         else
                           rope_kernel<T, 2><<<blocks, kRopeThreads, 0, as_stream(stream)>>>(
                               first, row_stride, count, int(layout.heads), params);
                         LF_CUDA_LAUNCH_CHECK("{} of {} tokens x {} heads x {}", name, count, layout.heads,
                                              layout.head_dim);
                       });
}

}  // namespace

void rope_apply(uint16_t* x, int64_t row_stride, int64_t tokens, const RopeLayout& layout,
                const int64_t* frame_positions, int64_t frame_count, Stream stream) {
  rope_apply_any("rope_apply", x, row_stride, tokens, layout, frame_positions, frame_count, stream);
}

void rope_apply_f32(float* x, int64_t row_stride, int64_t tokens, const RopeLayout& layout,
                    const int64_t* frame_positions, int64_t frame_count, Stream stream) {
  rope_apply_any("rope_apply_f32", x, row_stride, tokens, layout, frame_positions, frame_count, stream);
}

}  // namespace lf::gpu
