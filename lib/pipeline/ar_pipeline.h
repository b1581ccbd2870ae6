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

// The text context from chunk `first_chunk` on (a prompt switch when first_chunk > 0).
struct ContextSwitch {
  int64_t first_chunk;
  Tensor context;  // [text_len, text_dim]
};

struct GenerateCallbacks {
  // Called with each finished chunk's clean latents [chunk_frames, C, H, W], in order: decode and write here.
  std::function<void(const ChunkReport&, const Tensor& latents)> on_chunk;
  // Whether generate returns every chunk's latents (they grow with the video: 400 KB a latent frame at 480x832).
  // false: it returns an undefined tensor and host memory stays flat over any length; a prompt schedule that
  // recaches still keeps them, since its replays need the earlier chunks.
  bool keep_latents = true;
};

// Teacher forcing (compare-dense): each chunk is still denoised with this pipeline's attention backend, but the
// KV history it attends to is a reference run's own. Every refresh pass (and every recache replay at a prompt
// switch) takes the reference's clean latents of that chunk and runs with the reference's attention backend, so
// after chunk i the cache holds exactly what the reference run's held, and chunk i's error against the reference
// is that chunk's alone rather than compounded over the rollout.
struct TeacherForcing {
  Tensor latents;                           // the reference run's clean latents [frames, C, H, W]
  AttentionBackend* attention = nullptr;    // the reference run's backend (dense for compare-dense)
};

class ArPipeline {
 public:
  ArPipeline(const PipelineConfig& config, const WanDiT& model, AttentionBackend& attention);

  const FlowMatchSchedule& schedule() const { return schedule_; }
  // context: text embeddings [text_len, text_dim]. Returns all latents [frames, C, H, W] (see keep_latents).
  Tensor generate(const Tensor& context, NoiseSource& noise, const GenerateCallbacks& callbacks);
  // Prompt switches: `contexts` starts at chunk 0, first_chunk strictly increasing. At a switch the cross-attention
  // context changes and, with pipeline.recache_on_switch (LongLive's recache), the KV cache is rebuilt for the new
  // prompt by replaying the clean refresh pass of every earlier chunk under it, in order (docs/long-video.md).
  // `teacher` (optional): teacher forcing; the returned latents are then this backend's chunk predictions, each
  // made from the reference's history.
  Tensor generate(const std::vector<ContextSwitch>& contexts, NoiseSource& noise, const GenerateCallbacks& callbacks,
                  const TeacherForcing* teacher = nullptr);

 private:
  PipelineConfig config_;
  const WanDiT& model_;
  AttentionBackend& attention_;
  FlowMatchSchedule schedule_;

  // The clean pass at t = context_noise over a chunk's final latents: rewrites its K/V slot, output discarded.
  void refresh(KvCache& cache, const CrossAttentionCache& cross, int64_t chunk, const Tensor& clean_latents,
               AttentionBackend& attention);
};

}  // namespace lf
