#pragma once
// An attention backend turns one self-attention call of the chunk loop into its output. The sparse backends
// (a mask planner x a block-sparse operator) plug in here; `dense` is the exact reference.
#include <memory>
#include <string>

#include "config/config.h"
#include "core/tensor.h"

namespace lf {

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
};

class AttentionBackend {
 public:
  virtual ~AttentionBackend() = default;
  virtual std::string name() const = 0;
  virtual Tensor run(const AttentionCall& call) = 0;
};

// Builds the backend named by config.backend; unknown names are refused (config validation names them).
std::unique_ptr<AttentionBackend> make_attention_backend(const AttentionConfig& config);

}  // namespace lf
