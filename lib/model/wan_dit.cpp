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
Tensor owned_rows(const Tensor& x, int64_t first, int64_t count) { return x.slice_rows(first, first + count).clone(); }

}  // namespace

CachedSelfAttention::CachedSelfAttention(KvCache& cache, AttentionBackend& backend, const ops::RopeGrid& rope,
                                         int64_t head_dim, CallInfo info)
    : cache_(cache), backend_(backend), rope_(rope), scale_(1.0 / std::sqrt(double(head_dim))), info_(info) {}

Tensor CachedSelfAttention::attend(int64_t layer, Tensor q, Tensor k, const Tensor& v) {
  const std::vector<int64_t> query_positions = cache_.query_positions();
  AttentionCall call;
  call.chunk = info_.chunk;
  call.step = info_.step;
  call.layer = layer;
  call.is_refresh = info_.is_refresh;
  call.frames_visible = cache_.visible_frame_count();  // the current chunk's slot is already chosen
  call.frames_in_chunk = int64_t(query_positions.size());
  call.tokens_per_frame = rope_.tokens_per_frame;
  call.scale = scale_;
  // A GPU planner that pools q and the chunk's keys gets them from this RoPE pass (one read of each instead of
  // two). Relative positions cache raw keys and re-rope them on read, so there only the planner can pool them.
  const auto [query_block, key_block] = cache_.relative_positions() ? std::pair<int64_t, int64_t>{0, 0}
                                                                    : backend_.pooling(call, q.is_cuda());
  RopePooled pooled;
  if (query_block > 0) {
    pooled.query_block = query_block;
    pooled.key_block = key_block;
    pooled.queries = ops::rope_apply_pooled(q, rope_, query_positions, query_block, /*frame_aligned=*/false);
    pooled.new_keys = ops::rope_apply_pooled(k, rope_, query_positions, key_block, /*frame_aligned=*/true);
    call.pooled = &pooled;
  } else {
    ops::rope_apply(q, rope_, query_positions);
    if (!cache_.relative_positions()) ops::rope_apply(k, rope_, query_positions);  // cached post-RoPE
  }
  call.q = &q;
  Tensor keys, values;
  if (call.pooled != nullptr) {
    // Absolute positions: keys() / values() are views of the cache, the same before and after the write. A
    // planner working from the pooled blocks may start before the write and run beside it (plan_ahead).
    keys = cache_.keys(layer);
    values = cache_.values(layer);
    call.k = &keys;
    call.v = &values;
    backend_.plan_ahead(call);
    cache_.write(layer, k, v);
  } else {
    cache_.write(layer, k, v);
    keys = cache_.keys(layer);  // relative positions: a re-roped copy of what was just written
    values = cache_.values(layer);
    call.k = &keys;
    call.v = &values;
  }
  const ops::OpClassScope timed_as("self_attention");
  return backend_.run(call);
}

BlockCausalSelfAttention::BlockCausalSelfAttention(const KvCacheConfig& config, int64_t chunk_frames,
                                                   const ops::RopeGrid& rope, int64_t head_dim)
    : config_(config), chunk_frames_(chunk_frames), rope_(rope), scale_(1.0 / std::sqrt(double(head_dim))) {}

Tensor BlockCausalSelfAttention::attend(int64_t, Tensor q, Tensor k, const Tensor& v) {
  LF_CHECK(!q.is_cuda(), "the block-causal reference runs on the CPU");
  const int64_t tokens_per_frame = rope_.tokens_per_frame;
  const int64_t frames = q.dim(0) / tokens_per_frame;
  LF_CHECK(frames % chunk_frames_ == 0, "block-causal reference: {} frames is not a whole number of chunks",
           frames);
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
      ops::copy_rows(keys, i * tokens_per_frame, k, visible[size_t(i)] * tokens_per_frame, tokens_per_frame);
      ops::copy_rows(values, i * tokens_per_frame, v, visible[size_t(i)] * tokens_per_frame, tokens_per_frame);
    }
    ops::rope_apply(keys, rope_, key_positions);
    Tensor queries = owned_rows(q, chunk * chunk_frames_ * tokens_per_frame, chunk_frames_ * tokens_per_frame);
    ops::rope_apply(queries, rope_, query_positions);
    const Tensor result = ops::attention(queries, keys, values, scale_);
    ops::copy_rows(out, chunk * chunk_frames_ * tokens_per_frame, result, 0, result.dim(0));
  }
  return out;
}

