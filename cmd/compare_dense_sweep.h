#pragma once
// compare-dense --sweep: every combination of the swept attention values against one shared baseline run. One
// sweep.csv row a point (with its rank), the points as JSON with --json, and with --report html a page that ranks
// them (sweep.html). Points are ranked by PSNR averaged over the chunks that differ from the baseline: a chunk
// identical to dense says nothing about the setting (docs/metrics.md, "Headline numbers").
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "backend_run.h"
#include "config/config.h"
#include "run_setup.h"

namespace lf::cmd {

// The sweep's grid: one axis per key, every combination a point, each point's attention config validated.
struct SweepGrid {
  std::vector<std::pair<std::string, std::vector<std::string>>> axes;
  std::vector<std::vector<std::string>> points;  // "attention.KEY=value" per axis
  std::vector<AttentionConfig> configs;          // one per point
};

// Parsed and validated before the baseline runs, so a typo costs nothing.
SweepGrid sweep_grid(const RunFlags& run_flags, const std::vector<std::string>& flag_values);

struct SweepOptions {
  std::string out_dir;
  bool quiet = false;
  bool json = false;  // the points as JSON on stdout
  bool html = false;  // also sweep.html
  int64_t recall_row_stride = 0;
  std::string baseline_name = "dense";  // how the pages and messages name the baseline run
};

// Runs every point against `baseline_run` and writes the outputs; returns the exit code.
int sweep(const PreparedModel& prepared, const RunFlags& run_flags, const SweepGrid& grid,
          const BackendRun& baseline_run, const SweepOptions& options);

}  // namespace lf::cmd
