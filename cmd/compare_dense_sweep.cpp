#include "compare_dense_sweep.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>

#include "attention/backend_registry.h"
#include "commands.h"
#include "core/embedded.h"
#include "core/error.h"
#include "eval/html_page.h"
#include "eval/metrics.h"
#include "eval/prompt_following.h"
#include "eval/report.h"
#include "io/atomic_file.h"
#include "machine_output.h"

namespace lf::cmd {

namespace {

// One point's measurements, kept until every point has run: the rank needs them all.
struct SweepPoint {
  std::vector<std::string> assignments;  // "attention.KEY=value" per axis
  std::string backend;
  double density = 0;
  double recall = -1;  // -1: not measured
  eval::ChunkMetrics total;
  std::vector<eval::ChunkMetrics> chunks;
  eval::DifferingChunksMean mean;
  std::optional<bool> follows;
  double seconds = 0;
  double speedup = 0;  // 0 when unknown (a saved reference's time was measured elsewhere)
  int64_t rank = 0;    // 1 = closest to the baseline
};

// Best first: points identical to the baseline everywhere (nothing lost), then by the differing-chunk PSNR, highest
// first; a point without a number last. Ties keep the grid's order.
void assign_ranks(std::vector<SweepPoint>& points) {
  std::vector<size_t> order(points.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  constexpr double kBest = std::numeric_limits<double>::infinity();
  auto key = [&](size_t i) {
    const eval::DifferingChunksMean& mean = points[i].mean;
    if (mean.all_identical()) return kBest;
    return std::isfinite(mean.psnr) ? mean.psnr : -kBest;
  };
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return key(a) > key(b); });
  for (size_t place = 0; place < order.size(); ++place) points[order[place]].rank = int64_t(place) + 1;
}

std::string value_of(const std::string& assignment) { return assignment.substr(assignment.find('=') + 1); }

std::string optional_number(double value, int decimals) {
  return std::isfinite(value) ? fmt::format("{:.{}f}", value, decimals) : std::string();
}

std::string chunk_psnr_list(const std::vector<eval::ChunkMetrics>& chunks, const char* separator) {
  std::vector<std::string> cells;
  for (const eval::ChunkMetrics& chunk : chunks) cells.push_back(eval::chunk_psnr_text(chunk));
  return fmt::format("{}", fmt::join(cells, separator));
}

const char* flag_text(const std::optional<bool>& value) { return value ? (*value ? "1" : "0") : ""; }

// The CSV keeps its earlier columns as they were (scripts read them by name); the differing-chunk means and the rank
// come last.
std::string sweep_csv(const SweepGrid& grid, const std::vector<SweepPoint>& points,
                      const std::optional<bool>& dense_follows, double baseline_seconds) {
  std::string csv;
  for (const auto& [key, values] : grid.axes) csv += key + ",";
  csv +=
      "backend,density,recall,psnr,ssim,latent_rel_l2,chunk_psnr,follows_prompt,dense_follows_prompt,seconds,"
      "dense_seconds,speedup,differing_chunks,chunks,differing_psnr,differing_ssim,differing_latent_rel_l2,rank\n";
  for (const SweepPoint& point : points) {
    for (const std::string& assignment : point.assignments) csv += value_of(assignment) + ",";
    csv += fmt::format("{},{:.6f},{},{:.4f},{:.6f},{:.6f},{},{},{},{:.4f},{:.4f},{},{},{},{},{},{},{}\n", point.backend,
                       point.density, point.recall >= 0 ? fmt::format("{:.6f}", point.recall) : "",
                       eval::capped_psnr(point.total.psnr), point.total.ssim, point.total.latent_rel_l2,
                       chunk_psnr_list(point.chunks, ";"), flag_text(point.follows), flag_text(dense_follows),
                       point.seconds, baseline_seconds, point.speedup > 0 ? fmt::format("{:.4f}", point.speedup) : "",
                       point.mean.differing_chunks, point.mean.chunks, optional_number(point.mean.psnr, 4),
                       optional_number(point.mean.ssim, 6), optional_number(point.mean.latent_rel_l2, 6), point.rank);
  }
  return csv;
}

nlohmann::json point_json(const SweepPoint& point) {
  auto or_null = [](bool known, double value) { return known ? nlohmann::json(value) : nlohmann::json(nullptr); };
  nlohmann::json settings = nlohmann::json::object();
  for (const std::string& assignment : point.assignments)
    settings[assignment.substr(0, assignment.find('='))] = value_of(assignment);
  std::vector<double> chunk_psnr;
  std::vector<bool> chunk_identical;
  for (const eval::ChunkMetrics& chunk : point.chunks) {
    chunk_psnr.push_back(eval::capped_psnr(chunk.psnr));
    chunk_identical.push_back(eval::chunk_identical(chunk));
  }
  return {{"settings", settings},
          {"backend", point.backend},
          {"density", point.density},
          {"recall", or_null(point.recall >= 0, point.recall)},
          {"psnr", eval::capped_psnr(point.total.psnr)},
          {"ssim", point.total.ssim},
          {"latent_rel_l2", or_null(std::isfinite(point.total.latent_rel_l2), point.total.latent_rel_l2)},
          {"chunk_psnr", chunk_psnr},
          {"chunk_identical", chunk_identical},
          {"differing_chunks_mean", eval::differing_chunks_json(point.mean)},
          {"rank", point.rank},
          {"follows_prompt", point.follows ? nlohmann::json(*point.follows) : nlohmann::json(nullptr)},
          {"seconds", point.seconds},
          {"speedup", or_null(point.speedup > 0, point.speedup)}};
}

// The points best first, the differing-chunk numbers before the all-frames PSNR.
eval::ReportTable ranked_table(const std::vector<SweepPoint>& points, const std::string& baseline_name) {
  eval::ReportTable table{{"rank", "settings", "backend", "density", "recall", "PSNR dB, differing chunks",
                           "differing chunks", "SSIM, differing chunks", "latent rel-L2, differing chunks",
                           "PSNR dB, all frames", "PSNR per chunk", "follows prompt", "seconds", "speedup"},
                          {}};
  std::vector<const SweepPoint*> ranked;
  for (const SweepPoint& point : points) ranked.push_back(&point);
  std::sort(ranked.begin(), ranked.end(), [](const SweepPoint* a, const SweepPoint* b) { return a->rank < b->rank; });
  for (const SweepPoint* point : ranked) {
    const bool identical = point->mean.all_identical();
    table.rows.push_back(
        {std::to_string(point->rank), fmt::format("{}", fmt::join(point->assignments, " ")), point->backend,
         fmt::format("{:.3f}", point->density), point->recall >= 0 ? fmt::format("{:.3f}", point->recall) : "n/a",
         identical ? "identical to " + baseline_name : optional_number(point->mean.psnr, 2),
         fmt::format("{} of {}", point->mean.differing_chunks, point->mean.chunks),
         identical ? "" : optional_number(point->mean.ssim, 4),
         identical ? "" : optional_number(point->mean.latent_rel_l2, 4),
         fmt::format("{:.2f}", eval::capped_psnr(point->total.psnr)), chunk_psnr_list(point->chunks, " / "),
         point->follows ? (*point->follows ? "yes" : "no") : "n/a", fmt::format("{:.3f}", point->seconds),
         point->speedup > 0 ? fmt::format("{:.3f}x", point->speedup) : "n/a"});
  }
  return table;
}

eval::LinePlot sweep_psnr_plot(const std::vector<SweepPoint>& points, const std::string& baseline_name) {
  eval::LinePlot plot;
  plot.title = fmt::format("PSNR per chunk against {}, one line per point", baseline_name);
  plot.x_label = "chunk";
  plot.y_label = "PSNR (dB)";
  plot.pinned_label = "identical to " + baseline_name;
  for (const eval::ChunkMetrics& chunk : points.front().chunks) plot.x.push_back(double(chunk.chunk));
  for (const SweepPoint& point : points) {
    eval::PlotSeries series;
    series.name = fmt::format("#{} {}", point.rank, fmt::join(point.assignments, " "));
    for (const eval::ChunkMetrics& chunk : point.chunks) {
      series.values.push_back(eval::capped_psnr(chunk.psnr));
      series.pinned_top.push_back(eval::chunk_identical(chunk));
    }
    plot.series.push_back(series);
  }
  return plot;
}

std::string sweep_html(const SweepGrid& grid, const std::vector<SweepPoint>& points, const nlohmann::json& run,
                       const std::optional<bool>& dense_follows, double baseline_seconds,
                       const std::string& baseline_name) {
  std::vector<std::string> axes;
  for (const auto& [key, values] : grid.axes) axes.push_back(fmt::format("{} = {}", key, fmt::join(values, ", ")));
  std::set<std::string> backends;
  for (const SweepPoint& point : points) backends.insert(point.backend);
  eval::HtmlPage page(fmt::format("compare-dense sweep: {} against {}", fmt::join(backends, ", "), baseline_name));
  page.paragraph(
      fmt::format("Axes: {}. {} points, ranked by PSNR averaged over the chunks that differ from {} (a "
                  "chunk identical to {} is left out of that mean: it says nothing about the setting); "
                  "points identical everywhere rank first.",
                  fmt::join(axes, "; "), points.size(), baseline_name, baseline_name));
  page.paragraph(fmt::format("Baseline: {} s; it {}.", fmt::format("{:.3f}", baseline_seconds),
                             dense_follows ? (*dense_follows ? "follows the prompt" : "does not follow the prompt")
                                           : "was not checked against the prompt"));
  page.heading("Points, best first");
  page.table(ranked_table(points, baseline_name));
  page.heading("Plot");
  if (eval::have_opencv())
    page.image(eval::line_plot_png(sweep_psnr_plot(points, baseline_name)), "sweep-psnr.png");
  else
    page.paragraph("Plot skipped: this build has no OpenCV.");
  page.heading("Run");
  page.definitions(eval::json_entries(run));
  page.heading("Metric definitions");
  const auto variants = eval::metric_variants();
  page.definitions({variants.begin(), variants.end()});
  return page.render();
}

}  // namespace

