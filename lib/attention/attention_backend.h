#pragma once
// An attention backend turns one self-attention call of the chunk loop into its output. The sparse backends
// (a mask planner x a block-sparse operator) plug in here; `dense` is the exact reference.
#include <array>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "attention/block_mask.h"

#include "config/config.h"
#include "core/tensor.h"

namespace lf {

// Pooled post-RoPE blocks that the caller's RoPE pass produced for the planner (ops::rope_apply_pooled), when
// the backend asked for them (AttentionBackend::pooling): the GPU planners then read neither q nor the chunk's
// keys again.
struct RopePooled {
  int64_t query_block = 0, key_block = 0;
  Tensor queries;   // f32 [heads, query blocks, head_dim]
  Tensor new_keys;  // f32 [heads, frames_in_chunk x blocks per frame, head_dim]: the current chunk's frames
};

// Everything a planner may look at: where in the video the call is, and the tensors (post-RoPE).
struct AttentionCall {
  int64_t chunk = 0;
  int64_t step = 0;          // denoising step; the refresh pass has step == number of steps
  int64_t layer = 0;
  bool is_refresh = false;   // the clean t = context_noise pass that rewrites the chunk's K/V
  const Tensor* q = nullptr; // [chunk tokens, heads, head_dim]
  const Tensor* k = nullptr; // [visible tokens, heads, head_dim], the current chunk last
  const Tensor* v = nullptr;
  int64_t frames_visible = 0;   // frames in k/v (cache + current chunk)
  int64_t frames_in_chunk = 0;  // frames in q
  int64_t tokens_per_frame = 0;
  double scale = 0;             // softmax scale, 1/sqrt(head_dim)
  const RopePooled* pooled = nullptr;  // optional, see RopePooled
};

class AttentionBackend {
 public:
  virtual ~AttentionBackend() = default;
  virtual std::string name() const = 0;
  virtual Tensor run(const AttentionCall& call) = 0;
  // The (query_block, key_block) whose pooled q and new keys this call's planner would compute, when the caller's
  // RoPE pass may produce them instead (RopePooled); {0, 0} when not wanted. `call` has its positions and frame
  // counts but no tensors yet; on_gpu: where q and k are.
  virtual std::pair<int64_t, int64_t> pooling(const AttentionCall& call, bool on_gpu) const {
    (void)call;
    (void)on_gpu;
    return {0, 0};
  }
  // Called after the RoPE pass and before the caller writes the chunk's keys and values into the KV cache, with
  // `call` complete (its k / v are the cache's views, whose current-chunk rows are not written yet). A backend
  // whose planning needs neither (the GPU planners given RopePooled blocks) may start it here, beside the write;
  // run() then finishes the call. Default: nothing.
  virtual void plan_ahead(const AttentionCall& call) { (void)call; }
};

// One self-attention call's statistics (per head where it says so).
struct AttentionRecord {
  int64_t chunk = 0, step = 0, layer = 0;
  bool is_refresh = false;
  int64_t frames_visible = 0;
  double target_sparsity = 0;
  std::vector<double> head_density;  // selected / visible key blocks
  std::vector<double> head_recall;   // kept dense softmax mass; empty when not measured
  double planner_ms = 0, kernel_ms = 0;
  double output_rel_l2 = -1;  // ||out - dense out|| / ||dense out|| when measured (compare runs), else -1
};

// Collects records from a backend; recall is measured on every `recall_row_stride`-th query row (1 = exact),
// and the masks of chosen (chunk, step, layer) calls are kept for heatmaps.
struct AttentionStats {
  bool measure_recall = false;
  bool measure_output_error = false;  // also run dense attention and record the output's rel-L2 against it
  int64_t recall_row_stride = 1;
  std::vector<std::array<int64_t, 3>> keep_masks_for;  // {chunk, step, layer}
  std::vector<AttentionRecord> records;
  std::vector<std::pair<std::array<int64_t, 3>, BlockMask>> kept_masks;
};

// Builds the backend named by config.backend = planner x operator (unknown names are refused). `pipeline` gives
// the video length and chunk size that Light Forcing's schedule needs; `stats` (optional) receives records.
std::unique_ptr<AttentionBackend> make_attention_backend(const AttentionConfig& config,
                                                         const PipelineConfig* pipeline = nullptr,
                                                         AttentionStats* stats = nullptr);

}  // namespace lf
