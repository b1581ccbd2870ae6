// Selection kernels of the GPU planners: top-k, HSA 2-stage and top-p over pooled block scores (definitions in
// sparse_planner.h). Top-k and HSA run the radix select of sparse_select_radix.cu; this file's sort path is top-p
// and the exact old path for the other two (LF_SPARSE_SELECT=sort). One CTA per mask row: the row's blocks are
// sorted in shared memory as 64-bit keys (orderable score bits, then the inverted index), so "highest score, ties
// toward the lower index" is plain descending order and every key is distinct; the chosen blocks are then written
// in ascending index order.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "kernels/cuda_check.h"
#include "kernels/speed_switches.h"
#include "kernels/sparse/sparse_planner.h"
#include "kernels/sparse/sparse_launch.cuh"
#include "kernels/sparse/sparse_select_detail.h"
#include "kernels/sparse/sparse_select_device.cuh"

namespace lf::gpu::sparse {

// ---- path switches ------------------------------------------------------------------------------------------
// The planner's part of the speed switches (speed_switches.h).
detail::PlannerPaths detail::planner_paths() {
  const SpeedSwitches& switches = speed_switches();
  return {switches.sparse_radix_select, switches.sparse_dependent_launch, switches.sparse_fused_score_select};
}
void detail::set_planner_paths(const PlannerPaths& paths) {
  SpeedSwitches switches = speed_switches();
  switches.sparse_radix_select = paths.radix_select;
  switches.sparse_dependent_launch = paths.dependent_launch;
  switches.sparse_fused_score_select = paths.fused_score_select;
  set_speed_switches(switches);
}
bool detail::dependent_launch_enabled() { return speed_switches().sparse_dependent_launch; }

namespace {

// tuned: threads per row. Rows hold at most a few hundred blocks in this project (21 frames x 25 = 525), so one
// CTA of 256 sorts a 1024-key row in 55 shared-memory passes of 2 compare-exchanges per thread.
constexpr int kSelectThreads = 256;
constexpr int kSelectWarps = kSelectThreads / 32;

enum class Rule { TopK, Hsa, TopP };

using detail::orderable_bits;
__device__ __forceinline__ float score_of(uint64_t key) {
  const uint32_t bits = uint32_t(key >> 32);
  return __uint_as_float((bits & 0x80000000u) ? (bits & 0x7fffffffu) : ~bits);
}
// Eligible blocks: high word >= orderable_bits(-inf) = 0x007fffff > 0. Ineligible ones keep only the index word, so
// they sort after every eligible block (the lowest index first) and before the zero padding.
__device__ __forceinline__ uint64_t block_key(float score, int index, bool eligible) {
  const uint64_t index_word = uint64_t(~uint32_t(index));
  return eligible ? (uint64_t(orderable_bits(score)) << 32) | index_word : index_word;
}
__device__ __forceinline__ int index_of(uint64_t key) { return int(~uint32_t(key)); }

// Descending bitonic sort of `count` (a power of two) keys in shared memory by the whole CTA.
__device__ void sort_descending(uint64_t* keys, int count) {
  for (int size = 2; size <= count; size <<= 1) {
    for (int stride = size >> 1; stride > 0; stride >>= 1) {
      for (int i = threadIdx.x; i < count; i += blockDim.x) {
        const int partner = i ^ stride;
        if (partner > i) {
          const uint64_t a = keys[i], b = keys[partner];
          const bool descending = (i & size) == 0;
          if (descending ? a < b : a > b) {
            keys[i] = b;
            keys[partner] = a;
          }
        }
      }
      __syncthreads();
    }
  }
}

// Exclusive prefix sum over the CTA (one value per thread); *total gets the sum. Uses `warp_totals`
// [kSelectWarps] of shared memory; every thread must call it.
template <class T>
__device__ T block_exclusive_scan(T value, T* warp_totals, T* total) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  T inclusive = value;
#pragma unroll
  for (int offset = 1; offset < 32; offset <<= 1) {
    const T other = __shfl_up_sync(0xffffffffu, inclusive, offset);
    if (lane >= offset) inclusive += other;
  }
  if (lane == 31) warp_totals[warp] = inclusive;
  __syncthreads();
  T before = T(0), sum = T(0);
  for (int w = 0; w < kSelectWarps; ++w) {
    if (w < warp) before += warp_totals[w];
    sum += warp_totals[w];
  }
  __syncthreads();  // warp_totals may be reused by the next call
  *total = sum;
  return before + inclusive - value;
}

struct SelectArgs {
  const float* scores;        // row r at r * score_stride, key_blocks values
  const float* frame_scores;  // HSA: row r at r * frame_stride, key_frames values
  int64_t score_stride, frame_stride;
  int key_blocks;
  int sort_count;  // next power of two >= key_blocks
  int topk;        // TopK / Hsa
  // HSA
  int key_frames, blocks_per_frame, past_frames, keep_sink, keep_near, keep_middle;
  // TopP
  float scale_log2, p;
  // output: rows at row * row_stride of key_indices (TopK/Hsa: the final CSR, row_stride = topk; TopP: scratch
  // rows of key_blocks entries plus counts[row])
  int* key_indices;
  float* selected_scores;
  int row_stride;
  int* row_offsets;  // TopK/Hsa: written here (row * topk); TopP: null
  int* counts;       // TopP: selected blocks per row
};

// HSA stage 1: marks the eligible frames of this row in `frame_eligible`.
__device__ void mark_eligible_frames(const SelectArgs& a, int row, float* frame_score, uint8_t* frame_eligible) {
  for (int f = threadIdx.x; f < a.key_frames; f += blockDim.x) {
    frame_score[f] = a.frame_scores[int64_t(row) * a.frame_stride + f];
    if (isnan(frame_score[f])) frame_score[f] = -INFINITY;
  }
  __syncthreads();
  for (int f = threadIdx.x; f < a.key_frames; f += blockDim.x)
    frame_eligible[f] =
        detail::hsa_frame_eligible(frame_score, f, a.past_frames, a.keep_sink, a.keep_near, a.keep_middle) ? 1 : 0;
  __syncthreads();
}

template <Rule kRule>
__global__ void __launch_bounds__(kSelectThreads) select_rows_kernel(const SelectArgs a) {
  extern __shared__ __align__(16) uint8_t shared[];
  uint64_t* keys = reinterpret_cast<uint64_t*>(shared);                      // [sort_count]
  float* frame_score = reinterpret_cast<float*>(keys + a.sort_count);        // HSA: [key_frames]
  uint8_t* chosen = reinterpret_cast<uint8_t*>(frame_score + a.key_frames);  // [key_blocks]
  uint8_t* frame_eligible = chosen + a.key_blocks;                           // HSA: [key_frames]
  __shared__ int int_totals[kSelectWarps];
  __shared__ float float_totals[kSelectWarps];
  __shared__ int keep_count;

  const int row = blockIdx.x;
  const float* row_scores = a.scores + int64_t(row) * a.score_stride;
  if constexpr (kRule == Rule::Hsa) mark_eligible_frames(a, row, frame_score, frame_eligible);
  for (int i = threadIdx.x; i < a.sort_count; i += blockDim.x) {
    uint64_t key = 0;
    if (i < a.key_blocks) {
      bool eligible = true;
      if constexpr (kRule == Rule::Hsa) eligible = frame_eligible[i / a.blocks_per_frame] != 0;
      key = block_key(row_scores[i], i, eligible);
    }
    keys[i] = key;
  }
  for (int i = threadIdx.x; i < a.key_blocks; i += blockDim.x) chosen[i] = 0;
  __syncthreads();
  sort_descending(keys, a.sort_count);

  // How many of the sorted blocks to keep.
  if constexpr (kRule == Rule::TopP) {
    // Softmax mass in sorted order; each thread owns a contiguous run of positions.
    const int per_thread = (a.key_blocks + blockDim.x - 1) / blockDim.x;
    const int begin = min(a.key_blocks, int(threadIdx.x) * per_thread), end = min(a.key_blocks, begin + per_thread);
    const float top = score_of(keys[0]);
    float run_sum = 0.f;
    for (int j = begin; j < end; ++j) run_sum += exp2f((score_of(keys[j]) - top) * a.scale_log2);
    float mass = 0.f;
    float before = block_exclusive_scan(run_sum, float_totals, &mass);
    if (threadIdx.x == 0) keep_count = 1;
    __syncthreads();
    // keep = 1 + #{positions whose inclusive mass is still below p of the total}
    int below = 0;
    for (int j = begin; j < end; ++j) {
      before += exp2f((score_of(keys[j]) - top) * a.scale_log2);
      below += before < a.p * mass ? 1 : 0;
    }
    if (below > 0) atomicAdd(&keep_count, below);
    __syncthreads();
  } else {
    if (threadIdx.x == 0) keep_count = a.topk;
    __syncthreads();
  }
  const int keep = min(keep_count, a.key_blocks);
  for (int j = threadIdx.x; j < keep; j += blockDim.x) chosen[index_of(keys[j])] = 1;
  __syncthreads();

  // Ascending compaction of the chosen flags.
  const int per_thread = (a.key_blocks + blockDim.x - 1) / blockDim.x;
  const int begin = min(a.key_blocks, int(threadIdx.x) * per_thread), end = min(a.key_blocks, begin + per_thread);
  int own = 0;
  for (int i = begin; i < end; ++i) own += chosen[i];
  int total = 0;
  int slot = block_exclusive_scan(own, int_totals, &total);
  int* out_indices = a.key_indices + int64_t(row) * a.row_stride;
  float* out_scores = a.selected_scores != nullptr ? a.selected_scores + int64_t(row) * a.row_stride : nullptr;
  for (int i = begin; i < end; ++i) {
    if (!chosen[i]) continue;
    out_indices[slot] = i;
    if (out_scores != nullptr) out_scores[slot] = row_scores[i];
    ++slot;
  }
  if (threadIdx.x == 0) {
    if (a.row_offsets != nullptr) {
      a.row_offsets[row + 1] = (row + 1) * a.row_stride;
      if (row == 0) a.row_offsets[0] = 0;
    }
    if (a.counts != nullptr) a.counts[row] = total;
  }
}

// Top-p second pass: row offsets = exclusive scan of the per-row counts (one CTA walks all rows).
__global__ void __launch_bounds__(kSelectThreads) topp_offsets_kernel(const int* counts, int rows, int* row_offsets) {
  __shared__ int warp_totals[kSelectWarps];
  int carried = 0;
  for (int base = 0; base < rows; base += blockDim.x) {
    const int row = base + threadIdx.x;
    const int count = row < rows ? counts[row] : 0;
    int chunk_total = 0;
    const int before = block_exclusive_scan(count, warp_totals, &chunk_total);
    if (row < rows) row_offsets[row] = carried + before;
    carried += chunk_total;
  }
  if (threadIdx.x == 0) row_offsets[rows] = carried;
}

// Top-p third pass: copies each scratch row to its CSR place.
__global__ void __launch_bounds__(kSelectThreads)
    topp_compact_kernel(const int* scratch_indices, const float* scratch_scores, int key_blocks, const int* row_offsets,
                        int* key_indices, float* selected_scores) {
  const int row = blockIdx.x;
  const int first = row_offsets[row], count = row_offsets[row + 1] - first;
  for (int j = threadIdx.x; j < count; j += blockDim.x) {
    key_indices[first + j] = scratch_indices[int64_t(row) * key_blocks + j];
    if (selected_scores != nullptr) selected_scores[first + j] = scratch_scores[int64_t(row) * key_blocks + j];
  }
}

int next_power_of_two(int n) {
  int p = 1;
  while (p < n) p <<= 1;
  return p;
}

size_t select_shared_bytes(const SelectArgs& a) {
  return size_t(a.sort_count) * 8 + size_t(a.key_frames) * 4 + size_t(a.key_blocks) + size_t(a.key_frames);
}

template <Rule kRule>
void launch_select(const SelectArgs& a, int rows, cudaStream_t stream, const char* name) {
  const size_t shared = select_shared_bytes(a);
  auto kernel = select_rows_kernel<kRule>;
  if (shared > 48 * 1024)
    LF_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(shared)),
                  "{}: {} bytes of shared memory", name, shared);
  kernel<<<rows, kSelectThreads, shared, stream>>>(a);
  LF_CUDA_LAUNCH_CHECK("{}: {} rows x {} key blocks", name, rows, a.key_blocks);
}

