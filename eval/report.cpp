#include "eval/report.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <system_error>

#include "core/error.h"
#include "eval/compare_dense_html.h"
#include "io/atomic_file.h"

#if LF_WITH_OPENCV
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#endif

namespace lf::eval {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// JSON has no infinity or NaN (nlohmann would write null anyway, silently); making it explicit keeps the rule in
// one place and lets optional values share it.
json number(double value) { return std::isfinite(value) ? json(value) : json(nullptr); }
json number(const std::optional<double>& value) { return value ? number(*value) : json(nullptr); }
json seconds_value(double seconds) { return seconds > 0 ? number(seconds) : json(nullptr); }

std::optional<double> ratio(double dense, double sparse) {
  if (!(dense > 0) || !(sparse > 0) || !std::isfinite(dense) || !std::isfinite(sparse)) return std::nullopt;
  return dense / sparse;
}

json run_json(const RunSummary& run) {
  return {{"backend", run.backend},
          {"seconds", seconds_value(run.seconds)},
          {"attention_seconds", seconds_value(run.attention_seconds)},
          {"temporal_flicker", number(run.temporal_flicker)},
          {"mean_abs_frame_difference", number(run.mean_abs_frame_difference)},
          {"warping_error", number(run.warping_error)}};
}

json chunk_json(const ChunkMetrics& metrics) {
  return {{"chunk", metrics.chunk},
          {"frames", metrics.frames},
          {"identical_frames", metrics.identical_frames},
          {"identical", chunk_identical(metrics)},
          {"psnr", number(capped_psnr(metrics.psnr))},
          {"ssim", number(metrics.ssim)},
          {"latent_rel_l2", number(metrics.latent_rel_l2)}};
}

std::string fixed(double value, int decimals) {
  return std::isfinite(value) ? fmt::format("{:.{}f}", value, decimals) : std::string("n/a");
}
std::string fixed(const std::optional<double>& value, int decimals) {
  return value ? fixed(*value, decimals) : std::string("n/a");
}
std::string seconds_text(double seconds) { return seconds > 0 ? fixed(seconds, 3) : std::string("n/a"); }
std::string scientific(double value) {
  return std::isfinite(value) ? fmt::format("{:.3e}", value) : std::string("n/a");
}

#if LF_WITH_OPENCV

// Tick spacing of 1, 2 or 5 times a power of ten giving about `target` intervals over `range`.
double nice_step(double range, int target) {
  const double raw = range / target;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double scaled = raw / magnitude;
  const double nice = scaled <= 1 ? 1 : scaled <= 2 ? 2 : scaled <= 5 ? 5 : 10;
  return nice * magnitude;
}

// Multiples of `step` inside [low, high], computed from an integer index so rounding does not accumulate, and with
// a tiny value snapped to 0 so no axis is labelled "-0".
std::vector<double> tick_values(double low, double high, double step) {
  std::vector<double> ticks;
  const double first = std::ceil(low / step - 1e-9);
  for (int i = 0;; ++i) {
    double tick = (first + i) * step;
    if (tick > high + step * 1e-9) break;
    if (std::abs(tick) < step * 1e-6) tick = 0;
    ticks.push_back(tick);
  }
  return ticks;
}

int step_decimals(double step) { return std::max(0, int(-std::floor(std::log10(step) + 1e-9))); }

// [low, high] holding every finite value with some headroom; a flat series gets a band around its value.
std::pair<double, double> value_range(const std::vector<double>& values) {
  double low = INFINITY, high = -INFINITY;
  for (double value : values) {
    if (!std::isfinite(value)) continue;
    low = std::min(low, value);
    high = std::max(high, value);
  }
  if (!std::isfinite(low)) return {0.0, 1.0};
  if (high - low < 1e-12) {
    const double pad = std::max(std::abs(low) * 0.05, 1e-3);
    return {low - pad, high + pad};
  }
  const double pad = (high - low) * 0.08;
  return {low - pad, high + pad};
}

void put_text_centered(cv::Mat& canvas, const std::string& text, cv::Point center, double scale, int thickness) {
  int baseline = 0;
  const cv::Size size = cv::getTextSize(text, cv::FONT_HERSHEY_SIMPLEX, scale, thickness, &baseline);
  cv::putText(canvas, text, {center.x - size.width / 2, center.y + size.height / 2}, cv::FONT_HERSHEY_SIMPLEX, scale,
              cv::Scalar(0, 0, 0), thickness, cv::LINE_AA);
}

#endif

}  // namespace

