#pragma once
// Mask planners: AttentionCall -> BlockMask. Dynamic planners pool q and k into blocks and score them; static
// ones depend only on positions. Each is written from its definition (docs/sparse-attention.md) and runs on the
// CPU here; GPU versions of pooling / scoring / selection live in kernels/sparse/ and must match these.
#include <memory>
#include <string>
#include <vector>

#include "attention/attention_backend.h"
#include "attention/block_mask.h"
#include "config/config.h"

namespace lf {

// Mean-pooled blocks (f32, CPU): queries [heads, query_blocks, D], keys [heads, key_blocks, D],
// frame keys [heads, key_frames, D] (the mean of the frame's keys).
struct PooledBlocks {
  BlockGeometry geometry;
  int64_t heads = 0, head_dim = 0;
  std::vector<float> queries, keys, frame_keys;
  const float* query(int64_t h, int64_t qb) const { return queries.data() + (h * geometry.query_blocks() + qb) * head_dim; }
  const float* key(int64_t h, int64_t kb) const { return keys.data() + (h * geometry.key_blocks() + kb) * head_dim; }
  const float* frame_key(int64_t h, int64_t f) const {
    return frame_keys.data() + (h * geometry.key_frames + f) * head_dim;
  }
};
PooledBlocks pool_blocks(const Tensor& q, const Tensor& k, const BlockGeometry& geometry);
double dot(const float* a, const float* b, int64_t n);

// Selects, per row, the `topk` eligible blocks with the highest scores (ties: lower index), ascending.
// eligible == nullptr means all. Fails naming the budget when topk exceeds the eligible count.
std::vector<int32_t> top_blocks(const std::vector<float>& scores, const std::vector<char>* eligible, int64_t topk);

class MaskPlanner {
 public:
  virtual ~MaskPlanner() = default;
  virtual std::string name() const = 0;
  virtual BlockMask plan(const AttentionCall& call) = 0;
  // Whether this call attends densely (dense backend, chunk 0 where the planner keeps it dense). The one place
  // that decides it: plan() returns a full mask then, and the GPU path skips planning and runs the dense kernel.
  virtual bool plans_dense(const AttentionCall& call) const = 0;
  // The sparsity this planner targets for a chunk (for reports); 0 for dense / threshold planners.
  virtual double target_sparsity(int64_t chunk) const { (void)chunk; return 0.0; }
  // Whether plan() scores mean-pooled q / k blocks (lightforcing, block-topk, block-topp) rather than reading
  // positions only (sliding-tile, radial: their mask is fixed per geometry). The GPU path plans the first kind on
  // the device from pooled blocks and uploads the second kind once per geometry.
  virtual bool plans_from_pooled_blocks() const { return false; }
};

// Builds the planner for config.backend (dense, lightforcing, block-topk, block-topp, sliding-tile, radial).
// frames / chunk_frames: the video's, for CAG.
std::unique_ptr<MaskPlanner> make_planner(const AttentionConfig& config, int64_t frames, int64_t chunk_frames);

BlockGeometry geometry_for(const AttentionCall& call, const AttentionConfig& config);

}  // namespace lf
