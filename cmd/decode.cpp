// lightforce decode: latents (what `generate --save-latents` wrote) -> MP4 / PNG frames / a video tensor, through
// any registered decoder, streamed chunk by chunk as generate does. Every input is checked (shape, channels,
// finite values, weights) before any output is opened, so a bad input leaves nothing behind.
#include <cxxopts.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <optional>

#include "commands.h"
#include "gates.h"
#include "machine_output.h"
#include "core/embedded.h"
#include "core/error.h"
#include "io/atomic_file.h"
#include "io/checkpoint.h"
#include "io/frame.h"
#include "io/frame_writer.h"
#include "io/safetensors.h"
#include "io/video_writer.h"
#include "model/decoder.h"
#include "ops/ops.h"
#include "run_setup.h"

namespace lf::cmd {

namespace {

cxxopts::Options decode_flags() {
  cxxopts::Options flags("lightforce decode", "Decode latents [F, C, H, W] (generate --save-latents) to video.");
  flags.add_options("input")
      ("latents", "latents safetensors (tensor 'latents' [F, C, H, W], or its only tensor); random:FxCxHxW for timing",
       cxxopts::value<std::string>())
      ("decoder", fmt::format("decoder: {}", decoder_names()), cxxopts::value<std::string>()->default_value("wan-vae"))
      ("vae-weights", "the decoder's weights (Wan2.1_VAE.pth, lightvaew2_1.safetensors, taew2_1.pth; 'random' for "
       "plumbing checks)", cxxopts::value<std::string>())
      ("decoder-config", "the decoder's config: a name under configs/decoders/ or a YAML file (Wan VAE / LightVAE)",
       cxxopts::value<std::string>())
      ("chunk-frames", "latent frames per decode call (streaming; the video does not depend on it)",
       cxxopts::value<int64_t>()->default_value("3"))
      ("device", "auto, cpu, cuda or cuda:N (GPU N)", cxxopts::value<std::string>()->default_value("cpu"));
  flags.add_options("output")
      ("o,output", "MP4 path (H.264)", cxxopts::value<std::string>())
      ("frames-dir", "write each frame as an image into this directory (PNG; PPM without OpenCV)",
       cxxopts::value<std::string>())
      ("save-video-tensor", "write the video as float [3, F, H, W] in [0, 1] (safetensors, tensor 'video')",
       cxxopts::value<std::string>())
      ("fps", "video frame rate", cxxopts::value<int>()->default_value("16"))
      ("crf", "x264 constant rate factor", cxxopts::value<int>()->default_value("18"))
      ("expect-sha256", "exit 1 when an output's sha256 differs: [video=|video_tensor=]HEX (bare: the MP4, else the "
       "video tensor); the file stays written", cxxopts::value<std::vector<std::string>>());
  flags.add_options("reporting")("q,quiet", "no progress on stderr")("json", "print a JSON summary on stdout")(
      "op-times", "with --json on the GPU: GPU time per op class (conv, norm, attention, ...) in the summary; adds a "
      "pair of CUDA events per op")("h,help", "show this help");
  return flags;
}

// "random:FxCxHxW": deterministic values in [-2, 2) of that shape, for timing decoders without a generator run.
Tensor random_latents(const std::string& spec) {
  Shape shape;
  std::string rest = spec.substr(7);
  for (size_t start = 0; start <= rest.size();) {
    const size_t end = std::min(rest.find('x', start), rest.size());
    const std::string part = rest.substr(start, end - start);
    LF_CHECK(!part.empty() && part.find_first_not_of("0123456789") == std::string::npos && part.size() < 7,
             "--latents '{}': expected random:FxCxHxW with positive sizes", spec);
    shape.push_back(std::stoll(part));
    LF_CHECK(shape.back() > 0, "--latents '{}': sizes must be positive", spec);
    start = end + 1;
  }
  LF_CHECK(shape.size() == 4, "--latents '{}': expected four sizes (frames x channels x height x width)", spec);
  Tensor latents = Tensor::empty(shape);
  uint64_t state = 0x9E3779B97F4A7C15ull;
  for (int64_t i = 0; i < latents.numel(); ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    latents.f32()[i] = 4.0f * (float((state >> 40) & 0xffffff) / float(1 << 24)) - 2.0f;
  }
  return latents;
}

Tensor read_latents(const std::string& path) {
  if (path.rfind("random:", 0) == 0) return random_latents(path);
  const auto checkpoint = Checkpoint::open(path);
  std::string name = "latents";
  if (!checkpoint->contains(name)) {
    LF_CHECK(checkpoint->entries().size() == 1, "--latents '{}': no tensor 'latents' (and {} others, not one)", path,
             checkpoint->entries().size());
    name = checkpoint->entries().front().name;
  }
  const Tensor stored = checkpoint->view(name);
  LF_CHECK(stored.rank() == 4, "--latents '{}': tensor '{}' is {}, expected [frames, channels, height, width]", path,
           name, shape_str(stored.shape()));
  LF_CHECK(stored.dim(0) > 0, "--latents '{}': no frames", path);
  return stored.to(DType::F32);
}

}  // namespace

int decode(int argc, char** argv) {
  cxxopts::Options flags = decode_flags();
  const auto result = parse_flags(flags, argc, argv);
  if (result.count("help")) {
    fmt::print("{}", flags.help());
    return 0;
  }
  if (!result.unmatched().empty()) usage_fail("unexpected argument '{}'", result.unmatched().front());
  auto text = [&](const char* name) { return result.count(name) ? result[name].as<std::string>() : std::string(); };
  const std::string latents_path = text("latents"), output = text("output"), frames_dir = text("frames-dir"),
                    tensor_path = text("save-video-tensor");
  const bool quiet = result.count("quiet"), json = result.count("json");
  const int64_t chunk_frames = result["chunk-frames"].as<int64_t>();
  const int fps = result["fps"].as<int>();
  LF_USAGE_CHECK(!latents_path.empty(), "no input: pass --latents FILE (written by generate --save-latents)");
  LF_USAGE_CHECK(!output.empty() || !frames_dir.empty() || !tensor_path.empty(),
                 "nothing to write: pass -o VIDEO.mp4, --frames-dir DIR or --save-video-tensor FILE");
  LF_CHECK(chunk_frames > 0, "--chunk-frames {}: must be positive", chunk_frames);
  LF_CHECK(fps > 0, "--fps {}: must be positive", fps);
  if (!output.empty()) check_output_writable(output, "--output");
  if (!tensor_path.empty()) check_output_writable(tensor_path, "--save-video-tensor");
  check_distinct_outputs({{"--output", output}, {"--save-video-tensor", tensor_path}, {"--frames-dir", frames_dir}});
  const std::vector<std::pair<std::string, std::string>> digest_outputs = {{"video", output},
                                                                           {"video_tensor", tensor_path}};
  const auto expected_digests =
      parse_expected_digests(result, {"video", "video_tensor"}, output.empty() ? "video_tensor" : "video");
  check_expected_digests(expected_digests, digest_outputs, /*hash=*/false);
  const auto started = std::chrono::steady_clock::now();

  const Tensor latents = read_latents(latents_path);
  check_finite_latents(latents, fmt::format("--latents '{}'", latents_path).c_str());
  ModelConfig model;
  model.name = "latents";
  model.decoder = result["decoder"].as<std::string>();
  model.out_channels = latents.dim(1);
  model.latent_height = latents.dim(2);
  model.latent_width = latents.dim(3);
  bool known = false;
  for (const DecoderEntry& candidate : decoder_registry()) known = known || candidate.name == model.decoder;
  LF_CHECK(known, "--decoder '{}': unknown decoder (known: {})", model.decoder, decoder_names());
  const DecoderEntry& entry = decoder_entry(model.decoder);
  LF_CHECK(entry.make, "--decoder {}: decodes nothing; choose one of {}", model.decoder, decoder_names());
  DecoderSources sources;
  sources.model = &model;
  sources.weights = text("vae-weights");
  sources.config = text("decoder-config");
  sources.device = select_device(result["device"].as<std::string>());
  std::unique_ptr<VideoDecoder> decoder = make_decoder(sources);
  // Timings from here: loading weights and latents is setup, reported apart.
  const double setup_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const auto decode_started = std::chrono::steady_clock::now();

  std::optional<VideoWriter> video;
  if (!output.empty())
    video.emplace(VideoWriter::Options{output, int(decoder->width()), int(decoder->height()), fps,
                                       result["crf"].as<int>(), "medium"});
  std::optional<FrameWriter> frame_writer;
  if (!frames_dir.empty()) frame_writer.emplace(frames_dir, LF_WITH_OPENCV ? FrameFormat::PNG : FrameFormat::PPM);
  std::vector<Tensor> kept;  // for --save-video-tensor

  const int64_t frames = latents.dim(0);
  const bool op_times = result.count("op-times") && sources.device == Device::CUDA;
  if (op_times) ops::set_op_profiling(true);
  nlohmann::json per_chunk = nlohmann::json::array();
  int64_t video_frames = 0;
  double first_frame_seconds = -1;
  for (int64_t first = 0, chunk = 0; first < frames; first += chunk_frames, ++chunk) {
    const int64_t end = std::min(frames, first + chunk_frames);
    const auto chunk_start = std::chrono::steady_clock::now();
    const std::vector<Tensor> images = decoder->decode_chunk(latents.slice_rows(first, end));
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - chunk_start).count();
    if (first_frame_seconds < 0 && !images.empty())
      first_frame_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - decode_started).count();
    for (const Tensor& image : images) {
      const Frame frame = frame_from_tensor(image);
      if (video) video->write(frame);
      if (frame_writer) frame_writer->write(frame);
      if (!tensor_path.empty()) kept.push_back(image);
      ++video_frames;
    }
    per_chunk.push_back({{"chunk", chunk}, {"latent_frames", end - first}, {"video_frames", images.size()},
                         {"seconds", seconds}});
    if (!quiet)
      fmt::print(stderr, "  chunk {}: latent frames {}-{} -> {} frames in {}\n", chunk + 1, first, end - 1,
                 images.size(), format_seconds(seconds));
  }
  if (!tensor_path.empty()) {
    // [3, F, H, W]: channel-major, as PyTorch video tensors are compared.
    const int64_t plane = decoder->height() * decoder->width();
    Tensor tensor = Tensor::empty({3, video_frames, decoder->height(), decoder->width()});
    for (int64_t f = 0; f < video_frames; ++f)
      for (int64_t c = 0; c < 3; ++c)
        std::copy_n(kept[size_t(f)].f32() + c * plane, plane, tensor.f32() + (c * video_frames + f) * plane);
    write_safetensors(tensor_path, {{"video", tensor}},
                      {{"format", "lightforce-video"}, {"layout", "[3, F, H, W] in [0, 1]"},
                       {"decoder", model.decoder}, {"latents", latents_path}});
  }
  if (video) video->finish();
  const double total_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - decode_started).count();
  if (!quiet)
    fmt::print(stderr, "lightforce: decoded {} latent frames to {} frames ({}x{}) with {} in {}\n", frames,
               video_frames, decoder->width(), decoder->height(), model.decoder, format_seconds(total_seconds));
  nlohmann::json op_class_ms = nlohmann::json::object();
  if (op_times) {
    for (const auto& [op_class, ms] : ops::op_profile_ms()) op_class_ms[op_class] = ms;
    ops::set_op_profiling(false);
  }
  if (json) {
    nlohmann::json summary = {
        {"version", kVersion},       {"commit", kGitCommit},
        {"decoder", model.decoder},  {"latent_frames", frames},
        {"video_frames", video_frames}, {"width", decoder->width()},
        {"height", decoder->height()}, {"seconds", total_seconds}, {"setup_seconds", setup_seconds},
        {"first_frame_seconds", first_frame_seconds}, {"per_chunk", per_chunk},
        {"device", sources.device == Device::CUDA ? ops::cuda_device_name() : "cpu"},
        {"device_peak_bytes", ops::device_memory_stats().peak_bytes},
        {"outputs", {{"video", output}, {"frames_dir", frames_dir}, {"video_tensor", tensor_path}}},
    };
    if (op_times) summary["op_class_ms"] = op_class_ms;
    summary["latents"] = latents_path;
    summary["weights"] = sources.weights;
    fmt::print("{}\n", versioned(summary).dump(2));
  }
  const std::string mismatch = check_expected_digests(expected_digests, digest_outputs, /*hash=*/true);
  if (!mismatch.empty()) {
    fmt::print(stderr, "lightforce decode: {}\n", mismatch);
    return 1;
  }
  return 0;
}

}  // namespace lf::cmd