std::optional<int64_t> first_drift_chunk(const std::vector<ChunkMetrics>& free_running,
                                         const std::vector<ChunkMetrics>& teacher_forced, double drift_db) {
  for (size_t i = 0; i < std::min(free_running.size(), teacher_forced.size()); ++i) {
    // Capped: two identical chunks (both at the cap) never count as a drift.
    const double free_psnr = capped_psnr(free_running[i].psnr), forced_psnr = capped_psnr(teacher_forced[i].psnr);
    if (std::isfinite(free_psnr) && std::isfinite(forced_psnr) && free_psnr < forced_psnr - drift_db)
      return free_running[i].chunk;
  }
  return std::nullopt;
}

std::optional<double> speedup(const CompareDenseReport& report) {
  return ratio(report.dense.seconds, report.sparse.seconds);
}

std::optional<double> attention_speedup(const CompareDenseReport& report) {
  return ratio(report.dense.attention_seconds, report.sparse.attention_seconds);
}

json compare_dense_json(const CompareDenseReport& report) {
  json chunks = json::array();
  for (const ChunkMetrics& metrics : report.chunks) chunks.push_back(chunk_json(metrics));
  json variants = json::object();
  for (const auto& [name, text] : metric_variants()) variants[name] = text;
  json teacher_forced = json::array();
  for (const ChunkMetrics& metrics : report.teacher_forced_chunks) teacher_forced.push_back(chunk_json(metrics));
  const std::optional<int64_t> drift =
      first_drift_chunk(report.chunks, report.teacher_forced_chunks, report.drift_db);
  json out = {{"sparse", run_json(report.sparse)},
              {"dense", run_json(report.dense)},
              {"speedup", number(speedup(report))},
              {"attention_speedup", number(attention_speedup(report))},
              {"chunks", chunks},
              {"teacher_forced_chunks", teacher_forced},
              {"drift", {{"threshold_db", report.drift_db},
                         {"first_chunk", drift ? json(*drift) : json(nullptr)}}},
              {"differing_chunks_mean", differing_chunks_json(differing_chunks_mean(report.chunks))},
              {"teacher_forced_differing_chunks_mean",
               report.teacher_forced_chunks.empty()
                   ? json(nullptr)
                   : differing_chunks_json(differing_chunks_mean(report.teacher_forced_chunks))},
              {"total", chunk_json(report.total)},
              {"psnr_cap_db", kPsnrCapDb},
              {"metric_variants", variants}};
  LF_CHECK(report.extra.is_object(), "compare-dense report: extra fields must be a JSON object, got {}",
           report.extra.type_name());
  for (const auto& [key, value] : report.extra.items()) {
    LF_CHECK(!out.contains(key), "compare-dense report: extra field '{}' collides with a report field", key);
    out[key] = value;
  }
  return out;
}

json differing_chunks_json(const DifferingChunksMean& mean) {
  return {{"psnr", number(mean.psnr)},
          {"ssim", number(mean.ssim)},
          {"latent_rel_l2", number(mean.latent_rel_l2)},
          {"differing_chunks", mean.differing_chunks},
          {"chunks", mean.chunks},
          {"all_identical", mean.all_identical()}};
}

std::vector<std::pair<std::string, std::string>> json_entries(const json& object, const std::vector<std::string>& skip) {
  std::vector<std::pair<std::string, std::string>> entries;
  for (const auto& [key, value] : object.items())
    if (std::find(skip.begin(), skip.end(), key) == skip.end())
      entries.emplace_back(key, value.is_string() ? value.get<std::string>() : value.dump());
  return entries;
}

std::string differing_chunks_phrase(const DifferingChunksMean& mean, const std::string& baseline) {
  if (mean.chunks == 0) return "no chunks were compared";
  if (mean.all_identical())
    return fmt::format("all {} chunks are identical to {}: no differing chunk to average", mean.chunks, baseline);
  return fmt::format("mean over the {} of {} chunks that differ from {}", mean.differing_chunks, mean.chunks,
                     baseline);
}

