#include "pipeline/ar_pipeline.h"

#include <chrono>

#include "core/error.h"
#include "io/non_finite.h"
#include "ops/ops.h"

namespace lf {

ArPipeline::ArPipeline(const PipelineConfig& config, const WanDiT& model, AttentionBackend& attention)
    : config_(config), model_(model), attention_(attention), schedule_(config) {}

void ArPipeline::refresh(KvCache& cache, const CrossAttentionCache& cross, int64_t chunk,
                         const Tensor& clean_latents, AttentionBackend& attention) {
  const ModelConfig& mc = model_.config();
  const int64_t chunk_frames = config_.chunk_frames;
  const int64_t steps = int64_t(schedule_.timesteps().size());
  cache.begin_forward(chunk * chunk_frames, chunk_frames);
  CachedSelfAttention self_attention(cache, attention, model_.rope_grid(), mc.head_dim(), {chunk, steps, true});
  model_.forward(clean_latents, std::vector<double>(size_t(chunk_frames), schedule_.context_timestep()), cross,
                 self_attention);
}

Tensor ArPipeline::generate(const Tensor& context, NoiseSource& noise, const GenerateCallbacks& callbacks) {
  return generate(std::vector<ContextSwitch>{{0, context}}, noise, callbacks);
}

Tensor ArPipeline::generate(const std::vector<ContextSwitch>& contexts, NoiseSource& noise,
                            const GenerateCallbacks& callbacks, const TeacherForcing* teacher) {
  const ModelConfig& mc = model_.config();
  const int64_t chunk_frames = config_.chunk_frames, chunks = config_.frames / chunk_frames;
  const Device device = model_.device();
  KvCache cache(config_.kv_cache,
                {mc.layers, mc.tokens_per_frame(), mc.heads, mc.head_dim(), config_.frames, chunk_frames, device},
                model_.rope_grid());
  LF_CHECK(!contexts.empty() && contexts[0].first_chunk == 0, "prompt schedule: the first prompt must start at chunk 0");
  for (size_t i = 1; i < contexts.size(); ++i)
    LF_CHECK(contexts[i].first_chunk > contexts[i - 1].first_chunk && contexts[i].first_chunk < chunks,
             "prompt schedule: chunk {} must come after chunk {} and before the last chunk {}", contexts[i].first_chunk,
             contexts[i - 1].first_chunk, chunks - 1);
  size_t next_switch = 1;
  CrossAttentionCache cross = model_.build_cross_cache(contexts[0].context);
  const Shape latents_shape{config_.frames, mc.out_channels, mc.latent_height, mc.latent_width};
  // A recache replays the earlier chunks from their latents, so a schedule that recaches keeps them regardless.
  const bool keep = callbacks.keep_latents || (contexts.size() > 1 && config_.recache_on_switch && teacher == nullptr);
  Tensor latents = keep ? Tensor::empty(latents_shape) : Tensor();
  if (teacher != nullptr) {
    LF_CHECK(teacher->attention != nullptr, "teacher forcing needs the reference run's attention backend");
    LF_CHECK(teacher->latents.shape() == latents_shape,
             "teacher forcing: the reference latents are {}, this run makes {}", shape_str(teacher->latents.shape()),
             shape_str(latents_shape));
  }
  // What the KV cache is built from: this run's own chunks, or under teacher forcing the reference's.
  const Tensor& history = teacher != nullptr ? teacher->latents : latents;
  AttentionBackend& history_attention = teacher != nullptr ? *teacher->attention : attention_;
  const std::vector<double>& timesteps = schedule_.timesteps();
  const std::vector<double>& sigmas = schedule_.sigmas();
  const int64_t steps = int64_t(timesteps.size());

  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const auto started = std::chrono::steady_clock::now();
    const int64_t start_frame = chunk * chunk_frames;
    int64_t forwards = 0;
    if (next_switch < contexts.size() && contexts[next_switch].first_chunk == chunk) {
      cross = model_.build_cross_cache(contexts[next_switch++].context);
      if (config_.recache_on_switch) {
        // Replay from an empty cache, so a rolling window evicts exactly as it did the first time.
        cache.reset();
        for (int64_t past = 0; past < chunk; ++past, ++forwards)
          refresh(cache, cross, past, history.slice_rows(past * chunk_frames, (past + 1) * chunk_frames).to(device),
                  history_attention);
      }
    }
    // Noise is drawn on the host (the same numbers on every device) and moved to the model's device.
    Tensor x = noise.initial(chunk).to(device);
    Tensor x0;
    for (int64_t step = 0; step < steps; ++step) {
      cache.begin_forward(start_frame, chunk_frames);
      CachedSelfAttention self_attention(cache, attention_, model_.rope_grid(), mc.head_dim(), {chunk, step, false});
      const Tensor velocity = model_.forward(x, std::vector<double>(size_t(chunk_frames), timesteps[size_t(step)]),
                                             cross, self_attention);
      ++forwards;
      // x0 = x_t - sigma_t * v (the reference does this in fp64; the CPU path computes in double).
      x0 = ops::axpby(1.0, x, -sigmas[size_t(step)], velocity);
      if (step + 1 < steps) {
        const double next_sigma = sigmas[size_t(step + 1)];
        if (config_.sampler == "euler") {
          // One Euler step of the flow ODE: the model's own noise estimate carries over, no fresh draw.
          x = ops::axpby(1.0, x, next_sigma - sigmas[size_t(step)], velocity);
        } else {
          // Re-noise to the next step's level with fresh noise: x = (1 - s') x0 + s' eps.
          x = ops::axpby(1.0 - next_sigma, x0, next_sigma, noise.renoise(chunk, step + 1).to(device));
        }
      }
    }
    const Tensor chunk_latents = x0.to(Device::CPU);
    // One pass over a chunk's latents is cheap next to its forwards, and stops a run whose weights, noise or
    // context hold a NaN / Inf before it writes an all-black video.
    const int64_t non_finite = find_non_finite(chunk_latents);
    LF_CHECK(non_finite < 0, "chunk {}: the latents hold a NaN or Inf (element {}): some weight, noise or text "
             "context value is not finite, or the model diverged", chunk, non_finite);
    if (keep) ops::copy_rows(latents, start_frame, chunk_latents, 0, chunk_frames);
    // Clean refresh: the same chunk at t = context_noise rewrites its K/V slot; the output is discarded. The last
    // chunk's refresh feeds nothing, so it runs only when asked (refresh_last_chunk).
    if (chunk + 1 < chunks || config_.refresh_last_chunk) {
      if (teacher != nullptr)
        refresh(cache, cross, chunk, history.slice_rows(start_frame, start_frame + chunk_frames).to(device),
                history_attention);
      else
        refresh(cache, cross, chunk, x0, attention_);
      ++forwards;
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (callbacks.on_chunk)
      callbacks.on_chunk({chunk, chunks, start_frame, chunk_frames, seconds, forwards}, chunk_latents);
  }
  return latents;
}

}  // namespace lf
