#include "attention/planners.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "attention/cag_schedule.h"
#include "core/error.h"

namespace lf {

BlockGeometry geometry_for(const AttentionCall& call, const AttentionConfig& config) {
  BlockGeometry geometry;
  geometry.tokens_per_frame = call.tokens_per_frame;
  geometry.query_tokens = call.q->dim(0);
  geometry.key_frames = call.frames_visible;
  geometry.query_block = config.query_block;
  geometry.key_block = config.key_block;
  return geometry;
}

double dot(const float* a, const float* b, int64_t n) {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += double(a[i]) * double(b[i]);
  return sum;
}

PooledBlocks pool_blocks(const Tensor& q_in, const Tensor& k_in, const BlockGeometry& geometry) {
  const Tensor q = q_in.dtype() == DType::F32 ? q_in : q_in.to(DType::F32);
  const Tensor k = k_in.dtype() == DType::F32 ? k_in : k_in.to(DType::F32);
  PooledBlocks pooled;
  pooled.geometry = geometry;
  pooled.heads = q.dim(1);
  pooled.head_dim = q.dim(2);
  const int64_t heads = pooled.heads, dim = pooled.head_dim, row = heads * dim;
  const int64_t query_blocks = geometry.query_blocks(), key_blocks = geometry.key_blocks();
  LF_CHECK(k.dim(0) == geometry.key_tokens(), "planner: {} keys for {} frames of {} tokens", k.dim(0),
           geometry.key_frames, geometry.tokens_per_frame);
  pooled.queries.assign(size_t(heads * query_blocks * dim), 0.0f);
  pooled.keys.assign(size_t(heads * key_blocks * dim), 0.0f);
  pooled.frame_keys.assign(size_t(heads * geometry.key_frames * dim), 0.0f);
  // Means accumulate in double and divide by the real token count of ragged blocks.
  auto mean_rows = [&](const float* base, int64_t first, int64_t count, int64_t h, float* out) {
    std::vector<double> sum(size_t(dim), 0.0);
    for (int64_t t = first; t < first + count; ++t)
      for (int64_t d = 0; d < dim; ++d) sum[size_t(d)] += base[t * row + h * dim + d];
    for (int64_t d = 0; d < dim; ++d) out[d] = float(sum[size_t(d)] / double(count));
  };
#pragma omp parallel for schedule(static)
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t qb = 0; qb < query_blocks; ++qb)
      mean_rows(q.f32(), qb * geometry.query_block, geometry.query_block_length(qb), h,
                pooled.queries.data() + (h * query_blocks + qb) * dim);
    for (int64_t kb = 0; kb < key_blocks; ++kb)
      mean_rows(k.f32(), geometry.key_block_start(kb), geometry.key_block_length(kb), h,
                pooled.keys.data() + (h * key_blocks + kb) * dim);
    for (int64_t f = 0; f < geometry.key_frames; ++f)
      mean_rows(k.f32(), f * geometry.tokens_per_frame, geometry.tokens_per_frame, h,
                pooled.frame_keys.data() + (h * geometry.key_frames + f) * dim);
  }
  return pooled;
}

std::vector<int32_t> top_blocks(const std::vector<float>& scores, const std::vector<char>* eligible, int64_t topk) {
  std::vector<int32_t> candidates;
  for (size_t b = 0; b < scores.size(); ++b)
    if (!eligible || (*eligible)[b]) candidates.push_back(int32_t(b));
  LF_CHECK(topk <= int64_t(candidates.size()),
           "sparse attention budget: top-k {} exceeds the {} eligible key blocks (raise keep_frames or lower the "
           "density)", topk, candidates.size());
  std::partial_sort(candidates.begin(), candidates.begin() + topk, candidates.end(), [&](int32_t a, int32_t b) {
    return scores[size_t(a)] != scores[size_t(b)] ? scores[size_t(a)] > scores[size_t(b)] : a < b;
  });
  candidates.resize(size_t(topk));
  std::sort(candidates.begin(), candidates.end());
  return candidates;
}

