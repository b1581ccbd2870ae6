#pragma once
// Self-Forcing's autoregressive chunk loop (spec 10.3): for each chunk, denoise with x0-prediction and fresh
// re-noise, then a clean refresh pass at t = context_noise that rewrites the chunk's K/V slot.
#include <functional>
#include <vector>

#include "attention/attention_backend.h"
#include "config/config.h"
#include "model/kv_cache.h"
#include "model/wan_dit.h"
#include "pipeline/noise_source.h"
#include "pipeline/scheduler.h"

namespace lf {

struct ChunkReport {
  int64_t chunk;
  int64_t chunks;
  int64_t first_frame;
  int64_t frames;
  double seconds;     // this chunk: denoising + refresh
  int64_t forwards;   // DiT forwards run for it
};

struct GenerateCallbacks {
  // Called with each finished chunk's clean latents [chunk_frames, C, H, W], in order: decode and write here.
  std::function<void(const ChunkReport&, const Tensor& latents)> on_chunk;
};

class ArPipeline {
 public:
  ArPipeline(const PipelineConfig& config, const WanDiT& model, AttentionBackend& attention);

  const FlowMatchSchedule& schedule() const { return schedule_; }
  // context: text embeddings [text_len, text_dim]. Returns all latents [frames, C, H, W].
  Tensor generate(const Tensor& context, NoiseSource& noise, const GenerateCallbacks& callbacks);

 private:
  PipelineConfig config_;
  const WanDiT& model_;
  AttentionBackend& attention_;
  FlowMatchSchedule schedule_;
};

}  // namespace lf
