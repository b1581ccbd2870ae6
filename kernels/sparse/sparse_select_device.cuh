#pragma once
// Device expressions both selection kernels share (the bitonic sort in sparse_select.cu, the radix select in
// sparse_select_radix.cu), so "highest score, ties toward the lower index" and HSA's frame stage are one
// definition and the two paths choose the same blocks bit for bit.
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/sparse/sparse_select_detail.h"

namespace lf::gpu::sparse::detail {

// Float bits mapped so that unsigned order = float order (negatives flipped). NaN counts as -inf and -0 as +0, so
// keys tie exactly where the scores compare equal. Every result is >= orderable_bits(-inf) = 0x007fffff > 0, so 0
// is free to mark a block that may not be chosen.
__device__ __forceinline__ uint32_t orderable_bits(float score) {
  if (isnan(score)) score = -INFINITY;
  if (score == 0.f) score = 0.f;
  const uint32_t bits = __float_as_uint(score);
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

// HSA stage 1 for frame f of one row: sink, near and current frames always; a middle frame when its rank among
// the middle frames (higher scores first, ties toward the lower frame) is below keep_middle. frame_score holds the
// row's frame scores with NaN already mapped to -inf.
__device__ __forceinline__ bool hsa_frame_eligible(const float* frame_score, int f, int past_frames, int keep_sink,
                                                   int keep_near, int keep_middle) {
  const int middle_first = keep_sink, middle_end = past_frames - keep_near;
  bool eligible = f >= past_frames || f < keep_sink || f >= past_frames - keep_near;
  if (!eligible && f >= middle_first && f < middle_end) {
    int rank = 0;
    const float own = frame_score[f];
    for (int g = middle_first; g < middle_end; ++g)
      rank += (frame_score[g] > own || (frame_score[g] == own && g < f)) ? 1 : 0;
    eligible = rank < keep_middle;
  }
  return eligible;
}

// Pooled key block b of `head` (head_dim floats).
__device__ __forceinline__ const float* key_row(const KeySource& keys, int head, int b, int head_dim) {
  return b < keys.given_first ? keys.cached + (int64_t(head) * keys.cached_stride + b) * head_dim
                              : keys.given + (int64_t(head) * (keys.blocks - keys.given_first) + (b - keys.given_first)) *
                                                 head_dim;
}

}  // namespace lf::gpu::sparse::detail
