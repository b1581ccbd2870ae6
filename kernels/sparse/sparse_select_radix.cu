// Top-k and HSA selection by radix select, one warp per mask row (the default path; the bitonic sort of
// sparse_select.cu stays reachable with LF_SPARSE_SELECT=sort and gives the same masks bit for bit).
// Why: sorting the whole row (45-55 barrier stages over 64-bit keys per CTA) was the largest part of the cached
// planner after pooling. Here a warp owns its row (no CTA barriers) and runs radix_topk_row
// (sparse_radix_row.cuh) over the row's values in shared memory.
#include <cuda_runtime.h>

#include <algorithm>

#include "core/error.h"
#include "kernels/cuda_check.h"
#include "kernels/sparse/sparse_launch.cuh"
#include "kernels/sparse/sparse_select_detail.h"
#include "kernels/sparse/sparse_radix_row.cuh"
#include "kernels/sparse/sparse_select_device.cuh"

namespace lf::gpu::sparse::detail {

namespace {

// tuned: rows (warps) per CTA. 444 rows at the bench shape: 4 spread them over 111 SMs; the passes are
// latency-bound, so more rows per SM only queue behind each other.
constexpr int kRadixWarpsPerCta = 4;
constexpr int kMaxSharedPerCta = 48 * 1024;  // no opt-in attribute needed

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

  radix_row_values<kHsa>(row_scores, a.frame_scores + (kHsa ? int64_t(row) * a.frame_stride : 0), n, a.key_frames,
                         a.blocks_per_frame, a.past_frames, a.keep_sink, a.keep_near, a.keep_middle, frame_score,
                         frame_ok, values, lane);
  if (lane == 0) {
    a.row_offsets[row + 1] = (row + 1) * a.topk;
    if (row == 0) a.row_offsets[0] = 0;
  }
  allow_next_grid();
  if (a.topk == 0) return;

  radix_topk_row(values, histogram, n, a.topk, row_scores, a.key_indices + int64_t(row) * a.topk,
                 a.selected_scores != nullptr ? a.selected_scores + int64_t(row) * a.topk : nullptr, lane);
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