SelectArgs base_args(const float* scores, int rows, int key_blocks, const char* name) {
  LF_CHECK(scores != nullptr, "{}: scores is null", name);
  LF_CHECK(rows > 0, "{}: {} rows", name, rows);
  LF_CHECK(key_blocks > 0 && key_blocks <= kMaxKeyBlocksPerRow, "{}: {} key blocks per row (1..{})", name, key_blocks,
           kMaxKeyBlocksPerRow);
  SelectArgs a{};
  a.scores = scores;
  a.score_stride = key_blocks;
  a.key_blocks = key_blocks;
  a.sort_count = next_power_of_two(key_blocks);
  return a;
}

void check_output(const MaskOutput& out, const char* name) {
  LF_CHECK(out.row_offsets != nullptr && out.key_indices != nullptr, "{}: row_offsets and key_indices are needed",
           name);
}

}  // namespace

void select_topk(const float* scores, int rows, int key_blocks, int topk, const MaskOutput& out, void* stream) {
  SelectArgs a = base_args(scores, rows, key_blocks, "select_topk");
  check_output(out, "select_topk");
  LF_CHECK(topk >= 0 && topk <= key_blocks, "select_topk: topk {} outside 0..{} key blocks", topk, key_blocks);
  LF_CHECK(int64_t(rows) * topk < (int64_t(1) << 31), "select_topk: {} rows x {} overflow int offsets", rows, topk);
  if (detail::planner_paths().radix_select) {
    detail::RadixSelectArgs r;
    r.scores = scores;
    r.score_stride = key_blocks;
    r.rows = rows;
    r.key_blocks = key_blocks;
    r.topk = topk;
    r.key_indices = out.key_indices;
    r.selected_scores = out.selected_scores;
    r.row_offsets = out.row_offsets;
    detail::launch_radix_select(r, static_cast<cudaStream_t>(stream), "select_topk");
    return;
  }
  a.topk = topk;
  a.key_indices = out.key_indices;
  a.selected_scores = out.selected_scores;
  a.row_stride = topk;
  a.row_offsets = out.row_offsets;
  launch_select<Rule::TopK>(a, rows, static_cast<cudaStream_t>(stream), "select_topk");
}