std::string chunk_psnr_text(const ChunkMetrics& metrics) {
  if (chunk_identical(metrics)) return "identical";
  std::string text = fixed(capped_psnr(metrics.psnr), 2);
  if (metrics.identical_frames > 0) text += fmt::format(" ({}/{} identical)", metrics.identical_frames, metrics.frames);
  return text;
}

std::string headline_text(const CompareDenseReport& report) {
  const DifferingChunksMean mean = differing_chunks_mean(report.chunks);
  if (mean.all_identical())
    return fmt::format("Every chunk ({} of {}) is identical to {}, frame for frame: there is no differing chunk to "
                       "average, so the headline means are undefined (null in the JSON, all_identical true).",
                       mean.chunks, mean.chunks, report.dense.backend);
  return fmt::format("PSNR {} dB, SSIM {}, latent rel-L2 {}: {} (identical chunks left out). Over all frames, "
                     "identical ones counted at {:.0f} dB, PSNR is {} dB.",
                     fixed(mean.psnr, 2), fixed(mean.ssim, 4), scientific(mean.latent_rel_l2),
                     differing_chunks_phrase(mean, report.dense.backend), kPsnrCapDb,
                     fixed(capped_psnr(report.total.psnr), 2));
}

std::string identical_chunks_note() {
  return fmt::format("A chunk whose every frame is bit-identical to the baseline reads \"identical\" and is left out "
                     "of the differing-chunk mean; per frame, PSNR is capped at {:.0f} dB wherever it is averaged (the "
                     "all-frames row counts identical frames at {:.0f}).", kPsnrCapDb, kPsnrCapDb);
}

std::string speedup_text(const CompareDenseReport& report) {
  const std::optional<double> e2e = speedup(report), attention = attention_speedup(report);
  return fmt::format("Speedup (dense / sparse seconds): end-to-end {}, attention {}.",
                     e2e ? fixed(*e2e, 3) + "x" : "n/a", attention ? fixed(*attention, 3) + "x" : "n/a");
}

ReportTable runs_table(const CompareDenseReport& report) {
  const RunSummary& s = report.sparse;
  const RunSummary& d = report.dense;
  return {{"", fmt::format("sparse ({})", s.backend), fmt::format("dense ({})", d.backend)},
          {{"end-to-end seconds", seconds_text(s.seconds), seconds_text(d.seconds)},
           {"attention seconds", seconds_text(s.attention_seconds), seconds_text(d.attention_seconds)},
           {"temporal flicker (1 = static)", fixed(s.temporal_flicker, 5), fixed(d.temporal_flicker, 5)},
           {"mean abs frame difference (0..255)", fixed(s.mean_abs_frame_difference, 3),
            fixed(d.mean_abs_frame_difference, 3)},
           {"warping error", fixed(s.warping_error, 5), fixed(d.warping_error, 5)}}};
}

namespace {
// The row that closes a per-chunk table: the headline mean, with its chunk count in the label.
std::vector<std::string> differing_mean_row(const std::vector<ChunkMetrics>& chunks) {
  const DifferingChunksMean mean = differing_chunks_mean(chunks);
  const std::string label = fmt::format("mean of the {} of {} differing chunks", mean.differing_chunks, mean.chunks);
  if (mean.all_identical()) return {label, "", "all identical", "", ""};
  return {label, "", fixed(mean.psnr, 2), fixed(mean.ssim, 4), scientific(mean.latent_rel_l2)};
}
}  // namespace

ReportTable chunk_table(const CompareDenseReport& report) {
  ReportTable table{{"chunk", "frames", "PSNR (dB)", "SSIM", "latent rel-L2"}, {}};
  auto row = [](const std::string& label, const ChunkMetrics& metrics) {
    return std::vector<std::string>{label, std::to_string(metrics.frames), chunk_psnr_text(metrics),
                                    fixed(metrics.ssim, 4), scientific(metrics.latent_rel_l2)};
  };
  for (const ChunkMetrics& metrics : report.chunks) table.rows.push_back(row(std::to_string(metrics.chunk), metrics));
  if (!report.chunks.empty()) table.rows.push_back(differing_mean_row(report.chunks));
  table.rows.push_back(row(fmt::format("all frames (identical at {:.0f} dB)", kPsnrCapDb), report.total));
  return table;
}

