#pragma once
// An attention backend turns one self-attention call of the chunk loop into its output. The sparse backends
// (a mask planner x a block-sparse operator) plug in here; `dense` is the exact reference.
#include <memory>
#include <string>
#include <utility>

#include "attention/attention_call.h"
#include "attention/attention_stats.h"
#include "config/config.h"
#include "core/tensor.h"

namespace lf {

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

// Builds the backend named by config.backend = planner x operator (unknown names are refused). `pipeline` gives
// the video length and chunk size that Light Forcing's schedule needs; `stats` (optional) receives records.
std::unique_ptr<AttentionBackend> make_attention_backend(const AttentionConfig& config,
                                                         const PipelineConfig* pipeline = nullptr,
                                                         AttentionStats* stats = nullptr);

}  // namespace lf
