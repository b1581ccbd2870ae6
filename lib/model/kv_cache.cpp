#include "model/kv_cache.h"

#include <cstring>
#include <numeric>

#include "core/error.h"

namespace lf {

KvCache::KvCache(const KvCacheConfig& config, const CacheGeometry& geometry, const ops::RopeGrid& rope)
    : config_(config), geometry_(geometry), rope_(rope) {
  capacity_frames_ = config.mode == "rolling" ? std::min(config.window_frames, geometry.total_frames)
                                              : geometry.total_frames;
  // Allocated once for the whole video: nothing is allocated inside the chunk loop.
  const Shape shape{capacity_frames_ * geometry.tokens_per_frame, geometry.heads, geometry.head_dim};
  const DType dtype = ops::activation_dtype(geometry.device);
  for (int64_t layer = 0; layer < geometry.layers; ++layer) {
    keys_.push_back(Tensor::zeros(shape, dtype, geometry.device));
    values_.push_back(Tensor::zeros(shape, dtype, geometry.device));
  }
}

void KvCache::reset() {
  global_end_ = local_end_ = write_frames_ = 0;
  slot_frames_.clear();
}

size_t KvCache::bytes() const {
  size_t total = 0;
  for (size_t i = 0; i < keys_.size(); ++i) total += keys_[i].nbytes() + values_[i].nbytes();
  return total;
}

void KvCache::begin_forward(int64_t start_frame, int64_t frames) {
  const int64_t end = start_frame + frames;
  LF_CHECK(start_frame >= 0 && frames > 0 && frames <= capacity_frames_,
           "kv cache: forward over frames [{}, {}) does not fit a cache of {} frames", start_frame, end,
           capacity_frames_);
  LF_CHECK(end >= global_end_ && start_frame <= global_end_,
           "kv cache: frames [{}, {}) are neither the current chunk nor the next one (cache ends at {})", start_frame,
           end, global_end_);
  const int64_t growth = end - global_end_;  // new frames: a chunk size for a new chunk, 0 for a re-run
  if (config_.mode == "rolling" && growth > 0 && local_end_ + growth > capacity_frames_) {
    const int64_t evict = growth + local_end_ - capacity_frames_;
    const int64_t sink = config_.sink_frames;
    const int64_t keep = local_end_ - evict - sink;
    LF_CHECK(keep >= 0, "kv cache: window of {} frames cannot keep {} sink frames", capacity_frames_, sink);
    // Frames move down one at a time, in ascending order: source and destination are >= `evict` frames apart,
    // so no copy overlaps itself (device copies must not overlap).
    const int64_t tokens = geometry_.tokens_per_frame;
    for (size_t layer = 0; layer < keys_.size(); ++layer)
      for (Tensor* storage : {&keys_[layer], &values_[layer]})
        for (int64_t frame = 0; frame < keep; ++frame)
          ops::copy_rows(*storage, (sink + frame) * tokens, *storage, (sink + evict + frame) * tokens, tokens);
    slot_frames_.erase(slot_frames_.begin() + sink, slot_frames_.begin() + sink + evict);
    local_end_ -= evict;
  }
  local_end_ += growth;
  for (int64_t frame = global_end_; frame < end; ++frame) slot_frames_.push_back(frame);
  global_end_ = end;
  write_frames_ = frames;
}

std::vector<int64_t> KvCache::query_positions() const {
  std::vector<int64_t> positions;
  for (int64_t slot = local_end_ - write_frames_; slot < local_end_; ++slot)
    positions.push_back(relative_positions() ? slot : slot_frames_[size_t(slot)]);
  return positions;
}

Tensor KvCache::frame_rows(const Tensor& storage, int64_t first_frame, int64_t frames) const {
  return storage.slice_rows(first_frame * geometry_.tokens_per_frame,
                            (first_frame + frames) * geometry_.tokens_per_frame);
}

void KvCache::write(int64_t layer, const Tensor& k, const Tensor& v) {
  const Shape expected{write_frames_ * geometry_.tokens_per_frame, geometry_.heads, geometry_.head_dim};
  check_shape(k, expected, "kv cache write k");
  check_shape(v, expected, "kv cache write v");
  const int64_t first_row = (local_end_ - write_frames_) * geometry_.tokens_per_frame;
  ops::copy_rows(keys_[size_t(layer)], first_row, k, 0, k.dim(0));
  ops::copy_rows(values_[size_t(layer)], first_row, v, 0, v.dim(0));
}

Tensor KvCache::keys(int64_t layer) const {
  Tensor visible = frame_rows(keys_[size_t(layer)], 0, local_end_);
  if (!relative_positions()) return visible;
  Tensor roped = visible.clone();
  std::vector<int64_t> positions(static_cast<size_t>(local_end_));
  std::iota(positions.begin(), positions.end(), 0);
  ops::rope_apply(roped, rope_, positions);
  return roped;
}

Tensor KvCache::values(int64_t layer) const { return frame_rows(values_[size_t(layer)], 0, local_end_); }

std::vector<int64_t> visible_frames_for_chunk(const KvCacheConfig& config, int64_t chunk_frames, int64_t chunk) {
  const int64_t end = (chunk + 1) * chunk_frames;
  std::vector<int64_t> frames;
  if (config.mode != "rolling" || end <= config.window_frames) {
    for (int64_t frame = 0; frame < end; ++frame) frames.push_back(frame);
    return frames;
  }
  for (int64_t frame = 0; frame < config.sink_frames; ++frame) frames.push_back(frame);
  for (int64_t frame = end - (config.window_frames - config.sink_frames); frame < end; ++frame)
    frames.push_back(frame);
  return frames;
}

}  // namespace lf
