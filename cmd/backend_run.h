#pragma once
// One generation with a given attention backend, kept in memory (frames, latents, attention statistics): what
// compare-dense, its sweep and check-prompts run over and over with the same loaded model.
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "attention/attention_backend.h"
#include "io/frame.h"
#include "run_setup.h"

namespace lf::cmd {

struct BackendRun {
  std::vector<Frame> frames;
  Tensor latents;
  double seconds = 0;            // generation (all chunks)
  double attention_seconds = 0;  // planner + kernel, from the statistics
  std::vector<int64_t> frames_per_chunk;
  std::map<int64_t, std::pair<double, int64_t>> output_error_by_chunk;  // sum of per-call rel-L2, calls
  double mean_density = 1.0;  // selected / visible key blocks over all calls and heads
  double mean_recall = -1;    // kept dense softmax mass over all calls and heads; -1 when not measured
};

struct BackendRunOptions {
  bool quiet = true;
  const char* label = "";
  bool measure_output_error = false;
  int64_t recall_row_stride = 0;  // 0: no recall; 1: exact; n: every n-th query row
  const Tensor* context = nullptr;  // text context; default prepared.context
  std::optional<uint64_t> seed = std::nullopt;  // default: the pipeline's seed
  // Teacher forcing from these latents (a dense run's, same seed): every chunk is predicted by `attention` from
  // the dense run's KV history, and decoded after the dense run's earlier chunks, so each chunk's error against
  // dense is its own (ArPipeline's TeacherForcing).
  const Tensor* teacher_latents = nullptr;
};

BackendRun run_backend(const PreparedModel& prepared, const AttentionConfig& attention,
                       const BackendRunOptions& options);

}  // namespace lf::cmd