ReportTable teacher_forced_table(const CompareDenseReport& report) {
  const std::optional<int64_t> drift = first_drift_chunk(report.chunks, report.teacher_forced_chunks, report.drift_db);
  ReportTable table{{"chunk", "teacher-forced PSNR (dB)", "SSIM", "latent rel-L2", "free-running PSNR (dB)"}, {}};
  for (size_t i = 0; i < report.teacher_forced_chunks.size(); ++i) {
    const ChunkMetrics& forced = report.teacher_forced_chunks[i];
    table.rows.push_back({fmt::format("{}{}", forced.chunk, drift && *drift == forced.chunk ? " (drift)" : ""),
                          chunk_psnr_text(forced), fixed(forced.ssim, 4), fixed(forced.latent_rel_l2, 5),
                          i < report.chunks.size() ? chunk_psnr_text(report.chunks[i]) : ""});
  }
  if (!report.teacher_forced_chunks.empty()) {
    std::vector<std::string> mean = differing_mean_row(report.teacher_forced_chunks);
    mean.erase(mean.begin() + 1);  // this table has no frames column
    mean.push_back(fixed(differing_chunks_mean(report.chunks).psnr, 2));
    table.rows.push_back(mean);
  }
  return table;
}

std::string drift_text(const CompareDenseReport& report) {
  const std::optional<int64_t> drift = first_drift_chunk(report.chunks, report.teacher_forced_chunks, report.drift_db);
  return drift ? fmt::format("The rollout drifts at chunk {}: its free-running PSNR is more than {:.1f} dB below its "
                             "teacher-forced PSNR.", *drift, report.drift_db)
               : fmt::format("No chunk's free-running PSNR falls more than {:.1f} dB below its teacher-forced PSNR.",
                             report.drift_db);
}

std::string compare_dense_markdown(const CompareDenseReport& report, const std::vector<std::string>& plot_files) {
  std::string md = fmt::format("# compare-dense: {} vs {}\n\n", report.sparse.backend, report.dense.backend);
  md += "**Headline**: " + headline_text(report) + "\n\n";
  md += markdown_table(runs_table(report)) + "\n";
  md += speedup_text(report) + "\n\n";

  md += "## Fidelity to the dense run, per chunk\n\n";
  md += markdown_table(chunk_table(report));
  md += "\n" + identical_chunks_note() + "\n\n";

  if (!report.teacher_forced_chunks.empty()) {
    md += "## Teacher-forced fidelity, per chunk\n\n";
    md += "Each sparse chunk predicted from the dense run's own history: its error is that chunk's alone. The "
          "free-running PSNR is the table above.\n\n";
    md += markdown_table(teacher_forced_table(report));
    md += "\n" + drift_text(report) + "\n\n";
  }

  md += "## Plots\n\n";
  if (plot_files.empty()) {
    md += have_opencv() ? "_No plots were written._\n\n"
                        : "_Plots skipped: this build has no OpenCV (LF_WITH_OPENCV=OFF)._\n\n";
  } else {
    for (const std::string& file : plot_files) md += fmt::format("![{}]({})\n\n", file, file);
  }

  if (report.extra.is_object() && !report.extra.empty()) {
    md += "## Run\n\n";
    for (const auto& [key, text] : json_entries(report.extra)) md += fmt::format("- {}: `{}`\n", key, text);
    md += "\n";
  }

  md += "## Metric definitions\n\n";
  for (const auto& [name, text] : metric_variants()) md += fmt::format("- **{}**: {}\n", name, text);
  return md;
}

namespace {
// Identical chunks are pinned to the top edge instead of drawn at their value: PSNR's 100 dB cap (or SSIM's 1)
// would otherwise set the axis and squash the differing chunks into a flat line at the bottom.
PlotSeries chunk_series(const std::string& name, const std::vector<ChunkMetrics>& chunks,
                        double (*value)(const ChunkMetrics&)) {
  PlotSeries series;
  series.name = name;
  for (const ChunkMetrics& metrics : chunks) {
    series.values.push_back(value(metrics));
    series.pinned_top.push_back(chunk_identical(metrics));
  }
  return series;
}
}  // namespace

