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
#include "eval/prompt_following.h"
#include "gates.h"
#include "machine_output.h"
#include "reference_run.h"
#include "run_setup.h"

namespace lf::cmd {

namespace {

// The sweep's grid: one axis per key, every combination a point, each point's attention config validated.
struct SweepGrid {
  std::vector<std::pair<std::string, std::vector<std::string>>> axes;
  std::vector<std::vector<std::string>> points;  // "attention.KEY=value" per axis
  std::vector<AttentionConfig> configs;          // one per point
};

// Parsed and validated before the baseline runs, so a typo costs nothing.
SweepGrid sweep_grid(const RunFlags& run_flags, const std::vector<std::string>& flag_values) {
  // cxxopts splits vector values at commas: glue "attention.k=1", "2" back into "attention.k=1,2".
  std::vector<std::string> joined;
  for (const std::string& part : flag_values) {
    if (part.find('=') == std::string::npos && !joined.empty()) joined.back() += "," + part;
    else joined.push_back(part);
  }
  SweepGrid grid;
  std::set<std::string> keys;
  for (const std::string& axis : joined) {
    const size_t equals = axis.find('=');
    LF_CHECK(equals != std::string::npos && axis.rfind("attention.", 0) == 0,
             "--sweep '{}': expected attention.KEY=v1,v2,...", axis);
    const std::string key = axis.substr(0, equals);
    // Two axes of one key would make duplicate CSV columns and points that contradict each other.
    LF_CHECK(keys.insert(key).second, "--sweep: {} given twice: give each key once, with all its values ({}=a,b,c)",
             key, key);
    std::vector<std::string> values;
    std::stringstream stream(axis.substr(equals + 1));
    for (std::string value; std::getline(stream, value, ',');) values.push_back(value);
    LF_CHECK(!values.empty(), "--sweep '{}': no values", axis);
    grid.axes.emplace_back(key, values);
  }
  grid.points = {{}};
  for (const auto& [key, values] : grid.axes) {
    std::vector<std::vector<std::string>> next;
    for (const auto& point : grid.points)
      for (const auto& value : values) {
        next.push_back(point);
        next.back().push_back(key + "=" + value);
      }
    grid.points = next;
  }
  for (const auto& point : grid.points) {
    ConfigSources sources = run_flags.config;
    sources.overrides.insert(sources.overrides.end(), point.begin(), point.end());
    grid.configs.push_back(load_run_config(sources).attention);
    attention_backend_entry(grid.configs.back().backend);  // an unknown backend fails now, not at its point
  }
  return grid;
}

// Every combination of the swept attention values against one shared baseline run: one CSV row per point, and
// with --json the same points as a JSON document on stdout.
int sweep(const PreparedModel& prepared, const RunFlags& run_flags, const SweepGrid& grid,
          const BackendRun& baseline_run, const std::string& out_dir, bool quiet, bool json, int64_t recall_stride) {
  // A prompt of the testbed grammar can be checked on every point's video (OpenCV): does it still do what it says?
  bool checkable = eval::have_opencv() && !run_flags.prompt.empty();
  if (checkable) {
    try {
      eval::parse_testbed_prompt(run_flags.prompt);
    } catch (const Error&) {
      checkable = false;
    }
  }
  std::string csv;
  for (const auto& [key, values] : grid.axes) csv += key + ",";
  csv += "backend,density,recall,psnr,ssim,latent_rel_l2,chunk_psnr,follows_prompt,dense_follows_prompt,seconds,"
         "dense_seconds,speedup\n";
  std::optional<bool> dense_follows;
  if (checkable) {
    // A video too short for the check (fewer frames than it needs to see motion) leaves the columns empty rather
    // than failing the whole sweep after the baseline ran.
    try {
      dense_follows = eval::check_prompt(baseline_run.frames, run_flags.prompt).follows;
    } catch (const Error&) {
      checkable = false;
    }
  }
  auto flag_text = [](const std::optional<bool>& value) { return value ? (*value ? "1" : "0") : ""; };
  eval::ChunkLayout layout;
  layout.video_frames = baseline_run.frames_per_chunk;
  layout.latent_frames.assign(baseline_run.frames_per_chunk.size(), prepared.run.pipeline.chunk_frames);
  nlohmann::json points = nlohmann::json::array();
  for (size_t i = 0; i < grid.points.size(); ++i) {
    const BackendRun sparse_run = run_backend(prepared, grid.configs[i], {.recall_row_stride = recall_stride});
    const eval::ChunkMetrics total =
        eval::overall_metrics(sparse_run.frames, baseline_run.frames, sparse_run.latents, baseline_run.latents);
    nlohmann::json point = nlohmann::json::object();
    for (const auto& assignment : grid.points[i]) {
      const size_t equals = assignment.find('=');
      csv += assignment.substr(equals + 1) + ",";
      point["settings"][assignment.substr(0, equals)] = assignment.substr(equals + 1);
    }
    std::vector<std::string> chunk_psnr_text;
    std::vector<double> chunk_psnr;
    for (const eval::ChunkMetrics& chunk : eval::per_chunk_metrics(sparse_run.frames, baseline_run.frames,
                                                                   sparse_run.latents, baseline_run.latents, layout)) {
      chunk_psnr.push_back(eval::capped_psnr(chunk.psnr));
      chunk_psnr_text.push_back(fmt::format("{:.2f}", chunk.psnr));
    }
    std::optional<bool> follows;
    if (checkable) follows = eval::check_prompt(sparse_run.frames, run_flags.prompt).follows;
    // 0 when unknown (a saved reference's time was measured elsewhere).
    const double speedup =
        sparse_run.seconds > 0 && baseline_run.seconds > 0 ? baseline_run.seconds / sparse_run.seconds : 0.0;
    csv += fmt::format("{},{:.6f},{},{:.4f},{:.6f},{:.6f},{},{},{},{:.4f},{:.4f},{}\n", grid.configs[i].backend,
                       sparse_run.mean_density,
                       sparse_run.mean_recall >= 0 ? fmt::format("{:.6f}", sparse_run.mean_recall) : "",
                       total.psnr, total.ssim, total.latent_rel_l2, fmt::join(chunk_psnr_text, ";"), flag_text(follows),
                       flag_text(dense_follows), sparse_run.seconds, baseline_run.seconds,
                       speedup > 0 ? fmt::format("{:.4f}", speedup) : "");
    auto optional_json = [](const auto& value) { return value ? nlohmann::json(*value) : nlohmann::json(nullptr); };
    point.update({{"backend", grid.configs[i].backend},
                  {"density", sparse_run.mean_density},
                  {"recall", sparse_run.mean_recall >= 0 ? nlohmann::json(sparse_run.mean_recall) : nullptr},
                  {"psnr", eval::capped_psnr(total.psnr)},
                  {"ssim", total.ssim},
                  {"latent_rel_l2", total.latent_rel_l2},
                  {"chunk_psnr", chunk_psnr},
                  {"follows_prompt", optional_json(follows)},
                  {"seconds", sparse_run.seconds},
                  {"speedup", speedup > 0 ? nlohmann::json(speedup) : nlohmann::json(nullptr)}});
    points.push_back(point);
    if (!quiet) fmt::print(stderr, "  sweep {}/{}: {} -> PSNR {:.2f} dB, SSIM {:.4f}\n", i + 1, grid.points.size(),
                           fmt::join(grid.points[i], " "), total.psnr, total.ssim);
  }
  write_file_atomic(out_dir + "/sweep.csv", csv);
  if (!quiet) fmt::print(stderr, "wrote {}/sweep.csv ({} points)\n", out_dir, grid.points.size());
  if (json) {
    nlohmann::json axes = nlohmann::json::object();
    for (const auto& [key, values] : grid.axes) axes[key] = values;
    const nlohmann::json document = {{"axes", axes},
                                     {"points", points},
                                     {"baseline_seconds", baseline_run.seconds},
                                     {"baseline_follows_prompt", dense_follows ? nlohmann::json(*dense_follows)
                                                                               : nlohmann::json(nullptr)},
                                     {"sweep_csv", out_dir + "/sweep.csv"},
                                     {"commit", kGitCommit}};
    fmt::print("{}\n", versioned(document, run_provenance(run_flags, prepared.run)).dump(2));
  }
  return 0;
}

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
  LF_USAGE_CHECK(!run_flags.config.attention.empty() || !reference_dir.empty() || !save_reference_dir.empty(),
                 "compare-dense needs --attention (the backend to compare with dense)");
  LF_USAGE_CHECK(save_reference_dir.empty() || (reference_dir.empty() && !sweeping && thresholds.empty()),
                 "--save-reference only saves a run: it takes no --reference, --sweep, --fail-below or --fail-above");
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
  if (grid)
    return sweep(prepared, run_flags, *grid, baseline_run, out_dir, quiet, json,
                 result["recall-row-stride"].as<int64_t>());
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
  const std::string baseline_name =
      against_reference ? "reference (" + reference_description.value("attention", std::string("?")) + ")" : "dense";
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
  // The report and videos are written whether or not a gate fails: they are the evidence a CI log points to.
  std::vector<std::string> written = eval::write_compare_dense_report(report, out_dir);
  if (result.count("no-videos") == 0 && LF_WITH_FFMPEG) {
    const std::string baseline_video = against_reference ? "reference.mp4" : "dense.mp4";
    const std::string run_video = against_reference ? "run.mp4" : "sparse.mp4";
    write_video(out_dir + "/" + baseline_video, baseline_run.frames, run.output.fps, run.output.crf);
    write_video(out_dir + "/" + run_video, sparse_run.frames, run.output.fps, run.output.crf);
    write_video(out_dir + "/side_by_side.mp4", eval::side_by_side(baseline_run.frames, sparse_run.frames),
                run.output.fps, run.output.crf);
    for (const std::string& name : {baseline_video, run_video, std::string("side_by_side.mp4")})
      written.push_back(out_dir + "/" + name);
  }
  const auto speedup = eval::speedup(report);
  if (!quiet)
    fmt::print(stderr, "{} vs {}: PSNR {:.2f} dB, SSIM {:.4f}, latent rel-L2 {:.4f}, speedup {}\nwrote {}\n",
               run.attention.backend, baseline_name, report.total.psnr, report.total.ssim, report.total.latent_rel_l2,
               speedup ? fmt::format("{:.2f}x", *speedup) : "n/a", fmt::join(written, ", "));
  if (!quiet && forced_run) {
    std::vector<std::string> psnr;
    for (const eval::ChunkMetrics& chunk : report.teacher_forced_chunks) psnr.push_back(fmt::format("{:.2f}", chunk.psnr));
    const std::optional<int64_t> drift = eval::first_drift_chunk(report.chunks, report.teacher_forced_chunks, drift_db);
    fmt::print(stderr, "teacher-forced PSNR per chunk: {} dB; {}\n", fmt::join(psnr, ", "),
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
