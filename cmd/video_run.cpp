#include "video_run.h"

#include <fmt/format.h>

#include <optional>

#include "attention/attention_backend.h"
#include "commands.h"
#include "core/embedded.h"
#include "core/error.h"
#include "core/host_memory.h"
#include "io/frame.h"
#include "io/frame_writer.h"
#include "io/safetensors.h"
#include "io/video_writer.h"
#include "ops/ops.h"
#include "pipeline/prompt_schedule.h"

namespace lf::cmd {

std::vector<ContextSwitch> prompt_contexts(const PreparedModel& prepared, const RunConfig& run,
                                           const std::string& prompt, const std::string& prompt_schedule) {
  if (prompt_schedule.empty()) {
    LF_CHECK(!prompt.empty(), "empty prompt");
    return {{0, encode_prompt(prepared, prompt)}};
  }
  std::vector<ContextSwitch> contexts;
  for (const PromptAtChunk& entry :
       parse_prompt_schedule(prompt_schedule, run.pipeline.frames / run.pipeline.chunk_frames))
    contexts.push_back({entry.first_chunk, encode_prompt(prepared, entry.prompt)});
  return contexts;
}

VideoResult run_video(const PreparedModel& prepared, const RunConfig& run, const std::vector<ContextSwitch>& contexts,
                      const VideoOutputs& outputs, VideoDecoder* decoder, bool quiet) {
  const ModelConfig& model_config = run.model;
  const Device device = prepared.device;
  auto attention = make_attention_backend(run.attention, &run.pipeline);
  const bool decodes = !outputs.video.empty() || !outputs.frames_dir.empty();
  LF_CHECK(decoder || !decodes, "model '{}' has no video decoder (model.decoder: none): pass --decoder NAME ({}) or "
           "write latents only", model_config.name, decoder_names());
  if (decodes) decoder->reset();  // a decoder carried over from the previous video starts a fresh stream

  std::optional<VideoWriter> video;
  if (!outputs.video.empty()) {
    VideoWriter::Options video_options{outputs.video, int(decoder->width()), int(decoder->height()), run.output.fps,
                                       run.output.crf, "medium"};
    if (outputs.video_fd >= 0) {
      video_options.stream_fd = outputs.video_fd;
      video_options.path = "stdout";  // how its messages name it
    }
    video.emplace(video_options);
  }
  std::optional<FrameWriter> frame_writer;
  if (!outputs.frames_dir.empty())
    frame_writer.emplace(outputs.frames_dir, LF_WITH_OPENCV ? FrameFormat::PNG : FrameFormat::PPM);

  const NoiseShape noise_shape = noise_shape_of(run);
  std::unique_ptr<NoiseSource> noise = outputs.noise.empty() ? make_philox_noise(run.pipeline.seed, noise_shape)
                                                             : make_file_noise(outputs.noise, noise_shape);
  RecordingNoise* recorder = nullptr;
  if (!outputs.save_noise.empty()) {
    auto recording = std::make_unique<RecordingNoise>(std::move(noise), noise_shape);
    recorder = recording.get();
    noise = std::move(recording);
  }

  if (!quiet)
    fmt::print(stderr, "lightforce: model {} ({} layers, dim {}), {} latent frames in {} chunks, {} steps, attention {}, {}\n",
               model_config.name, model_config.layers, model_config.dim, run.pipeline.frames,
               run.pipeline.frames / run.pipeline.chunk_frames, run.pipeline.denoising_steps.size(),
               attention->name(), device == Device::CUDA ? ops::cuda_device_name() : "cpu");

  VideoResult result;
  nlohmann::json chunk_reports = nlohmann::json::array();
  ArPipeline pipeline(run.pipeline, *prepared.model, *attention);
  GenerateCallbacks callbacks;
  // Only --save-latents needs the whole run's latents: without it memory stays flat over any length.
  callbacks.keep_latents = !outputs.latents.empty();
  callbacks.on_chunk = [&](const ChunkReport& report, const Tensor& latents) {
    result.generation_seconds += report.seconds;
    if (decodes) {
      for (const Tensor& image : decoder->decode_chunk(latents)) {
        const Frame frame = frame_from_tensor(image);
        if (video) video->write(frame);
        if (frame_writer) frame_writer->write(frame);  // each PNG complete on disk now, not at the end of the run
        ++result.video_frames;
      }
      // A stream's fragment ends here: the chunk's frames are in the pipe before its progress line is printed.
      if (video) video->flush();
    }
    // Memory after each chunk, so a long run shows whether it stays flat (docs/long-video.md).
    chunk_reports.push_back({{"chunk", report.chunk}, {"frames", report.frames}, {"seconds", report.seconds},
                             {"forwards", report.forwards}, {"host_rss_bytes", host_rss_bytes()},
                             {"device_peak_bytes", ops::device_memory_stats().peak_bytes}});
    if (!quiet) {
      const double rate = double((report.chunk + 1) * report.frames) / result.generation_seconds;
      const double eta =
          result.generation_seconds / double(report.chunk + 1) * double(report.chunks - report.chunk - 1);
      fmt::print(stderr, "  chunk {}/{}  latent frames {}-{}  {}  {:.2f} frames/s  ETA {}\n", report.chunk + 1,
                 report.chunks, report.first_frame, report.first_frame + report.frames - 1,
                 format_seconds(report.seconds), rate, format_seconds(eta));
    }
  };
  const Tensor latents = pipeline.generate(contexts, *noise, callbacks);

  if (video) video->finish();
  if (!outputs.latents.empty())
    write_safetensors(outputs.latents, {{"latents", latents}},
                      {{"format", "lightforce-latents"}, {"model", model_config.name},
                       {"noise", outputs.noise.empty() ? fmt::format("philox seed {}", run.pipeline.seed)
                                                       : outputs.noise}});
  if (recorder) recorder->save(outputs.save_noise);

  result.summary = {
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
      {"video_frames", result.video_frames},
      {"width", decoder ? decoder->width() : 0},
      {"height", decoder ? decoder->height() : 0},
      {"fps", run.output.fps},
      {"generation_seconds", result.generation_seconds},
      {"latent_frames_per_second", double(run.pipeline.frames) / result.generation_seconds},
      {"per_chunk", chunk_reports},
      {"host_peak_rss_bytes", host_peak_rss_bytes()},
      {"device_peak_bytes", ops::device_memory_stats().peak_bytes},
      // What the caching allocator holds from the driver at the end (in use + cached): what nvidia-smi shows.
      {"device_reserved_bytes", ops::device_memory_stats().reserved_bytes},
      {"outputs",
       {{"video", outputs.video},
        {"frames_dir", outputs.frames_dir},
        {"latents", outputs.latents},
        {"noise", outputs.save_noise}}},
  };
  return result;
}

}  // namespace lf::cmd