std::vector<char> hsa_eligible_frames(const std::vector<float>& frame_scores, int64_t past_frames,
                                      int64_t keep_frames, int64_t keep_sink, int64_t keep_near) {
  const int64_t frames = int64_t(frame_scores.size()), middle_end = past_frames - keep_near;
  std::vector<char> eligible(size_t(frames), 0), middle(size_t(frames), 0);
  int64_t middle_count = 0;
  for (int64_t f = 0; f < frames; ++f) {
    eligible[size_t(f)] = f < keep_sink || f >= middle_end;  // sink, near, current chunk
    middle[size_t(f)] = !eligible[size_t(f)];
    middle_count += middle[size_t(f)];
  }
  const int64_t keep_middle = std::min(keep_frames - keep_sink - keep_near, middle_count);
  if (keep_middle > 0)
    for (int32_t f : top_blocks(frame_scores, &middle, keep_middle)) eligible[size_t(f)] = 1;
  return eligible;
}

std::vector<int32_t> topp_blocks(const std::vector<float>& scores, double scale, double top_p) {
  std::vector<int32_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return scores[size_t(a)] > scores[size_t(b)]; });
  const double top = double(scores[size_t(order[0])]) * scale;
  double total = 0;
  for (float s : scores) total += std::exp(double(s) * scale - top);
  std::vector<int32_t> kept;
  double mass = 0;
  for (int32_t b : order) {
    kept.push_back(b);
    mass += std::exp(double(scores[size_t(b)]) * scale - top) / total;
    if (mass >= top_p) break;
  }
  std::sort(kept.begin(), kept.end());
  return kept;
}

namespace {

// Appends one row (ascending indices) with the scores of its blocks.
void append_row(BlockMask& mask, const std::vector<int32_t>& blocks, const std::vector<float>* scores) {
  for (int32_t b : blocks) {
    mask.key_indices.push_back(b);
    if (scores) mask.scores.push_back((*scores)[size_t(b)]);
  }
  mask.row_offsets.push_back(int32_t(mask.key_indices.size()));
}

BlockMask empty_mask(int64_t heads, const BlockGeometry& geometry) {
  BlockMask mask;
  mask.heads = heads;
  mask.geometry = geometry;
  mask.row_offsets.push_back(0);
  return mask;
}

std::vector<float> row_scores(const PooledBlocks& pooled, int64_t h, int64_t qb) {
  std::vector<float> scores(size_t(pooled.geometry.key_blocks()));
  for (int64_t kb = 0; kb < int64_t(scores.size()); ++kb)
    scores[size_t(kb)] = float(dot(pooled.query(h, qb), pooled.key(h, kb), pooled.head_dim));
  return scores;
}

class DensePlanner final : public MaskPlanner {
 public:
  explicit DensePlanner(const AttentionConfig& config) : config_(config) {}
  bool plans_dense(const AttentionCall&) const override { return true; }
  BlockMask plan(const AttentionCall& call) override {
    return BlockMask::dense(call.q->dim(1), geometry_for(call, config_));
  }

 private:
  AttentionConfig config_;
};

// Light Forcing: CAG sparsity per chunk, HSA selection (1-stage when few past frames, else 2-stage).
class LightForcingPlanner final : public MaskPlanner {
 public:
  LightForcingPlanner(const AttentionConfig& config, int64_t frames, int64_t chunk_frames)
      : config_(config),
        sparsities_(cag_sparsities({frames, chunk_frames, config.cag_window_frames, config.sparsity,
                                    config.sparsity_base})) {}
  bool plans_dense(const AttentionCall& call) const override {
    return call.chunk == 0 || call.frames_visible == call.frames_in_chunk;
  }
  double target_sparsity(int64_t chunk) const override {
    return chunk < int64_t(sparsities_.size()) ? sparsities_[size_t(chunk)] : sparsities_.back();
  }