LinePlot psnr_plot(const CompareDenseReport& report) {
  LinePlot plot;
  plot.title = fmt::format("PSNR per chunk: {} vs {}", report.sparse.backend, report.dense.backend);
  plot.x_label = "chunk";
  plot.y_label = "PSNR (dB)";
  plot.pinned_label = fmt::format("identical to {}", report.dense.backend);
  for (const ChunkMetrics& metrics : report.chunks) plot.x.push_back(double(metrics.chunk));
  plot.series.push_back(chunk_series(report.teacher_forced_chunks.empty() ? "PSNR" : "PSNR, free-running",
                                     report.chunks, [](const ChunkMetrics& m) { return capped_psnr(m.psnr); }));
  if (!report.teacher_forced_chunks.empty())
    plot.series.push_back(chunk_series("PSNR, teacher-forced", report.teacher_forced_chunks,
                                       [](const ChunkMetrics& m) { return capped_psnr(m.psnr); }));
  return plot;
}

LinePlot ssim_plot(const CompareDenseReport& report) {
  LinePlot plot;
  plot.title = fmt::format("SSIM per chunk: {} vs {}", report.sparse.backend, report.dense.backend);
  plot.x_label = "chunk";
  plot.y_label = "SSIM";
  plot.pinned_label = fmt::format("identical to {}", report.dense.backend);
  for (const ChunkMetrics& metrics : report.chunks) plot.x.push_back(double(metrics.chunk));
  plot.series.push_back(chunk_series(report.teacher_forced_chunks.empty() ? "SSIM" : "SSIM, free-running",
                                     report.chunks, [](const ChunkMetrics& m) { return m.ssim; }));
  if (!report.teacher_forced_chunks.empty())
    plot.series.push_back(chunk_series("SSIM, teacher-forced", report.teacher_forced_chunks,
                                       [](const ChunkMetrics& m) { return m.ssim; }));
  return plot;
}

#if LF_WITH_OPENCV

