#include "model/wan_dit.h"

#include <cmath>
#include <cstring>
#include <map>
#include <numeric>

#include "core/error.h"
#include "ops/ops.h"

namespace lf {

namespace {

Tensor linear(const Tensor& x, const LinearWeights& layer) { return ops::linear(x, layer.weight, layer.bias); }

Tensor split_heads(const Tensor& x, int64_t heads) { return x.reshape({x.dim(0), heads, x.dim(1) / heads}); }

// Rows [first, first + count) of a [tokens, ...] tensor as an owned copy.
Tensor copy_rows(const Tensor& x, int64_t first, int64_t count) { return x.slice_rows(first, first + count).clone(); }

// Per-frame slice i of a [frames, k, dim] table as [frames, dim].
Tensor table_slot(const Tensor& table, int64_t slot) {
  const int64_t frames = table.dim(0), slots = table.dim(1), dim = table.dim(2);
  Tensor out = Tensor::empty({frames, dim});
  for (int64_t f = 0; f < frames; ++f)
    std::memcpy(out.f32() + f * dim, table.f32() + (f * slots + slot) * dim, size_t(dim) * 4);
  return out;
}

}  // namespace

CachedSelfAttention::CachedSelfAttention(KvCache& cache, AttentionBackend& backend, const ops::RopeGrid& rope,
                                         int64_t head_dim, CallInfo info)
    : cache_(cache), backend_(backend), rope_(rope), scale_(1.0 / std::sqrt(double(head_dim))), info_(info) {}

Tensor CachedSelfAttention::attend(int64_t layer, Tensor q, Tensor k, const Tensor& v) {
  const std::vector<int64_t> query_positions = cache_.query_positions();
  ops::rope_apply(q, rope_, query_positions);
  if (!cache_.relative_positions()) ops::rope_apply(k, rope_, query_positions);  // cached post-RoPE
  cache_.write(layer, k, v);
  const Tensor keys = cache_.keys(layer);
  const Tensor values = cache_.values(layer);
  AttentionCall call;
  call.chunk = info_.chunk;
  call.step = info_.step;
  call.layer = layer;
  call.is_refresh = info_.is_refresh;
  call.q = &q;
  call.k = &keys;
  call.v = &values;
  call.frames_visible = cache_.visible_frame_count();
  call.frames_in_chunk = int64_t(query_positions.size());
  call.tokens_per_frame = rope_.tokens_per_frame;
  call.scale = scale_;
  return backend_.run(call);
}

BlockCausalSelfAttention::BlockCausalSelfAttention(const KvCacheConfig& config, int64_t chunk_frames,
                                                   const ops::RopeGrid& rope, int64_t head_dim)
    : config_(config), chunk_frames_(chunk_frames), rope_(rope), scale_(1.0 / std::sqrt(double(head_dim))) {}

Tensor BlockCausalSelfAttention::attend(int64_t, Tensor q, Tensor k, const Tensor& v) {
  const int64_t tokens_per_frame = rope_.tokens_per_frame;
  const int64_t frames = q.dim(0) / tokens_per_frame;
  LF_CHECK(frames % chunk_frames_ == 0, "block-causal reference: {} frames is not a whole number of chunks",
           frames);
  const int64_t row_bytes = q.dim(1) * q.dim(2) * 4;
  Tensor out = Tensor::empty(q.shape());
  for (int64_t chunk = 0; chunk < frames / chunk_frames_; ++chunk) {
    const std::vector<int64_t> visible = visible_frames_for_chunk(config_, chunk_frames_, chunk);
    const int64_t count = int64_t(visible.size());
    std::vector<int64_t> key_positions(visible.size());
    if (config_.positions == "relative") std::iota(key_positions.begin(), key_positions.end(), 0);
    else key_positions = visible;
    const std::vector<int64_t> query_positions(key_positions.end() - chunk_frames_, key_positions.end());
    Tensor keys = Tensor::empty({count * tokens_per_frame, q.dim(1), q.dim(2)});
    Tensor values = Tensor::empty(keys.shape());
    for (int64_t i = 0; i < count; ++i) {
      const size_t bytes = size_t(tokens_per_frame * row_bytes);
      std::memcpy(static_cast<char*>(keys.raw()) + size_t(i) * bytes,
                  static_cast<const char*>(k.raw()) + size_t(visible[size_t(i)]) * bytes, bytes);
      std::memcpy(static_cast<char*>(values.raw()) + size_t(i) * bytes,
                  static_cast<const char*>(v.raw()) + size_t(visible[size_t(i)]) * bytes, bytes);
    }
    ops::rope_apply(keys, rope_, key_positions);
    Tensor queries = copy_rows(q, chunk * chunk_frames_ * tokens_per_frame, chunk_frames_ * tokens_per_frame);
    ops::rope_apply(queries, rope_, query_positions);
    const Tensor result = ops::attention(queries, keys, values, scale_);
    std::memcpy(static_cast<char*>(out.raw()) + size_t(chunk * chunk_frames_ * tokens_per_frame * row_bytes),
                result.raw(), result.nbytes());
  }
  return out;
}

WanDiT::WanDiT(ModelConfig config, WanWeights weights) : config_(std::move(config)), weights_(std::move(weights)) {
  LF_CHECK(int64_t(weights_.blocks.size()) == config_.layers, "model has {} blocks of weights, config says {}",
           weights_.blocks.size(), config_.layers);
}

ops::RopeGrid WanDiT::rope_grid() const {
  return {config_.tokens_per_frame(), config_.grid_width(), config_.rope_theta};
}

CrossAttentionCache WanDiT::build_cross_cache(const Tensor& context) const {
  check_shape(context, {config_.text_len, config_.text_dim}, "text context");
  // text_embedding = Linear -> GELU(tanh) -> Linear, applied to every row, padding included (spec 4).
  const Tensor text = linear(ops::gelu_tanh(linear(context, weights_.text_embedding_0)), weights_.text_embedding_2);
  CrossAttentionCache cache;
  for (const WanBlockWeights& block : weights_.blocks) {
    cache.keys.push_back(split_heads(ops::rms_norm(linear(text, block.cross_k), block.cross_norm_k, config_.eps),
                                     config_.heads));
    cache.values.push_back(split_heads(linear(text, block.cross_v), config_.heads));
  }
  return cache;
}

Tensor WanDiT::forward(const Tensor& latents, const std::vector<double>& frame_timesteps,
                       const CrossAttentionCache& cross, SelfAttention& self_attention) const {
  const ModelConfig& c = config_;
  check_shape(latents, {-1, c.in_channels, c.latent_height, c.latent_width}, "DiT input latents");
  const int64_t frames = latents.dim(0), tokens_per_frame = c.tokens_per_frame(), dim = c.dim;
  LF_CHECK(int64_t(frame_timesteps.size()) == frames, "DiT: {} timesteps for {} frames", frame_timesteps.size(),
           frames);

  // Time conditioning per frame: e = MLP(sinusoid(t)), e0 = Linear(SiLU(e)) -> 6 modulation vectors.
  // Frames usually share a few timesteps, so each distinct t is embedded once.
  Tensor e = Tensor::empty({frames, dim});
  Tensor e0 = Tensor::empty({frames, 6, dim});
  std::map<double, std::pair<Tensor, Tensor>> by_timestep;
  for (int64_t f = 0; f < frames; ++f) {
    auto found = by_timestep.find(frame_timesteps[size_t(f)]);
    if (found == by_timestep.end()) {
      const Tensor sinusoid = ops::timestep_embedding(frame_timesteps[size_t(f)], c.freq_dim).reshape({1, c.freq_dim});
      const Tensor embedded =
          linear(ops::silu(linear(sinusoid, weights_.time_embedding_0)), weights_.time_embedding_2);
      const Tensor projected = linear(ops::silu(embedded), weights_.time_projection);
      found = by_timestep.emplace(frame_timesteps[size_t(f)], std::make_pair(embedded, projected)).first;
    }
    std::memcpy(e.f32() + f * dim, found->second.first.f32(), size_t(dim) * 4);
    std::memcpy(e0.f32() + f * 6 * dim, found->second.second.f32(), size_t(6 * dim) * 4);
  }

  Tensor x = linear(ops::patchify(latents, c.patch[1], c.patch[2]), weights_.patch_embedding);  // [L, dim]
  const double eps = c.eps;
  for (int64_t layer = 0; layer < c.layers; ++layer) {
    const WanBlockWeights& block = weights_.blocks[size_t(layer)];
    // Modulation table M = block.modulation + e0, slots: shift1, scale1, gate1, shift2, scale2, gate2.
    Tensor modulation = Tensor::empty({frames, 6, dim});
    for (int64_t f = 0; f < frames; ++f)
      for (int64_t i = 0; i < 6 * dim; ++i)
        modulation.f32()[f * 6 * dim + i] = block.modulation.f32()[i] + e0.f32()[f * 6 * dim + i];

    // 1. Self-attention with per-frame modulation and gate.
    const Tensor h = ops::modulate(ops::layer_norm(x, Tensor(), Tensor(), eps), table_slot(modulation, 0),
                                   table_slot(modulation, 1), tokens_per_frame);
    Tensor q = split_heads(ops::rms_norm(linear(h, block.self_q), block.self_norm_q, eps), c.heads);
    Tensor k = split_heads(ops::rms_norm(linear(h, block.self_k), block.self_norm_k, eps), c.heads);
    const Tensor v = split_heads(linear(h, block.self_v), c.heads);
    const Tensor attended = self_attention.attend(layer, std::move(q), std::move(k), v);
    ops::gated_add(x, linear(attended.reshape({x.dim(0), dim}), block.self_o), table_slot(modulation, 2),
                   tokens_per_frame);

    // 2. Cross-attention to the prompt: affine LayerNorm, no modulation, no gate.
    const Tensor hc = ops::layer_norm(x, block.norm3_weight, block.norm3_bias, eps);
    const Tensor qc = split_heads(ops::rms_norm(linear(hc, block.cross_q), block.cross_norm_q, eps), c.heads);
    const Tensor crossed = ops::attention(qc, cross.keys[size_t(layer)], cross.values[size_t(layer)],
                                         1.0 / std::sqrt(double(c.head_dim())));
    ops::gated_add(x, linear(crossed.reshape({x.dim(0), dim}), block.cross_o), Tensor(), tokens_per_frame);

    // 3. FFN with the second modulation triple.
    const Tensor hf = ops::modulate(ops::layer_norm(x, Tensor(), Tensor(), eps), table_slot(modulation, 3),
                                    table_slot(modulation, 4), tokens_per_frame);
    ops::gated_add(x, linear(ops::gelu_tanh(linear(hf, block.ffn_in)), block.ffn_out), table_slot(modulation, 5),
                   tokens_per_frame);
  }

  // Head: its own 2-way modulation from e (not e0), then unpatchify.
  Tensor shift = Tensor::empty({frames, dim}), scale = Tensor::empty({frames, dim});
  for (int64_t f = 0; f < frames; ++f)
    for (int64_t i = 0; i < dim; ++i) {
      shift.f32()[f * dim + i] = weights_.head_modulation.f32()[i] + e.f32()[f * dim + i];
      scale.f32()[f * dim + i] = weights_.head_modulation.f32()[dim + i] + e.f32()[f * dim + i];
    }
  const Tensor head_in = ops::modulate(ops::layer_norm(x, Tensor(), Tensor(), eps), shift, scale, tokens_per_frame);
  const Tensor out_tokens = linear(head_in, weights_.head);
  return ops::unpatchify(out_tokens, frames, c.out_channels, c.grid_height(), c.grid_width(), c.patch[1],
                         c.patch[2]);
}

}  // namespace lf
