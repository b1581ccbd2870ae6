// TAEHV decoder, frame-causal: the official nn.Sequential indices name the weights (decoder.<i>...), and each
// MemBlock carries its previous input frame across calls, so chunked decoding equals decoding all at once.
#include "model/taehv.h"

#include <algorithm>

#include "core/error.h"
#include "io/checkpoint.h"
#include "ops/ops.h"

namespace lf {

namespace {

constexpr double kLatentClamp = 3.0;  // decoder.0: tanh(x / 3) * 3

struct MemBlock {
  Tensor w0, b0, w1, b1, w2, b2;
  Tensor memory;  // this block's input at the previous frame ([1, C, H, W]; zeros before the first)

  Tensor forward(const Tensor& x) {
    const int64_t frames = x.dim(0);
    if (!memory.defined()) memory = Tensor::zeros({1, x.dim(1), x.dim(2), x.dim(3)}, x.dtype(), x.device());
    Tensor past = Tensor::empty(x.shape(), x.dtype(), x.device());
    ops::copy_rows(past, 0, memory, 0, 1);
    if (frames > 1) ops::copy_rows(past, 1, x, 0, frames - 1);
    ops::ConvEpilogue relu;
    relu.relu = true;
    Tensor h = ops::conv2d(ops::concat_channels(x, past), w0, b0, relu);
    h = ops::conv2d(h, w1, b1, relu);
    ops::ConvEpilogue add_skip_relu;
    add_skip_relu.residual = &x;  // skip is the identity (n_in == n_out in every decoder MemBlock)
    add_skip_relu.relu = true;
    Tensor out = ops::conv2d(h, w2, b2, add_skip_relu);
    memory = x.slice_rows(frames - 1, frames).clone();
    return out;
  }
};

struct TaehvStage {
  std::vector<MemBlock> blocks;
  int64_t time_stride = 1;
  Tensor tgrow_weight, conv_weight;
  std::string tgrow_name;
};

}  // namespace

struct TaehvDecoder::Graph {
  Tensor conv_in_weight, conv_in_bias, conv_out_weight, conv_out_bias;
  std::vector<TaehvStage> stages;
  std::vector<WeightSlot> slots;
};

int64_t TaehvConfig::time_scale() const {
  int64_t scale = 1;
  for (bool grows : time_upscale) scale *= grows ? 2 : 1;
  return scale;
}

void TaehvConfig::validate() const {
  LF_CHECK(widths.size() == 4 && time_upscale.size() == 3 && latent_channels > 0 && memblocks_per_stage > 0,
           "TAEHV config: need 4 widths, 3 time_upscale flags, latent_channels and memblocks_per_stage > 0");
}

TaehvDecoder::TaehvDecoder(const TaehvConfig& config, int64_t latent_height, int64_t latent_width)
    : config_(config), latent_height_(latent_height), latent_width_(latent_width), graph_(std::make_unique<Graph>()) {
  config_.validate();
  Graph& g = *graph_;
  const auto& n = config_.widths;
  g.stages.resize(3);
  g.slots.push_back({"decoder.1.weight", {n[0], config_.latent_channels, 3, 3}, &g.conv_in_weight});
  g.slots.push_back({"decoder.1.bias", {n[0]}, &g.conv_in_bias});
  // decoder: 0 Clamp, 1 conv, 2 ReLU, then per stage: MemBlocks, Upsample, TGrow, conv (no bias); then ReLU, conv.
  int64_t index = 3;
  for (size_t s = 0; s < 3; ++s) {
    TaehvStage& stage = g.stages[s];
    stage.blocks.resize(size_t(config_.memblocks_per_stage));
    stage.time_stride = config_.time_upscale[s] ? 2 : 1;
    for (MemBlock& block : stage.blocks) {
      const std::string name = fmt::format("decoder.{}.conv", index++);
      g.slots.push_back({name + ".0.weight", {n[s], 2 * n[s], 3, 3}, &block.w0});
      g.slots.push_back({name + ".0.bias", {n[s]}, &block.b0});
      g.slots.push_back({name + ".2.weight", {n[s], n[s], 3, 3}, &block.w1});
      g.slots.push_back({name + ".2.bias", {n[s]}, &block.b1});
      g.slots.push_back({name + ".4.weight", {n[s], n[s], 3, 3}, &block.w2});
      g.slots.push_back({name + ".4.bias", {n[s]}, &block.b2});
    }
    ++index;  // Upsample
    stage.tgrow_name = fmt::format("decoder.{}.conv.weight", index++);
    g.slots.push_back({stage.tgrow_name, {n[s] * stage.time_stride, n[s], 1, 1}, &stage.tgrow_weight});
    g.slots.push_back({fmt::format("decoder.{}.weight", index++), {n[s + 1], n[s], 3, 3}, &stage.conv_weight});
  }
  ++index;  // ReLU
  g.slots.push_back({fmt::format("decoder.{}.weight", index), {3, n[3], 3, 3}, &g.conv_out_weight});
  g.slots.push_back({fmt::format("decoder.{}.bias", index), {3}, &g.conv_out_bias});
  reset();
}

TaehvDecoder::~TaehvDecoder() = default;

std::vector<WeightSlot> TaehvDecoder::weight_slots() { return graph_->slots; }

void TaehvDecoder::load(const Checkpoint& checkpoint) {
  // TGrow weights may hold more frames than this config grows (a checkpoint trained with a larger stride): take
  // the file's shape for the slot, then keep the last output channels (the last time steps).
  std::vector<WeightSlot> slots = graph_->slots;
  for (WeightSlot& slot : slots)
    for (const TaehvStage& stage : graph_->stages)
      if (slot.name == stage.tgrow_name && checkpoint.contains(slot.name)) {
        const Shape stored = checkpoint.view(slot.name).shape();
        if (stored.size() == 4 && stored[0] > slot.shape[0] && stored[0] % slot.shape[1] == 0 &&
            stored[1] == slot.shape[1] && stored[2] == 1 && stored[3] == 1)
          slot.shape = stored;
      }
  WeightLoadOptions options;
  options.part = "TAEHV decoder";
  options.checked_namespaces = {"decoder."};
  load_weight_table(checkpoint, slots, options);
  for (TaehvStage& stage : graph_->stages) {
    const int64_t wanted = config_.widths[&stage - graph_->stages.data()] * stage.time_stride;
    if (stage.tgrow_weight.dim(0) > wanted)
      stage.tgrow_weight =
          stage.tgrow_weight.slice_rows(stage.tgrow_weight.dim(0) - wanted, stage.tgrow_weight.dim(0)).clone();
  }
}

void TaehvDecoder::randomize(uint64_t seed) { random_weight_table(graph_->slots, seed); }

void TaehvDecoder::to_device(Device device) {
  for (const WeightSlot& slot : graph_->slots) *slot.target = slot.target->to(device);
  device_ = device;
  reset();
}

void TaehvDecoder::reset() {
  for (TaehvStage& stage : graph_->stages)
    for (MemBlock& block : stage.blocks) block.memory = Tensor();
  frames_to_trim_ = config_.trim_frames();
}

int64_t TaehvDecoder::frames_for_chunk(int64_t chunk, int64_t latent_frames) const {
  const int64_t frames = latent_frames * config_.time_scale();
  return chunk == 0 ? std::max<int64_t>(frames - config_.trim_frames(), 0) : frames;
}

Tensor TaehvDecoder::decode_latents(const Tensor& latents) {
  Graph& g = *graph_;
  ops::ConvEpilogue relu;
  relu.relu = true;
  const Tensor input = device_ == Device::CUDA ? latents.to(Device::CUDA) : latents;
  Tensor x = ops::conv2d(ops::tanh_clamp(input, kLatentClamp), g.conv_in_weight, g.conv_in_bias, relu);
  for (size_t s = 0; s < g.stages.size(); ++s) {
    TaehvStage& stage = g.stages[s];
    for (MemBlock& block : stage.blocks) x = block.forward(x);
    x = ops::conv2d(ops::upsample_nearest2x(x), stage.tgrow_weight, Tensor());
    // TGrow: channels [j C, (j + 1) C) are frame j of the s new frames: a reshape in [T, C, H, W].
    x = x.reshape({x.dim(0) * stage.time_stride, x.dim(1) / stage.time_stride, x.dim(2), x.dim(3)});
    // The last stage's conv is followed by decoder.21 (ReLU).
    x = ops::conv2d(x, stage.conv_weight, Tensor(), s + 1 == g.stages.size() ? relu : ops::ConvEpilogue{});
  }
  return ops::conv2d(x, g.conv_out_weight, g.conv_out_bias);  // where the math ran
}

Tensor TaehvDecoder::decode_frames(const Tensor& latents_in) {
  const Tensor latents = to_host_f32(latents_in);
  check_shape(latents, {-1, config_.latent_channels, latent_height_, latent_width_}, "TAEHV latents");
  check_finite_latents(latents, "TAEHV latents");
  // Several latents a call (the MemBlocks take any number of frames: each reads its previous input frame), so the
  // GPU sees kLatentsPerCall x 4 frames per conv rather than one latent's worth; bounded so that memory stays that of
  // one 3-latent chunk (12 frames of 480x832 at 64 channels: 0.6 GB per activation) whatever --chunk-frames says.
  constexpr int64_t kLatentsPerCall = 3;
  const Tensor video = decode_latent_stream(latents, [this](const Tensor& group) { return decode_latents(group); },
                                      kLatentsPerCall, frames_to_trim_, height(), width());
  return to_host_f32(ops::clamp_affine(video, 0.0f, 1.0f, 1.0f, 0.0f));  // on the device; one copy a chunk
}

std::vector<Tensor> TaehvDecoder::decode_chunk(const Tensor& latents) {
  return split_video_frames(decode_frames(latents));
}

std::unique_ptr<VideoDecoder> make_taehv_decoder(const DecoderSources& sources) {
  LF_CHECK(sources.model, "decoder 'taehv': no model config (latent size)");
  LF_CHECK(sources.config.empty(), "decoder 'taehv' has no config file (got '{}')", sources.config);
  TaehvConfig config;
  LF_CHECK(sources.model->out_channels == 0 || sources.model->out_channels == config.latent_channels,
           "decoder 'taehv' decodes {} latent channels, model '{}' makes {}", config.latent_channels,
           sources.model->name, sources.model->out_channels);
  auto decoder = std::make_unique<TaehvDecoder>(config, sources.model->latent_height, sources.model->latent_width);
  LF_CHECK(!sources.weights.empty(), "decoder 'taehv' needs its weights: pass --vae-weights taew2_1.pth");
  if (sources.weights == "random")
    decoder->randomize(sources.model->init_seed);
  else
    decoder->load(*Checkpoint::open(sources.weights));
  if (sources.device == Device::CUDA) decoder->to_device(Device::CUDA);
  return decoder;
}

}  // namespace lf
