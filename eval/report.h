#pragma once
// Report builders for `lightforce compare-dense`: JSON (machine-readable, for regression checks), Markdown (for
// people), PNG line plots (OpenCV builds only) and side-by-side frames. Non-finite numbers never reach JSON: they
// are written as null (see docs/metrics.md).
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "eval/html_page.h"
#include "eval/metrics.h"
#include "eval/report_table.h"
#include "io/frame.h"

namespace lf::eval {

// One compared run (sparse or dense).
struct RunSummary {
  std::string backend;           // attention backend, e.g. "light-forcing" or "dense"
  double seconds = 0;            // end-to-end wall time of generation; <= 0 when unknown
  double attention_seconds = 0;  // time inside attention; <= 0 when unknown
  double temporal_flicker = 0;   // temporal_flicker() of this run's video
  double mean_abs_frame_difference = 0;
  std::optional<double> warping_error;  // absent when not measured (e.g. a build without OpenCV)
};

struct CompareDenseReport {
  RunSummary sparse;
  RunSummary dense;
  std::vector<ChunkMetrics> chunks;  // per_chunk_metrics()
  ChunkMetrics total;                // overall_metrics()
  // Teacher-forced, per chunk (empty when not run): each sparse chunk predicted from the dense run's own KV history,
  // so its error is that chunk's alone; `chunks` above is the free-running rollout, where errors compound.
  std::vector<ChunkMetrics> teacher_forced_chunks;
  double drift_db = 3.0;               // see first_drift_chunk()
  // Anything else the caller wants recorded (seed, prompt, config, commit, paths): merged into the top level of the
  // JSON object and listed in the Markdown; a key that collides with a report field is an error.
  nlohmann::json extra = nlohmann::json::object();
};

// The first chunk where the free-running rollout has drifted: its PSNR lies more than `drift_db` below the same
// chunk's teacher-forced PSNR, so most of its error was inherited from earlier chunks rather than made there.
// nullopt when no chunk does (or teacher-forced metrics are missing).
std::optional<int64_t> first_drift_chunk(const std::vector<ChunkMetrics>& free_running,
                                         const std::vector<ChunkMetrics>& teacher_forced, double drift_db);

// dense / sparse of the matching seconds; nullopt when either is unknown (<= 0) or not finite.
std::optional<double> speedup(const CompareDenseReport& report);
std::optional<double> attention_speedup(const CompareDenseReport& report);

// {"sparse": {...}, "dense": {...}, "speedup", "attention_speedup", "chunks": [{chunk, frames, identical_frames,
// identical, psnr, ssim, latent_rel_l2}], "differing_chunks_mean": {...} (the headline), "total": {...} (all
// frames, identical ones at the cap), "metric_variants": {...}, "psnr_cap_db", ...extra}. PSNR values are already
// capped (kPsnrCapDb); any other non-finite number (unknown speedup, missing latents, no differing chunk) is null.
nlohmann::json compare_dense_json(const CompareDenseReport& report);

// {psnr, ssim, latent_rel_l2, differing_chunks, chunks, all_identical}; the means are null when all_identical.
nlohmann::json differing_chunks_json(const DifferingChunksMean& mean);
// "mean over the 6 of 7 chunks that differ from dense", or "all 7 chunks are identical to dense: ...".
std::string differing_chunks_phrase(const DifferingChunksMean& mean, const std::string& baseline);
// A chunk's PSNR cell: "identical" when every frame is, else the capped mean ("31.50", "31.50 (3/9 identical)").
std::string chunk_psnr_text(const ChunkMetrics& metrics);

// A JSON object's entries as text, in key order: a string as it is, anything else as JSON. Keys in `skip` are left
// out. For the "Run" lists of the Markdown and HTML reports.
std::vector<std::pair<std::string, std::string>> json_entries(const nlohmann::json& object,
                                                              const std::vector<std::string>& skip = {});

// The pieces the Markdown and the HTML report share, so both say the same thing.
std::string headline_text(const CompareDenseReport& report);  // differing-chunk means, and the all-frames PSNR
std::string speedup_text(const CompareDenseReport& report);
std::string identical_chunks_note();  // how identical chunks are shown and averaged
std::string drift_text(const CompareDenseReport& report);
ReportTable runs_table(const CompareDenseReport& report);   // seconds, flicker, warping error of both runs
ReportTable chunk_table(const CompareDenseReport& report);  // per chunk, the differing-chunk mean, all frames
ReportTable teacher_forced_table(const CompareDenseReport& report);  // beside the free-running PSNR

// Markdown summary: the headline (differing-chunk means), runs and speedups, the per-chunk table with the
// differing-chunk mean and the all-frames row, the teacher-forced table, the metric variants, and either the plot
// images (file names relative to the Markdown file) or, when `plot_files` is empty, a note that plots were skipped
// and why.
std::string compare_dense_markdown(const CompareDenseReport& report, const std::vector<std::string>& plot_files);

// A line plot: one or more series over shared x values, drawn on a white canvas with axes, ticks and labels.
struct PlotSeries {
  std::string name;
  std::vector<double> values;  // one per x; non-finite values break the line
  // Empty, or one per x: a true point is drawn as a hollow marker on the top edge instead of at its value, breaks
  // the line and does not enter the axis range (a chunk identical to the baseline, whose capped value would squash
  // the axis).
  std::vector<bool> pinned_top;
};
struct LinePlot {
  std::string title;
  std::string x_label;
  std::string y_label;
  std::vector<double> x;
  std::vector<PlotSeries> series;
  std::string pinned_label = "off the axis";  // legend entry of the top-edge markers, e.g. "identical to dense"
  int width = 800;
  int height = 480;
};

// PNG bytes of the plot (needs OpenCV: otherwise throws lf::Error).
std::string line_plot_png(const LinePlot& plot);

// The per-chunk PSNR and SSIM plots of a report.
LinePlot psnr_plot(const CompareDenseReport& report);
LinePlot ssim_plot(const CompareDenseReport& report);

// What write_compare_dense_report writes besides the JSON, Markdown and plots.
struct CompareDenseReportOptions {
  bool html = false;                // also <stem>.html: compare_dense_html (eval/compare_dense_html.h)
  std::vector<ReportVideo> videos;  // MP4s already written in the directory, shown in the HTML
};

// Writes <directory>/<stem>.json, <stem>.md, in OpenCV builds <stem>-psnr.png and <stem>-ssim.png, and with
// options.html <stem>.html, each through write_file_atomic. Returns the paths written (JSON, Markdown, plots, HTML).
std::vector<std::string> write_compare_dense_report(const CompareDenseReport& report, const std::string& directory,
                                                    const std::string& stem = "compare-dense",
                                                    const CompareDenseReportOptions& options = {});

// `left` and `right` next to each other with `gap` white columns between them; a shorter frame is centred
// vertically on white. Result: (left.width + gap + right.width) x max(heights).
Frame side_by_side(const Frame& left, const Frame& right, int gap = 8);

// side_by_side() of every frame pair; the videos must have the same number of frames.
std::vector<Frame> side_by_side(const std::vector<Frame>& left, const std::vector<Frame>& right, int gap = 8);

}  // namespace lf::eval
