#pragma once
// Internal to kernels/sparse (and its lab and tests): the selectors over scores with a row stride wider than the
// block count (the cached planner keeps block and frame scores in one [rows, key_blocks + key_frames] array,
// written by one launch), the switches between the fast and the exact old paths, and the cached planner's
// launches one group at a time for the lab's breakdown.
#include <cuda_runtime.h>

#include <cstdint>

#include "sparse/sparse_planner.h"

namespace lf::gpu::sparse::detail {

// Refuses a topk above the HSA eligible-block count (the budget invariant), naming both; returns the count.
int check_hsa_budget(const PlannerGeometry& geometry, const HsaParams& hsa);

// select_hsa with block scores at row * score_stride and frame scores at row * score_stride of `frame_scores`.
void select_hsa_strided(const float* block_scores, const float* frame_scores, int64_t score_stride,
                        const PlannerGeometry& geometry, const HsaParams& hsa, const MaskOutput& out, void* stream);

// Which implementation the planners run. Both settings give the same masks bit for bit (tested); the old ones
// stay reachable (STYLE habit 6) from the environment, read once: LF_SPARSE_SELECT=sort selects top-k / HSA rows
// with the bitonic sort instead of the radix select; LF_SPARSE_PDL=0 launches the planner kernels plainly
// instead of as programmatic dependents. Top-p always sorts (its mass is summed in sorted order).
struct PlannerPaths {
  bool radix_select = true;
  bool dependent_launch = true;
};
PlannerPaths planner_paths();
void set_planner_paths(const PlannerPaths& paths);  // lab and tests: time and compare both

// One radix-select launch (sparse_select_radix.cu): top-k, or HSA when frame_scores is set.
struct RadixSelectArgs {
  const float* scores = nullptr;  // row r at r * score_stride, key_blocks values
  int64_t score_stride = 0;
  const float* frame_scores = nullptr;  // HSA: row r at r * frame_stride, key_frames values
  int64_t frame_stride = 0;
  int rows = 0, key_blocks = 0, topk = 0;
  int key_frames = 0, blocks_per_frame = 1, past_frames = 0, keep_sink = 0, keep_near = 0, keep_middle = 0;  // HSA
  int* key_indices = nullptr;  // rows of topk
  float* selected_scores = nullptr;
  int* row_offsets = nullptr;
  int warp_bytes = 0;  // set by the launcher
};
void launch_radix_select(const RadixSelectArgs& args, cudaStream_t stream, const char* name);

// The cached planner's launch groups, for the lab's per-launch breakdown: plan_*_cached run all three in order.
// Select of top-p is its three launches (select, offsets, compaction).
enum CachedPhase : unsigned { kCachedPool = 1, kCachedScores = 2, kCachedSelect = 4, kCachedAll = 7 };
struct CachedRule {
  enum Kind { TopK, Hsa, TopP } kind = TopK;
  int topk = 0;    // TopK
  HsaParams hsa;   // Hsa
  float scale = 1.f, p = 1.f;  // TopP
};
void plan_cached_phases(const CachedPlanInputs& in, const CachedRule& rule, unsigned phases, const MaskOutput& out,
                        void* stream);

}  // namespace lf::gpu::sparse::detail
