#include "eval/html_page.h"

#include <fmt/format.h>

#include <filesystem>
#include <system_error>

#include "core/error.h"
#include "io/mapped_file.h"

namespace lf::eval {

namespace {

// Light and plain: a report is read for its numbers. Tables scroll sideways instead of overflowing on a phone.
constexpr const char* kStyle =
    R"(body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;padding:0 1em;color:#111}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #ddd}
.table{overflow-x:auto}table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}tr:nth-child(even) td{background:#fafafa}
figure{margin:1em 0}img,video{max-width:100%;border:1px solid #ddd}figcaption{font-size:.9em;color:#444}
dt{font-weight:600;margin-top:.4em}dd{margin-left:1.5em;white-space:pre-wrap;overflow-wrap:anywhere}#render-check{color:#666;font-size:.8em})";

// Runs first, so an error in any later script is counted; resource errors (an image or a video that fails) do not
// bubble, and are seen here in the capture phase and told apart from script errors.
constexpr const char* kErrorCollector = R"(window.lfScriptErrors=[];window.lfResourceErrors=[];
window.addEventListener('error',function(e){if(e instanceof ErrorEvent){window.lfScriptErrors.push(String(e.message));}
else if(e.target&&e.target.tagName){window.lfResourceErrors.push(e.target.tagName.toLowerCase());}},true);)";

// After load: every <img> must have decoded (complete, with a width); the outcome goes into #render-check.
constexpr const char* kRenderCheck = R"(window.addEventListener('load',function(){
var images=document.images,broken=[];
for(var i=0;i<images.length;++i){if(!(images[i].complete&&images[i].naturalWidth>0)){broken.push(images[i].alt);}}
var mark=document.getElementById('render-check'),tables=document.getElementsByTagName('table').length;
var ok=broken.length===0&&window.lfScriptErrors.length===0;
mark.setAttribute('data-status',ok?'ok':'failed');
mark.setAttribute('data-tables',String(tables));
mark.setAttribute('data-images',String(images.length));
mark.setAttribute('data-images-broken',String(broken.length));
mark.setAttribute('data-script-errors',String(window.lfScriptErrors.length));
mark.setAttribute('data-videos',String(document.getElementsByTagName('video').length));
mark.textContent=ok?('rendered: '+tables+' tables, '+images.length+' images decoded'):
('render check failed: broken images ['+broken.join(', ')+'], script errors ['+window.lfScriptErrors.join('; ')+']');
});)";

std::string figure(const std::string& media, const std::string& caption) {
  return fmt::format("<figure>{}<figcaption>{}</figcaption></figure>\n", media, html_escape(caption));
}

}  // namespace

std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    const char* entity = c == '&'    ? "&amp;"
                         : c == '<'  ? "&lt;"
                         : c == '>'  ? "&gt;"
                         : c == '"'  ? "&quot;"
                         : c == '\'' ? "&#39;"
                                     : nullptr;
    if (entity != nullptr)
      out += entity;
    else
      out += c;
  }
  return out;
}

std::string base64_encode(std::string_view bytes) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    const size_t left = bytes.size() - i;
    uint32_t group = uint32_t(uint8_t(bytes[i])) << 16;
    if (left > 1) group |= uint32_t(uint8_t(bytes[i + 1])) << 8;
    if (left > 2) group |= uint32_t(uint8_t(bytes[i + 2]));
    out += kAlphabet[(group >> 18) & 63];
    out += kAlphabet[(group >> 12) & 63];
    out += left > 1 ? kAlphabet[(group >> 6) & 63] : '=';
    out += left > 2 ? kAlphabet[group & 63] : '=';
  }
  return out;
}

HtmlPage::HtmlPage(std::string title) : title_(std::move(title)) {}

void HtmlPage::heading(const std::string& text) { body_ += "<h2>" + html_escape(text) + "</h2>\n"; }

void HtmlPage::paragraph(const std::string& text) { body_ += "<p>" + html_escape(text) + "</p>\n"; }

void HtmlPage::table(const ReportTable& table) {
  LF_CHECK(!table.header.empty(), "HTML report: a table without columns");
  std::string html = "<div class=\"table\"><table>\n<thead><tr>";
  for (const std::string& cell : table.header) html += "<th>" + html_escape(cell) + "</th>";
  html += "</tr></thead>\n<tbody>\n";
  for (const auto& row : table.rows) {
    LF_CHECK(row.size() == table.header.size(), "HTML report: a row of {} cells under {} columns", row.size(),
             table.header.size());
    html += "<tr>";
    for (const std::string& cell : row) html += "<td>" + html_escape(cell) + "</td>";
    html += "</tr>\n";
  }
  body_ += html + "</tbody></table></div>\n";
}

void HtmlPage::image(const std::string& png_bytes, const std::string& alt) {
  body_ += figure(
      fmt::format("<img alt=\"{}\" src=\"data:image/png;base64,{}\">", html_escape(alt), base64_encode(png_bytes)),
      alt);
}

void HtmlPage::video(const std::string& directory, const std::string& file, const std::string& caption,
                     int64_t embed_limit) {
  const std::filesystem::path path = std::filesystem::path(directory) / file;
  std::error_code error;
  const auto size = std::filesystem::file_size(path, error);
  LF_CHECK(!error, "HTML report: cannot read the video '{}': {}", path.string(), error.message());
  if (int64_t(size) <= embed_limit) {
    const auto mapped = MappedFile::open(path.string());
    const std::string_view bytes(reinterpret_cast<const char*>(mapped->data()), mapped->size());
    body_ += figure(
        fmt::format("<video controls loop muted src=\"data:video/mp4;base64,{}\"></video>", base64_encode(bytes)),
        caption);
    return;
  }
  // Linked, not embedded: the page stays small and still plays the video when it sits beside it.
  body_ +=
      figure(fmt::format("<video controls loop muted src=\"{}\"></video>", html_escape(file)),
             fmt::format("{} ({}: {:.1f} MiB, above the {:.0f} MiB embedding limit, so linked, not embedded: it "
                         "plays only where {} sits beside this page)",
                         caption, file, double(size) / double(1 << 20), double(embed_limit) / double(1 << 20), file));
}

void HtmlPage::link(const std::string& file, const std::string& caption) {
  body_ += fmt::format("<p><a href=\"{}\">{}</a> ({}, beside this page)</p>\n", html_escape(file), html_escape(caption),
                       html_escape(file));
}

void HtmlPage::definitions(const std::vector<std::pair<std::string, std::string>>& entries) {
  std::string html = "<dl>\n";
  for (const auto& [name, text] : entries)
    html += "<dt>" + html_escape(name) + "</dt><dd>" + html_escape(text) + "</dd>\n";
  body_ += html + "</dl>\n";
}

std::string HtmlPage::render() const {
  return fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n"
      "<style>\n{}\n</style>\n<script>\n{}\n</script>\n</head>\n<body>\n<h1>{}</h1>\n{}"
      "<p id=\"render-check\" data-status=\"pending\">render check did not run</p>\n"
      "<script>\n{}\n</script>\n</body>\n</html>\n",
      html_escape(title_), kStyle, kErrorCollector, html_escape(title_), body_, kRenderCheck);
}

}  // namespace lf::eval
