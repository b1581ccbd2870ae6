// Scores and selection of the cached top-k / HSA planners in one launch (the default path; LF_SPARSE_FUSED=0
// gives the score launch + radix select launch of before, with the same masks bit for bit).
// Why: after pooling, a plan was a score grid writing [rows, key_blocks + key_frames] to global memory and a
// select grid reading it back, each a few microseconds of work behind its own launch and ramp; the scores of one
// row are only ever read by the warp that selects it. Here a CTA owns kFusedRows mask rows of one head: all its
// threads score them (each thread one key block or frame against every row, the pooled queries in shared memory),
// the scores stay in shared memory, and one warp per row runs the same radix select (sparse_radix_row.cuh).
// Each score is the same fmaf chain over head_dim in the same order as block_scores_kernel, so the bits match.
#include <cuda_runtime.h>

#include <algorithm>

#include "core/error.h"
#include "kernels/cuda_check.h"
#include "kernels/speed_switches.h"
#include "kernels/sparse/sparse_launch.cuh"
#include "kernels/sparse/sparse_radix_row.cuh"
#include "kernels/sparse/sparse_select_detail.h"
#include "kernels/sparse/sparse_select_device.cuh"

namespace lf::gpu::sparse::detail {

namespace {

// tuned: mask rows per CTA. 444 rows at the bench shape (37 query blocks x 12 heads) give 120 CTAs, about one per
// SM; each thread keeps kFusedRows independent fmaf chains per key, enough to hide the FMA latency.
// LF_SPARSE_FUSED_ROWS=2 or 8 picks another count (read once), for timing the trade-off on a device: fewer rows
// per CTA mean more CTAs and less work per thread, more rows more fmaf chains per key load.
constexpr int kFusedRows = 4;
constexpr int kFusedThreads = 256;  // every warp scores; the first rows_per_cta select
constexpr int kKeyLoadsInFlight = 8;  // 16-byte loads of a key row per thread in flight (128 of 512 bytes)
constexpr int kMaxFusedShared = 48 * 1024;  // no opt-in attribute needed; larger rows take the two-launch path

// Shared memory: the CTA's pooled queries, then per row: histogram, values, raw scores, frame scores, frame flags.
__host__ __device__ constexpr int fused_query_bytes(int head_dim, int rows) { return rows * head_dim * 4; }
int fused_row_bytes(int key_blocks, int key_frames) {
  const int bytes = kRadixBins * 4 + key_blocks * 8 + key_frames * 4 + key_frames;
  return (bytes + 15) / 16 * 16;
}

template <bool kHsa, int kRows>
__global__ void __launch_bounds__(kFusedThreads) score_select_kernel(const FusedSelectArgs a, int row_bytes) {
  extern __shared__ __align__(16) uint8_t shared[];
  const int head = int(blockIdx.y), first_block = int(blockIdx.x) * kRows, head_dim = a.head_dim;
  const int rows_here = min(kRows, a.query_blocks - first_block);
  const int n = a.key_blocks, frames = kHsa ? a.key_frames : 0;
  float* queries = reinterpret_cast<float*>(shared);  // [kRows][head_dim]
  uint8_t* row_base = shared + fused_query_bytes(head_dim, kRows);
  auto histogram_of = [&](int r) { return reinterpret_cast<int*>(row_base + size_t(r) * row_bytes); };
  auto values_of = [&](int r) { return reinterpret_cast<uint32_t*>(histogram_of(r) + kRadixBins); };
  auto scores_of = [&](int r) { return reinterpret_cast<float*>(values_of(r) + n); };
  auto frame_scores_of = [&](int r) { return scores_of(r) + n; };
  auto frame_ok_of = [&](int r) { return reinterpret_cast<uint8_t*>(frame_scores_of(r) + frames); };

  wait_for_previous_grid();  // the pooled queries, keys and frame keys come from the launches before
  const float* head_queries = a.queries + (int64_t(head) * a.query_blocks + first_block) * head_dim;
  for (int i = int(threadIdx.x); i < kRows * head_dim; i += int(blockDim.x))
    queries[i] = i / head_dim < rows_here ? head_queries[i] : 0.f;
  __syncthreads();

  // Scores: item j < n is key block j, item n + f is frame f (HSA). Per (row, item): fmaf over d ascending from 0.
  for (int j = int(threadIdx.x); j < n + frames; j += int(blockDim.x)) {
    const float* key = j < n ? key_row(a.keys, head, j, head_dim)
                             : a.frame_keys + (int64_t(head) * frames + (j - n)) * head_dim;
    float dot[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) dot[r] = 0.f;
    // The key row is read kKeyLoadsInFlight vectors at a time, all issued before any is used: one dependent
    // 16-byte load per step made each thread wait head_dim / 4 L2 latencies (run 6: 17.7 us at Lk 32760).
    for (int base = 0; base < head_dim; base += 4 * kKeyLoadsInFlight) {
      float4 k4[kKeyLoadsInFlight];
#pragma unroll
      for (int u = 0; u < kKeyLoadsInFlight; ++u)
        k4[u] = base + 4 * u < head_dim ? __ldg(reinterpret_cast<const float4*>(key + base + 4 * u))
                                        : make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
      for (int u = 0; u < kKeyLoadsInFlight; ++u) {
        const int d = base + 4 * u;
        if (d >= head_dim) break;
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
          const float4 q4 = *reinterpret_cast<const float4*>(queries + r * head_dim + d);
          dot[r] = __fmaf_rn(q4.x, k4[u].x, dot[r]);
          dot[r] = __fmaf_rn(q4.y, k4[u].y, dot[r]);
          dot[r] = __fmaf_rn(q4.z, k4[u].z, dot[r]);
          dot[r] = __fmaf_rn(q4.w, k4[u].w, dot[r]);
        }
      }
    }
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      if (r >= rows_here) break;
      if (j < n) scores_of(r)[j] = dot[r];
      else frame_scores_of(r)[j - n] = dot[r];
    }
  }
  __syncthreads();
  allow_next_grid();

  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  if (warp >= rows_here) return;  // whole warps: each selecting warp synchronises only itself from here
  const int row = head * a.query_blocks + first_block + warp;
  const float* row_scores = scores_of(warp);
  radix_row_values<kHsa>(row_scores, frame_scores_of(warp), n, frames, a.blocks_per_frame, a.past_frames,
                         a.keep_sink, a.keep_near, a.keep_middle, frame_scores_of(warp), frame_ok_of(warp),
                         values_of(warp), lane);
  if (lane == 0) {
    a.row_offsets[row + 1] = (row + 1) * a.topk;
    if (row == 0) a.row_offsets[0] = 0;
  }
  if (a.topk == 0) return;
  radix_topk_row(values_of(warp), histogram_of(warp), n, a.topk, row_scores, a.key_indices + int64_t(row) * a.topk,
                 a.selected_scores != nullptr ? a.selected_scores + int64_t(row) * a.topk : nullptr, lane);
}