int hsa_eligible_blocks(const PlannerGeometry& g, const HsaParams& hsa) {
  LF_CHECK(g.key_frames > 0 && g.tokens_per_frame > 0 && g.key_block > 0,
           "select_hsa: key_frames {} tokens_per_frame {} key_block {}", g.key_frames, g.tokens_per_frame, g.key_block);
  LF_CHECK(hsa.chunk_frames >= 1 && hsa.chunk_frames <= g.key_frames,
           "select_hsa: chunk_frames {} outside 1..{} key frames", hsa.chunk_frames, g.key_frames);
  LF_CHECK(hsa.keep_sink >= 0 && hsa.keep_near >= 0 && hsa.keep_sink + hsa.keep_near <= hsa.keep_frames,
           "select_hsa: keep_sink {} + keep_near {} must be non-negative and at most keep_frames {}", hsa.keep_sink,
           hsa.keep_near, hsa.keep_frames);
  const int past = g.key_frames - hsa.chunk_frames;
  int eligible_frames = 0;
  const int middle = std::max(0, past - hsa.keep_near - hsa.keep_sink);
  const int keep_middle = std::min(hsa.keep_frames - hsa.keep_sink - hsa.keep_near, middle);
  for (int f = 0; f < g.key_frames; ++f)
    eligible_frames += (f >= past || f < hsa.keep_sink || f >= past - hsa.keep_near) ? 1 : 0;
  return (eligible_frames + keep_middle) * g.blocks_per_frame();
}

