// lightforce profile-sparsity: one generation with attention statistics: per chunk / step / layer / head density,
// kept attention mass (recall), planner and kernel time; JSON + CSV + mask heatmaps (PNG) + a Markdown summary.
#include <cxxopts.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <sstream>

#include "attention/attention_backend.h"
#include "commands.h"
#include "core/embedded.h"
#include "core/error.h"
#include "eval/html_page.h"
#include "eval/metrics.h"
#include "eval/report.h"
#include "io/atomic_file.h"
#include "machine_output.h"
#include "pipeline/ar_pipeline.h"
#include "report_kinds.h"
#include "run_setup.h"
#if LF_WITH_OPENCV
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#endif

namespace lf::cmd {

namespace {

double mean(const std::vector<double>& values) {
  double sum = 0;
  for (double v : values) sum += v;
  return values.empty() ? 0.0 : sum / double(values.size());
}

// Selected blocks white on black, one pixel row per query block, frame boundaries of the keys in grey.
std::string mask_png(const BlockMask& mask, int64_t head) {
#if LF_WITH_OPENCV
  const BlockGeometry& g = mask.geometry;
  const int rows = int(g.query_blocks()), cols = int(g.key_blocks());
  const int scale = std::max(1, 480 / std::max(rows, cols));
  cv::Mat image(rows * scale, cols * scale, CV_8UC3, cv::Scalar(0, 0, 0));
  for (int r = 0; r < rows; ++r)
    for (int32_t i = mask.row_offsets[size_t(head * rows + r)]; i < mask.row_offsets[size_t(head * rows + r) + 1]; ++i)
      cv::rectangle(image, cv::Rect(mask.key_indices[size_t(i)] * scale, r * scale, scale, scale),
                    cv::Scalar(255, 255, 255), cv::FILLED);
  for (int64_t f = 1; f < g.key_frames; ++f)
    cv::line(image, cv::Point(int(f * g.blocks_per_frame()) * scale, 0),
             cv::Point(int(f * g.blocks_per_frame()) * scale, rows * scale - 1), cv::Scalar(96, 96, 96), 1);
  std::vector<uchar> bytes;
  cv::imencode(".png", image, bytes);
  return std::string(bytes.begin(), bytes.end());
#else
  (void)mask;
  (void)head;
  return {};
#endif
}

// The per-chunk summary rows as a table, for the Markdown and the HTML page alike.
eval::ReportTable chunk_table(const nlohmann::json& chunk_rows) {
  eval::ReportTable table{{"chunk", "target sparsity", "density", "recall", "attention ms", "planner ms"}, {}};
  for (const auto& row : chunk_rows)
    table.rows.push_back({std::to_string(row["chunk"].get<int64_t>()),
                          fmt::format("{:.4f}", row["target_sparsity"].get<double>()),
                          fmt::format("{:.4f}", row["density"].get<double>()),
                          row["recall"].is_null() ? "-" : fmt::format("{:.4f}", row["recall"].get<double>()),
                          fmt::format("{:.1f}", row["attention_ms"].get<double>()),
                          fmt::format("{:.1f}", row["planner_ms"].get<double>())});
  return table;
}

// Density and recall per chunk on one axis (both are fractions of the visible keys' blocks / softmax mass).
eval::LinePlot density_plot(const nlohmann::json& chunk_rows, const std::string& backend) {
  eval::LinePlot plot;
  plot.title = fmt::format("{}: density and recall per chunk", backend);
  plot.x_label = "chunk";
  plot.y_label = "fraction";
  eval::PlotSeries density{"density", {}, {}}, recall{"recall", {}, {}};
  for (const auto& row : chunk_rows) {
    plot.x.push_back(double(row["chunk"].get<int64_t>()));
    density.values.push_back(row["density"].get<double>());
    recall.values.push_back(row["recall"].is_null() ? NAN : row["recall"].get<double>());
  }
  plot.series = {density, recall};
  return plot;
}

std::string profile_html(const nlohmann::json& summary, const std::string& header,
                         const std::vector<std::pair<std::string, std::string>>& heatmaps) {
  eval::HtmlPage page(fmt::format("Sparsity profile: {} on {}", summary["attention"].get<std::string>(),
                                  summary["model"].get<std::string>()));
  page.paragraph(header);
  page.heading("Per chunk (means over steps, layers and heads; times summed)");
  page.table(chunk_table(summary["chunks"]));
  page.heading("Plot");
  if (eval::have_opencv() && !summary["chunks"].empty())
    page.image(eval::line_plot_png(density_plot(summary["chunks"], summary["attention"].get<std::string>())),
               "density-recall.png");
  else page.paragraph("Plot skipped: this build has no OpenCV, or no chunk was profiled.");
  page.heading("Mask heatmaps");
  page.paragraph("Selected key blocks white on black, one row per query block, frame boundaries of the keys in grey; "
                 "named mask_c<chunk>_s<step>_l<layer>_h<head>.");
  if (heatmaps.empty())
    page.paragraph("No heatmaps: this build has no OpenCV, or no kept mask matched --heatmap-chunks / -layers / "
                   "-heads.");
  for (const auto& [name, png] : heatmaps) page.image(png, name);
  page.heading("Run");
  page.definitions(eval::json_entries(summary, {"chunks", "heatmaps"}));
  return page.render();
}

}  // namespace

int profile_sparsity(int argc, char** argv) {
  cxxopts::Options flags("lightforce profile-sparsity",
                         "Generate with attention statistics: density, recall, timings per chunk/step/layer/head.");
  add_run_flags(flags);
  flags.add_options("report")
      ("out-dir", "directory for sparsity.json, sparsity.csv, summary.md and mask heatmaps",
       cxxopts::value<std::string>()->default_value("sparsity-profile"))
      ("recall-row-stride", "measure recall on every N-th query row (1 = exact)",
       cxxopts::value<int64_t>()->default_value("1"))
      ("no-recall", "skip the recall measurement (it costs a dense attention per call)")
      ("heatmap-layers", "layers whose masks are drawn (comma separated; default first and last)",
       cxxopts::value<std::string>())
      ("heatmap-chunks", "chunks whose masks are drawn (default the last)", cxxopts::value<std::string>())
      ("heatmap-heads", "heads drawn (default 0)", cxxopts::value<std::string>()->default_value("0"))
      ("json", "print the chunk summary JSON on stdout")
      ("q,quiet", "no progress")
      ("h,help", "show this help");
  add_report_flag(flags, "report", "sparsity.html (the table, a density/recall plot, the mask heatmaps)");
  const auto result = parse_flags(flags, argc, argv);
  if (result.count("help")) {
    fmt::print("{}", flags.help());
    return 0;
  }
  const RunFlags run_flags = read_run_flags(result);
  const ReportKinds report_kinds = read_report_kinds(result);
  const bool quiet = result.count("quiet");
  const std::string out_dir = result["out-dir"].as<std::string>();
  std::filesystem::create_directories(out_dir);
  check_output_writable(out_dir + "/sparsity.json", "--out-dir");
  // The heatmap lists are read before the model loads: a typo there costs nothing.
  const RunConfig planned = load_run_config(run_flags.config);
  const int64_t chunks = planned.pipeline.frames / planned.pipeline.chunk_frames;
  auto parse_list = [&](const char* name, std::vector<int64_t> fallback) {
    if (!result.count(name)) return fallback;
    std::vector<int64_t> values;
    std::stringstream stream(result[name].as<std::string>());
    for (std::string item; std::getline(stream, item, ',');) {
      try {
        values.push_back(std::stoll(item));
      } catch (const std::exception&) {
        fail("--{}: '{}' is not an integer", name, item);
      }
    }
    return values;
  };
  const auto layers = parse_list("heatmap-layers", {0, planned.model.layers - 1});
  const auto heat_chunks = parse_list("heatmap-chunks", {chunks - 1});
  const auto heads = parse_list("heatmap-heads", {0});
  PreparedModel prepared = prepare_model(run_flags, quiet);
  const RunConfig& run = prepared.run;
  AttentionStats stats;
  stats.measure_recall = !result.count("no-recall");
  stats.recall_row_stride = std::max<int64_t>(1, result["recall-row-stride"].as<int64_t>());
  for (int64_t c : heat_chunks)
    for (int64_t l : layers) stats.keep_masks_for.push_back({c, 0, l});

  auto backend = make_attention_backend(run.attention, &run.pipeline, &stats);
  ArPipeline pipeline(run.pipeline, *prepared.model, *backend);
  auto noise = make_philox_noise(run.pipeline.seed, noise_shape_of(run));
  // Recall runs a dense attention beside every call (all query rows at stride 1): the first chunk can take many
  // times a plain run's, so say so before it starts, and give an ETA after each chunk.
  if (!quiet && stats.measure_recall)
    fmt::print(stderr, "measuring recall on every {} query row(s): a dense attention beside every call, slower than a "
               "plain run (--no-recall, or --recall-row-stride N for every N-th row)\n", stats.recall_row_stride);
  double elapsed_seconds = 0;
  GenerateCallbacks callbacks;
  callbacks.on_chunk = [&](const ChunkReport& report, const Tensor&) {
    elapsed_seconds += report.seconds;
    const double eta = elapsed_seconds / double(report.chunk + 1) * double(report.chunks - report.chunk - 1);
    if (!quiet)
      fmt::print(stderr, "  chunk {}/{}  {}  ETA {}\n", report.chunk + 1, report.chunks, format_seconds(report.seconds),
                 format_seconds(eta));
  };
  pipeline.generate(prepared.context, *noise, callbacks);

  // Per chunk: means over steps, layers and heads; times summed.
  std::map<int64_t, std::vector<const AttentionRecord*>> by_chunk;
  for (const AttentionRecord& record : stats.records) by_chunk[record.chunk].push_back(&record);
  nlohmann::json chunk_rows = nlohmann::json::array();
  std::string csv = "chunk,step,layer,refresh,head,frames_visible,target_sparsity,density,recall,planner_ms,kernel_ms\n";
  for (const auto& [chunk, records] : by_chunk) {
    std::vector<double> densities, recalls;
    double planner_ms = 0, kernel_ms = 0;
    for (const AttentionRecord* r : records) {
      densities.push_back(mean(r->head_density));
      if (!r->head_recall.empty()) recalls.push_back(mean(r->head_recall));
      planner_ms += r->planner_ms;
      kernel_ms += r->kernel_ms;
      for (size_t h = 0; h < r->head_density.size(); ++h)
        csv += fmt::format("{},{},{},{},{},{},{:.6f},{:.6f},{},{:.4f},{:.4f}\n", r->chunk, r->step, r->layer,
                           int(r->is_refresh), h, r->frames_visible, r->target_sparsity, r->head_density[h],
                           r->head_recall.empty() ? std::string() : fmt::format("{:.6f}", r->head_recall[h]),
                           r->planner_ms, r->kernel_ms);
    }
    nlohmann::json row = {{"chunk", chunk},
                          {"target_sparsity", records.front()->target_sparsity},
                          {"density", mean(densities)},
                          {"recall", recalls.empty() ? nlohmann::json() : nlohmann::json(mean(recalls))},
                          {"attention_ms", planner_ms + kernel_ms},
                          {"planner_ms", planner_ms},
                          {"kernel_ms", kernel_ms},
                          {"calls", records.size()}};
    chunk_rows.push_back(row);
  }
  nlohmann::json summary = {{"commit", kGitCommit},
                            {"model", run.model.name},
                            {"attention", run.attention.backend},
                            {"device", device_name(prepared.device)},
                            {"seed", run.pipeline.seed},
                            {"recall_row_stride", stats.recall_row_stride},
                            {"chunks", chunk_rows}};
  summary = versioned(summary, run_provenance(run_flags, run));
  std::vector<std::string> heatmaps;
  std::vector<std::pair<std::string, std::string>> heatmap_pngs;  // name, bytes: for the HTML page
  for (const auto& [key, mask] : stats.kept_masks)
    for (int64_t head : heads) {
      if (head < 0 || head >= mask.heads) continue;
      const std::string png = mask_png(mask, head);
      if (png.empty()) continue;
      const std::string name = fmt::format("mask_c{}_s{}_l{}_h{}.png", key[0], key[1], key[2], head);
      write_file_atomic(out_dir + "/" + name, png);
      heatmaps.push_back(name);
      heatmap_pngs.emplace_back(name, png);
    }
  summary["heatmaps"] = heatmaps;
  const std::string header = fmt::format("commit {}, seed {}, recall on every {} query row(s)", kGitCommit,
                                         run.pipeline.seed, stats.recall_row_stride);
  std::string markdown = fmt::format("# Sparsity profile: {} on {}\n\n{}\n\n{}", run.attention.backend,
                                     run.model.name, header, eval::markdown_table(chunk_table(chunk_rows)));
  for (const auto& name : heatmaps) markdown += fmt::format("\n![{}]({})\n", name, name);
  const std::string html = report_kinds.html ? profile_html(summary, header, heatmap_pngs) : std::string();
  write_file_atomic(out_dir + "/sparsity.json", summary.dump(2) + "\n");
  write_file_atomic(out_dir + "/sparsity.csv", csv);
  write_file_atomic(out_dir + "/summary.md", markdown);
  if (report_kinds.html) write_file_atomic(out_dir + "/sparsity.html", html);
  if (!quiet) fmt::print(stderr, "wrote {}/sparsity.json, sparsity.csv, summary.md{} and {} heatmap(s)\n", out_dir,
                         report_kinds.html ? ", sparsity.html" : "", heatmaps.size());
  if (result.count("json")) fmt::print("{}\n", summary.dump(2));
  return 0;
}

}  // namespace lf::cmd
