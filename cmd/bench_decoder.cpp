// lightforce bench --decoder: the decode stage timed on the latents the DiT just made (random decoder weights).
#include "bench_decoder.h"

#include <chrono>

#include "model/decoder.h"
#include "ops/ops.h"

namespace lf::cmd {

nlohmann::json bench_decoder(const std::string& decoder_name, const ModelConfig& model, const Tensor& latents,
                             int64_t chunk_frames, Device device) {
  ModelConfig config = model;
  config.decoder = decoder_name;
  DecoderSources sources;
  sources.model = &config;
  sources.weights = "random";
  sources.device = device;
  const auto setup_started = std::chrono::steady_clock::now();
  std::unique_ptr<VideoDecoder> decoder = make_decoder(sources);
  ops::synchronize_device();
  const double setup_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - setup_started).count();
  ops::reset_device_peak_memory();
  ops::set_op_profiling(true);
  std::vector<double> chunk_seconds;
  int64_t video_frames = 0;
  for (int64_t first = 0; first < latents.dim(0); first += chunk_frames) {
    const auto started = std::chrono::steady_clock::now();
    // decode_chunk returns host images: the time includes the copy back, as generate pays it.
    video_frames += int64_t(decoder->decode_chunk(latents.slice_rows(first, std::min(latents.dim(0), first + chunk_frames))).size());
    chunk_seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  }
  ops::set_op_profiling(false);
  double total = 0;
  for (double seconds : chunk_seconds) total += seconds;
  return {{"decoder", decoder_name},
          {"setup_seconds", setup_seconds},
          {"per_chunk_seconds", chunk_seconds},
          {"seconds", total},
          {"video_frames", video_frames},
          {"op_class_ms", ops::op_profile_ms()},
          {"peak_gpu_bytes", ops::device_memory_stats().peak_bytes}};
}

}  // namespace lf::cmd