std::string line_plot_png(const LinePlot& plot) {
  LF_CHECK(plot.width >= 200 && plot.height >= 150, "line plot '{}': canvas {}x{} is too small (min 200x150)",
           plot.title, plot.width, plot.height);
  LF_CHECK(!plot.x.empty(), "line plot '{}': no x values", plot.title);
  for (const PlotSeries& series : plot.series) {
    LF_CHECK(series.values.size() == plot.x.size(), "line plot '{}': series '{}' has {} values for {} x values",
             plot.title, series.name, series.values.size(), plot.x.size());
    LF_CHECK(series.pinned_top.empty() || series.pinned_top.size() == plot.x.size(),
             "line plot '{}': series '{}' has {} pinned flags for {} x values", plot.title, series.name,
             series.pinned_top.size(), plot.x.size());
  }
  auto pinned = [](const PlotSeries& series, size_t i) { return !series.pinned_top.empty() && series.pinned_top[i]; };
  cv::Mat canvas(plot.height, plot.width, CV_8UC3, cv::Scalar(255, 255, 255));
  const int left = 80, right = 20, top = 50, bottom = 60;
  const cv::Rect area(left, top, plot.width - left - right, plot.height - top - bottom);

  // The axis fits the drawn values only: pinned points sit on the top edge whatever their value.
  std::vector<double> all_values;
  bool any_pinned = false;
  for (const PlotSeries& series : plot.series)
    for (size_t i = 0; i < series.values.size(); ++i) {
      if (pinned(series, i)) any_pinned = true;
      else all_values.push_back(series.values[i]);
    }
  auto [y_low, y_high] = value_range(all_values);
  if (any_pinned) y_high += (y_high - y_low) * 0.15;  // a band at the top for the markers, clear of the data
  auto [x_low, x_high] = value_range(plot.x);
  if (plot.x.size() == 1 || x_high - x_low < 1e-12) {
    x_low = plot.x[0] - 0.5;
    x_high = plot.x[0] + 0.5;
  }
  auto to_pixel = [&](double x, double y) {
    return cv::Point(area.x + int(std::lround((x - x_low) / (x_high - x_low) * area.width)),
                     area.y + area.height - int(std::lround((y - y_low) / (y_high - y_low) * area.height)));
  };

  const cv::Scalar grid(225, 225, 225), black(0, 0, 0);
  const double font = 0.45;
  // y ticks and horizontal grid lines.
  const double y_step = nice_step(y_high - y_low, 5);
  const int y_decimals = step_decimals(y_step);
  for (double tick : tick_values(y_low, y_high, y_step)) {
    const cv::Point at = to_pixel(x_low, tick);
    cv::line(canvas, at, {area.x + area.width, at.y}, grid, 1);
    const std::string label = fmt::format("{:.{}f}", tick, y_decimals);
    int baseline = 0;
    const cv::Size size = cv::getTextSize(label, cv::FONT_HERSHEY_SIMPLEX, font, 1, &baseline);
    cv::putText(canvas, label, {area.x - 8 - size.width, at.y + size.height / 2}, cv::FONT_HERSHEY_SIMPLEX, font, black,
                1, cv::LINE_AA);
  }
  // x ticks: whole steps when the x values are integers (chunk indices).
  bool integral = true;
  for (double x : plot.x) integral = integral && x == std::floor(x);
  double x_step = nice_step(x_high - x_low, 10);
  if (integral) x_step = std::max(1.0, std::round(x_step));
  const int x_decimals = integral ? 0 : step_decimals(x_step);
  for (double tick : tick_values(x_low, x_high, x_step)) {
    const cv::Point at = to_pixel(tick, y_low);
    cv::line(canvas, at, {at.x, at.y + 5}, black, 1);
    put_text_centered(canvas, fmt::format("{:.{}f}", tick, x_decimals), {at.x, at.y + 16}, font, 1);
  }
  cv::rectangle(canvas, area, black, 1);

  const cv::Scalar palette[] = {{180, 119, 31}, {14, 127, 255}, {44, 160, 44}, {40, 39, 214}};  // BGR
  // The legend sits at the top right, as wide as its longest entry.
  int legend_width = 0;
  for (const PlotSeries& series : plot.series) {
    int baseline = 0;
    legend_width = std::max(legend_width, cv::getTextSize(series.name, cv::FONT_HERSHEY_SIMPLEX, font, 1, &baseline).width);
  }
  if (any_pinned) {
    int baseline = 0;
    legend_width = std::max(legend_width,
                            cv::getTextSize(plot.pinned_label, cv::FONT_HERSHEY_SIMPLEX, font, 1, &baseline).width);
  }
  const int legend_x = std::max(area.x + 4, area.x + area.width - legend_width - 36);
  for (size_t s = 0; s < plot.series.size(); ++s) {
    const cv::Scalar color = palette[s % 4];
    const std::vector<double>& values = plot.series[s].values;
    auto drawn = [&](size_t i) { return std::isfinite(values[i]) && !pinned(plot.series[s], i); };
    for (size_t i = 0; i < values.size(); ++i) {
      if (pinned(plot.series[s], i)) {
        // A hollow downward triangle on the top edge, offset per series so two pinned series stay visible.
        const int x = to_pixel(plot.x[i], y_high).x, y = area.y + 7 + int(s) * 9;
        const std::vector<cv::Point> triangle = {{x - 5, y - 5}, {x + 5, y - 5}, {x, y + 4}};
        cv::polylines(canvas, triangle, true, color, 2, cv::LINE_AA);
        continue;
      }
      if (!drawn(i)) continue;
      const cv::Point point = to_pixel(plot.x[i], values[i]);
      if (i > 0 && drawn(i - 1)) cv::line(canvas, to_pixel(plot.x[i - 1], values[i - 1]), point, color, 2, cv::LINE_AA);
      cv::circle(canvas, point, 3, color, cv::FILLED, cv::LINE_AA);
    }
    // Legend, top right inside the plot area, one line per series.
    const cv::Point entry(legend_x, area.y + 18 + int(s) * 18);
    cv::line(canvas, entry, {entry.x + 20, entry.y}, color, 2, cv::LINE_AA);
    cv::putText(canvas, plot.series[s].name, {entry.x + 26, entry.y + 5}, cv::FONT_HERSHEY_SIMPLEX, font, black, 1,
                cv::LINE_AA);
  }

  if (any_pinned) {
    const cv::Point entry(legend_x, area.y + 18 + int(plot.series.size()) * 18);
    const std::vector<cv::Point> triangle = {{entry.x + 5, entry.y - 5}, {entry.x + 15, entry.y - 5},
                                             {entry.x + 10, entry.y + 4}};
    cv::polylines(canvas, triangle, true, black, 1, cv::LINE_AA);
    cv::putText(canvas, plot.pinned_label, {entry.x + 26, entry.y + 5}, cv::FONT_HERSHEY_SIMPLEX, font, black, 1,
                cv::LINE_AA);
  }
  put_text_centered(canvas, plot.title, {plot.width / 2, top / 2}, 0.6, 1);
  put_text_centered(canvas, plot.x_label, {area.x + area.width / 2, plot.height - 18}, 0.5, 1);
  // OpenCV cannot rotate text, so the y label sits above the axis.
  cv::putText(canvas, plot.y_label, {8, top - 10}, cv::FONT_HERSHEY_SIMPLEX, 0.5, black, 1, cv::LINE_AA);

  std::vector<uchar> bytes;
  LF_CHECK(cv::imencode(".png", canvas, bytes), "line plot '{}': cannot encode PNG", plot.title);
  return std::string(bytes.begin(), bytes.end());
}

