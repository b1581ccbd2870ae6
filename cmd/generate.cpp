// lightforce generate: prompt -> text context -> chunk loop -> decoder -> MP4 / frames / latents.
#include <cxxopts.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "attention/attention_backend.h"
#include "commands.h"
#include "config/config.h"
#include "core/embedded.h"
#include "core/error.h"
#include "io/atomic_file.h"
#include "io/checkpoint.h"
#include "io/frame.h"
#include "io/frame_writer.h"
#include "io/safetensors.h"
#include "io/video_writer.h"
#include "model/decoder.h"
#include "model/text_encoder.h"
#include "model/wan_dit.h"
#include "ops/ops.h"
#include "pipeline/ar_pipeline.h"

namespace lf::cmd {

namespace {

struct GenerateOptions {
  ConfigSources config;
  std::string prompt;
  std::string text_embeddings;
  std::string weights;
  std::string weights_root = "auto";
  std::string output;
  std::string frames_dir;
  std::string save_latents;
  std::string noise;
  std::string save_noise;
  std::string device = "auto";
  bool no_video = false;
  bool quiet = false;
  bool json = false;
  bool print_config = false;
};

cxxopts::Options generate_flags() {
  cxxopts::Options flags("lightforce generate", "Generate a video chunk by chunk (Self-Forcing AR pipeline).");
  flags.add_options("input")
      ("p,prompt", "text prompt (models with a built-in text encoder)", cxxopts::value<std::string>())
      ("text-embeddings", "precomputed text embeddings, safetensors [L, text_dim]", cxxopts::value<std::string>())
      ("seed", "noise seed (sets pipeline.seed)", cxxopts::value<uint64_t>())
      ("frames", "latent frames to generate, a multiple of the chunk size (sets pipeline.frames)",
       cxxopts::value<int64_t>())
      ("noise", "read every random draw from this safetensors file (noise_initial, renoise_c{c}_s{s})",
       cxxopts::value<std::string>());
  flags.add_options("model")
      ("m,model", "model config: built-in name (tiny, wan2.1-t2v-1.3b) or a YAML file",
       cxxopts::value<std::string>()->default_value("tiny"))
      ("w,weights", "checkpoint (.safetensors, .pt, .pth); overrides model.weights", cxxopts::value<std::string>())
      ("weights-root", "which generator of a training checkpoint: auto, generator_ema, generator",
       cxxopts::value<std::string>()->default_value("auto"))
      ("attention", "attention preset: built-in name (dense) or a YAML file", cxxopts::value<std::string>())
      ("set", "override any config value, e.g. --set pipeline.shift=8 (repeatable)",
       cxxopts::value<std::vector<std::string>>())
      ("device", "auto, cpu or cuda", cxxopts::value<std::string>()->default_value("auto"));
  flags.add_options("output")
      ("o,output", "MP4 path (H.264); default lightforce.mp4 unless --no-video", cxxopts::value<std::string>())
      ("no-video", "do not write an MP4 (use with --save-latents or --frames-dir)")
      ("frames-dir", "also write each frame as an image into this directory (PNG; PPM without OpenCV)",
       cxxopts::value<std::string>())
      ("save-latents", "write the final latents [F, C, H, W] as safetensors", cxxopts::value<std::string>())
      ("save-noise", "write every random draw as safetensors (replay with --noise)", cxxopts::value<std::string>())
      ("fps", "video frame rate (sets output.fps)", cxxopts::value<int>());
  flags.add_options("reporting")
      ("q,quiet", "no progress on stderr")
      ("json", "print a JSON summary on stdout")
      ("print-config", "print the merged config as YAML and exit")
      ("h,help", "show this help");
  return flags;
}

GenerateOptions parse(int argc, char** argv, bool* help) {
  cxxopts::Options flags = generate_flags();
  cxxopts::ParseResult result;
  try {
    result = flags.parse(argc, argv);
  } catch (const cxxopts::exceptions::incorrect_argument_type& error) {
    // cxxopts names the value, not the flag: find the flag that carried it.
    const std::string message = error.what();
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      const size_t equals = arg.find('=');
      const std::string value = equals != std::string::npos ? arg.substr(equals + 1) : (i + 1 < argc ? argv[i + 1] : "");
      if (arg.rfind("--", 0) == 0 && !value.empty() && message.find(value) != std::string::npos)
        fail("{}: cannot parse '{}'", arg.substr(0, equals), value);
    }
    throw;
  }
  *help = result.count("help");
  if (*help) {
    fmt::print("{}", flags.help());
    return {};
  }
  if (!result.unmatched().empty()) fail("unexpected argument '{}'", result.unmatched().front());
  GenerateOptions options;
  options.config.model = result["model"].as<std::string>();
  if (result.count("attention")) options.config.attention = result["attention"].as<std::string>();
  if (result.count("set")) options.config.overrides = result["set"].as<std::vector<std::string>>();
  // Flags that are config values become overrides, so the config is the one source of truth.
  if (result.count("seed")) options.config.overrides.push_back(fmt::format("pipeline.seed={}", result["seed"].as<uint64_t>()));
  if (result.count("frames"))
    options.config.overrides.push_back(fmt::format("pipeline.frames={}", result["frames"].as<int64_t>()));
  if (result.count("fps")) options.config.overrides.push_back(fmt::format("output.fps={}", result["fps"].as<int>()));
  auto text = [&](const char* name) { return result.count(name) ? result[name].as<std::string>() : std::string(); };
  options.prompt = text("prompt");
  options.text_embeddings = text("text-embeddings");
  options.weights = text("weights");
  options.weights_root = result["weights-root"].as<std::string>();
  options.output = text("output");
  options.frames_dir = text("frames-dir");
  options.save_latents = text("save-latents");
  options.noise = text("noise");
  options.save_noise = text("save-noise");
  options.device = result["device"].as<std::string>();
  options.no_video = result.count("no-video");
  options.quiet = result.count("quiet");
  options.json = result.count("json");
  options.print_config = result.count("print-config");
  return options;
}

WanWeights load_model_weights(const ModelConfig& model, const GenerateOptions& options) {
  const std::string source = options.weights.empty() ? model.weights : options.weights;
  if (source == "random") return random_weights(model);
  LF_CHECK(!source.empty(), "model '{}' has no weights: pass --weights CHECKPOINT", model.name);
  const auto checkpoint = Checkpoint::open(source);
  return load_weights(model, *checkpoint, options.weights_root);
}

Tensor text_context(const ModelConfig& model, const WanWeights& weights, const GenerateOptions& options) {
  LF_CHECK(options.prompt.empty() || options.text_embeddings.empty(), "give --prompt or --text-embeddings, not both");
  if (!options.text_embeddings.empty()) return load_text_embeddings(options.text_embeddings, model);
  LF_CHECK(!options.prompt.empty(), "no prompt: pass --prompt TEXT (or --text-embeddings FILE)");
  LF_CHECK(model.text_encoder == "word-table",
           "model '{}' uses text encoder '{}', which this version does not run: pass --text-embeddings with the "
           "encoder's output [L, {}]", model.name, model.text_encoder, model.text_dim);
  const WordTableEncoder encoder(weights.word_table, weights.word_positions, weights.vocabulary, model.text_len);
  return encoder.encode(options.prompt);
}

std::string format_seconds(double seconds) {
  return seconds < 100 ? fmt::format("{:.2f} s", seconds) : fmt::format("{:.0f} s", seconds);
}

}  // namespace

