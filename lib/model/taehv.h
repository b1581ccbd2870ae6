#pragma once
// TAEHV (madebyollin/taehv, `taew2_1.pth` for the Wan2.1 latent space): a tiny 2D-conv decoder whose MemBlocks
// see the previous frame's input, with nearest x2 up-sampling and TGrow (a 1x1 conv that splits into `s` frames).
// It decodes the DiT's latents as they are (no mean/std). Streaming as upstream StreamingTAEHV: every MemBlock
// keeps its last input frame across chunks, and the first `trim_frames` (= time up-scale - 1 = 3) frames of the
// stream are dropped, which aligns its frames with the Wan VAE's (1 + 4 (n - 1)).
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/decoder.h"
#include "model/weight_table.h"

namespace lf {

class Checkpoint;

struct TaehvConfig {
  int64_t latent_channels = 16;
  std::vector<int64_t> widths = {256, 128, 64, 64};  // n_f: the three MemBlock stages and the last conv
  std::vector<bool> time_upscale = {false, true, true};
  int64_t memblocks_per_stage = 3;
  int64_t time_scale() const;
  int64_t trim_frames() const { return time_scale() - 1; }
  void validate() const;
};

class TaehvDecoder final : public VideoDecoder {
 public:
  TaehvDecoder(const TaehvConfig& config, int64_t latent_height, int64_t latent_width);
  ~TaehvDecoder() override;

  std::vector<WeightSlot> weight_slots();
  // decoder.* of taew2_1.pth (encoder.* ignored). A TGrow weight with more output channels than the config needs
  // keeps its last ones, as upstream patch_tgrow_layers does.
  void load(const Checkpoint& checkpoint);
  void randomize(uint64_t seed);
  void to_device(Device device);  // weights f32 there; activations bf16 on the GPU; frames come back f32 on the host

  void reset() override;
  std::vector<Tensor> decode_chunk(const Tensor& latents) override;
  int64_t width() const override { return latent_width_ * 8; }
  int64_t height() const override { return latent_height_ * 8; }
  int64_t frames_for_chunk(int64_t chunk, int64_t latent_frames) const override;
  Tensor decode_frames(const Tensor& latents);  // [F, 3, H, W] in [0, 1]

 private:
  struct Graph;
  Tensor decode_latents(const Tensor& latents);  // [T, 16, h, w] -> [4 T, 3, H, W], untrimmed, unclamped, on the device
  TaehvConfig config_;
  int64_t latent_height_, latent_width_;
  std::unique_ptr<Graph> graph_;
  int64_t frames_to_trim_ = 0;
  Device device_ = Device::CPU;
};

std::unique_ptr<VideoDecoder> make_taehv_decoder(const DecoderSources& sources);

}  // namespace lf
