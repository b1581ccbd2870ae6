// The Wan2.1 VAE decoder, one latent frame at a time as WanVAE_.decode runs it. The official code keeps, per
// causal conv, the last two frames of that conv's input (`_feat_map`, zero-padded before the first); here each
// CausalConv owns that history, so chunk boundaries change nothing (the CPU bits included: every conv output is
// one fixed-order dot product, see lib/ops/cpu/conv_cpu.cpp).
#include "model/wan_vae.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "io/checkpoint.h"
#include "ops/ops.h"

namespace lf {

namespace {

constexpr double kNormEps = 1e-12;  // F.normalize's eps in RMS_norm
constexpr int64_t kZeroCacheDroppedFrames = 3;

// A CausalConv3d and the frames of its input it has seen (history [kt - 1, C, H, W], zeros before the first).
struct CausalConv {
  Tensor weight, bias, history;

  int64_t history_frames() const { return weight.dim(2) - 1; }
  void reset() { history = Tensor(); }

  Tensor forward(const Tensor& x, const ops::ConvEpilogue& epilogue = {}) {
    const int64_t keep = history_frames();
    if (keep == 0) return ops::causal_conv3d(x, Tensor(), weight, bias, epilogue);
    if (!history.defined()) history = Tensor::zeros({keep, x.dim(1), x.dim(2), x.dim(3)}, x.dtype(), x.device());
    Tensor out = ops::causal_conv3d(x, history, weight, bias, epilogue);
    // The new history: the last `keep` frames of [history, x].
    Tensor next = Tensor::empty(history.shape(), x.dtype(), x.device());
    const int64_t from_input = std::min(keep, x.dim(0)), from_history = keep - from_input;
    if (from_history > 0) ops::copy_rows(next, 0, history, keep - from_history, from_history);
    ops::copy_rows(next, from_history, x, x.dim(0) - from_input, from_input);
    history = next;
    return out;
  }
};

struct ResidualBlock {
  int64_t in_dim = 0, out_dim = 0;
  Tensor gamma_in, gamma_out;
  CausalConv conv_in, conv_out, shortcut;  // shortcut: 1x1x1 when in_dim != out_dim

  void reset() {
    conv_in.reset();
    conv_out.reset();
  }
  Tensor forward(const Tensor& x) {
    const Tensor skip = in_dim != out_dim ? shortcut.forward(x) : x;
    Tensor h = conv_in.forward(ops::channel_rms_norm(x, gamma_in, kNormEps, true));
    h = ops::channel_rms_norm(h, gamma_out, kNormEps, true);
    ops::ConvEpilogue add_skip;
    add_skip.residual = &skip;
    return conv_out.forward(h, add_skip);
  }
};

struct AttentionBlock {
  Tensor gamma, qkv_weight, qkv_bias, proj_weight, proj_bias;

  Tensor forward(const Tensor& x) const {
    const Tensor qkv = ops::conv2d(ops::channel_rms_norm(x, gamma, kNormEps, false), qkv_weight, qkv_bias);
    ops::ConvEpilogue add_identity;
    add_identity.residual = &x;
    return ops::conv2d(ops::spatial_attention(qkv), proj_weight, proj_bias, add_identity);
  }
};

// upsample3d (temporal: time_conv doubles the frames first) or upsample2d; then nearest x2 and a 3x3 conv that
// halves the channels.
struct Resample {
  bool temporal = false;
  bool skip_first_latent = true;  // "official": latent 0 bypasses time_conv ('Rep')
  bool started = false;
  CausalConv time_conv;
  Tensor weight, bias;

  void reset() {
    time_conv.reset();
    started = false;
  }
  Tensor forward(const Tensor& x) {
    Tensor frames = x;
    if (temporal) {
      const int64_t passed = (!started && skip_first_latent) ? 1 : 0;
      started = true;
      if (x.dim(0) > passed) {
        // time_conv writes channels [0, C) for frame 2t and [C, 2C) for 2t + 1: a reshape in [T, C, H, W].
        const Tensor doubled = time_conv.forward(x.slice_rows(passed, x.dim(0)));
        const Tensor split = doubled.reshape({2 * doubled.dim(0), x.dim(1), x.dim(2), x.dim(3)});
        frames = Tensor::empty({passed + split.dim(0), x.dim(1), x.dim(2), x.dim(3)}, x.dtype(), x.device());
        if (passed) ops::copy_rows(frames, 0, x, 0, passed);
        ops::copy_rows(frames, passed, split, 0, split.dim(0));
      }
    }
    return ops::conv2d(ops::upsample_nearest2x(frames), weight, bias);
  }
};

struct Stage {
  std::vector<ResidualBlock> blocks;
  bool has_resample = false;
  Resample resample;
};

std::string gamma_name(const std::string& module) { return module + ".gamma"; }

}  // namespace

struct WanVaeDecoder::Graph {
  CausalConv conv2, conv1;
  ResidualBlock middle_in, middle_out;
  AttentionBlock attention;
  std::vector<Stage> stages;
  Tensor head_gamma;
  CausalConv head_conv;
  std::vector<WeightSlot> slots;

