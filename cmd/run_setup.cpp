#include "run_setup.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <unistd.h>

#include <filesystem>

#include "attention/backend_registry.h"
#include "commands.h"
#include "core/error.h"
#include "embedded_weights.h"
#include "io/checkpoint.h"
#include "io/mapped_file.h"
#include "io/non_finite.h"
#include "io/safetensors.h"
#include "model/decoder.h"
#include "model/text_encoder.h"
#include "ops/ops.h"

namespace lf::cmd {

namespace {

// A checkpoint named by --weights opens as given. One named in a model config (model.weights) is looked up
// beside that config file first, then among the weights compiled into the binary (the shipped testbed), so a
// built-in model runs anywhere and an on-disk copy of its config finds its weights.
std::unique_ptr<Checkpoint> open_model_weights(const ModelConfig& model, const RunFlags& flags) {
  if (!flags.weights.empty()) return Checkpoint::open(flags.weights);
  const std::filesystem::path named(model.weights);
  if (named.is_absolute() || std::filesystem::exists(named)) return Checkpoint::open(model.weights);
  const std::filesystem::path config_file(flags.config.model);
  if (std::filesystem::is_regular_file(config_file)) {
    const std::filesystem::path beside = config_file.parent_path() / named;
    if (std::filesystem::exists(beside)) return Checkpoint::open(beside.string());
  }
  const std::span<const uint8_t> embedded = find_embedded_weights(named.filename().string());
  LF_CHECK(!embedded.empty(), "model '{}': weights '{}' not found (looked in the working directory, beside the "
           "model config and among the built-in weights); pass --weights CHECKPOINT", model.name, model.weights);
  return SafetensorsCheckpoint::open(MappedFile::wrap_static(model.weights + " (built in)", embedded));
}

// The DiT's weights and, for encoders stored beside them (the word table), where they are in that file.
struct LoadedWeights {
  WanWeights dit;
  std::unique_ptr<Checkpoint> checkpoint;  // null for random weights
  std::string root_prefix;
};

LoadedWeights load_model_weights(const ModelConfig& model, const RunFlags& flags) {
  const std::string source = flags.weights.empty() ? model.weights : flags.weights;
  LoadedWeights loaded;
  if (source == "random") {
    loaded.dit = random_weights(model);
    return loaded;
  }
  LF_CHECK(!source.empty(), "model '{}' has no weights: pass --weights CHECKPOINT", model.name);
  loaded.checkpoint = open_model_weights(model, flags);
  loaded.dit = load_weights(model, *loaded.checkpoint, flags.weights_root);
  // One pass over the loaded weights (memory bandwidth, well under the load itself) names a NaN / Inf tensor
  // instead of letting it turn the video black.
  for (const ParamSlot& slot : parameter_slots(model, loaded.dit))
    check_finite(*slot.target, fmt::format("weights '{}': tensor '{}'", loaded.checkpoint->path(), slot.name));
  loaded.root_prefix = detect_layout(*loaded.checkpoint, flags.weights_root).root_prefix;
  return loaded;
}

std::unique_ptr<TextEncoder> make_text_encoder(const ModelConfig& model, const LoadedWeights& weights,
                                               const OfficialModelFiles& files, Device device) {
  const TextEncoderEntry& entry = text_encoder_entry(model.text_encoder);
  if (!entry.make) return nullptr;
  TextEncoderSources sources;
  sources.model = &model;
  sources.dit_checkpoint = weights.checkpoint.get();
  sources.dit_prefix = weights.root_prefix;
  sources.weights = files.t5_weights;
  sources.tokenizer = files.tokenizer;
  sources.device = device;
  return entry.make(sources);
}

Tensor text_context(const ModelConfig& model, TextEncoder* encoder, const RunFlags& flags, bool quiet) {
  LF_USAGE_CHECK(flags.prompt.empty() || flags.text_embeddings.empty(),
                 "give --prompt or --text-embeddings, not both");
  if (!flags.text_embeddings.empty()) return load_text_embeddings(flags.text_embeddings, model);
  LF_USAGE_CHECK(!flags.prompt.empty(), "no prompt: pass --prompt TEXT (or --text-embeddings FILE)");
  LF_CHECK(encoder, "model '{}' has no built-in text encoder (model.text_encoder: {}): pass --text-embeddings with "
           "the encoder's output [L, {}]", model.name, model.text_encoder, model.text_dim);
  if (!quiet)
    for (const std::string& note : encoder->notes(flags.prompt)) fmt::print(stderr, "note: {}\n", note);
  return encoder->encode(flags.prompt);
}

// Refuses a run whose big host buffers cannot fit this machine's memory, before anything is allocated: the OOM
// killer's "Killed" (exit 137, minutes in) says nothing about why. A lower bound, in double so absurd sizes
// cannot wrap: weights in f32 (loaded on the host even for a GPU run), the latents, and on the CPU the KV cache
// and a chunk's widest activation (x4 for the few live at once).
void check_host_memory(const RunConfig& run, Device device) {
  const RunSizes sizes = run_sizes(run);
  const double gib = double(1ull << 30);
  double parameters = 0;  // not parameter_count(): its int64 sum could wrap for an absurd model.dim
  WanWeights scratch;
  for (const ParamSlot& slot : parameter_slots(run.model, scratch)) {
    double numel = 1;
    for (int64_t size : slot.official_shape) numel *= double(size);
    parameters += numel;
  }
  const double weights = 4.0 * parameters;
  const double latents = 4.0 * double(sizes.latent_elements);
  const double cache = device == Device::CPU ? 4.0 * double(sizes.kv_cache_elements) : 0.0;
  const double activations = device == Device::CPU ? 16.0 * double(sizes.chunk_activation_elements) : 0.0;
  const double needed = weights + latents + cache + activations;
  const double available = double(::sysconf(_SC_PHYS_PAGES)) * double(::sysconf(_SC_PAGESIZE));
  LF_CHECK(available <= 0 || needed <= available,
           "this run needs at least {:.1f} GiB of host memory (weights {:.1f}, latents {:.1f}, KV cache {:.1f}, "
           "activations {:.1f}) but the machine has {:.1f} GiB: lower --frames (pipeline.frames {}) or the "
           "resolution", needed / gib, weights / gib, latents / gib, cache / gib, activations / gib, available / gib,
           run.pipeline.frames);
}

}  // namespace

void add_run_flags(cxxopts::Options& flags, bool with_prompt) {
  if (with_prompt)
    flags.add_options("input")
        ("p,prompt", "text prompt (models with a built-in text encoder)", cxxopts::value<std::string>())
        ("text-embeddings", "precomputed text embeddings, safetensors [L, text_dim]", cxxopts::value<std::string>());
  flags.add_options("input")
      ("seed", "noise seed (sets pipeline.seed)", cxxopts::value<uint64_t>())
      ("frames", "latent frames to generate, a multiple of the chunk size (sets pipeline.frames)",
       cxxopts::value<int64_t>());
  flags.add_options("model")
      ("m,model", "model config: built-in name (tiny, wan2.1-t2v-1.3b) or a YAML file",
       cxxopts::value<std::string>()->default_value("testbed"))
      ("w,weights", "checkpoint (.safetensors, .pt, .pth); overrides model.weights", cxxopts::value<std::string>())
      ("weights-root", "which generator of a training checkpoint: auto, generator_ema, generator",
       cxxopts::value<std::string>()->default_value("auto"))
      ("attention", fmt::format("attention preset ({}) or a YAML file; backends: {}", attention_preset_names(),
                                attention_backend_names()),
       cxxopts::value<std::string>())
      ("set", "override any config value, e.g. --set pipeline.shift=8 (repeatable)",
       cxxopts::value<std::vector<std::string>>())
      ("device", "auto, cpu, cuda or cuda:N (GPU N)", cxxopts::value<std::string>()->default_value("auto"));
  flags.add_options("decoder")
      ("decoder", fmt::format("video decoder (sets model.decoder): {}", decoder_names()),
       cxxopts::value<std::string>())
      ("vae-weights", "the decoder's weights: Wan2.1_VAE.pth (wan-vae), lightvaew2_1.safetensors (lightvae), "
       "taew2_1.pth (taehv)", cxxopts::value<std::string>());
  flags.add_options("model files")
      ("model-dir", "the official Wan2.1-T2V-1.3B folder: finds models_t5_umt5-xxl-enc-bf16.pth, "
       "google/umt5-xxl/spiece.model and Wan2.1_VAE.pth by their official names", cxxopts::value<std::string>())
      ("t5-weights", "umT5 encoder weights (overrides --model-dir), or random[:SEED]", cxxopts::value<std::string>())
      ("tokenizer", "umT5 SentencePiece model, spiece.model (overrides --model-dir)", cxxopts::value<std::string>());
}

cxxopts::ParseResult parse_flags(cxxopts::Options& flags, int argc, char** argv) {
  try {
    return flags.parse(argc, argv);
  } catch (const cxxopts::exceptions::incorrect_argument_type& error) {
    const std::string message = error.what();
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      const size_t equals = arg.find('=');
      const std::string value = equals != std::string::npos ? arg.substr(equals + 1) : (i + 1 < argc ? argv[i + 1] : "");
      // A usage error (exit 2, like the one cxxopts would have given), but naming the flag.
      if (arg.rfind("--", 0) == 0 && !value.empty() && message.find(value) != std::string::npos)
        throw cxxopts::exceptions::parsing(fmt::format("{}: cannot parse '{}'", arg.substr(0, equals), value));
    }
    throw;
  }
}