int fused_rows_per_cta() {
  const int value = speed_switches().sparse_fused_rows;  // LF_SPARSE_FUSED_ROWS
  return value == 2 || value == 8 ? value : kFusedRows;
}

size_t fused_shared_bytes(int key_blocks, int key_frames, int head_dim) {
  const int rows = fused_rows_per_cta();
  return size_t(fused_query_bytes(head_dim, rows)) + size_t(rows) * fused_row_bytes(key_blocks, key_frames);
}

template <bool kHsa>
void launch_rows(const FusedSelectArgs& a, int rows, size_t shared, int row_bytes, cudaStream_t stream) {
  const dim3 grid((a.query_blocks + rows - 1) / rows, a.heads);
  if (rows == 2) launch_dependent(score_select_kernel<kHsa, 2>, grid, dim3(kFusedThreads), shared, stream, a, row_bytes);
  else if (rows == 8) launch_dependent(score_select_kernel<kHsa, 8>, grid, dim3(kFusedThreads), shared, stream, a, row_bytes);
  else launch_dependent(score_select_kernel<kHsa, kFusedRows>, grid, dim3(kFusedThreads), shared, stream, a, row_bytes);
}

}  // namespace

bool fused_score_select_fits(int key_blocks, int key_frames, int head_dim) {
  return head_dim % 4 == 0 && fused_shared_bytes(key_blocks, key_frames, head_dim) <= size_t(kMaxFusedShared);
}

void launch_fused_score_select(const FusedSelectArgs& a, cudaStream_t stream, const char* name) {
  const bool hsa = a.frame_keys != nullptr;
  const int frames = hsa ? a.key_frames : 0;
  LF_CHECK(fused_score_select_fits(a.key_blocks, frames, a.head_dim),
           "{} (fused): {} key blocks and {} frames at head_dim {} need {} bytes of shared memory", name,
           a.key_blocks, frames, a.head_dim, fused_shared_bytes(a.key_blocks, frames, a.head_dim));
  LF_CHECK(a.heads > 0 && a.heads <= 65535 && a.query_blocks > 0, "{} (fused): heads {} query_blocks {}", name,
           a.heads, a.query_blocks);
  const size_t shared = fused_shared_bytes(a.key_blocks, frames, a.head_dim);
  const int row_bytes = fused_row_bytes(a.key_blocks, frames);
  if (hsa) launch_rows<true>(a, fused_rows_per_cta(), shared, row_bytes, stream);
  else launch_rows<false>(a, fused_rows_per_cta(), shared, row_bytes, stream);
  LF_CUDA_LAUNCH_CHECK("{} (fused): {} rows x {} key blocks", name, a.heads * a.query_blocks, a.key_blocks);
}

}  // namespace lf::gpu::sparse::detail
