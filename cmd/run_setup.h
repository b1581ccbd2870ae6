#pragma once
// What generate, profile-sparsity and compare-dense share: the model/input flags, and turning them into a loaded
// model on its device with its text context.
#include <cxxopts.hpp>

#include <memory>
#include <string>

#include "config/config.h"
#include "core/tensor.h"
#include "model/decoder.h"
#include "model/official_files.h"
#include "model/text_encoder.h"
#include "model/wan_dit.h"
#include "pipeline/noise_source.h"

namespace lf::cmd {

struct RunFlags {
  ConfigSources config;
  std::string prompt, text_embeddings, weights, weights_root = "auto", device = "auto";
  OfficialFileFlags model_files;  // --model-dir, --t5-weights, --tokenizer, --vae-weights (model_files.vae)
};

// Adds --prompt, --text-embeddings (unless `with_prompt` is false: batch reads its prompts from a file), --seed,
// --frames, --model, --weights, --weights-root, --attention, --set, --device, --decoder, --vae-weights,
// --model-dir, --t5-weights, --tokenizer to `flags`.
void add_run_flags(cxxopts::Options& flags, bool with_prompt = true);
// Parses argv, naming the flag whose value does not parse (cxxopts names only the value).
cxxopts::ParseResult parse_flags(cxxopts::Options& flags, int argc, char** argv);
RunFlags read_run_flags(const cxxopts::ParseResult& result);
// The video writer makes H.264 in an MP4 container whatever the name says: a path not ending in .mp4 (an image name,
// .mkv, no extension) is refused, naming the flag, rather than given an MP4 under another name.
void check_video_extension(const std::string& path, const char* flag);
// The --set assignments as given. cxxopts splits a repeatable flag's value at commas, which cuts a YAML list
// (`--set pipeline.denoising_steps=[1000,500]`) in two: a piece without '=' continues the assignment before it.
std::vector<std::string> set_overrides(const cxxopts::ParseResult& result);

struct PreparedModel {
  RunConfig run;
  Device device = Device::CPU;
  std::unique_ptr<WanDiT> model;
  std::unique_ptr<TextEncoder> text_encoder;  // null when the model has none (model.text_encoder: embeddings)
  Tensor context;  // [text_len, text_dim], f32 host
  OfficialModelFiles files;  // resolved from --model-dir and the per-file flags (the VAE path for the decoder)
  OfficialFileFlags file_flags;  // as given (--vae-weights, --model-dir): make_run_decoder reads them
};
PreparedModel prepare_model(const RunFlags& flags, bool quiet);
// The same without a prompt (context stays empty): for many prompts, each given to encode_prompt.
PreparedModel prepare_model_for_prompts(const RunFlags& flags);
// The text context of another prompt for an already prepared model (models with a built-in text encoder).
Tensor encode_prompt(const PreparedModel& prepared, const std::string& prompt);
NoiseShape noise_shape_of(const RunConfig& run);
// The run's video decoder (model.decoder) with its weights from --vae-weights; null for "none".
std::unique_ptr<VideoDecoder> make_run_decoder(const PreparedModel& prepared);
std::string format_seconds(double seconds);

}  // namespace lf::cmd