WanDiT::WanDiT(ModelConfig config, WanWeights weights) : config_(std::move(config)), weights_(std::move(weights)) {
  LF_CHECK(int64_t(weights_.blocks.size()) == config_.layers, "model has {} blocks of weights, config says {}",
           weights_.blocks.size(), config_.layers);
  host_conditioning_weights_.time_embedding_0 = weights_.time_embedding_0;
  host_conditioning_weights_.time_embedding_2 = weights_.time_embedding_2;
  host_conditioning_weights_.time_projection = weights_.time_projection;
  host_conditioning_weights_.head_modulation = weights_.head_modulation;
  for (const WanBlockWeights& block : weights_.blocks) {
    host_conditioning_weights_.blocks.emplace_back();
    host_conditioning_weights_.blocks.back().modulation = block.modulation;
  }
}

void WanDiT::to_device(Device device) {
  if (device == device_) return;
  LF_CHECK(device_ == Device::CPU, "model weights can only move from the host");
  const DType gemm_dtype = ops::activation_dtype(device);
  auto move = [&](Tensor& tensor, DType dtype) {
    if (tensor.defined()) tensor = tensor.to(dtype).to(device);
  };
  auto move_linear = [&](LinearWeights& linear) {
    move(linear.weight, gemm_dtype);
    move(linear.bias, DType::F32);
  };
  move_linear(weights_.patch_embedding);
  move_linear(weights_.text_embedding_0);
  move_linear(weights_.text_embedding_2);
  move_linear(weights_.head);
  for (WanBlockWeights& block : weights_.blocks) {
    for (LinearWeights* linear : {&block.self_q, &block.self_k, &block.self_v, &block.self_o, &block.cross_q,
                                  &block.cross_k, &block.cross_v, &block.cross_o, &block.ffn_in, &block.ffn_out})
      move_linear(*linear);
    for (Tensor* norm : {&block.self_norm_q, &block.self_norm_k, &block.norm3_weight, &block.norm3_bias,
                         &block.cross_norm_q, &block.cross_norm_k})
      move(*norm, DType::F32);
  }
  device_ = device;
}

ops::RopeGrid WanDiT::rope_grid() const {
  return {config_.tokens_per_frame(), config_.grid_width(), config_.rope_theta};
}

FrameConditioning WanDiT::conditioning(const std::vector<double>& frame_timesteps) const {
  const int64_t frames = int64_t(frame_timesteps.size()), dim = config_.dim;
  const WanWeights& w = host_conditioning_weights_;
  // e = MLP(sinusoid(t)) and e0 = Linear(SiLU(e)) per distinct timestep (frames usually share a few).
  std::map<double, std::pair<Tensor, Tensor>> by_timestep;
  for (double timestep : frame_timesteps) {
    if (by_timestep.count(timestep)) continue;
    const Tensor sinusoid = ops::timestep_embedding(timestep, config_.freq_dim).reshape({1, config_.freq_dim});
    const Tensor embedded = linear(ops::silu(linear(sinusoid, w.time_embedding_0)), w.time_embedding_2);
    by_timestep.emplace(timestep, std::make_pair(embedded, linear(ops::silu(embedded), w.time_projection)));
  }
  FrameConditioning out;
  for (int64_t layer = 0; layer < config_.layers; ++layer) {
    std::array<Tensor, 6> rows;
    for (int64_t slot = 0; slot < 6; ++slot) {
      rows[size_t(slot)] = Tensor::empty({frames, dim});
      const float* base = w.blocks[size_t(layer)].modulation.f32() + slot * dim;
      for (int64_t f = 0; f < frames; ++f) {
        const float* e0 = by_timestep.at(frame_timesteps[size_t(f)]).second.f32() + slot * dim;
        float* row = rows[size_t(slot)].f32() + f * dim;
        for (int64_t i = 0; i < dim; ++i) row[i] = base[i] + e0[i];
      }
    }
    out.blocks.push_back(std::move(rows));
  }
  // The head modulates with e (not e0): shift = head.modulation[0] + e, scale = head.modulation[1] + e.
  out.head_shift = Tensor::empty({frames, dim});
  out.head_scale = Tensor::empty({frames, dim});
  for (int64_t f = 0; f < frames; ++f) {
    const float* e = by_timestep.at(frame_timesteps[size_t(f)]).first.f32();
    for (int64_t i = 0; i < dim; ++i) {
      out.head_shift.f32()[f * dim + i] = w.head_modulation.f32()[i] + e[i];
      out.head_scale.f32()[f * dim + i] = w.head_modulation.f32()[dim + i] + e[i];
    }
  }
  return out;
}

