// The decoder registry: one entry per decoder, read by the factory, config checks, --help and docs.
#include "core/error.h"
#include "core/registry.h"
#include "model/decoder.h"
#include "model/taehv.h"
#include "model/wan_vae.h"

namespace lf {

const std::vector<DecoderEntry>& decoder_registry() {
  static const std::vector<DecoderEntry> registry = {
      {"pixel", "testbed models: latents are RGB frames in [-1, 1], upscaled by model.decoder_upscale", "",
       make_pixel_decoder},
      {"wan-vae", "the Wan2.1 causal 3D VAE decoder (streaming, 1 + 4 (n - 1) frames)", "Wan2.1_VAE.pth",
       make_wan_vae_decoder},
      {"lightvae", "LightX2V LightVAE: the Wan VAE graph at 1/4 width", "lightvaew2_1.safetensors",
       make_lightvae_decoder},
      {"taehv", "TAEHV tiny decoder for the Wan2.1 latent space (streaming MemBlocks)", "taew2_1.pth",
       make_taehv_decoder},
      {"none", "no decoder: latents only (--save-latents)", "", nullptr},
  };
  return registry;
}

std::string decoder_names() { return registry_names(decoder_registry()); }

const DecoderEntry& decoder_entry(const std::string& name) {
  return registry_entry(decoder_registry(), name, "model.decoder", "decoder");
}

std::unique_ptr<VideoDecoder> make_decoder(const DecoderSources& sources) {
  const DecoderEntry& entry = decoder_entry(sources.model->decoder);
  LF_CHECK(entry.make, "model '{}' has no video decoder (model.decoder: {}): write latents with --save-latents and "
           "--no-video, or choose a decoder with --set model.decoder=NAME ({})", sources.model->name,
           sources.model->decoder, decoder_names());
  return entry.make(sources);
}

std::unique_ptr<VideoDecoder> make_decoder(const ModelConfig& config) {
  DecoderSources sources;
  sources.model = &config;
  return make_decoder(sources);
}

}  // namespace lf