int detail::check_hsa_budget(const PlannerGeometry& g, const HsaParams& hsa) {
  const int eligible = hsa_eligible_blocks(g, hsa);
  LF_CHECK(hsa.topk >= 0 && hsa.topk <= eligible,
           "select_hsa: topk {} exceeds the {} eligible blocks per row (key_frames {}, chunk_frames {}, keep_frames "
           "{}, keep_sink {}, keep_near {}); the budget invariant of light-forcing.md 3.2 is broken",
           hsa.topk, eligible, g.key_frames, hsa.chunk_frames, hsa.keep_frames, hsa.keep_sink, hsa.keep_near);
  return eligible;
}

namespace {

void launch_hsa(const float* block_scores, int64_t score_stride, const float* frame_scores, int64_t frame_stride,
                const PlannerGeometry& g, const HsaParams& hsa, const MaskOutput& out, cudaStream_t stream) {
  const int rows = g.rows(), key_blocks = g.key_blocks();
  SelectArgs a = base_args(block_scores, rows, key_blocks, "select_hsa");
  check_output(out, "select_hsa");
  LF_CHECK(frame_scores != nullptr, "select_hsa: frame_scores is null");
  (void)detail::check_hsa_budget(g, hsa);
  a.score_stride = score_stride;
  a.frame_scores = frame_scores;
  a.frame_stride = frame_stride;
  a.topk = hsa.topk;
  detail::set_hsa_rule(a, g, hsa);
  a.key_indices = out.key_indices;
  a.selected_scores = out.selected_scores;
  a.row_stride = hsa.topk;
  a.row_offsets = out.row_offsets;
  if (detail::planner_paths().radix_select) {
    detail::RadixSelectArgs r;
    r.scores = block_scores;
    r.score_stride = score_stride;
    r.frame_scores = frame_scores;
    r.frame_stride = frame_stride;
    r.rows = rows;
    r.key_blocks = key_blocks;
    r.topk = hsa.topk;
    detail::set_hsa_rule(r, g, hsa);
    r.key_indices = out.key_indices;
    r.selected_scores = out.selected_scores;
    r.row_offsets = out.row_offsets;
    detail::launch_radix_select(r, stream, "select_hsa");
    return;
  }
  launch_select<Rule::Hsa>(a, rows, stream, "select_hsa");
}

}  // namespace