  BlockMask plan(const AttentionCall& call) override {
    const BlockGeometry geometry = geometry_for(call, config_);
    const int64_t heads = call.q->dim(1);
    const int64_t past = call.frames_visible - call.frames_in_chunk;
    if (plans_dense(call)) return BlockMask::dense(heads, geometry);
    const int64_t key_blocks = geometry.key_blocks(), per_frame = geometry.blocks_per_frame();
    // At least one block a row, as the GPU planner does: with fewer than 1 / (1 - sparsity) key blocks (short videos
    // of small models) the released code's truncation keeps none, and a row would attend to nothing.
    const int64_t topk = std::max<int64_t>(1, topk_for(target_sparsity(call.chunk), key_blocks));
    const PooledBlocks pooled = pool_blocks(*call.q, *call.k, geometry);
    BlockMask mask = empty_mask(heads, geometry);
    const bool two_stage = past > config_.keep_frames;
    const int64_t middle_begin = config_.keep_sink, middle_end = past - config_.keep_near;
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t qb = 0; qb < geometry.query_blocks(); ++qb) {
        const std::vector<float> scores = row_scores(pooled, h, qb);
        if (!two_stage) {
          append_row(mask, top_blocks(scores, nullptr, topk), &scores);
          continue;
        }
        // Stage 1: the best middle frames by <pooled query block, mean frame key>.
        std::vector<float> frame_scores(size_t(call.frames_visible), -INFINITY);
        for (int64_t f = middle_begin; f < middle_end; ++f)
          frame_scores[size_t(f)] = float(dot(pooled.query(h, qb), pooled.frame_key(h, f), pooled.head_dim));
        const std::vector<char> eligible_frame =
            hsa_eligible_frames(frame_scores, past, config_.keep_frames, config_.keep_sink, config_.keep_near);
        // Stage 2: top-k over the eligible frames' blocks, with the budget of all K blocks.
        std::vector<char> eligible(static_cast<size_t>(key_blocks));
        for (int64_t b = 0; b < key_blocks; ++b) eligible[size_t(b)] = eligible_frame[size_t(b / per_frame)];
        append_row(mask, top_blocks(scores, &eligible, topk), &scores);
      }
    }
    return mask;
  }

 private:
  AttentionConfig config_;
  std::vector<double> sparsities_;
};

// The paper's "1D sparse attention" ablation: one fixed top-k fraction, no CAG, no HSA.
class BlockTopkPlanner final : public MaskPlanner {
 public:
  explicit BlockTopkPlanner(const AttentionConfig& config) : config_(config) {}
  bool plans_dense(const AttentionCall& call) const override {
    return call.chunk == 0 && !config_.sparse_first_chunk;
  }
  double target_sparsity(int64_t) const override { return config_.sparsity; }
  BlockMask plan(const AttentionCall& call) override {
    const BlockGeometry geometry = geometry_for(call, config_);
    const int64_t heads = call.q->dim(1);
    if (plans_dense(call)) return BlockMask::dense(heads, geometry);
    const int64_t topk = std::max<int64_t>(1, topk_for(config_.sparsity, geometry.key_blocks()));
    const PooledBlocks pooled = pool_blocks(*call.q, *call.k, geometry);
    BlockMask mask = empty_mask(heads, geometry);
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t qb = 0; qb < geometry.query_blocks(); ++qb) {
        const std::vector<float> scores = row_scores(pooled, h, qb);
        append_row(mask, top_blocks(scores, nullptr, topk), &scores);
      }
    return mask;
  }

 private:
  AttentionConfig config_;
};

// Cumulative softmax mass over pooled scores (SpargeAttn CDF / XAttention threshold family): the smallest set of
// blocks whose softmax(pooled q . pooled k * scale) mass reaches top_p.
class BlockToppPlanner final : public MaskPlanner {
 public:
  explicit BlockToppPlanner(const AttentionConfig& config) : config_(config) {}
  bool plans_dense(const AttentionCall& call) const override {
    return call.chunk == 0 && !config_.sparse_first_chunk;
  }
  BlockMask plan(const AttentionCall& call) override {
    const BlockGeometry geometry = geometry_for(call, config_);
    const int64_t heads = call.q->dim(1);
    if (plans_dense(call)) return BlockMask::dense(heads, geometry);
    const PooledBlocks pooled = pool_blocks(*call.q, *call.k, geometry);
    BlockMask mask = empty_mask(heads, geometry);
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t qb = 0; qb < geometry.query_blocks(); ++qb) {
        const std::vector<float> scores = row_scores(pooled, h, qb);
        append_row(mask, topp_blocks(scores, call.scale, config_.top_p), &scores);
      }
    return mask;
  }

 private:
  AttentionConfig config_;
};