SweepGrid sweep_grid(const RunFlags& run_flags, const std::vector<std::string>& flag_values) {
  // cxxopts splits vector values at commas: glue "attention.k=1", "2" back into "attention.k=1,2".
  std::vector<std::string> joined;
  for (const std::string& part : flag_values) {
    if (part.find('=') == std::string::npos && !joined.empty())
      joined.back() += "," + part;
    else
      joined.push_back(part);
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

int sweep(const PreparedModel& prepared, const RunFlags& run_flags, const SweepGrid& grid,
          const BackendRun& baseline_run, const SweepOptions& options) {
  // A prompt of the testbed grammar can be checked on every point's video (OpenCV): does it still do what it says?
  bool checkable = eval::have_opencv() && !run_flags.prompt.empty();
  if (checkable) {
    try {
      eval::parse_testbed_prompt(run_flags.prompt);
    } catch (const Error&) {
      checkable = false;
    }
  }
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
  eval::ChunkLayout layout;
  layout.video_frames = baseline_run.frames_per_chunk;
  layout.latent_frames.assign(baseline_run.frames_per_chunk.size(), prepared.run.pipeline.chunk_frames);
  std::vector<SweepPoint> points;
  for (size_t i = 0; i < grid.points.size(); ++i) {
    const BackendRun sparse_run =
        run_backend(prepared, grid.configs[i], {.recall_row_stride = options.recall_row_stride});
    SweepPoint point;
    point.assignments = grid.points[i];
    point.backend = grid.configs[i].backend;
    point.density = sparse_run.mean_density;
    point.recall = sparse_run.mean_recall;
    point.total =
        eval::overall_metrics(sparse_run.frames, baseline_run.frames, sparse_run.latents, baseline_run.latents);
    point.chunks = eval::per_chunk_metrics(sparse_run.frames, baseline_run.frames, sparse_run.latents,
                                           baseline_run.latents, layout);
    point.mean = eval::differing_chunks_mean(point.chunks);
    if (checkable) point.follows = eval::check_prompt(sparse_run.frames, run_flags.prompt).follows;
    point.seconds = sparse_run.seconds;
    point.speedup =
        sparse_run.seconds > 0 && baseline_run.seconds > 0 ? baseline_run.seconds / sparse_run.seconds : 0.0;
    if (!options.quiet)
      fmt::print(stderr, "  sweep {}/{}: {} -> {}\n", i + 1, grid.points.size(), fmt::join(grid.points[i], " "),
                 point.mean.all_identical()
                     ? eval::differing_chunks_phrase(point.mean, options.baseline_name)
                     : fmt::format("PSNR {:.2f} dB, SSIM {:.4f} ({})", point.mean.psnr, point.mean.ssim,
                                   eval::differing_chunks_phrase(point.mean, options.baseline_name)));
    points.push_back(std::move(point));
  }
  assign_ranks(points);
  const nlohmann::json run = versioned({{"commit", kGitCommit}}, run_provenance(run_flags, prepared.run));
  // Encoded before anything is written: a failure leaves no half of the outputs behind.
  const std::string csv = sweep_csv(grid, points, dense_follows, baseline_run.seconds);
  const std::string html =
      options.html ? sweep_html(grid, points, run, dense_follows, baseline_run.seconds, options.baseline_name)
                   : std::string();
  write_file_atomic(options.out_dir + "/sweep.csv", csv);
  if (options.html) write_file_atomic(options.out_dir + "/sweep.html", html);
  if (!options.quiet)
    fmt::print(stderr, "wrote {}/sweep.csv{} ({} points, ranked by PSNR over the chunks that differ from {})\n",
               options.out_dir, options.html ? ", sweep.html" : "", grid.points.size(), options.baseline_name);
  if (options.json) {
    nlohmann::json axes = nlohmann::json::object();
    for (const auto& [key, values] : grid.axes) axes[key] = values;
    nlohmann::json point_list = nlohmann::json::array();
    for (const SweepPoint& point : points) point_list.push_back(point_json(point));
    nlohmann::json document = {
        {"axes", axes},
        {"points", point_list},
        {"baseline_seconds", baseline_run.seconds},
        {"baseline_follows_prompt", dense_follows ? nlohmann::json(*dense_follows) : nlohmann::json(nullptr)},
        {"sweep_csv", options.out_dir + "/sweep.csv"},
        {"commit", kGitCommit}};
    if (options.html) document["sweep_html"] = options.out_dir + "/sweep.html";
    fmt::print("{}\n", versioned(document, run_provenance(run_flags, prepared.run)).dump(2));
  }
  return 0;
}

}  // namespace lf::cmd
