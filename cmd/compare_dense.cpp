// lightforce compare-dense: the chosen backend against dense with the same config, seed and noise: both MP4s, a
// side-by-side MP4, and a report (per-chunk PSNR / SSIM / latent rel-L2, flicker, warping error, speedups). With
// --reference DIR the baseline is a saved earlier run instead of dense; --fail-below / --fail-above turn the report
// into a CI gate (exit 1 after the report is written).
#include <cxxopts.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "attention/attention_backend.h"
#include "attention/backend_registry.h"
#include "commands.h"
#include "core/embedded.h"
#include "core/error.h"
#include "eval/metrics.h"
#include "eval/report.h"
#include "io/atomic_file.h"
#include "io/frame.h"
#include "io/video_writer.h"
#include "model/decoder.h"
#include "pipeline/ar_pipeline.h"
#include "backend_run.h"
#include "compare_dense_sweep.h"
#include "gates.h"
#include "machine_output.h"
#include "reference_run.h"
#include "report_kinds.h"
#include "run_setup.h"

namespace lf::cmd {

namespace {

void write_video(const std::string& path, const std::vector<Frame>& frames, int fps, int crf) {
  VideoWriter video(VideoWriter::Options{path, frames.front().width, frames.front().height, fps, crf, "medium"});
  for (const Frame& frame : frames) video.write(frame);
  video.finish();
}

eval::RunSummary summarise(const BackendRun& run, const std::string& name) {
  eval::RunSummary summary;
  summary.backend = name;
  summary.seconds = run.seconds;
  summary.attention_seconds = run.attention_seconds;
  summary.temporal_flicker = eval::temporal_flicker(run.frames);
  summary.mean_abs_frame_difference = eval::mean_abs_frame_difference(run.frames);
  if (eval::have_opencv()) summary.warping_error = eval::warping_error(run.frames);
  return summary;
}

cxxopts::Options compare_dense_flags() {
  cxxopts::Options flags("lightforce compare-dense",
                         "Run dense and a sparse backend with the same seed and noise; compare videos and speed.");
  add_run_flags(flags);
  flags.add_options("report")
      ("out-dir", "directory for the videos and the report", cxxopts::value<std::string>()->default_value("compare-dense"))
      ("no-videos", "skip the MP4s (metrics only)")
      ("recall-row-stride", "sweep mode: also measure attention recall on every N-th query row (1 = exact, 0 = "
       "off; timings then include it)", cxxopts::value<int64_t>()->default_value("0"))
      ("sweep", "sweep mode: attention.KEY=v1,v2,... (repeatable, each key once; the grid of all combinations) -> "
       "sweep.csv", cxxopts::value<std::vector<std::string>>())
      ("no-teacher-forced", "skip the teacher-forced pass (each sparse chunk from the dense run's history)")
      ("drift-db", "flag the first chunk whose free-running PSNR is this many dB below its teacher-forced PSNR",
       cxxopts::value<double>()->default_value("3"))
      ("json", "print the report JSON (the sweep's points in sweep mode) on stdout")
      ("q,quiet", "no progress")
      ("h,help", "show this help");
  add_report_flag(flags, "report", "compare-dense.html (tables, plots, videos) or sweep.html (the points ranked)");
  flags.add_options("CI gates")
      ("reference", "compare with the run saved in DIR (by --save-reference) instead of recomputing dense; the "
       "settings must match it", cxxopts::value<std::string>())
      ("save-reference", "run the --attention backend (default: the model config's) once and save it in DIR as a "
       "reference; nothing is compared", cxxopts::value<std::string>());
  add_gate_flags(flags);
  return flags;
}

}  // namespace

int compare_dense(int argc, char** argv) {
  cxxopts::Options flags = compare_dense_flags();
  const auto result = parse_flags(flags, argc, argv);
  if (result.count("help")) {
    fmt::print("{}", flags.help());
    return 0;
  }
  const RunFlags run_flags = read_run_flags(result);
  auto text = [&](const char* name) { return result.count(name) ? result[name].as<std::string>() : std::string(); };
  const std::string reference_dir = text("reference"), save_reference_dir = text("save-reference");
  const bool quiet = result.count("quiet"), json = result.count("json"), sweeping = result.count("sweep");
  const std::vector<MetricThreshold> thresholds = parse_metric_thresholds(result);
  const ReportKinds report_kinds = read_report_kinds(result);
  LF_USAGE_CHECK(!run_flags.config.attention.empty() || !reference_dir.empty() || !save_reference_dir.empty(),
                 "compare-dense needs --attention (the backend to compare with dense)");
  LF_USAGE_CHECK(save_reference_dir.empty() ||
                     (reference_dir.empty() && !sweeping && thresholds.empty() && !result.count("report")),
                 "--save-reference only saves a run: it takes no --reference, --sweep, --fail-below, --fail-above or "
                 "--report");
  LF_USAGE_CHECK(!sweeping || thresholds.empty(), "--fail-below / --fail-above judge one comparison, not a --sweep");
  const std::string out_dir = result["out-dir"].as<std::string>();
  const double drift_db = result["drift-db"].as<double>();
  LF_CHECK(std::isfinite(drift_db) && drift_db >= 0, "--drift-db {}: expected a finite number of dB >= 0", drift_db);
  const RunConfig planned = load_run_config(run_flags.config);
  // Everything that can be refused is refused before the model loads and before the baseline runs.
  const std::optional<SweepGrid> grid =
      sweeping ? std::optional(sweep_grid(run_flags, result["sweep"].as<std::vector<std::string>>())) : std::nullopt;
  // A reference is read whole (settings, then the frames against their digest) before the model loads.
  std::optional<SavedReference> reference;
  if (!reference_dir.empty())
    reference = load_reference(reference_dir,
                               read_reference_description(reference_dir, reference_identity(run_flags, planned)));
  const nlohmann::json reference_description = reference ? reference->description : nlohmann::json::object();
  if (!save_reference_dir.empty()) {
    check_reference_output(save_reference_dir);
  } else {
    std::filesystem::create_directories(out_dir);
    check_output_writable(out_dir + "/compare-dense.json", "--out-dir");
  }
  LF_CHECK(!reference_dir.empty() || !save_reference_dir.empty() ||
           !attention_backend_entry(planned.attention.backend).exact_dense,
           "compare-dense: --attention is dense already; choose a sparse backend");

  const PreparedModel prepared = prepare_model(run_flags, quiet);
  const RunConfig& run = prepared.run;
  const bool exact_dense = attention_backend_entry(run.attention.backend).exact_dense;
  if (!save_reference_dir.empty()) {
    const BackendRun saved =
        run_backend(prepared, run.attention, {.quiet = quiet, .label = run.attention.backend.c_str()});
    const nlohmann::json description = save_reference(save_reference_dir, run_flags, prepared, saved);
    if (!quiet)
      fmt::print(stderr, "saved the {} run as a reference in {}\n", run.attention.backend, save_reference_dir);
    if (json) fmt::print("{}\n", description.dump(2));
    return 0;
  }

  // The baseline: dense recomputed, or the saved reference (frames and latents as that run wrote them).
  const bool against_reference = !reference_dir.empty();
  const BackendRun baseline_run =
      against_reference
          ? std::move(reference->run)
          : [&] {
              AttentionConfig dense = run.attention;
              dense.backend = dense_attention_backend().name;
              return run_backend(prepared, dense, {.quiet = quiet, .label = "dense "});
            }();
  const std::string baseline_name =
      against_reference ? "reference (" + reference_description.value("attention", std::string("?")) + ")" : "dense";
  if (grid)
    return sweep(prepared, run_flags, *grid, baseline_run,
                 {.out_dir = out_dir, .quiet = quiet, .json = json, .html = report_kinds.html,
                  .recall_row_stride = result["recall-row-stride"].as<int64_t>(), .baseline_name = baseline_name});
  // The timed run and, separately, one that also runs dense attention at every call to measure the attention
  // output's error (it would distort the timing). Same seed and noise: the same trajectory. A dense backend has
  // no such error to measure.
  const BackendRun sparse_run =
      run_backend(prepared, run.attention, {.quiet = quiet, .label = run.attention.backend.c_str()});
  BackendRun error_run;
  if (!exact_dense) {
    if (!quiet) fmt::print(stderr, "attention output error pass (dense attention beside every call):\n");
    error_run = run_backend(prepared, run.attention, {.quiet = quiet, .label = "error pass",
                                                      .measure_output_error = true});
  }
  // Teacher-forced: every chunk from the dense run's own history, so its error is its own (no compounding). Only
  // against a recomputed dense baseline: the refresh passes replay its latents with dense attention.
  std::optional<BackendRun> forced_run;
  if (!against_reference && !exact_dense && !result.count("no-teacher-forced"))
    forced_run = run_backend(prepared, run.attention,
                             {.quiet = quiet, .label = "teacher-forced", .teacher_latents = &baseline_run.latents});
  LF_CHECK(baseline_run.frames.size() == sparse_run.frames.size() &&
           baseline_run.frames.front().width == sparse_run.frames.front().width &&
           baseline_run.frames.front().height == sparse_run.frames.front().height,
           "--reference '{}': {} frames of {}x{}, but this run made {} of {}x{}", reference_dir,
           baseline_run.frames.size(), baseline_run.frames.front().width, baseline_run.frames.front().height,
           sparse_run.frames.size(), sparse_run.frames.front().width, sparse_run.frames.front().height);

  eval::ChunkLayout layout;
  layout.video_frames = sparse_run.frames_per_chunk;
  layout.latent_frames.assign(sparse_run.frames_per_chunk.size(), run.pipeline.chunk_frames);
  eval::CompareDenseReport report;
  report.chunks = eval::per_chunk_metrics(sparse_run.frames, baseline_run.frames, sparse_run.latents,
                                          baseline_run.latents, layout);
  report.total =
      eval::overall_metrics(sparse_run.frames, baseline_run.frames, sparse_run.latents, baseline_run.latents);
  report.drift_db = drift_db;
  if (forced_run)
    report.teacher_forced_chunks = eval::per_chunk_metrics(forced_run->frames, baseline_run.frames,
                                                           forced_run->latents, baseline_run.latents, layout);
  report.dense = summarise(baseline_run, baseline_name);
  report.sparse = summarise(sparse_run, run.attention.backend);
  report.extra = versioned({{"commit", kGitCommit},       {"model", run.model.name},
                            {"device", device_name(prepared.device)}, {"seed", run.pipeline.seed},
                            {"latent_frames", run.pipeline.frames},  {"attention_config", to_yaml(run)},
                            {"baseline", against_reference ? "reference" : "dense"}},
                           run_provenance(run_flags, run));
  if (against_reference)
    report.extra["reference"] = {{"dir", reference_dir},
                                 {"commit", reference_description.value("commit", std::string())},
                                 {"attention", reference_description.value("attention", std::string())},
                                 {"device", reference_description.value("device", std::string())}};
  nlohmann::json output_errors = nlohmann::json::array();
  for (const auto& [chunk, entry] : error_run.output_error_by_chunk)
    output_errors.push_back({{"chunk", chunk}, {"attention_output_rel_l2", entry.first / double(entry.second)},
                             {"calls", entry.second}});
  report.extra["attention_output_rel_l2"] = output_errors;
  const std::vector<std::string> crossed = crossed_thresholds(thresholds, report);
  if (!thresholds.empty()) report.extra["gates"] = gates_json(thresholds, crossed);
  // The videos and the report are written whether or not a gate fails: they are the evidence a CI log points to.
  // The videos first, so that the HTML report can show them.
  std::vector<std::string> written;
  eval::CompareDenseReportOptions report_options{.html = report_kinds.html, .videos = {}};
  if (result.count("no-videos") == 0 && LF_WITH_FFMPEG) {
    const std::string baseline_video = against_reference ? "reference.mp4" : "dense.mp4";
    const std::string run_video = against_reference ? "run.mp4" : "sparse.mp4";
    write_video(out_dir + "/" + baseline_video, baseline_run.frames, run.output.fps, run.output.crf);
    write_video(out_dir + "/" + run_video, sparse_run.frames, run.output.fps, run.output.crf);
    write_video(out_dir + "/side_by_side.mp4", eval::side_by_side(baseline_run.frames, sparse_run.frames),
                run.output.fps, run.output.crf);
    for (const std::string& name : {baseline_video, run_video, std::string("side_by_side.mp4")})
      written.push_back(out_dir + "/" + name);
    report_options.videos = {
        {"side_by_side.mp4", fmt::format("{} (left) and {} (right), side by side", baseline_name, run.attention.backend)},
        {baseline_video, baseline_name, true},
        {run_video, run.attention.backend, true}};
  }
  const std::vector<std::string> report_files = eval::write_compare_dense_report(report, out_dir, "compare-dense",
                                                                                 report_options);
  written.insert(written.begin(), report_files.begin(), report_files.end());
  const auto speedup = eval::speedup(report);
  const eval::DifferingChunksMean headline = eval::differing_chunks_mean(report.chunks);
  if (!quiet)
    fmt::print(stderr, "{} vs {}: {}; over all frames (identical ones at {:.0f} dB) PSNR {:.2f} dB; speedup {}\n"
               "wrote {}\n",
               run.attention.backend, baseline_name,
               headline.all_identical()
                   ? eval::differing_chunks_phrase(headline, baseline_name)
                   : fmt::format("PSNR {:.2f} dB, SSIM {:.4f}, latent rel-L2 {:.4f} ({})", headline.psnr,
                                 headline.ssim, headline.latent_rel_l2,
                                 eval::differing_chunks_phrase(headline, baseline_name)),
               eval::kPsnrCapDb, eval::capped_psnr(report.total.psnr),
               speedup ? fmt::format("{:.2f}x", *speedup) : "n/a", fmt::join(written, ", "));
  if (!quiet && forced_run) {
    std::vector<std::string> psnr;
    for (const eval::ChunkMetrics& chunk : report.teacher_forced_chunks) psnr.push_back(eval::chunk_psnr_text(chunk));
    const std::optional<int64_t> drift = eval::first_drift_chunk(report.chunks, report.teacher_forced_chunks, drift_db);
    fmt::print(stderr, "teacher-forced PSNR per chunk (dB): {}; {}\n", fmt::join(psnr, ", "),
               drift ? fmt::format("the rollout drifts at chunk {} (> {} dB below teacher-forced)", *drift, drift_db)
                     : std::string("no drift"));
  }
  if (json) fmt::print("{}\n", eval::compare_dense_json(report).dump(2));
  if (!crossed.empty()) {
    const std::string more =
        crossed.size() > 1 ? fmt::format(" (and {} more crossings, listed under \"gates\" in {}/compare-dense.json)",
                                         crossed.size() - 1, out_dir)
                           : "";
    fmt::print(stderr, "lightforce compare-dense: gate failed: {}{}\n", crossed.front(), more);
    return 1;
  }
  return 0;
}

}  // namespace lf::cmd