void check_video_extension(const std::string& path, const char* flag) {
  // Devices and FIFOs are written in place under their own names (check_output_writable has decided about them).
  std::error_code error;
  const auto status = std::filesystem::status(path, error);
  if (!error && std::filesystem::exists(status) && !std::filesystem::is_regular_file(status)) return;
  std::string extension = std::filesystem::path(path).extension().string();
  for (char& c : extension) c = char(std::tolower(static_cast<unsigned char>(c)));
  LF_CHECK(extension == ".mp4", "{} '{}': the video is written as MP4 (H.264); name it *.mp4 (frames as images: "
           "--frames-dir DIR)", flag, path);
}

std::vector<std::string> set_overrides(const cxxopts::ParseResult& result) {
  std::vector<std::string> assignments;
  if (!result.count("set")) return assignments;
  for (const std::string& piece : result["set"].as<std::vector<std::string>>()) {
    if (piece.find('=') == std::string::npos && !assignments.empty())
      assignments.back() += "," + piece;
    else
      assignments.push_back(piece);
  }
  return assignments;
}

RunFlags read_run_flags(const cxxopts::ParseResult& result) {
  if (!result.unmatched().empty()) usage_fail("unexpected argument '{}'", result.unmatched().front());
  // Settings repeated on one line keep the last value (a script appends an override to a base command), but a
  // second prompt is almost always a user expecting two videos or a prompt change: refused, naming the ways to
  // get those.
  for (const char* once : {"prompt", "text-embeddings"})
    LF_USAGE_CHECK(result.count(once) <= 1, "--{} given {} times: give it once (prompts over time: "
                   "--prompt-schedule; many videos: lightforce batch)", once, result.count(once));
  RunFlags flags;
  flags.config.model = result["model"].as<std::string>();
  if (result.count("attention")) flags.config.attention = result["attention"].as<std::string>();
  flags.config.overrides = set_overrides(result);
  // Flags that are config values become overrides, so the config is the one source of truth.
  if (result.count("seed")) flags.config.overrides.push_back(fmt::format("pipeline.seed={}", result["seed"].as<uint64_t>()));
  if (result.count("frames"))
    flags.config.overrides.push_back(fmt::format("pipeline.frames={}", result["frames"].as<int64_t>()));
  // --fps where the command has it (generate, batch): after --set, so the flag wins (docs/cli.md).
  if (result.count("fps")) flags.config.overrides.push_back(fmt::format("output.fps={}", result["fps"].as<int>()));
  auto text = [&](const char* name) { return result.count(name) ? result[name].as<std::string>() : std::string(); };
  flags.prompt = text("prompt");
  flags.text_embeddings = text("text-embeddings");
  flags.weights = text("weights");
  flags.weights_root = result["weights-root"].as<std::string>();
  flags.device = result["device"].as<std::string>();
  if (result.count("decoder"))
    flags.config.overrides.push_back(fmt::format("model.decoder={}", result["decoder"].as<std::string>()));
  flags.model_files.vae = text("vae-weights");
  flags.model_files.model_dir = text("model-dir");
  flags.model_files.t5_weights = text("t5-weights");
  flags.model_files.tokenizer = text("tokenizer");
  return flags;
}

