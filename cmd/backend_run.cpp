#include "backend_run.h"

#include <fmt/format.h>

#include <memory>
#include <optional>

#include "core/error.h"
#include "model/decoder.h"
#include "attention/backend_registry.h"
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
  std::optional<TeacherForcing> teacher;
  std::unique_ptr<AttentionBackend> teacher_attention;
  if (options.teacher_latents != nullptr) {
    AttentionConfig dense = attention;
    dense.backend = dense_attention_backend().name;
    teacher_attention = make_attention_backend(dense, &run.pipeline);
    teacher = TeacherForcing{*options.teacher_latents, teacher_attention.get()};
  }
  GenerateCallbacks callbacks;
  callbacks.on_chunk = [&](const ChunkReport& report, const Tensor& latents) {
    result.seconds += report.seconds;
    if (teacher) {
      // A causal decoder's state after chunk i-1 must be the dense video's too: replay the dense chunks before
      // this one (quadratic in the chunks, but exact whatever the decoder's temporal reach).
      decoder->reset();
      for (int64_t past = 0; past < report.chunk; ++past)
        decoder->decode_chunk(teacher->latents.slice_rows(past * report.frames, (past + 1) * report.frames));
    }
    const auto images = decoder->decode_chunk(latents);
    for (const Tensor& image : images)
      result.frames.push_back(frame_from_tensor(image));
    result.frames_per_chunk.push_back(int64_t(images.size()));
    if (!options.quiet)
      fmt::print(stderr, "  {} chunk {}/{}  {}\n", options.label, report.chunk + 1, report.chunks,
                 format_seconds(report.seconds));
  };
  const Tensor& context = options.context ? *options.context : prepared.context;
  result.latents = pipeline.generate({{0, context}}, *noise, callbacks, teacher ? &*teacher : nullptr);
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
