#pragma once
// Latents -> RGB frames, chunk by chunk. The interface is streaming (state carried across chunks) so that the
// Wan VAE's causal decoder (1 frame for latent 0, then 4 per latent) fits it; the testbed's pixel decoder is
// stateless.
#include <memory>
#include <vector>

#include "config/config.h"
#include "core/tensor.h"

namespace lf {

class VideoDecoder {
 public:
  virtual ~VideoDecoder() = default;
  virtual void reset() = 0;
  // latents [frames, C, H, W] of one chunk -> images [3, height, width] in [0, 1].
  virtual std::vector<Tensor> decode_chunk(const Tensor& latents) = 0;
  virtual int64_t width() const = 0;
  virtual int64_t height() const = 0;
  // Video frames produced for a chunk of `latent_frames` (first chunk separately: causal VAEs differ there).
  virtual int64_t frames_for_chunk(int64_t chunk, int64_t latent_frames) const = 0;
};

// Fails with a clear message for decoders this build does not have yet (wan-vae).
std::unique_ptr<VideoDecoder> make_decoder(const ModelConfig& config);

}  // namespace lf