#else

std::string line_plot_png(const LinePlot& plot) {
  fail("line plot '{}': this build has no OpenCV (LF_WITH_OPENCV=OFF); cannot draw PNG plots", plot.title);
}

#endif

std::vector<std::string> write_compare_dense_report(const CompareDenseReport& report, const std::string& directory,
                                                    const std::string& stem, const CompareDenseReportOptions& options) {
  LF_CHECK(!directory.empty(), "compare-dense report: empty output directory");
  LF_CHECK(!stem.empty(), "compare-dense report: empty file stem");
  std::error_code error;
  if (!fs::is_directory(directory, error)) {
    LF_CHECK(!fs::exists(directory, error), "compare-dense report: '{}' exists but is not a directory", directory);
    fs::create_directories(directory, error);
    LF_CHECK(!error, "compare-dense report: cannot create directory '{}': {}", directory, error.message());
  }
  const fs::path dir(directory);
  // Everything is encoded before anything is written, so a failure leaves no partial report behind.
  const std::string json_text = compare_dense_json(report).dump(2) + "\n";
  std::vector<std::pair<std::string, std::string>> plots;  // file name, PNG bytes
  if (have_opencv() && !report.chunks.empty()) {
    plots.emplace_back(stem + "-psnr.png", line_plot_png(psnr_plot(report)));
    plots.emplace_back(stem + "-ssim.png", line_plot_png(ssim_plot(report)));
  }
  std::vector<std::string> plot_names;
  for (const auto& plot : plots) plot_names.push_back(plot.first);
  const std::string markdown = compare_dense_markdown(report, plot_names);
  const std::string html = options.html ? compare_dense_html(report, plots, directory, options.videos) : "";

  std::vector<std::string> written = {(dir / (stem + ".json")).string(), (dir / (stem + ".md")).string()};
  write_file_atomic(written[0], json_text);
  write_file_atomic(written[1], markdown);
  for (const auto& [name, bytes] : plots) {
    written.push_back((dir / name).string());
    write_file_atomic(written.back(), bytes);
  }
  if (options.html) {
    written.push_back((dir / (stem + ".html")).string());
    write_file_atomic(written.back(), html);
  }
  return written;
}

Frame side_by_side(const Frame& left, const Frame& right, int gap) {
  check_frame(left, "side_by_side (left)");
  check_frame(right, "side_by_side (right)");
  LF_CHECK(gap >= 0, "side_by_side: negative gap {}", gap);
  Frame out;
  out.width = left.width + gap + right.width;
  out.height = std::max(left.height, right.height);
  out.rgb.assign(size_t(out.width) * size_t(out.height) * 3, 255);
  auto paste = [&out](const Frame& frame, int x0) {
    const int y0 = (out.height - frame.height) / 2;
    const size_t row_bytes = size_t(frame.width) * 3;
    for (int y = 0; y < frame.height; ++y) {
      std::copy_n(frame.rgb.begin() + ptrdiff_t(size_t(y) * row_bytes), row_bytes,
                  out.rgb.begin() + ptrdiff_t((size_t(y0 + y) * size_t(out.width) + size_t(x0)) * 3));
    }
  };
  paste(left, 0);
  paste(right, left.width + gap);
  return out;
}

std::vector<Frame> side_by_side(const std::vector<Frame>& left, const std::vector<Frame>& right, int gap) {
  LF_CHECK(left.size() == right.size(), "side_by_side: left video has {} frames, right video {}", left.size(),
           right.size());
  std::vector<Frame> out;
  out.reserve(left.size());
  for (size_t i = 0; i < left.size(); ++i) out.push_back(side_by_side(left[i], right[i], gap));
  return out;
}

}  // namespace lf::eval
