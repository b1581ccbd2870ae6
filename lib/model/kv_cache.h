#pragma once
// The self-attention KV cache of the chunk loop, in frame units.
//
// global:  every frame stays; chunk c writes frames [3c, 3c+3) and attends to all frames so far.
// rolling: at most window_frames frames; the first sink_frames are never evicted; when a NEW chunk does not fit,
//          the oldest non-sink frames are dropped and the rest move down (Self-Forcing's eviction rule, spec 9.3).
//          A re-run of the same chunk (the next denoising step, the refresh) overwrites the same slot.
// positions absolute: keys are roped once, at their absolute frame, and cached post-RoPE (Self-Forcing).
// positions relative: keys are cached raw and re-roped on every read with their slot index as temporal
//          position; queries take the positions of their own slots (Light Forcing long mode, LongLive style).
#include <vector>

#include "config/config.h"
#include "core/tensor.h"
#include "ops/ops.h"

namespace lf {

struct CacheGeometry {
  int64_t layers;
  int64_t tokens_per_frame;
  int64_t heads;
  int64_t head_dim;
  int64_t total_frames;  // frames of the whole video (the global cache's capacity)
  int64_t chunk_frames;
  Device device = Device::CPU;  // storage in ops::activation_dtype(device): f32 on the CPU, bf16 on the GPU
};

class KvCache {
 public:
  KvCache(const KvCacheConfig& config, const CacheGeometry& geometry, const ops::RopeGrid& rope);

  void reset();
  // Makes room for a forward over `frames` frames starting at absolute frame `start_frame` (evicting in rolling
  // mode when the chunk is new) and selects the slot that write() fills.
  void begin_forward(int64_t start_frame, int64_t frames);

  bool relative_positions() const { return config_.positions == "relative"; }
  // Temporal RoPE positions of the query frames of the current forward.
  std::vector<int64_t> query_positions() const;
  // Absolute frame held by each visible slot, oldest first (the current chunk last).
  const std::vector<int64_t>& visible_frames() const { return slot_frames_; }
  int64_t visible_frame_count() const { return local_end_; }

  // k must already be roped in absolute mode; in relative mode it is stored raw.
  void write(int64_t layer, const Tensor& k, const Tensor& v);
  // Keys of all visible frames [visible tokens, heads, head_dim]; relative mode returns a re-roped copy.
  Tensor keys(int64_t layer) const;
  Tensor values(int64_t layer) const;

  int64_t capacity_frames() const { return capacity_frames_; }
  size_t bytes() const;

 private:
  Tensor frame_rows(const Tensor& storage, int64_t first_frame, int64_t frames) const;

  KvCacheConfig config_;
  CacheGeometry geometry_;
  ops::RopeGrid rope_;
  int64_t capacity_frames_;
  int64_t global_end_ = 0;  // absolute frame after the last one written
  int64_t local_end_ = 0;   // slots in use
  int64_t write_frames_ = 0;
  std::vector<int64_t> slot_frames_;
  std::vector<Tensor> keys_, values_;  // per layer [capacity * tokens_per_frame, heads, head_dim]
};

// Which absolute frames chunk `chunk` attends to, from the definition (not from the cache's data movement):
// all frames up to the chunk's end, or in rolling mode the sink frames plus the newest window - sink frames.
std::vector<int64_t> visible_frames_for_chunk(const KvCacheConfig& config, int64_t chunk_frames, int64_t chunk);

}  // namespace lf
