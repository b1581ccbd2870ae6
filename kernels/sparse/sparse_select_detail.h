#pragma once
// Internal to kernels/sparse (and its lab and tests): the selectors over scores with a row stride wider than the
// block count (the cached planner keeps block and frame scores in one [rows, key_blocks + key_frames] array,
// written by one launch), the switches between the fast and the exact old paths, and the cached planner's
// launches one group at a time for the lab's breakdown.
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/sparse/sparse_planner.h"

namespace lf::gpu::sparse::detail {

// Refuses a topk above the HSA eligible-block count (the budget invariant), naming both; returns the count.
int check_hsa_budget(const PlannerGeometry& geometry, const HsaParams& hsa);

// HSA's per-row rule (light-forcing.md 3.2) into a selector's arguments: SelectArgs, RadixSelectArgs and
// FusedSelectArgs name these fields alike, so the three launches derive them in one place.
template <class Args>
void set_hsa_rule(Args& a, const PlannerGeometry& g, const HsaParams& hsa) {
  a.key_frames = g.key_frames;
  a.blocks_per_frame = g.blocks_per_frame();
  a.past_frames = g.key_frames - hsa.chunk_frames;
  a.keep_sink = hsa.keep_sink;
  a.keep_near = hsa.keep_near;
  a.keep_middle = hsa.keep_frames - hsa.keep_sink - hsa.keep_near;
}

// select_hsa with block scores at row * score_stride and frame scores at row * score_stride of `frame_scores`.
void select_hsa_strided(const float* block_scores, const float* frame_scores, int64_t score_stride,
                        const PlannerGeometry& geometry, const HsaParams& hsa, const MaskOutput& out, void* stream);

// Which implementation the planners run. Both settings give the same masks bit for bit (tested); the old ones
// stay reachable (STYLE habit 6) through the speed switches (speed_switches.h: LF_SPARSE_SELECT=sort,
// LF_SPARSE_PDL=0, LF_SPARSE_FUSED=0; the fused score-select of sparse_score_select.cu needs the radix select);
// these are views of that struct. Top-p always sorts (its mass is
// summed in sorted order).
struct PlannerPaths {
  bool radix_select = true;
  bool dependent_launch = true;
  bool fused_score_select = true;
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

// Where pooled key block b of a head lives: blocks [0, given_first) in `cached` ([heads, cached_stride,
// head_dim], the per-layer cache), blocks [given_first, blocks) in `given` ([heads, blocks - given_first,
// head_dim], from rope_and_pool). key_row (sparse_select_device.cuh) resolves it on the device.
struct KeySource {
  const float* cached = nullptr;
  const float* given = nullptr;
  int blocks = 0, given_first = 0;  // no given blocks: given_first == blocks
  int cached_stride = 0;            // blocks per head in `cached` (>= blocks)
};

// Scores + radix select of top-k (frame_keys null) or HSA in one launch (sparse_score_select.cu): the same masks
// as block_scores + launch_radix_select. The host has checked topk (and HSA's budget).
struct FusedSelectArgs {
  const float* queries = nullptr;     // [heads, query_blocks, head_dim]
  KeySource keys;                     // key_blocks blocks per head
  const float* frame_keys = nullptr;  // HSA: [heads, key_frames, head_dim]
  int heads = 0, query_blocks = 0, key_blocks = 0, head_dim = 0, topk = 0;
  int key_frames = 0, blocks_per_frame = 1, past_frames = 0, keep_sink = 0, keep_near = 0, keep_middle = 0;  // HSA
  int* row_offsets = nullptr;
  int* key_indices = nullptr;  // rows of topk
  float* selected_scores = nullptr;
};
// Whether a row's scores and selection state fit the fused launch's shared memory (else: the two launches).
bool fused_score_select_fits(int key_blocks, int key_frames, int head_dim);
void launch_fused_score_select(const FusedSelectArgs& args, cudaStream_t stream, const char* name);

// The cached planner's launch groups, for the lab's per-launch breakdown: plan_*_cached run all three in order.
// Select of top-p is its three launches (select, offsets, compaction). On the fused path, scores is HSA's frame
// keys only (nothing for top-k) and select is the fused score + select launch.
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
