#pragma once
// One self-attention call of the chunk loop as the attention backends and planners see it: where in the video
// the call is, its (post-RoPE) tensors and, optionally, the pooled blocks the RoPE pass made for the planner.
// At the bottom of lib/attention: it includes nothing of the folder.
#include <cstdint>

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

}  // namespace lf
