#pragma once
// Mask planners: AttentionCall -> BlockMask. Dynamic planners pool q and k into blocks and score them; static
// ones depend only on positions. Each is written from its definition (docs/sparse-attention.md) and runs on the
// CPU here; GPU versions of pooling / scoring / selection live in kernels/sparse/ and must match these.
#include <memory>
#include <string>
#include <vector>

#include "attention/attention_call.h"
#include "attention/block_mask.h"
#include "attention/pooled_blocks.h"
#include "config/config.h"

namespace lf {

PooledBlocks pool_blocks(const Tensor& q, const Tensor& k, const BlockGeometry& geometry);
double dot(const float* a, const float* b, int64_t n);

// Selects, per row, the `topk` eligible blocks with the highest scores (ties: lower index), ascending.
// eligible == nullptr means all. Fails naming the budget when topk exceeds the eligible count.
std::vector<int32_t> top_blocks(const std::vector<float>& scores, const std::vector<char>* eligible, int64_t topk);

// HSA stage 1 for one row (light-forcing.md 3.2): of the visible frames (one score each, the pooled query's dot
// with the frame's mean key; only the middle frames' are read), the eligible ones: sink [0, keep_sink), near
// [past - keep_near, past), the current chunk [past, frames), and the keep_frames - keep_sink - keep_near middle
// frames with the highest scores (ties: lower frame; every middle frame when there are fewer).
std::vector<char> hsa_eligible_frames(const std::vector<float>& frame_scores, int64_t past_frames,
                                      int64_t keep_frames, int64_t keep_sink, int64_t keep_near);

// Top-p for one row: the smallest set of highest-scoring blocks (ties: lower index first) whose
// softmax(scores * scale) mass, summed in double, reaches top_p; at least one block; ascending.
std::vector<int32_t> topp_blocks(const std::vector<float>& scores, double scale, double top_p);

class MaskPlanner {
 public:
  virtual ~MaskPlanner() = default;
  virtual BlockMask plan(const AttentionCall& call) = 0;
  // Whether this call attends densely (dense backend, chunk 0 where the planner keeps it dense). The one place
  // that decides it: plan() returns a full mask then, and the GPU path skips planning and runs the dense kernel.
  virtual bool plans_dense(const AttentionCall& call) const = 0;
  // The sparsity this planner targets for a chunk (for reports); 0 for dense / threshold planners.
  virtual double target_sparsity(int64_t chunk) const { (void)chunk; return 0.0; }
};

// The planners, one factory each (the registry, attention/backend_registry.h, names them; make_planner there
// builds the one of config.backend). frames / chunk_frames: the video's, for CAG.
std::unique_ptr<MaskPlanner> make_dense_planner(const AttentionConfig& config);
std::unique_ptr<MaskPlanner> make_lightforcing_planner(const AttentionConfig& config, int64_t frames,
                                                       int64_t chunk_frames);
std::unique_ptr<MaskPlanner> make_block_topk_planner(const AttentionConfig& config);
std::unique_ptr<MaskPlanner> make_block_topp_planner(const AttentionConfig& config);
std::unique_ptr<MaskPlanner> make_sliding_tile_planner(const AttentionConfig& config);
std::unique_ptr<MaskPlanner> make_radial_planner(const AttentionConfig& config);

BlockGeometry geometry_for(const AttentionCall& call, const AttentionConfig& config);

}  // namespace lf