// Static masks from positions. A block's position: its frame among the visible frames and its index inside the
// frame (key blocks are raster runs, so in-frame block distance approximates row distance).
class StaticPlanner : public MaskPlanner {
 public:
  explicit StaticPlanner(const AttentionConfig& config) : config_(config) {}
  bool plans_dense(const AttentionCall& call) const override {
    return call.chunk == 0 && !config_.sparse_first_chunk;
  }
  BlockMask plan(const AttentionCall& call) override {
    const BlockGeometry geometry = geometry_for(call, config_);
    const int64_t heads = call.q->dim(1);
    if (plans_dense(call)) return BlockMask::dense(heads, geometry);
    const int64_t past = call.frames_visible - call.frames_in_chunk;
    BlockMask row_mask = empty_mask(1, geometry);
    for (int64_t qb = 0; qb < geometry.query_blocks(); ++qb) {
      // The query block's centre token decides its frame and in-frame position.
      const int64_t centre = qb * geometry.query_block + geometry.query_block_length(qb) / 2;
      const int64_t query_frame = past + centre / geometry.tokens_per_frame;
      const int64_t query_position = (centre % geometry.tokens_per_frame) / geometry.key_block;
      std::vector<int32_t> kept;
      for (int64_t kb = 0; kb < geometry.key_blocks(); ++kb)
        if (keep(query_frame, query_position, kb / geometry.blocks_per_frame(), kb % geometry.blocks_per_frame()))
          kept.push_back(int32_t(kb));
      append_row(row_mask, kept, nullptr);
    }
    // Static masks are the same for every head.
    BlockMask mask = empty_mask(heads, geometry);
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t qb = 0; qb < geometry.query_blocks(); ++qb) {
        std::vector<int32_t> row(row_mask.key_indices.begin() + row_mask.row_offsets[size_t(qb)],
                                 row_mask.key_indices.begin() + row_mask.row_offsets[size_t(qb) + 1]);
        append_row(mask, row, nullptr);
      }
    return mask;
  }

 protected:
  virtual bool keep(int64_t query_frame, int64_t query_position, int64_t key_frame, int64_t key_position) const = 0;
  AttentionConfig config_;
};

// STA adapted to raster blocks: a 3D window of +-window_frames frames and +-window_blocks in-frame blocks.
class SlidingTilePlanner final : public StaticPlanner {
 public:
  using StaticPlanner::StaticPlanner;

 protected:
  bool keep(int64_t qf, int64_t qp, int64_t kf, int64_t kp) const override {
    return std::abs(qf - kf) <= config_.window_frames && std::abs(qp - kp) <= config_.window_blocks;
  }
};

// Radial attention's energy decay: temporal distance d falls in band 0 (d = 0, dense) or floor(log2 d) + 1;
// each band halves the in-frame window; frame 0 is an attention sink kept whole.
class RadialPlanner final : public StaticPlanner {
 public:
  using StaticPlanner::StaticPlanner;

 protected:
  bool keep(int64_t qf, int64_t qp, int64_t kf, int64_t kp) const override {
    if (kf == 0) return true;
    const int64_t distance = std::abs(qf - kf);
    if (distance == 0) return true;
    int64_t band = 1;
    while ((int64_t(1) << band) <= distance) ++band;  // band = floor(log2 d) + 1
    const int64_t window = config_.radial_window_blocks >> band;
    return std::abs(qp - kp) <= window;
  }
};

}  // namespace

std::unique_ptr<MaskPlanner> make_dense_planner(const AttentionConfig& config) {
  return std::make_unique<DensePlanner>(config);
}
std::unique_ptr<MaskPlanner> make_lightforcing_planner(const AttentionConfig& config, int64_t frames,
                                                       int64_t chunk_frames) {
  return std::make_unique<LightForcingPlanner>(config, frames, chunk_frames);
}
std::unique_ptr<MaskPlanner> make_block_topk_planner(const AttentionConfig& config) {
  return std::make_unique<BlockTopkPlanner>(config);
}
std::unique_ptr<MaskPlanner> make_block_topp_planner(const AttentionConfig& config) {
  return std::make_unique<BlockToppPlanner>(config);
}
std::unique_ptr<MaskPlanner> make_sliding_tile_planner(const AttentionConfig& config) {
  return std::make_unique<SlidingTilePlanner>(config);
}
std::unique_ptr<MaskPlanner> make_radial_planner(const AttentionConfig& config) {
  return std::make_unique<RadialPlanner>(config);
}

}  // namespace lf