CrossAttentionCache WanDiT::build_cross_cache(const Tensor& context) const {
  check_shape(context, {config_.text_len, config_.text_dim}, "text context");
  // text_embedding = Linear -> GELU(tanh) -> Linear, applied to every row, padding included (spec 4).
  const Tensor input = context.device() == device_ ? context : context.to(device_);
  const Tensor text = linear(ops::linear(to_activation(input), weights_.text_embedding_0.weight,
                                         weights_.text_embedding_0.bias, ops::Activation::GeluTanh),
                             weights_.text_embedding_2);
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
  LF_CHECK(latents.device() == device_, "DiT input on {} but the model is on {}", device_name(latents.device()),
           device_name(device_));
  const int64_t frames = latents.dim(0), tokens_per_frame = c.tokens_per_frame(), dim = c.dim;
  LF_CHECK(int64_t(frame_timesteps.size()) == frames, "DiT: {} timesteps for {} frames", frame_timesteps.size(),
           frames);
  const FrameConditioning& cond = conditioning_on_device(frame_timesteps);
  const double eps = c.eps;

  // Residual stream x [L, dim] in f32 on every device.
  Tensor x = ops::linear(ops::patchify(latents, c.patch[1], c.patch[2]), weights_.patch_embedding.weight,
                         weights_.patch_embedding.bias, ops::Activation::None, /*f32_out=*/true);
  for (int64_t layer = 0; layer < c.layers; ++layer) {
    const WanBlockWeights& block = weights_.blocks[size_t(layer)];
    const std::array<Tensor, 6>& m = cond.blocks[size_t(layer)];  // shift1, scale1, gate1, shift2, scale2, gate2

    // 1. Self-attention with per-frame modulation and gate.
    const Tensor h = ops::layer_norm_modulate(x, m[0], m[1], tokens_per_frame, eps);
    Tensor q = split_heads(ops::rms_norm(linear(h, block.self_q), block.self_norm_q, eps), c.heads);
    Tensor k = split_heads(ops::rms_norm(linear(h, block.self_k), block.self_norm_k, eps), c.heads);
    const Tensor v = split_heads(linear(h, block.self_v), c.heads);
    const Tensor attended = self_attention.attend(layer, std::move(q), std::move(k), v);
    ops::gated_add(x, linear(attended.reshape({x.dim(0), dim}), block.self_o), m[2], tokens_per_frame);

    // 2. Cross-attention to the prompt: affine LayerNorm, no modulation, no gate.
    const Tensor hc = ops::layer_norm(x, block.norm3_weight, block.norm3_bias, eps);
    const Tensor qc = split_heads(ops::rms_norm(linear(hc, block.cross_q), block.cross_norm_q, eps), c.heads);
    Tensor crossed;
    {
      const ops::OpClassScope timed_as("cross_attention");
      crossed = ops::attention(qc, cross.keys[size_t(layer)], cross.values[size_t(layer)],
                               1.0 / std::sqrt(double(c.head_dim())));
    }
    ops::gated_add(x, linear(crossed.reshape({x.dim(0), dim}), block.cross_o), Tensor(), tokens_per_frame);

    // 3. FFN with the second modulation triple; GELU fused into the first GEMM where the device can.
    const Tensor hf = ops::layer_norm_modulate(x, m[3], m[4], tokens_per_frame, eps);
    const Tensor hidden = ops::linear(hf, block.ffn_in.weight, block.ffn_in.bias, ops::Activation::GeluTanh);
    ops::gated_add(x, linear(hidden, block.ffn_out), m[5], tokens_per_frame);
  }

  // Head: its own 2-way modulation from e, an f32 projection, then unpatchify.
  const Tensor head_in = ops::layer_norm_modulate(x, cond.head_shift, cond.head_scale, tokens_per_frame, eps);
  const Tensor out_tokens = ops::linear(head_in, weights_.head.weight, weights_.head.bias, ops::Activation::None,
                                        /*f32_out=*/true);
  return ops::unpatchify(out_tokens, frames, c.out_channels, c.grid_height(), c.grid_width(), c.patch[1],
                         c.patch[2]);
}

const FrameConditioning& WanDiT::conditioning_on_device(const std::vector<double>& frame_timesteps) const {
  auto found = device_conditioning_.find(frame_timesteps);
  if (found != device_conditioning_.end()) return found->second;
  FrameConditioning cond = conditioning(frame_timesteps);
  if (device_ != Device::CPU) {
    for (auto& rows : cond.blocks)
      for (Tensor& row : rows) row = row.to(device_);
    cond.head_shift = cond.head_shift.to(device_);
    cond.head_scale = cond.head_scale.to(device_);
  }
  return device_conditioning_.emplace(frame_timesteps, std::move(cond)).first->second;
}

Tensor WanDiT::to_activation(const Tensor& x) const { return ops::convert(x, ops::activation_dtype(device_)); }

}  // namespace lf