namespace {

// With `with_context` false the model is loaded for many prompts (batch): no prompt is needed, none is encoded.
PreparedModel prepare(const RunFlags& flags, bool quiet, bool with_context) {
  PreparedModel prepared;
  prepared.file_flags = flags.model_files;
  prepared.run = load_run_config(flags.config);
  prepared.device = select_device(flags.device);
  check_host_memory(prepared.run, prepared.device);
  decoder_entry(prepared.run.model.decoder);  // an unknown name fails before any weights load
  attention_backend_entry(prepared.run.attention.backend);
  prepared.files = resolve_official_files(flags.model_files);
  LoadedWeights weights = load_model_weights(prepared.run.model, flags);
  prepared.text_encoder = make_text_encoder(prepared.run.model, weights, prepared.files, prepared.device);
  if (with_context) prepared.context = text_context(prepared.run.model, prepared.text_encoder.get(), flags, quiet);
  prepared.model = std::make_unique<WanDiT>(prepared.run.model, std::move(weights.dit));
  prepared.model->to_device(prepared.device);
  return prepared;
}

}  // namespace

PreparedModel prepare_model(const RunFlags& flags, bool quiet) { return prepare(flags, quiet, true); }

PreparedModel prepare_model_for_prompts(const RunFlags& flags) { return prepare(flags, true, false); }

