#include "backend_run.h"

#include <fmt/format.h>

#include "core/error.h"
#include "model/decoder.h"
#include "pipeline/ar_pipeline.h"

namespace lf::cmd {

BackendRun run_backend(const PreparedModel& prepared, const AttentionConfig& attention,
                       const BackendRunOptions& options) {
  const RunConfig& run = prepared.run;
  AttentionStats stats;
  stats.measure_output_error = options.measure_output_error;
  stats.measure_recall = options.recall_row_stride > 0;
  stats.recall_row_stride = std::max<int64_t>(1, options.recall_row_stride);
  auto backend = make_attention_backend(attention, &run.pipeline, &stats);
  auto decoder = make_run_decoder(prepared);
  LF_CHECK(decoder, "model '{}' has no video decoder (model.decoder: none): pass --decoder NAME ({}) to compare "
           "decoded frames", run.model.name, decoder_names());
  ArPipeline pipeline(run.pipeline, *prepared.model, *backend);
  auto noise = make_philox_noise(options.seed.value_or(run.pipeline.seed), noise_shape_of(run));
  BackendRun result;
  GenerateCallbacks callbacks;
  callbacks.on_chunk = [&](const ChunkReport& report, const Tensor& latents) {
    result.seconds += report.seconds;
    const auto images = decoder->decode_chunk(latents);
    for (const Tensor& image : images)
      result.frames.push_back(frame_from_chw(image.f32(), image.dim(1) * image.dim(2), int(image.dim(1)),
                                             int(image.dim(2))));
    result.frames_per_chunk.push_back(int64_t(images.size()));
    if (!options.quiet)
      fmt::print(stderr, "  {} chunk {}/{}  {}\n", options.label, report.chunk + 1, report.chunks,
                 format_seconds(report.seconds));
  };
  result.latents = pipeline.generate(options.context ? *options.context : prepared.context, *noise, callbacks);
  double density_sum = 0, recall_sum = 0;
  int64_t density_count = 0, recall_count = 0;
  for (const AttentionRecord& record : stats.records) {
    for (double density : record.head_density) density_sum += density, ++density_count;
    for (double recall : record.head_recall) recall_sum += recall, ++recall_count;
    result.attention_seconds += (record.planner_ms + record.kernel_ms) * 1e-3;
    if (record.output_rel_l2 >= 0) {
      auto& [sum, calls] = result.output_error_by_chunk[record.chunk];
      sum += record.output_rel_l2;
      ++calls;
    }
  }
  if (density_count) result.mean_density = density_sum / double(density_count);
  if (recall_count) result.mean_recall = recall_sum / double(recall_count);
  return result;
}

}  // namespace lf::cmd