  void add_conv(const std::string& name, CausalConv& conv, int64_t out, int64_t in, int64_t kt, int64_t k) {
    slots.push_back({name + ".weight", {out, in, kt, k, k}, &conv.weight});
    slots.push_back({name + ".bias", {out}, &conv.bias});
  }
  void add_block(const std::string& name, ResidualBlock& block, int64_t in, int64_t out) {
    block.in_dim = in;
    block.out_dim = out;
    slots.push_back({gamma_name(name + ".residual.0"), {in, 1, 1, 1}, &block.gamma_in});
    add_conv(name + ".residual.2", block.conv_in, out, in, 3, 3);
    slots.push_back({gamma_name(name + ".residual.3"), {out, 1, 1, 1}, &block.gamma_out});
    add_conv(name + ".residual.6", block.conv_out, out, out, 3, 3);
    if (in != out) add_conv(name + ".shortcut", block.shortcut, out, in, 1, 1);
  }

  void reset() {
    for (CausalConv* conv : {&conv2, &conv1, &head_conv}) conv->reset();
    middle_in.reset();
    middle_out.reset();
    for (Stage& stage : stages) {
      for (ResidualBlock& block : stage.blocks) block.reset();
      stage.resample.reset();
    }
  }
};

WanVaeDecoder::WanVaeDecoder(const WanVaeConfig& config, int64_t latent_height, int64_t latent_width)
    : config_(config), latent_height_(latent_height), latent_width_(latent_width), graph_(std::make_unique<Graph>()) {
  config_.validate();
  LF_CHECK(latent_height > 0 && latent_width > 0, "decoder '{}': latent size {}x{}", config_.name, latent_height,
           latent_width);
  const std::vector<int64_t> widths = config_.widths();
  Graph& g = *graph_;
  const int64_t stages = int64_t(config_.dim_mult.size());
  g.stages.resize(size_t(stages));  // sized before any slot points into it
  for (int64_t i = 0; i < stages; ++i) g.stages[size_t(i)].blocks.resize(size_t(config_.num_res_blocks + 1));

  g.add_conv("conv2", g.conv2, config_.z_dim, config_.z_dim, 1, 1);
  g.add_conv("decoder.conv1", g.conv1, widths[0], config_.z_dim, 3, 3);
  g.add_block("decoder.middle.0", g.middle_in, widths[0], widths[0]);
  g.slots.push_back({"decoder.middle.1.norm.gamma", {widths[0], 1, 1}, &g.attention.gamma});
  g.slots.push_back({"decoder.middle.1.to_qkv.weight", {3 * widths[0], widths[0], 1, 1}, &g.attention.qkv_weight});
  g.slots.push_back({"decoder.middle.1.to_qkv.bias", {3 * widths[0]}, &g.attention.qkv_bias});
  g.slots.push_back({"decoder.middle.1.proj.weight", {widths[0], widths[0], 1, 1}, &g.attention.proj_weight});
  g.slots.push_back({"decoder.middle.1.proj.bias", {widths[0]}, &g.attention.proj_bias});
  g.add_block("decoder.middle.2", g.middle_out, widths[0], widths[0]);

  // decoder.upsamples is one nn.Sequential: (num_res_blocks + 1) residual blocks per stage, then the stage's
  // Resample (all stages but the last). Stages after the first start at half the width (the Resample halved it).
  int64_t index = 0;
  for (int64_t i = 0; i < stages; ++i) {
    Stage& stage = g.stages[size_t(i)];
    int64_t in_dim = i == 0 ? widths[0] : widths[size_t(i)] / 2;
    const int64_t out_dim = widths[size_t(i) + 1];
    for (ResidualBlock& block : stage.blocks) {
      g.add_block(fmt::format("decoder.upsamples.{}", index++), block, in_dim, out_dim);
      in_dim = out_dim;
    }
    if (i + 1 == stages) break;
    stage.has_resample = true;
    Resample& resample = stage.resample;
    resample.temporal = config_.temporal_upsample[size_t(i)];
    resample.skip_first_latent = config_.first_frame == "official";
    const std::string name = fmt::format("decoder.upsamples.{}", index++);
    if (resample.temporal) {
      g.slots.push_back({name + ".time_conv.weight", {2 * out_dim, out_dim, 3, 1, 1}, &resample.time_conv.weight});
      g.slots.push_back({name + ".time_conv.bias", {2 * out_dim}, &resample.time_conv.bias});
    }
    g.slots.push_back({name + ".resample.1.weight", {out_dim / 2, out_dim, 3, 3}, &resample.weight});
    g.slots.push_back({name + ".resample.1.bias", {out_dim / 2}, &resample.bias});
  }
  g.slots.push_back({"decoder.head.0.gamma", {widths.back(), 1, 1, 1}, &g.head_gamma});
  g.add_conv("decoder.head.2", g.head_conv, 3, widths.back(), 3, 3);
  reset();
}

WanVaeDecoder::~WanVaeDecoder() = default;

std::vector<WeightSlot> WanVaeDecoder::weight_slots() { return graph_->slots; }

void WanVaeDecoder::load(const Checkpoint& checkpoint) {
  WeightLoadOptions options;
  options.part = fmt::format("{} decoder", config_.name);
  // Wan2.1_VAE.pth holds the encoder too (encoder.*, conv1.*): only the decoder's names are checked.
  options.checked_namespaces = {"decoder.", "conv2."};
  load_weight_table(checkpoint, graph_->slots, options);
}

void WanVaeDecoder::randomize(uint64_t seed) { random_weight_table(graph_->slots, seed); }

void WanVaeDecoder::to_device(Device device) {
  for (const WeightSlot& slot : graph_->slots) *slot.target = slot.target->to(device);
  device_ = device;
  reset();
}

void WanVaeDecoder::reset() {
  graph_->reset();
  frames_to_drop_ = config_.first_frame == "zero-cache" ? kZeroCacheDroppedFrames : 0;
}

int64_t WanVaeDecoder::frames_for_chunk(int64_t chunk, int64_t latent_frames) const {
  const int64_t scale = config_.temporal_scale();
  // Both first-frame rules give 1 + scale (n - 1) frames in all: latent 0 adds one frame, the others `scale`.
  return chunk == 0 ? latent_frames * scale - (scale - 1) : latent_frames * scale;
}

Tensor WanVaeDecoder::decode_latent(const Tensor& latent) {
  Graph& g = *graph_;
  // De-normalise as WanVAE_.decode does: z / (1 / std) + mean, with 1 / std rounded to f32 first.
  Tensor raw = latent.clone();
  const int64_t plane = latent_height_ * latent_width_;
  for (int64_t c = 0; c < config_.z_dim; ++c) {
    const float inverse_std = 1.0f / config_.latent_std[size_t(c)];
    float* values = raw.f32() + c * plane;
    for (int64_t i = 0; i < plane; ++i) values[i] = values[i] / inverse_std + config_.latent_mean[size_t(c)];
  }
  if (device_ == Device::CUDA) raw = raw.to(Device::CUDA);
  Tensor x = g.conv1.forward(g.conv2.forward(raw));
  x = g.middle_in.forward(x);
  x = g.attention.forward(x);
  x = g.middle_out.forward(x);
  for (Stage& stage : g.stages) {
    for (ResidualBlock& block : stage.blocks) x = block.forward(x);
    if (stage.has_resample) x = stage.resample.forward(x);
  }
  return g.head_conv.forward(ops::channel_rms_norm(x, g.head_gamma, kNormEps, true));  // where the math ran
}

Tensor WanVaeDecoder::decode_frames(const Tensor& latents_in) {
  const Tensor latents = to_host_f32(latents_in);
  check_shape(latents, {-1, config_.z_dim, latent_height_, latent_width_}, "Wan VAE latents");
  check_finite_latents(latents, "Wan VAE latents");
  // One latent a call, as WanVAE_.decode loops: the temporal up-sampling's first-frame rule and the two-frame
  // feature caches are written per latent.
  const Tensor video = decode_latent_stream(latents, [this](const Tensor& latent) { return decode_latent(latent); }, 1,
                                            frames_to_drop_, height(), width());
  // clamp(-1, 1), then * 0.5 + 0.5 (the pipeline's map to [0, 1]), on the device; one copy to the host a chunk.
  return to_host_f32(ops::clamp_affine(video, -1.0f, 1.0f, 0.5f, 0.5f));
}

std::vector<Tensor> WanVaeDecoder::decode_chunk(const Tensor& latents) {
  return split_video_frames(decode_frames(latents));
}

Tensor to_host_f32(const Tensor& x) {
  const Tensor f32 = x.dtype() == DType::F32 ? x : ops::convert(x, DType::F32);
  return f32.is_cuda() ? f32.to(Device::CPU) : f32;
}

void check_finite_latents(const Tensor& latents, const char* what) {
  const float* values = latents.f32();
  const int64_t per_frame = latents.numel() / std::max<int64_t>(latents.dim(0), 1);
  for (int64_t i = 0; i < latents.numel(); ++i)
    LF_CHECK(std::isfinite(values[i]), "{}: non-finite value {} in latent frame {} (flat index {})", what, values[i],
             i / per_frame, i);
}

Tensor decode_latent_stream(const Tensor& latents, const std::function<Tensor(const Tensor&)>& decode_latents,
                            int64_t latents_per_call, int64_t& frames_to_drop, int64_t height, int64_t width) {
  LF_CHECK(latents_per_call >= 1, "decode_latent_stream: {} latents per call", latents_per_call);
  std::vector<Tensor> pieces;
  int64_t frames = 0;
  for (int64_t t = 0; t < latents.dim(0); t += latents_per_call) {
    pieces.push_back(decode_latents(latents.slice_rows(t, std::min(latents.dim(0), t + latents_per_call))));
    frames += pieces.back().dim(0);
  }
  const int64_t dropped = std::min(frames_to_drop, frames);
  frames_to_drop -= dropped;
  // Where and in what dtype the decoder computed (bf16 on the GPU): the chunk is assembled there.
  Tensor video = pieces.empty() ? Tensor::empty({0, 3, height, width})
                                : Tensor::empty({frames - dropped, 3, height, width}, pieces.front().dtype(),
                                                pieces.front().device());
  int64_t written = 0, skipped = 0;
  for (const Tensor& piece : pieces) {
    const int64_t skip = std::min(dropped - skipped, piece.dim(0));
    skipped += skip;
    if (piece.dim(0) == skip) continue;
    ops::copy_rows(video, written, piece, skip, piece.dim(0) - skip);
    written += piece.dim(0) - skip;
  }
  return video;
}

std::vector<Tensor> split_video_frames(const Tensor& video) {
  std::vector<Tensor> images;
  for (int64_t f = 0; f < video.dim(0); ++f)
    images.push_back(video.slice_rows(f, f + 1).reshape({video.dim(1), video.dim(2), video.dim(3)}));
  return images;
}

namespace {
std::unique_ptr<VideoDecoder> make_from_config(const WanVaeConfig& config, const DecoderSources& sources) {
  LF_CHECK(sources.model, "decoder '{}': no model config (latent size)", config.name);
  LF_CHECK(sources.model->out_channels == 0 || sources.model->out_channels == config.z_dim,
           "decoder '{}' decodes {} latent channels, model '{}' makes {}", config.name, config.z_dim,
           sources.model->name, sources.model->out_channels);
  auto decoder = std::make_unique<WanVaeDecoder>(config, sources.model->latent_height, sources.model->latent_width);
  LF_CHECK(!sources.weights.empty(), "decoder '{}' needs its weights: pass --vae-weights FILE", config.name);
  if (sources.weights == "random")
    decoder->randomize(sources.model->init_seed);
  else
    decoder->load(*Checkpoint::open(sources.weights));
  if (sources.device == Device::CUDA) decoder->to_device(Device::CUDA);
  return decoder;
}
}  // namespace

std::unique_ptr<VideoDecoder> make_wan_vae_decoder(const DecoderSources& sources) {
  return make_from_config(load_wan_vae_config(sources.config.empty() ? "wan-vae" : sources.config), sources);
}

std::unique_ptr<VideoDecoder> make_lightvae_decoder(const DecoderSources& sources) {
  return make_from_config(load_wan_vae_config(sources.config.empty() ? "lightvae" : sources.config), sources);
}

}  // namespace lf
