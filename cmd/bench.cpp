// lightforce bench: the chunk loop of a model with random weights (no checkpoint), timed: total and DiT time,
// per-chunk times, GPU time per op class, attention TFLOP/s, peak GPU memory, cudaMalloc calls in the loop.
#include <cxxopts.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <sstream>

#include "attention/attention_backend.h"
#include "bench_decoder.h"
#include "bench_text_encoder.h"
#include "run_setup.h"
#include "commands.h"
#include "machine_output.h"
#include "config/config.h"
#include "core/digest.h"
#include "core/embedded.h"
#include "core/error.h"
#include "core/host_memory.h"
#include "core/philox.h"
#include "io/atomic_file.h"
#include "model/decoder.h"
#include "model/wan_dit.h"
#include "ops/ops.h"
#include "pipeline/ar_pipeline.h"

namespace lf::cmd {

namespace {

std::vector<std::pair<int64_t, int64_t>> parse_sizes(const std::string& text) {
  std::vector<std::pair<int64_t, int64_t>> sizes;
  if (text == "none") return sizes;  // no DiT rows (only the --text-encoder stage)
  std::stringstream stream(text);
  for (std::string item; std::getline(stream, item, ',');) {
    const size_t x = item.find('x');
    int64_t height = 0, width = 0;
    try {
      LF_CHECK(x != std::string::npos, "");
      height = std::stoll(item.substr(0, x));
      width = std::stoll(item.substr(x + 1));
    } catch (const std::exception&) {
      fail("--sizes: '{}' is not HEIGHTxWIDTH", item);
    }
    LF_CHECK(height > 0 && width > 0 && height % 16 == 0 && width % 16 == 0,
             "--sizes: {}x{} must be positive multiples of 16 (VAE stride 8 x patch 2)", height, width);
    sizes.emplace_back(height, width);
  }
  LF_CHECK(!sizes.empty(), "--sizes is empty (write 'none' for no DiT rows)");
  return sizes;
}

// Self-attention FLOPs of one run: every forward of chunk c attends chunk tokens to the visible frames.
double self_attention_flops(const RunConfig& run, int64_t forwards_per_chunk, const std::vector<int64_t>& visible) {
  const ModelConfig& m = run.model;
  double flops = 0;
  const double query_tokens = double(run.pipeline.chunk_frames * m.tokens_per_frame());
  for (int64_t frames : visible)
    flops += double(forwards_per_chunk) * 4.0 * query_tokens * double(frames * m.tokens_per_frame()) * double(m.dim) *
             double(m.layers);
  return flops;
}

}  // namespace

int bench(int argc, char** argv) {
  cxxopts::Options flags("lightforce bench",
                         "Time the chunk loop of a model with random weights (no checkpoint needed).");
  flags.add_options()
      ("m,model", "model config (built-in name or YAML)", cxxopts::value<std::string>()->default_value("wan2.1-t2v-1.3b"))
      ("sizes", "video sizes HEIGHTxWIDTH, comma separated (latent = size / 8), or none",
       cxxopts::value<std::string>()->default_value("480x832,512x768"))
      ("frames", "latent frames", cxxopts::value<int64_t>()->default_value("21"))
      ("attention", "attention preset", cxxopts::value<std::string>())
      ("set", "config override (repeatable)", cxxopts::value<std::vector<std::string>>())
      ("device", "auto, cpu, cuda or cuda:N (GPU N)", cxxopts::value<std::string>()->default_value("auto"))
      ("warmup", "untimed warm-up chunks before each size", cxxopts::value<int64_t>()->default_value("1"))
      ("text-encoder", "also time this text encoder (umt5-xxl, umt5-tiny or a YAML size) with random resident weights",
       cxxopts::value<std::string>())
      ("tokens", "prompt length for --text-encoder", cxxopts::value<int64_t>()->default_value("512"))
      ("repeat", "timed encodes for --text-encoder (median reported)", cxxopts::value<int64_t>()->default_value("10"))
      ("fp8", "--text-encoder with fp8 weights (GPU)")
      ("decoder", "also decode each size's latents chunk by chunk with this decoder (wan-vae, lightvae, taehv; random "
       "weights): decode time per chunk, time to the first decoded frame, frames per second with decoding",
       cxxopts::value<std::string>())
      ("out", "write the JSON report to this file", cxxopts::value<std::string>())
      ("json", "print the JSON report on stdout")
      ("q,quiet", "no progress")
      ("h,help", "show this help");
  const auto result = parse_flags(flags, argc, argv);
  if (result.count("help")) {
    fmt::print("{}", flags.help());
    return 0;
  }
  if (!result.unmatched().empty()) usage_fail("unexpected argument '{}'", result.unmatched().front());
  const auto sizes = parse_sizes(result["sizes"].as<std::string>());
  const std::string out_path = result.count("out") ? result["out"].as<std::string>() : "";
  if (!out_path.empty()) check_output_writable(out_path, "--out");
  const bool quiet = result.count("quiet");
  const Device device = select_device(result["device"].as<std::string>());

  ConfigSources sources;
  sources.model = result["model"].as<std::string>();
  if (result.count("attention")) sources.attention = result["attention"].as<std::string>();
  sources.overrides = {"model.weights=random", fmt::format("pipeline.frames={}", result["frames"].as<int64_t>())};
  for (const auto& assignment : set_overrides(result)) sources.overrides.push_back(assignment);
  const RunConfig base = load_run_config(sources);
  if (result.count("decoder")) decoder_entry(result["decoder"].as<std::string>());  // a bad name fails before the DiT

  if (!quiet && !sizes.empty()) fmt::print(stderr, "bench: {} random weights ({} parameters) on {}\n", base.model.name,
                         parameter_count(base.model), device == Device::CUDA ? ops::cuda_device_name() : "cpu");
  const auto init_started = std::chrono::steady_clock::now();
  const WanWeights host_weights = sizes.empty() ? WanWeights{} : random_weights(base.model);
  const double init_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - init_started).count();