Tensor encode_prompt(const PreparedModel& prepared, const std::string& prompt) {
  LF_CHECK(prepared.text_encoder, "model '{}' has no built-in text encoder to encode '{}'", prepared.run.model.name,
           prompt);
  return prepared.text_encoder->encode(prompt);
}

std::unique_ptr<VideoDecoder> make_run_decoder(const PreparedModel& prepared) {
  const OfficialFileFlags& files = prepared.file_flags;
  const DecoderEntry& entry = decoder_entry(prepared.run.model.decoder);
  if (!entry.make) return nullptr;
  DecoderSources sources;
  sources.model = &prepared.run.model;
  // --vae-weights wins; else the decoder's official file name inside --model-dir (Wan2.1_VAE.pth for wan-vae).
  sources.weights = files.vae;
  if (sources.weights.empty() && !files.model_dir.empty() && !entry.weights_file.empty())
    sources.weights = (std::filesystem::path(files.model_dir) / entry.weights_file).string();
  sources.device = prepared.device;
  return make_decoder(sources);
}

NoiseShape noise_shape_of(const RunConfig& run) {
  return {run.pipeline.frames, run.pipeline.chunk_frames, run.model.out_channels, run.model.latent_height,
          run.model.latent_width};
}

std::string format_seconds(double seconds) {
  return seconds < 100 ? fmt::format("{:.2f} s", seconds) : fmt::format("{:.0f} s", seconds);
}

DeviceRequest parse_device(const std::string& requested) {
  if (requested == "auto") return {DeviceRequest::Auto, 0};
  if (requested == "cpu") return {DeviceRequest::Cpu, 0};
  if (requested == "cuda") return {DeviceRequest::Cuda, 0};
  const std::string prefix = "cuda:";
  const std::string index = requested.rfind(prefix, 0) == 0 ? requested.substr(prefix.size()) : std::string();
  // Digits only, at most 4 (no sign, no spaces, nothing stoi would quietly accept and truncate).
  const bool digits = !index.empty() && index.size() <= 4 &&
                      index.find_first_not_of("0123456789") == std::string::npos;
  LF_CHECK(digits, "--device '{}': expected auto, cpu, cuda or cuda:N (N a GPU index: 0, 1, ...)", requested);
  return {DeviceRequest::Cuda, std::stoi(index)};
}

Device select_device(const std::string& requested) {
  const DeviceRequest request = parse_device(requested);
  if (request.kind == DeviceRequest::Cpu) return Device::CPU;
  const int gpus = ops::cuda_device_count();
  if (request.kind == DeviceRequest::Cuda) {
    LF_CHECK(LF_HAVE_CUDA, "--device {}: this build has no CUDA backend (built without nvcc); use --device cpu",
             requested);
    LF_CHECK(gpus > 0, "--device {}: no CUDA GPU found on this machine", requested);
    LF_CHECK(request.index < gpus, "--device {}: this machine has {} CUDA GPU(s), cuda:0 .. cuda:{}", requested, gpus,
             gpus - 1);
  }
  if (gpus == 0) return Device::CPU;
  ops::initialize_cuda(request.index);
  return Device::CUDA;
}

}  // namespace lf::cmd
