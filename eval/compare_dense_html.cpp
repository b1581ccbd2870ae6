#include "eval/compare_dense_html.h"

#include <fmt/format.h>

namespace lf::eval {

std::string compare_dense_html(const CompareDenseReport& report,
                               const std::vector<std::pair<std::string, std::string>>& plots,
                               const std::string& directory, const std::vector<ReportVideo>& videos) {
  HtmlPage page(fmt::format("compare-dense: {} vs {}", report.sparse.backend, report.dense.backend));
  page.paragraph("Headline: " + headline_text(report));
  page.table(runs_table(report));
  page.paragraph(speedup_text(report));

  page.heading("Fidelity to the dense run, per chunk");
  page.table(chunk_table(report));
  page.paragraph(identical_chunks_note());
  if (!report.teacher_forced_chunks.empty()) {
    page.heading("Teacher-forced fidelity, per chunk");
    page.paragraph(
        "Each sparse chunk predicted from the dense run's own history: its error is that chunk's alone. "
        "The free-running PSNR is the table above.");
    page.table(teacher_forced_table(report));
    page.paragraph(drift_text(report));
  }

  page.heading("Plots");
  if (plots.empty())
    page.paragraph(have_opencv() ? "No plots were drawn." : "Plots skipped: this build has no OpenCV.");
  for (const auto& [name, png] : plots) page.image(png, name);

  page.heading("Videos");
  if (videos.empty()) page.paragraph("This run wrote no videos (--no-videos, or a build without FFmpeg).");
  for (const ReportVideo& video : videos) {
    if (video.link_only)
      page.link(video.file, video.caption);
    else
      page.video(directory, video.file, video.caption);
  }

  if (report.extra.is_object() && !report.extra.empty()) {
    page.heading("Run");
    page.definitions(json_entries(report.extra));
  }
  page.heading("Metric definitions");
  const auto variants = metric_variants();
  page.definitions({variants.begin(), variants.end()});
  return page.render();
}

}  // namespace lf::eval
