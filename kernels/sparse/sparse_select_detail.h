#pragma once
// Internal to kernels/sparse: the selectors over scores with a row stride wider than the block count (the cached
// planner keeps block and frame scores in one [rows, key_blocks + key_frames] array, written by one launch).
#include <cstdint>

#include "sparse/sparse_planner.h"

namespace lf::gpu::sparse::detail {

// Refuses a topk above the HSA eligible-block count (the budget invariant), naming both; returns the count.
int check_hsa_budget(const PlannerGeometry& geometry, const HsaParams& hsa);

// select_hsa with block scores at row * score_stride and frame scores at row * score_stride of `frame_scores`.
void select_hsa_strided(const float* block_scores, const float* frame_scores, int64_t score_stride,
                        const PlannerGeometry& geometry, const HsaParams& hsa, const MaskOutput& out, void* stream);

}  // namespace lf::gpu::sparse::detail
