// Top-k and HSA selection by radix select, one warp per mask row (the default path; the bitonic sort of
// sparse_select.cu stays reachable with LF_SPARSE_SELECT=sort and gives the same masks bit for bit).
// Why: only the topk highest of a row's few hundred blocks are needed, not their order. Sorting the whole row
// (45-55 barrier stages over 64-bit keys per CTA) was the largest part of the cached planner after pooling.
// Here the threshold is found by at most four 8-bit histogram passes over the orderable score bits
// (sparse_select_device.cuh), a warp owns its row (no CTA barriers), and one ascending sweep writes the chosen
// blocks: every score above the threshold, and of the scores equal to it the lowest indices first, exactly the
// "ties toward the lower index" order of the sort.
#include <cuda_runtime.h>

#include <algorithm>

#include "core/error.h"
#include "cuda_check.h"
#include "sparse/sparse_launch.cuh"
#include "sparse/sparse_select_detail.h"
#include "sparse/sparse_select_device.cuh"

namespace lf::gpu::sparse::detail {

namespace {

// tuned: rows (warps) per CTA. 444 rows at the bench shape: 4 spread them over 111 SMs; the passes are
// latency-bound, so more rows per SM only queue behind each other.
constexpr int kRadixWarpsPerCta = 4;
constexpr int kRadixBins = 256;  // 8 bits per pass, 8 bins per lane
constexpr int kRadixBinsPerLane = kRadixBins / 32;
constexpr int kMaxSharedPerCta = 48 * 1024;  // no opt-in attribute needed
constexpr unsigned kFullWarp = 0xffffffffu;

// Shared memory of one warp: histogram, the row's candidate values, and for HSA the frame scores and flags.
int warp_shared_bytes(int key_blocks, int key_frames) {
  const int bytes = kRadixBins * 4 + key_blocks * 4 + key_frames * 4 + key_frames;
  return (bytes + 15) / 16 * 16;
}

template <bool kHsa>
__global__ void __launch_bounds__(kRadixWarpsPerCta * 32) select_radix_kernel(const RadixSelectArgs a) {
  extern __shared__ __align__(16) uint8_t shared[];
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const int row = int(blockIdx.x) * (int(blockDim.x) / 32) + warp;
  wait_for_previous_grid();
  if (row >= a.rows) return;  // whole warps only: nothing below synchronises more than its own warp
  uint8_t* own = shared + size_t(warp) * a.warp_bytes;
  int* histogram = reinterpret_cast<int*>(own);
  uint32_t* values = reinterpret_cast<uint32_t*>(histogram + kRadixBins);  // 0 = may not be chosen
  float* frame_score = reinterpret_cast<float*>(values + a.key_blocks);    // HSA: [key_frames]
  uint8_t* frame_ok = reinterpret_cast<uint8_t*>(frame_score + a.key_frames);
  const int n = a.key_blocks;
  const float* row_scores = a.scores + int64_t(row) * a.score_stride;

  if constexpr (kHsa) {
    for (int f = lane; f < a.key_frames; f += 32) {
      const float s = a.frame_scores[int64_t(row) * a.frame_stride + f];
      frame_score[f] = isnan(s) ? -INFINITY : s;
    }
    __syncwarp();
    for (int f = lane; f < a.key_frames; f += 32)
      frame_ok[f] = hsa_frame_eligible(frame_score, f, a.past_frames, a.keep_sink, a.keep_near, a.keep_middle) ? 1 : 0;
    __syncwarp();
  }
  // Lane-private from here: lane l only ever touches values[l + 32 j].
  for (int i = lane; i < n; i += 32) {
    bool eligible = true;
    if constexpr (kHsa) eligible = frame_ok[i / a.blocks_per_frame] != 0;
    values[i] = eligible ? orderable_bits(row_scores[i]) : 0u;
  }
  if (lane == 0) {
    a.row_offsets[row + 1] = (row + 1) * a.topk;
    if (row == 0) a.row_offsets[0] = 0;
  }
  allow_next_grid();
  if (a.topk == 0) return;

  // Threshold: the value group (prefix under mask) holding the topk-th highest value; `need` of that group are
  // kept. The host guarantees topk <= the eligible blocks, so some lane always finds the digit.
  uint32_t prefix = 0, mask = 0;
  int need = a.topk, group = 0;
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
  int* out_indices = a.key_indices + int64_t(row) * a.topk;
  float* out_scores = a.selected_scores != nullptr ? a.selected_scores + int64_t(row) * a.topk : nullptr;
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

}  // namespace

void launch_radix_select(const RadixSelectArgs& args, cudaStream_t stream, const char* name) {
  RadixSelectArgs a = args;
  a.warp_bytes = warp_shared_bytes(a.key_blocks, a.key_frames);
  const int warps = std::max(1, std::min(kRadixWarpsPerCta, kMaxSharedPerCta / a.warp_bytes));
  LF_CHECK(a.warp_bytes <= kMaxSharedPerCta, "{}: {} key blocks and {} frames need {} bytes of shared memory per row",
           name, a.key_blocks, a.key_frames, a.warp_bytes);
  const dim3 grid((a.rows + warps - 1) / warps);
  const size_t shared = size_t(warps) * a.warp_bytes;
  if (a.frame_scores != nullptr)
    launch_dependent(select_radix_kernel<true>, grid, dim3(warps * 32), shared, stream, a);
  else
    launch_dependent(select_radix_kernel<false>, grid, dim3(warps * 32), shared, stream, a);
  LF_CUDA_LAUNCH_CHECK("{} (radix): {} rows x {} key blocks", name, a.rows, a.key_blocks);
}

}  // namespace lf::gpu::sparse::detail
