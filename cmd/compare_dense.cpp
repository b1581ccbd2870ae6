// lightforce compare-dense: the chosen backend against dense with the same config, seed and noise: both MP4s, a
// side-by-side MP4, and a report (per-chunk PSNR / SSIM / latent rel-L2, flicker, warping error, speedups).
#include <cxxopts.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>
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
#include "eval/prompt_following.h"
#include "run_setup.h"

namespace lf::cmd {

namespace {

// Every combination of the swept attention values against one shared dense run: one CSV row per point.
int sweep(const PreparedModel& prepared, const RunFlags& run_flags, const std::vector<std::string>& axes,
          const BackendRun& dense_run, const std::string& out_dir, bool quiet, int64_t recall_stride) {
  // A prompt of the testbed grammar can be checked on every point's video (OpenCV): does it still do what it says?
  bool checkable = eval::have_opencv() && !run_flags.prompt.empty();
  if (checkable) {
    try {
      eval::parse_testbed_prompt(run_flags.prompt);
    } catch (const Error&) {
      checkable = false;
    }
  }
  // cxxopts splits vector values at commas: glue "attention.k=1", "2" back into "attention.k=1,2".
  std::vector<std::string> joined;
  for (const std::string& part : axes) {
    if (part.find('=') == std::string::npos && !joined.empty()) joined.back() += "," + part;
    else joined.push_back(part);
  }
  std::vector<std::pair<std::string, std::vector<std::string>>> grid;
  for (const std::string& axis : joined) {
    const size_t equals = axis.find('=');
    LF_CHECK(equals != std::string::npos && axis.rfind("attention.", 0) == 0,
             "--sweep '{}': expected attention.KEY=v1,v2,...", axis);
    std::vector<std::string> values;
    std::stringstream stream(axis.substr(equals + 1));
    for (std::string value; std::getline(stream, value, ',');) values.push_back(value);
    LF_CHECK(!values.empty(), "--sweep '{}': no values", axis);
    grid.emplace_back(axis.substr(0, equals), values);
  }
  // Validate every point before running any.
  std::vector<std::vector<std::string>> points{{}};
  for (const auto& [key, values] : grid) {
    std::vector<std::vector<std::string>> next;
    for (const auto& point : points)
      for (const auto& value : values) {
        next.push_back(point);
        next.back().push_back(key + "=" + value);
      }
    points = next;
  }
  std::vector<AttentionConfig> configs;
  for (const auto& point : points) {
    ConfigSources sources = run_flags.config;
    sources.overrides.insert(sources.overrides.end(), point.begin(), point.end());
    configs.push_back(load_run_config(sources).attention);
  }
  std::string csv;
  for (const auto& [key, values] : grid) csv += key + ",";
  csv += "backend,density,recall,psnr,ssim,latent_rel_l2,chunk_psnr,follows_prompt,dense_follows_prompt,seconds,"
         "dense_seconds,speedup\n";
  const std::string dense_follows =
      checkable ? (eval::check_prompt(dense_run.frames, run_flags.prompt).follows ? "1" : "0") : "";
  eval::ChunkLayout layout;
  layout.video_frames = dense_run.frames_per_chunk;
  layout.latent_frames.assign(dense_run.frames_per_chunk.size(), prepared.run.pipeline.chunk_frames);
  for (size_t i = 0; i < points.size(); ++i) {
    const BackendRun sparse_run = run_backend(prepared, configs[i], {.recall_row_stride = recall_stride});
    const eval::ChunkMetrics total =
        eval::overall_metrics(sparse_run.frames, dense_run.frames, sparse_run.latents, dense_run.latents);
    for (const auto& assignment : points[i]) csv += assignment.substr(assignment.find('=') + 1) + ",";
    std::vector<std::string> chunk_psnr;
    for (const eval::ChunkMetrics& chunk : eval::per_chunk_metrics(sparse_run.frames, dense_run.frames,
                                                                   sparse_run.latents, dense_run.latents, layout))
      chunk_psnr.push_back(fmt::format("{:.2f}", chunk.psnr));
    const std::string follows =
        checkable ? (eval::check_prompt(sparse_run.frames, run_flags.prompt).follows ? "1" : "0") : "";
    csv += fmt::format("{},{:.6f},{},{:.4f},{:.6f},{:.6f},{},{},{},{:.4f},{:.4f},{:.4f}\n", configs[i].backend,
                       sparse_run.mean_density,
                       sparse_run.mean_recall >= 0 ? fmt::format("{:.6f}", sparse_run.mean_recall) : "",
                       total.psnr, total.ssim, total.latent_rel_l2, fmt::join(chunk_psnr, ";"), follows,
                       dense_follows, sparse_run.seconds, dense_run.seconds, dense_run.seconds / sparse_run.seconds);
    if (!quiet) fmt::print(stderr, "  sweep {}/{}: {} -> PSNR {:.2f} dB, SSIM {:.4f}\n", i + 1, points.size(),
                           fmt::join(points[i], " "), total.psnr, total.ssim);
  }
  write_file_atomic(out_dir + "/sweep.csv", csv);
  if (!quiet) fmt::print(stderr, "wrote {}/sweep.csv ({} points)\n", out_dir, points.size());
  return 0;
}

void write_video(const std::string& path, const std::vector<Frame>& frames, int fps, int crf) {
  VideoWriter video(VideoWriter::Options{path, frames.front().width, frames.front().height, fps, crf, "medium"});
  for (const Frame& frame : frames) video.write(frame);
  video.finish();
}

}  // namespace

int compare_dense(int argc, char** argv) {
  cxxopts::Options flags("lightforce compare-dense",
                         "Run dense and a sparse backend with the same seed and noise; compare videos and speed.");
  add_run_flags(flags);
  flags.add_options("report")
      ("out-dir", "directory for the videos and the report", cxxopts::value<std::string>()->default_value("compare-dense"))
      ("no-videos", "skip the MP4s (metrics only)")
      ("recall-row-stride", "sweep mode: also measure attention recall on every N-th query row (1 = exact, 0 = "
       "off; timings then include it)", cxxopts::value<int64_t>()->default_value("0"))
      ("sweep", "sweep mode: attention.KEY=v1,v2,... (repeatable; the grid of all combinations) -> sweep.csv",
       cxxopts::value<std::vector<std::string>>())
      ("no-teacher-forced", "skip the teacher-forced pass (each sparse chunk from the dense run's history)")
      ("drift-db", "flag the first chunk whose free-running PSNR is this many dB below its teacher-forced PSNR",
       cxxopts::value<double>()->default_value("3"))
      ("json", "print the report JSON on stdout")
      ("q,quiet", "no progress")
      ("h,help", "show this help");
  const auto result = parse_flags(flags, argc, argv);
  if (result.count("help")) {
    fmt::print("{}", flags.help());
    return 0;
  }
  const RunFlags run_flags = read_run_flags(result);
  LF_CHECK(!run_flags.config.attention.empty(), "compare-dense needs --attention (the backend to compare with dense)");
  const bool quiet = result.count("quiet"), videos = !result.count("no-videos") && LF_WITH_FFMPEG;
  const std::string out_dir = result["out-dir"].as<std::string>();
  const double drift_db = result["drift-db"].as<double>();
  LF_CHECK(std::isfinite(drift_db) && drift_db >= 0, "--drift-db {}: expected a finite number of dB >= 0", drift_db);
  std::filesystem::create_directories(out_dir);
  check_output_writable(out_dir + "/compare-dense.json", "--out-dir");
  const PreparedModel prepared = prepare_model(run_flags, quiet);
  const RunConfig& run = prepared.run;
  LF_CHECK(!attention_backend_entry(run.attention.backend).exact_dense,
           "compare-dense: --attention is dense already; choose a sparse backend");

  AttentionConfig dense = run.attention;
  dense.backend = dense_attention_backend().name;
  const BackendRun dense_run = run_backend(prepared, dense, {.quiet = quiet, .label = "dense "});
  if (result.count("sweep"))
    return sweep(prepared, run_flags, result["sweep"].as<std::vector<std::string>>(), dense_run, out_dir, quiet,
                 result["recall-row-stride"].as<int64_t>());
  // The timed sparse run and, separately, one that also runs dense attention at every call to measure the
  // attention output's error (it would distort the timing). Same seed and noise: the same trajectory.
  const BackendRun sparse_run = run_backend(prepared, run.attention, {.quiet = quiet, .label = run.attention.backend.c_str()});
  const BackendRun error_run = run_backend(prepared, run.attention, {.measure_output_error = true});
  // Teacher-forced: every chunk from the dense run's own history, so its error is its own (no compounding).
  std::optional<BackendRun> forced_run;
  if (!result.count("no-teacher-forced"))
    forced_run = run_backend(prepared, run.attention,
                             {.quiet = quiet, .label = "teacher-forced", .teacher_latents = &dense_run.latents});

  eval::ChunkLayout layout;
  layout.video_frames = dense_run.frames_per_chunk;
  layout.latent_frames.assign(dense_run.frames_per_chunk.size(), run.pipeline.chunk_frames);
  eval::CompareDenseReport report;
  report.chunks = eval::per_chunk_metrics(sparse_run.frames, dense_run.frames, sparse_run.latents, dense_run.latents,
                                          layout);
  report.total = eval::overall_metrics(sparse_run.frames, dense_run.frames, sparse_run.latents, dense_run.latents);
  report.drift_db = drift_db;
  if (forced_run)
    report.teacher_forced_chunks = eval::per_chunk_metrics(forced_run->frames, dense_run.frames, forced_run->latents,
                                                           dense_run.latents, layout);
  auto summarise = [&](const BackendRun& r, const std::string& name) {
    eval::RunSummary summary;
    summary.backend = name;
    summary.seconds = r.seconds;
    summary.attention_seconds = r.attention_seconds;
    summary.temporal_flicker = eval::temporal_flicker(r.frames);
    summary.mean_abs_frame_difference = eval::mean_abs_frame_difference(r.frames);
    if (eval::have_opencv()) summary.warping_error = eval::warping_error(r.frames);
    return summary;
  };
  report.dense = summarise(dense_run, "dense");
  report.sparse = summarise(sparse_run, run.attention.backend);
  report.extra = {{"commit", kGitCommit},       {"model", run.model.name},
                  {"device", device_name(prepared.device)}, {"seed", run.pipeline.seed},
                  {"latent_frames", run.pipeline.frames},  {"attention_config", to_yaml(run)}};
  nlohmann::json output_errors = nlohmann::json::array();
  for (const auto& [chunk, entry] : error_run.output_error_by_chunk)
    output_errors.push_back({{"chunk", chunk}, {"attention_output_rel_l2", entry.first / double(entry.second)},
                             {"calls", entry.second}});
  report.extra["attention_output_rel_l2"] = output_errors;
  std::vector<std::string> written = eval::write_compare_dense_report(report, out_dir);
  if (videos) {
    write_video(out_dir + "/dense.mp4", dense_run.frames, run.output.fps, run.output.crf);
    write_video(out_dir + "/sparse.mp4", sparse_run.frames, run.output.fps, run.output.crf);
    write_video(out_dir + "/side_by_side.mp4", eval::side_by_side(dense_run.frames, sparse_run.frames),
                run.output.fps, run.output.crf);
    for (const char* name : {"dense.mp4", "sparse.mp4", "side_by_side.mp4"}) written.push_back(out_dir + "/" + name);
  }
  const auto speedup = eval::speedup(report);
  if (!quiet)
    fmt::print(stderr, "{} vs dense: PSNR {:.2f} dB, SSIM {:.4f}, latent rel-L2 {:.4f}, speedup {}\nwrote {}\n",
               run.attention.backend, report.total.psnr, report.total.ssim, report.total.latent_rel_l2,
               speedup ? fmt::format("{:.2f}x", *speedup) : "n/a", fmt::join(written, ", "));
  if (!quiet && forced_run) {
    std::vector<std::string> psnr;
    for (const eval::ChunkMetrics& chunk : report.teacher_forced_chunks) psnr.push_back(fmt::format("{:.2f}", chunk.psnr));
    const std::optional<int64_t> drift = eval::first_drift_chunk(report.chunks, report.teacher_forced_chunks, drift_db);
    fmt::print(stderr, "teacher-forced PSNR per chunk: {} dB; {}\n", fmt::join(psnr, ", "),
               drift ? fmt::format("the rollout drifts at chunk {} (> {} dB below teacher-forced)", *drift, drift_db)
                     : std::string("no drift"));
  }
  if (result.count("json")) fmt::print("{}\n", eval::compare_dense_json(report).dump(2));
  return 0;
}

}  // namespace lf::cmd
