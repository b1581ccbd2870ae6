#pragma once
// One warp's radix top-k of one mask row, shared by the radix selector (sparse_select_radix.cu) and the fused
// score + select launch (sparse_score_select.cu), so both choose the same blocks bit for bit.
// Why radix: only the topk highest of a row's few hundred blocks are needed, not their order. The threshold is
// found by at most four 8-bit histogram passes over the orderable score bits (sparse_select_device.cuh), and one
// ascending sweep writes the chosen blocks: every value above the threshold, and of the values equal to it the
// lowest indices first, exactly the "ties toward the lower index" order of the sort path.
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/sparse/sparse_select_device.cuh"

namespace lf::gpu::sparse::detail {

constexpr int kRadixBins = 256;  // 8 bits per pass, 8 bins per lane
constexpr int kRadixBinsPerLane = kRadixBins / 32;
constexpr unsigned kFullWarp = 0xffffffffu;

// Called by all 32 lanes of a warp: the row's values for radix_topk_row. HSA (kHsa): frame_score[f] = the row's
// frame score with NaN as -inf (row_frame_scores may be frame_score itself), frame_ok[f] = stage 1's eligibility,
// and a block of an ineligible frame gets value 0. Lane l writes values[l + 32 j] only.
template <bool kHsa>
__device__ __forceinline__ void radix_row_values(const float* row_scores, const float* row_frame_scores, int n,
                                                 int key_frames, int blocks_per_frame, int past_frames, int keep_sink,
                                                 int keep_near, int keep_middle, float* frame_score,
                                                 uint8_t* frame_ok, uint32_t* values, int lane) {
  if constexpr (kHsa) {
    for (int f = lane; f < key_frames; f += 32) {
      const float s = row_frame_scores[f];
      frame_score[f] = isnan(s) ? -INFINITY : s;
    }
    __syncwarp();
    for (int f = lane; f < key_frames; f += 32)
      frame_ok[f] = hsa_frame_eligible(frame_score, f, past_frames, keep_sink, keep_near, keep_middle) ? 1 : 0;
    __syncwarp();
  }
  for (int i = lane; i < n; i += 32) {
    bool eligible = true;
    if constexpr (kHsa) eligible = frame_ok[i / blocks_per_frame] != 0;
    values[i] = eligible ? orderable_bits(row_scores[i]) : 0u;
  }
}

// Called by all 32 lanes of a warp. values[0, n): orderable_bits of the row's scores, 0 for a block that may not
// be chosen; lane l wrote (and alone reads) values[l + 32 j]. histogram: kRadixBins ints of this warp's own.
// 1 <= topk <= the nonzero values (the host's budget check). Writes topk ascending indices to out_indices and,
// when out_scores is set, row_scores of each to out_scores.
__device__ __forceinline__ void radix_topk_row(const uint32_t* values, int* histogram, int n, int topk,
                                               const float* row_scores, int* out_indices, float* out_scores,
                                               int lane) {
  // Threshold: the value group (prefix under mask) holding the topk-th highest value; `need` of that group are
  // kept. The host guarantees topk <= the eligible blocks, so some lane always finds the digit.
  uint32_t prefix = 0, mask = 0;
  int need = topk, group = 0;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int b = lane; b < kRadixBins; b += 32) histogram[b] = 0;
    __syncwarp();
    for (int i = lane; i < n; i += 32) {
      const uint32_t v = values[i];
      if (v != 0 && (v & mask) == prefix) atomicAdd(&histogram[(v >> shift) & 0xff], 1);
    }
    __syncwarp();
    int count[kRadixBinsPerLane], local = 0;
#pragma unroll
    for (int j = 0; j < kRadixBinsPerLane; ++j) {
      count[j] = histogram[lane * kRadixBinsPerLane + j];
      local += count[j];
    }
    int at_or_above = local;  // candidates in this lane's bins and every higher lane's
#pragma unroll
    for (int offset = 1; offset < 32; offset <<= 1) {
      const int other = __shfl_down_sync(kFullWarp, at_or_above, offset);
      if (lane + offset < 32) at_or_above += other;
    }
    int above = at_or_above - local;  // candidates with a higher digit than this lane's bins
    int digit = -1, digit_need = 0, digit_count = 0;
#pragma unroll
    for (int j = kRadixBinsPerLane - 1; j >= 0; --j) {
      if (digit < 0 && above < need && need <= above + count[j]) {
        digit = lane * kRadixBinsPerLane + j;
        digit_need = need - above;
        digit_count = count[j];
      }
      above += count[j];
    }
    const unsigned found = __ballot_sync(kFullWarp, digit >= 0);
    __syncwarp();  // every lane has read the histogram before the next pass clears it
    if (found == 0) break;  // unreachable under the host's budget check
    const int source = __ffs(found) - 1;
    digit = __shfl_sync(kFullWarp, digit, source);
    need = __shfl_sync(kFullWarp, digit_need, source);
    group = __shfl_sync(kFullWarp, digit_count, source);
    prefix |= uint32_t(digit) << shift;
    mask |= 0xffu << shift;
    if (group == need) break;  // the whole group is kept: lower bits cannot change the set
  }
  const bool ties = group > need;  // only after the last pass: equal values, the lowest indices kept

  // Ascending sweep: slots by warp prefix counts.
  const unsigned lanes_below = (1u << lane) - 1u;
  int written = 0, ties_seen = 0;
  for (int base = 0; base < n; base += 32) {
    const int i = base + lane;
    const uint32_t v = i < n ? values[i] : 0u;
    bool take;
    if (!ties) {
      take = v != 0 && (v & mask) >= prefix;
    } else {
      const bool tie = v != 0 && v == prefix;
      const unsigned tie_lanes = __ballot_sync(kFullWarp, tie);
      take = (v != 0 && v > prefix) || (tie && ties_seen + __popc(tie_lanes & lanes_below) < need);
      ties_seen += __popc(tie_lanes);
    }
    const unsigned take_lanes = __ballot_sync(kFullWarp, take);
    if (take) {
      const int slot = written + __popc(take_lanes & lanes_below);
      out_indices[slot] = i;
      if (out_scores != nullptr) out_scores[slot] = row_scores[i];
    }
    written += __popc(take_lanes);
  }
}

}  // namespace lf::gpu::sparse::detail
