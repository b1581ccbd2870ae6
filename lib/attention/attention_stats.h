#pragma once
// Statistics records of attention calls (density, recall, timings, kept masks), filled by a backend given an
// AttentionStats. At the bottom of lib/attention with block_mask.h.
#include <array>
#include <cstdint>
#include <utility>
#include <vector>

#include "attention/block_mask.h"

namespace lf {

// One self-attention call's statistics (per head where it says so).
struct AttentionRecord {
  int64_t chunk = 0, step = 0, layer = 0;
  bool is_refresh = false;
  int64_t frames_visible = 0;
  double target_sparsity = 0;
  std::vector<double> head_density;  // selected / visible key blocks
  std::vector<double> head_recall;   // kept dense softmax mass; empty when not measured
  double planner_ms = 0, kernel_ms = 0;
  double output_rel_l2 = -1;  // ||out - dense out|| / ||dense out|| when measured (compare runs), else -1
};

// Collects records from a backend; recall is measured on every `recall_row_stride`-th query row (1 = exact),
// and the masks of chosen (chunk, step, layer) calls are kept for heatmaps.
struct AttentionStats {
  bool measure_recall = false;
  bool measure_output_error = false;  // also run dense attention and record the output's rel-L2 against it
  int64_t recall_row_stride = 1;
  std::vector<std::array<int64_t, 3>> keep_masks_for;  // {chunk, step, layer}
  std::vector<AttentionRecord> records;
  std::vector<std::pair<std::array<int64_t, 3>, BlockMask>> kept_masks;
};

}  // namespace lf