  nlohmann::json text_encoder;
  if (result.count("text-encoder")) {
    TextEncoderBench stage;
    stage.encoder = result["text-encoder"].as<std::string>();
    stage.tokens = result["tokens"].as<int64_t>();
    stage.repeat = result["repeat"].as<int64_t>();
    stage.fp8 = result.count("fp8") > 0;
    text_encoder = bench_text_encoder(stage, device, quiet);
  }

  nlohmann::json rows = nlohmann::json::array();
  for (const auto& [height, width] : sizes) {
    RunConfig run = base;
    run.model.latent_height = height / 8;
    run.model.latent_width = width / 8;
    validate(run);
    WanDiT model(run.model, host_weights);
    model.to_device(device);
    auto attention = make_attention_backend(run.attention, &run.pipeline);
    Tensor context = Tensor::empty({run.model.text_len, run.model.text_dim});
    fill_normal(context, {base.model.init_seed, 0xBE7Cu, 0});
    const NoiseShape noise_shape{run.pipeline.frames, run.pipeline.chunk_frames, run.model.out_channels,
                                 run.model.latent_height, run.model.latent_width};

    // Warm-up: cuBLASLt heuristics, the allocator's cache, the conditioning cache.
    const int64_t warmup_frames = std::min(run.pipeline.frames, result["warmup"].as<int64_t>() * run.pipeline.chunk_frames);
    if (warmup_frames > 0) {
      PipelineConfig warm = run.pipeline;
      warm.frames = warmup_frames;
      ArPipeline warm_pipeline(warm, model, *attention);
      auto warm_noise = make_philox_noise(1, {warmup_frames, warm.chunk_frames, noise_shape.channels,
                                              noise_shape.height, noise_shape.width});
      warm_pipeline.generate(context, *warm_noise, {});
    }
    ops::synchronize_device();
    ops::reset_device_peak_memory();
    const int64_t mallocs_before = ops::device_memory_stats().cuda_malloc_calls;
    ops::set_op_profiling(true);

    ArPipeline pipeline(run.pipeline, model, *attention);
    auto noise = make_philox_noise(run.pipeline.seed, noise_shape);
    std::vector<double> chunk_seconds;
    // After each chunk: the device peak and reservation so far and the host resident set, so a long run shows
    // whether memory stays flat once the rolling window is full (docs/long-video.md).
    std::vector<int64_t> chunk_peak_gpu_bytes, chunk_reserved_gpu_bytes, chunk_host_rss_bytes;
    int64_t mallocs_after_first_chunk = 0;
    std::vector<int64_t> visible_frames;
    int64_t forwards_per_chunk = 0;
    GenerateCallbacks callbacks;
    // The digest is taken chunk by chunk (the same bytes in the same order as the whole tensor's), so a long run
    // without --decoder keeps no latents and its host memory shows what the engine itself holds.
    Sha256 latents_hash;
    const bool decodes = result.count("decoder") > 0;
    callbacks.keep_latents = decodes;
    callbacks.on_chunk = [&](const ChunkReport& report, const Tensor& chunk_latents) {
      latents_hash.update(chunk_latents.raw(), chunk_latents.nbytes());
      chunk_seconds.push_back(report.seconds);
      const ops::DeviceMemoryStats now = ops::device_memory_stats();
      chunk_peak_gpu_bytes.push_back(int64_t(now.peak_bytes));
      chunk_reserved_gpu_bytes.push_back(int64_t(now.reserved_bytes));
      chunk_host_rss_bytes.push_back(host_rss_bytes());
      // Everything the loop needs exists after chunk 0 (the cache is allocated before it): count what comes later.
      if (report.chunk == 0) mallocs_after_first_chunk = ops::device_memory_stats().cuda_malloc_calls;
      forwards_per_chunk = std::max(forwards_per_chunk, report.forwards);
      visible_frames.push_back(int64_t(visible_frames_for_chunk(run.pipeline.kv_cache, run.pipeline.chunk_frames,
                                                                report.chunk).size()));
      if (!quiet) fmt::print(stderr, "  {}x{} chunk {}/{}: {:.3f} s\n", height, width, report.chunk + 1,
                             report.chunks, report.seconds);
    };
    const auto started = std::chrono::steady_clock::now();
    const Tensor latents = pipeline.generate(context, *noise, callbacks);
    ops::synchronize_device();
    const double total_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    ops::set_op_profiling(false);
    const auto profile = ops::op_profile_ms();
    const ops::DeviceMemoryStats memory = ops::device_memory_stats();

    double dit_seconds = 0;
    for (double seconds : chunk_seconds) dit_seconds += seconds;
    // Wan's causal VAE turns N latent frames into 1 + 4 (N - 1) video frames.
    const int64_t video_frames = run.model.decoder == "wan-vae" ? 1 + 4 * (run.pipeline.frames - 1) : run.pipeline.frames;
    nlohmann::json row = {{"height", height},
                          {"width", width},
                          {"latent_frames", run.pipeline.frames},
                          {"frames", video_frames},
                          {"tokens_per_frame", run.model.tokens_per_frame()},
                          {"dense_dit_seconds", dit_seconds},
                          {"total_seconds", total_seconds},
                          {"dit_frames_per_second", double(video_frames) / dit_seconds},
                          {"per_chunk_seconds", chunk_seconds},
                          {"op_class_ms", profile},
                          {"per_chunk_peak_gpu_bytes", chunk_peak_gpu_bytes},
                          {"per_chunk_reserved_gpu_bytes", chunk_reserved_gpu_bytes},
                          {"per_chunk_host_rss_bytes", chunk_host_rss_bytes},
                          {"peak_gpu_bytes", memory.peak_bytes},
                          {"reserved_gpu_bytes", memory.reserved_bytes},
                          {"cuda_malloc_calls_in_run", memory.cuda_malloc_calls - mallocs_before},
                          {"cuda_malloc_calls_after_first_chunk", memory.cuda_malloc_calls - mallocs_after_first_chunk},
                          // Same bytes before and after a refactor: compare this across runs of one device.
                          {"latents_sha256", latents_hash.hex_digest()}};
    if (decodes) {
      // After the DiT's numbers are taken: the decoder's own peak and op times are reported apart.
      const nlohmann::json decode = bench_decoder(result["decoder"].as<std::string>(), run.model,
                                                  to_host_f32(latents), run.pipeline.chunk_frames, device);
      const double decode_seconds = decode["seconds"].get<double>();
      const int64_t decoded_frames = decode["video_frames"].get<int64_t>();
      row["decode"] = decode;
      // Sequential (decode after each chunk's DiT, no overlap yet): chunk 0's DiT, then its decode.
      row["first_frame_seconds"] = chunk_seconds.front() + decode["per_chunk_seconds"][0].get<double>();
      row["frames_per_second_with_decode"] = double(decoded_frames) / (dit_seconds + decode_seconds);
      if (!quiet)
        fmt::print(stderr, "bench {}x{}: decode ({}) {:.3f} s for {} frames; {:.1f} frames/s with decoding\n", height,
                   width, decode["decoder"].get<std::string>(), decode_seconds, decoded_frames,
                   double(decoded_frames) / (dit_seconds + decode_seconds));
    }
    if (profile.count("self_attention")) {
      const double flops = self_attention_flops(run, forwards_per_chunk, visible_frames);
      row["self_attention_tflops"] = flops / (profile.at("self_attention") * 1e-3) / 1e12;
    }
    rows.push_back(row);
    if (!quiet) fmt::print(stderr, "bench {}x{}: DiT {:.3f} s ({:.1f} frames/s), total {:.3f} s, peak {:.2f} GiB\n",
                           height, width, dit_seconds, double(video_frames) / dit_seconds, total_seconds,
                           double(memory.peak_bytes) / (1u << 30));
  }
  std::string command = "lightforce bench";
  for (int i = 1; i < argc; ++i) command += std::string(" ") + argv[i];
  nlohmann::json report = {{"device", device == Device::CUDA ? ops::cuda_device_name() : "cpu"},
                           {"command", command},
                           {"commit", kGitCommit},
                           {"model", base.model.name},
                           {"attention", base.attention.backend},
                           {"weight_init_seconds", init_seconds},
                           {"rows", rows}};
  if (!text_encoder.is_null()) report["text_encoder"] = text_encoder;
  report["attention_settings"] = config_json(base)["attention"];
  report["seed"] = base.pipeline.seed;
  report = versioned(report);
  if (!out_path.empty()) write_file_atomic(out_path, report.dump(2) + "\n");
  if (result.count("json")) fmt::print("{}\n", report.dump(2));
  return 0;
}

}  // namespace lf::cmd
