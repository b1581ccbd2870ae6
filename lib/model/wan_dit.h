#pragma once
// The causal Wan2.1 DiT (any size), written once against ops:: so it runs on the CPU reference and on the GPU.
// forward() follows spec section 5 in order; how self-attention sees other frames is delegated to a
// SelfAttention strategy: the KV-cached chunk loop, or a whole-sequence block-causal reference for tests.
#include <array>
#include <map>
#include <memory>
#include <vector>

#include "attention/attention_backend.h"
#include "config/config.h"
#include "model/kv_cache.h"
#include "model/wan_weights.h"

namespace lf {

// Cross-attention keys/values, computed once per prompt (spec 9.4).
struct CrossAttentionCache {
  std::vector<Tensor> keys, values;  // per layer [text_len, heads, head_dim]
};

class SelfAttention {
 public:
  virtual ~SelfAttention() = default;
  // q, k, v: [tokens, heads, head_dim] of the frames in this forward, after q/k RMSNorm, before RoPE.
  virtual Tensor attend(int64_t layer, Tensor q, Tensor k, const Tensor& v) = 0;
};

// Self-attention of one forward of the chunk loop: RoPE, cache write, attention over the visible cache through
// the attention backend (where sparse planners plug in).
class CachedSelfAttention final : public SelfAttention {
 public:
  struct CallInfo {
    int64_t chunk = 0;
    int64_t step = 0;
    bool is_refresh = false;
  };
  CachedSelfAttention(KvCache& cache, AttentionBackend& backend, const ops::RopeGrid& rope, int64_t head_dim,
                      CallInfo info);
  Tensor attend(int64_t layer, Tensor q, Tensor k, const Tensor& v) override;

 private:
  KvCache& cache_;
  AttentionBackend& backend_;
  ops::RopeGrid rope_;
  double scale_;
  CallInfo info_;
};

// Per-frame time conditioning of one forward: for each block its six modulation rows (shift1, scale1, gate1,
// shift2, scale2, gate2), each [frames, dim], and the head's shift and scale. Always computed on the host in
// f32 (a few small GEMVs), then moved to the forward's device.
struct FrameConditioning {
  std::vector<std::array<Tensor, 6>> blocks;
  Tensor head_shift, head_scale;
};

class WanDiT {
 public:
  WanDiT(ModelConfig config, WanWeights weights);

  const ModelConfig& config() const { return config_; }
  const WanWeights& weights() const { return weights_; }
  ops::RopeGrid rope_grid() const;
  Device device() const { return device_; }
  // Moves the weights to `device` (GEMM weights in the device's activation dtype, norms and biases f32). The time
  // MLP stays on the host as well: conditioning is computed there.
  void to_device(Device device);
  FrameConditioning conditioning(const std::vector<double>& frame_timesteps) const;

  // context: text-encoder output [text_len, text_dim] (zero rows for padding).
  CrossAttentionCache build_cross_cache(const Tensor& context) const;

  // latents [frames, C, H, W]; one timestep per frame (0..1000 scale). Returns the flow prediction, same shape.
  Tensor forward(const Tensor& latents, const std::vector<double>& frame_timesteps,
                 const CrossAttentionCache& cross, SelfAttention& self_attention) const;

 private:
  const FrameConditioning& conditioning_on_device(const std::vector<double>& frame_timesteps) const;
  Tensor to_activation(const Tensor& x) const;

  ModelConfig config_;
  WanWeights weights_;  // on device_
  WanWeights host_conditioning_weights_;  // time MLP, modulation tables: host copies
  Device device_ = Device::CPU;
  // Conditioning moved to the device, by timestep vector: a run has only steps + 1 distinct ones.
  mutable std::map<std::vector<double>, FrameConditioning> device_conditioning_;
};

// Whole-sequence self-attention with the block-causal visibility of the chunk loop: chunk c's queries see the
// frames visible_frames_for_chunk(c), roped at absolute frames or at their index in that list (relative).
// Written from the definition, independently of KvCache, so "cache == one masked forward" is a real check.
class BlockCausalSelfAttention final : public SelfAttention {
 public:
  BlockCausalSelfAttention(const KvCacheConfig& config, int64_t chunk_frames, const ops::RopeGrid& rope,
                           int64_t head_dim);
  Tensor attend(int64_t layer, Tensor q, Tensor k, const Tensor& v) override;

 private:
  KvCacheConfig config_;
  int64_t chunk_frames_;
  ops::RopeGrid rope_;
  double scale_;
};

}  // namespace lf