Device select_device(const std::string& requested) {
  LF_CHECK(requested == "auto" || requested == "cpu" || requested == "cuda", "--device '{}': expected auto, cpu or cuda",
           requested);
  if (requested == "cpu") return Device::CPU;
  const int gpus = ops::cuda_device_count();
  if (requested == "cuda") {
    LF_CHECK(LF_HAVE_CUDA, "--device cuda: this build has no CUDA backend (built without nvcc); use --device cpu");
    LF_CHECK(gpus > 0, "--device cuda: no CUDA GPU found on this machine");
  }
  if (gpus == 0) return Device::CPU;
  ops::initialize_cuda();
  return Device::CUDA;
}

int generate(int argc, char** argv) {
  bool help = false;
  GenerateOptions options = parse(argc, argv, &help);
  if (help) return 0;
  const auto started = std::chrono::steady_clock::now();

  RunConfig run = load_run_config(options.config);
  if (options.print_config) {
    fmt::print("{}", to_yaml(run));
    return 0;
  }
  const Device device = select_device(options.device);

  // Every output location is checked before any work, so a typo costs nothing and leaves nothing behind.
  const bool write_video = !options.no_video;
  if (write_video && options.output.empty()) options.output = "lightforce.mp4";
  if (write_video) check_output_writable(options.output, "--output");
  if (!options.save_latents.empty()) check_output_writable(options.save_latents, "--save-latents");
  if (!options.save_noise.empty()) check_output_writable(options.save_noise, "--save-noise");
  LF_CHECK(write_video || !options.frames_dir.empty() || !options.save_latents.empty(),
           "--no-video without --frames-dir or --save-latents would write nothing");

  const ModelConfig& model_config = run.model;
  WanWeights weights = load_model_weights(model_config, options);
  const Tensor context = text_context(model_config, weights, options);
  if (!options.prompt.empty() && model_config.text_encoder == "word-table" && !options.quiet) {
    const WordTableEncoder encoder(weights.word_table, weights.word_positions, weights.vocabulary,
                                   model_config.text_len);
    const auto unknown = encoder.unknown_words(options.prompt);
    if (!unknown.empty())
      fmt::print(stderr, "note: {} word(s) not in the model's vocabulary map to <unk>: {}\n", unknown.size(),
                 fmt::join(unknown, ", "));
  }
  WanDiT model(model_config, std::move(weights));
  if (device == Device::CUDA) model.to_device(Device::CUDA);
  auto attention = make_attention_backend(run.attention, &run.pipeline);

  std::unique_ptr<VideoDecoder> decoder;
  if (write_video || !options.frames_dir.empty()) decoder = make_decoder(model_config);
  std::optional<VideoWriter> video;
  if (write_video)
    video.emplace(VideoWriter::Options{options.output, int(decoder->width()), int(decoder->height()),
                                       run.output.fps, run.output.crf, "medium"});
  std::optional<FrameWriter> frame_writer;
  if (!options.frames_dir.empty())
    frame_writer.emplace(options.frames_dir, LF_WITH_OPENCV ? FrameFormat::PNG : FrameFormat::PPM);

  const NoiseShape noise_shape{run.pipeline.frames, run.pipeline.chunk_frames, model_config.out_channels,
                               model_config.latent_height, model_config.latent_width};
  std::unique_ptr<NoiseSource> noise = options.noise.empty() ? make_philox_noise(run.pipeline.seed, noise_shape)
                                                             : make_file_noise(options.noise, noise_shape);
  RecordingNoise* recorder = nullptr;
  if (!options.save_noise.empty()) {
    auto recording = std::make_unique<RecordingNoise>(std::move(noise), noise_shape);
    recorder = recording.get();
    noise = std::move(recording);
  }

  if (!options.quiet)
    fmt::print(stderr, "lightforce: model {} ({} layers, dim {}), {} latent frames in {} chunks, {} steps, attention {}, {}\n",
               model_config.name, model_config.layers, model_config.dim, run.pipeline.frames,
               run.pipeline.frames / run.pipeline.chunk_frames, run.pipeline.denoising_steps.size(),
               attention->name(), device == Device::CUDA ? ops::cuda_device_name() : "cpu");

  nlohmann::json chunk_reports = nlohmann::json::array();
  double generation_seconds = 0;
  int64_t video_frames = 0;
  ArPipeline pipeline(run.pipeline, model, *attention);
  GenerateCallbacks callbacks;
  callbacks.on_chunk = [&](const ChunkReport& report, const Tensor& latents) {
    generation_seconds += report.seconds;
    if (decoder) {
      for (const Tensor& image : decoder->decode_chunk(latents)) {
        const Frame frame = frame_from_chw(image.f32(), image.dim(1) * image.dim(2), int(image.dim(1)),
                                           int(image.dim(2)));
        if (video) video->write(frame);
        if (frame_writer) frame_writer->write(frame);
        ++video_frames;
      }
    }
    chunk_reports.push_back({{"chunk", report.chunk}, {"frames", report.frames}, {"seconds", report.seconds},
                             {"forwards", report.forwards}});
    if (!options.quiet) {
      const double rate = double((report.chunk + 1) * report.frames) / generation_seconds;
      const double eta = generation_seconds / double(report.chunk + 1) * double(report.chunks - report.chunk - 1);
      fmt::print(stderr, "  chunk {}/{}  latent frames {}-{}  {}  {:.2f} frames/s  ETA {}\n", report.chunk + 1,
                 report.chunks, report.first_frame, report.first_frame + report.frames - 1,
                 format_seconds(report.seconds), rate, format_seconds(eta));
    }
  };
  const Tensor latents = pipeline.generate(context, *noise, callbacks);

  if (video) video->finish();
  if (!options.save_latents.empty())
    write_safetensors(options.save_latents, {{"latents", latents}},
                      {{"format", "lightforce-latents"}, {"model", model_config.name},
                       {"noise", options.noise.empty() ? fmt::format("philox seed {}", run.pipeline.seed) : options.noise}});
  if (recorder) recorder->save(options.save_noise);

  const double total_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (!options.quiet) {
    fmt::print(stderr, "lightforce: {} latent frames in {} ({:.2f} frames/s generation), total {}\n",
               run.pipeline.frames, format_seconds(generation_seconds),
               double(run.pipeline.frames) / generation_seconds, format_seconds(total_seconds));
    if (video) fmt::print(stderr, "wrote {} ({} frames, {}x{}, {} fps)\n", options.output, video_frames,
                          decoder->width(), decoder->height(), run.output.fps);
  }
  if (options.json) {
    nlohmann::json summary = {
        {"version", kVersion},
        {"commit", kGitCommit},
        {"model", model_config.name},
        {"config_source", run.source},
        {"device", device == Device::CUDA ? ops::cuda_device_name() : "cpu"},
        {"attention", attention->name()},
        {"seed", run.pipeline.seed},
        {"latent_frames", run.pipeline.frames},
        {"chunks", run.pipeline.frames / run.pipeline.chunk_frames},
        {"timesteps", pipeline.schedule().timesteps()},
        {"video_frames", video_frames},
        {"width", decoder ? decoder->width() : 0},
        {"height", decoder ? decoder->height() : 0},
        {"fps", run.output.fps},
        {"generation_seconds", generation_seconds},
        {"total_seconds", total_seconds},
        {"latent_frames_per_second", double(run.pipeline.frames) / generation_seconds},
        {"per_chunk", chunk_reports},
        {"outputs",
         {{"video", write_video ? options.output : ""},
          {"frames_dir", options.frames_dir},
          {"latents", options.save_latents},
          {"noise", options.save_noise}}},
    };
    fmt::print("{}\n", summary.dump(2));
  }
  return 0;
}

}  // namespace lf::cmd
