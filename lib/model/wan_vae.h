#pragma once
// The Wan2.1 causal 3D VAE decoder (wan/modules/vae.py, spec section 12) and LightVAE (the same graph with every
// width x0.25). Streaming: every causal convolution keeps the last frames it saw, so decoding latents chunk by
// chunk gives the same bits as decoding them all at once, and memory is bounded by those caches and one latent's
// activations, not by the length of the video.
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/decoder.h"
#include "model/weight_table.h"

namespace lf {

class Checkpoint;

struct WanVaeConfig {
  std::string name = "wan-vae";
  int64_t z_dim = 16;
  int64_t dim = 96;
  std::vector<int64_t> dim_mult = {1, 2, 4, 4};
  int64_t num_res_blocks = 2;
  // LightVAE (LightX2V use_lightvae): every width int(d * (1 - pruning_rate)).
  double pruning_rate = 0.0;
  // Per up-sampling stage: does it double the frames (upsample3d) or only the pixels (upsample2d).
  std::vector<bool> temporal_upsample = {true, true, false};
  // What latent 0 gives. "official": WanVAE_.decode / cached_decode, the temporal up-sampler skips latent 0
  // (1 frame, then 4 per latent). "zero-cache": the Self-Forcing demo, which pre-fills every cache with zeros so
  // latent 0 gives 4 frames, and drops the first 3. Both give 1 + 4 (n - 1) frames; the first frames differ.
  std::string first_frame = "official";
  // Published per-channel statistics of the latent space: z_raw = z * std + mean.
  std::vector<float> latent_mean = {-0.7571f, -0.7089f, -0.9113f, 0.1075f,  -0.1745f, 0.9653f,  -0.1517f, 1.5508f,
                                    0.4134f,  -0.0715f, 0.5517f,  -0.3632f, -0.1922f, -0.9497f, 0.2503f,  -0.2921f};
  std::vector<float> latent_std = {2.8184f, 1.4541f, 2.3275f, 2.6558f, 1.2196f, 1.7708f, 2.6052f, 2.0743f,
                                   3.2687f, 2.1526f, 2.8652f, 1.5579f, 1.6382f, 1.1253f, 2.8251f, 1.9160f};

  // Decoder stage widths, [middle, stage 0 .. stage n-1]: 96 * [4, 4, 4, 2, 1] = [384, 384, 384, 192, 96].
  std::vector<int64_t> widths() const;
  int64_t spatial_scale() const { return int64_t(1) << (dim_mult.size() - 1); }
  int64_t temporal_scale() const;
  void validate() const;
};

// The built-in configs: configs/decoders/<name>.yaml ("wan-vae", "lightvae"), or a YAML file path.
WanVaeConfig load_wan_vae_config(const std::string& name_or_path);

class WanVaeDecoder final : public VideoDecoder {
 public:
  WanVaeDecoder(const WanVaeConfig& config, int64_t latent_height, int64_t latent_width);
  ~WanVaeDecoder() override;

  // Every parameter by its official name (conv2.*, decoder.*), shapes from the config.
  std::vector<WeightSlot> weight_slots();
  // Loads decoder.* and conv2.*; the encoder's tensors (encoder.*, conv1.*) in the same file are ignored.
  void load(const Checkpoint& checkpoint);
  void randomize(uint64_t seed);
  // Moves the weights (f32) to `device`; activations there are bf16 (ops/ops.h). Frames come back f32 on the host.
  void to_device(Device device);

  void reset() override;
  std::vector<Tensor> decode_chunk(const Tensor& latents) override;
  int64_t width() const override { return latent_width_ * config_.spatial_scale(); }
  int64_t height() const override { return latent_height_ * config_.spatial_scale(); }
  int64_t frames_for_chunk(int64_t chunk, int64_t latent_frames) const override;

  // The decoded frames of a chunk as one tensor [F, 3, H, W] in [0, 1] (decode_chunk splits it).
  Tensor decode_frames(const Tensor& latents);
  const WanVaeConfig& config() const { return config_; }

 private:
  struct Graph;
  Tensor decode_latent(const Tensor& latent);  // one latent frame [1, z, h, w] -> [f, 3, H, W] (about [-1, 1]), on the decoder's device

  WanVaeConfig config_;
  int64_t latent_height_, latent_width_;
  std::unique_ptr<Graph> graph_;
  int64_t frames_to_drop_ = 0;  // zero-cache mode: the first 3 frames of the stream
  Device device_ = Device::CPU;
};

std::unique_ptr<VideoDecoder> make_wan_vae_decoder(const DecoderSources& sources);
std::unique_ptr<VideoDecoder> make_lightvae_decoder(const DecoderSources& sources);

}  // namespace lf
