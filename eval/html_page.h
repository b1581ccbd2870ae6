#pragma once
// One self-contained HTML page for a report (`--report html`): CSS inline, images as data: URIs, no script or font
// from elsewhere, so the file opens offline and can be mailed or archived alone. Every text is HTML-escaped (prompts
// are user input). A small inline script checks, once the page has loaded, that every image decoded and no script
// failed, and writes the outcome into an element `#render-check` that a headless browser's DOM dump shows
// (tests/test_html_report.cpp; docs/reports.md).
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "eval/report_table.h"

namespace lf::eval {

// A video at most this large is embedded as a data: URI; a larger one is linked by its path relative to the page
// (then it plays only beside the page). 8 MiB keeps a report of a few testbed or 480p runs mailable; a minute of
// 480x832 H.264 is larger and stays a link.
inline constexpr int64_t kEmbeddedVideoLimitBytes = int64_t(8) << 20;

// An MP4 a report shows: `file` is relative to the report's directory.
struct ReportVideo {
  std::string file;
  std::string caption;
  bool link_only = false;  // a link, never embedded (e.g. the single videos beside an embedded side-by-side one)
};

// & < > " ' as entities.
std::string html_escape(std::string_view text);
// RFC 4648 base64 with padding, no line breaks.
std::string base64_encode(std::string_view bytes);

class HtmlPage {
 public:
  explicit HtmlPage(std::string title);

  void heading(const std::string& text);    // a section heading (<h2>)
  void paragraph(const std::string& text);  // one paragraph of plain text
  void table(const ReportTable& table);
  // PNG bytes shown inline; `alt` names the image (also what the render check reports when it fails to decode).
  void image(const std::string& png_bytes, const std::string& alt);
  // The MP4 `file` (a name relative to the page) found in `directory`: embedded when it is at most `embed_limit`
  // bytes, else linked, with a line saying why. A missing file is an lf::Error naming it.
  void video(const std::string& directory, const std::string& file, const std::string& caption,
             int64_t embed_limit = kEmbeddedVideoLimitBytes);
  // A link to `file` (relative to the page) labelled `caption`.
  void link(const std::string& file, const std::string& caption);
  // A definition list: name, then its text.
  void definitions(const std::vector<std::pair<std::string, std::string>>& entries);

  // The whole document. The same calls give the same bytes (no time, no random ids).
  std::string render() const;

 private:
  std::string title_;
  std::string body_;
};

}  // namespace lf::eval