void detail::select_hsa_strided(const float* block_scores, const float* frame_scores, int64_t score_stride,
                                const PlannerGeometry& g, const HsaParams& hsa, const MaskOutput& out, void* stream) {
  launch_hsa(block_scores, score_stride, frame_scores, score_stride, g, hsa, out, static_cast<cudaStream_t>(stream));
}

void select_hsa(const float* block_scores, const float* frame_scores, const PlannerGeometry& g, const HsaParams& hsa,
                const MaskOutput& out, void* stream) {
  launch_hsa(block_scores, g.key_blocks(), frame_scores, g.key_frames, g, hsa, out, static_cast<cudaStream_t>(stream));
}

size_t select_topp_workspace_bytes(int rows, int key_blocks) {
  // scratch indices and scores [rows, key_blocks], counts [rows]
  return size_t(rows) * size_t(key_blocks) * 8 + size_t(rows) * 4 + 256;
}

void select_topp(const float* scores, int rows, int key_blocks, float scale, float p, const MaskOutput& out,
                 void* workspace, size_t workspace_bytes, void* stream) {
  SelectArgs a = base_args(scores, rows, key_blocks, "select_topp");
  check_output(out, "select_topp");
  LF_CHECK(std::isfinite(scale) && scale > 0.f, "select_topp: scale {} must be finite and positive", scale);
  LF_CHECK(p > 0.f && p <= 1.f, "select_topp: p {} outside (0, 1]", p);
  const size_t needed = select_topp_workspace_bytes(rows, key_blocks);
  LF_CHECK(workspace != nullptr && workspace_bytes >= needed,
           "select_topp: workspace of {} bytes, {} needed (select_topp_workspace_bytes)", workspace_bytes, needed);
  int* scratch_indices = static_cast<int*>(workspace);
  float* scratch_scores = reinterpret_cast<float*>(scratch_indices + int64_t(rows) * key_blocks);
  int* counts = reinterpret_cast<int*>(scratch_scores + int64_t(rows) * key_blocks);
  constexpr double kLog2e = 1.4426950408889634;
  a.scale_log2 = float(double(scale) * kLog2e);
  a.p = p;
  a.key_indices = scratch_indices;
  a.selected_scores = scratch_scores;
  a.row_stride = key_blocks;
  a.counts = counts;
  const cudaStream_t cuda_stream = static_cast<cudaStream_t>(stream);
  launch_select<Rule::TopP>(a, rows, cuda_stream, "select_topp");
  topp_offsets_kernel<<<1, kSelectThreads, 0, cuda_stream>>>(counts, rows, out.row_offsets);
  LF_CUDA_LAUNCH_CHECK("select_topp offsets: {} rows", rows);
  topp_compact_kernel<<<rows, kSelectThreads, 0, cuda_stream>>>(scratch_indices, scratch_scores, key_blocks,
                                                                out.row_offsets, out.key_indices, out.selected_scores);
  LF_CUDA_LAUNCH_CHECK("select_topp compaction: {} rows", rows);
}

}  // namespace lf::gpu::sparse
