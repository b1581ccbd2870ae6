#pragma once
// The compare-dense report as one self-contained HTML page (`compare-dense --report html`): the same headline,
// tables and plots as the Markdown, plus the run's videos. docs/reports.md.
#include <string>
#include <utility>
#include <vector>

#include "eval/html_page.h"
#include "eval/report.h"

namespace lf::eval {

// `plots`: {name, PNG bytes} (empty without OpenCV: the page says so); `videos`: MP4s in `directory`, embedded or
// linked by HtmlPage::video (none: the page says the run wrote none).
std::string compare_dense_html(const CompareDenseReport& report,
                               const std::vector<std::pair<std::string, std::string>>& plots,
                               const std::string& directory, const std::vector<ReportVideo>& videos);

}  // namespace lf::eval
