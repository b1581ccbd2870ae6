#pragma once
// Latents -> RGB frames, chunk by chunk. The interface is streaming (state carried across chunks) so that the
// Wan VAE's causal decoder (1 frame for latent 0, then 4 per latent) fits it; the testbed's pixel decoder is
// stateless. Decoders sit behind one registry: model.decoder (or --decoder) names an entry, and the factory,
// config checks, --help and docs read the same table.
#include <functional>
#include <memory>
#include <string>
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

// Where a decoder finds its weights. Fields a decoder does not need stay empty.
struct DecoderSources {
  const ModelConfig* model = nullptr;
  std::string weights;  // the decoder's weights file (Wan2.1_VAE.pth, taew2_1.pth, ...); "random" for tests
  std::string config;   // the decoder's own config (configs/decoders/<name>.yaml or a file); "" = the entry's default
  Device device = Device::CPU;
};

struct DecoderEntry {
  std::string name;         // the value of model.decoder / --decoder
  std::string description;  // one line, for --help and docs
  std::string weights_file; // the official file name --model-dir looks for ("" when none)
  // null: no decoder (latents only).
  std::function<std::unique_ptr<VideoDecoder>(const DecoderSources&)> make;
};

const std::vector<DecoderEntry>& decoder_registry();
// The entry named `name`; the error names the config key and lists the known names.
const DecoderEntry& decoder_entry(const std::string& name);
std::string decoder_names();

// The decoder of model.decoder with its weights from `sources` (fails for "none").
std::unique_ptr<VideoDecoder> make_decoder(const DecoderSources& sources);
// Shorthand for decoders that need no weights file (the testbed's pixel decoder).
std::unique_ptr<VideoDecoder> make_decoder(const ModelConfig& config);

std::unique_ptr<VideoDecoder> make_pixel_decoder(const DecoderSources& sources);

// Shared by the decoders: latents must be finite (the error names the frame and index); any tensor as f32 on the
// host; a video tensor [F, 3, H, W] as the per-frame images decode_chunk returns.
void check_finite_latents(const Tensor& latents, const char* what);
Tensor to_host_f32(const Tensor& x);
std::vector<Tensor> split_video_frames(const Tensor& video);
// Decodes latents [T, C, h, w] `latents_per_call` latent frames at a time through `decode_latents` (each call
// returns [n, 3, H, W]) and concatenates the frames, dropping the first `frames_to_drop` of the stream (decremented
// by what this call drops): the start-up frames a causal decoder discards, which may span chunks. The group size
// bounds memory (one group's activations plus the decoder's caches); every decoder here computes each frame the
// same way whatever the group, so the grouping never changes the output's bits.
Tensor decode_latent_stream(const Tensor& latents, const std::function<Tensor(const Tensor&)>& decode_latents,
                            int64_t latents_per_call, int64_t& frames_to_drop, int64_t height, int64_t width);

}  // namespace lf
