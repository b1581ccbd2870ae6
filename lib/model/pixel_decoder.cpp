// The testbed models work in pixel space: a latent frame is an RGB image in [-1, 1]. Decoding maps it to
// [0, 1] (x * 0.5 + 0.5, clamped, as after the Wan VAE) and upscales by nearest neighbour for viewing.
#include <algorithm>

#include "core/error.h"
#include "model/decoder.h"

namespace lf {

namespace {
class PixelDecoder final : public VideoDecoder {
 public:
  explicit PixelDecoder(const ModelConfig& config)
      : latent_height_(config.latent_height), latent_width_(config.latent_width), upscale_(config.decoder_upscale) {}
  void reset() override {}
  int64_t width() const override { return latent_width_ * upscale_; }
  int64_t height() const override { return latent_height_ * upscale_; }
  int64_t frames_for_chunk(int64_t, int64_t latent_frames) const override { return latent_frames; }

  std::vector<Tensor> decode_chunk(const Tensor& latents) override {
    check_shape(latents, {-1, 3, latent_height_, latent_width_}, "pixel decoder input");
    std::vector<Tensor> images;
    for (int64_t f = 0; f < latents.dim(0); ++f) {
      Tensor image = Tensor::empty({3, height(), width()});
      const float* in = latents.f32() + f * 3 * latent_height_ * latent_width_;
      for (int64_t c = 0; c < 3; ++c)
        for (int64_t y = 0; y < height(); ++y)
          for (int64_t x = 0; x < width(); ++x) {
            const float value = in[(c * latent_height_ + y / upscale_) * latent_width_ + x / upscale_];
            // NaN maps to 0 rather than poisoning the encoder.
            image.f32()[(c * height() + y) * width() + x] = value == value ? std::clamp(value * 0.5f + 0.5f, 0.f, 1.f)
                                                                           : 0.0f;
          }
      images.push_back(image);
    }
    return images;
  }

 private:
  int64_t latent_height_, latent_width_, upscale_;
};
}  // namespace

std::unique_ptr<VideoDecoder> make_pixel_decoder(const DecoderSources& sources) {
  return std::make_unique<PixelDecoder>(*sources.model);
}

}  // namespace lf
