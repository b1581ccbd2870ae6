// The HTML reports (`--report html`, docs/reports.md) opened in headless Chromium: every table in the DOM, every
// image decoded, no script error, text escaped, nothing loaded from outside the file. The page's own check script
// writes its verdict into #render-check, which Chromium's --dump-dom shows; a page with a broken image and one with
// a script error must fail that check, so the check itself is tested. Chromium is a test dependency
// (scripts/setup.sh): a machine without it fails here instead of skipping.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>

#include "eval/html_page.h"
#include "eval/metrics.h"
#include "test_util.h"

namespace fs = std::filesystem;
using lf::test::fresh_tmp_path;
using lf::test::read_bytes;
using lf::test::run;
using lf::test::RunResult;

namespace {

// A 1x2 RGB PNG made by hand with Python's zlib (not by lightforce's writer): a red and a green pixel.
const std::string kTinyPng(
    "\x89\x50\x4e\x47\x0d\x0a\x1a\x0a\x00\x00\x00\x0d\x49\x48\x44\x52\x00\x00\x00\x01\x00\x00\x00\x02\x08\x02\x00\x00"
    "\x00\x16\xe3\x21\x70\x00\x00\x00\x10\x49\x44\x41\x54\x78\xda\x63\x38\x21\x27\xc7\x20\x77\x42\x0e\x00\x08\xd2\x02"
    "\x09\xd7\x6a\xef\x9d\x00\x00\x00\x00\x49\x45\x4e\x44\xae\x42\x60\x82",
    73);

const std::string kQuickArgs = "-m tiny --quiet --frames 6 ";

size_t count_of(const std::string& text, const std::string& needle) {
  size_t count = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + needle.size())) ++count;
  return count;
}

void write_text(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

// The binary with `args`, which must succeed.
RunResult run_ok(const std::string& args) {
  const RunResult result = run(args);
  REQUIRE_MESSAGE(result.exit_code == 0, args << "\n" << result.err);
  return result;
}

// Chromium on PATH, or "" (the Debian package installs /usr/bin/chromium).
std::string chromium() {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  for (size_t start = 0; start <= dirs.size();) {
    const size_t end = std::min(dirs.find(':', start), dirs.size());
    const fs::path candidate = fs::path(dirs.substr(start, end - start)) / "chromium";
    if (fs::exists(candidate)) return candidate.string();
    start = end + 1;
  }
  return "";
}

// What the page's check script wrote into #render-check after load, as Chromium's DOM dump shows it.
struct RenderCheck {
  std::string status;  // ok, failed, or pending when the script never ran
  int tables = -1, images = -1, images_broken = -1, script_errors = -1;
  std::string dom;  // the whole dump
};

RenderCheck render(const std::string& html_path) {
  const std::string browser = chromium();
  if (browser.empty()) {
    MESSAGE(
        "chromium is not installed: the HTML report cannot be opened (Debian: apt-get install chromium; "
        "scripts/setup.sh installs it)");
    FAIL("chromium not found on PATH");
  }
  // Its own profile directory: test executables may run in parallel. Virtual time lets the load handler run before
  // the DOM is dumped; `timeout` stops a browser that hangs.
  const std::string profile = fresh_tmp_path("chromium_profile_" + fs::path(html_path).stem().string());
  const std::string command = "timeout 60 " + browser +
                              " --headless --no-sandbox --disable-gpu --no-first-run "
                              "--virtual-time-budget=5000 --user-data-dir=" +
                              profile + " --dump-dom 'file://" + fs::absolute(html_path).string() + "' 2>/dev/null";
  RenderCheck check;
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buffer[65536];
  for (size_t n; (n = fread(buffer, 1, sizeof buffer, pipe)) > 0;) check.dom.append(buffer, n);
  const int status = pclose(pipe);
  const bool exited_cleanly = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  REQUIRE_MESSAGE(exited_cleanly, "chromium failed (or timed out) on " << html_path);
  const size_t at = check.dom.find("id=\"render-check\"");
  REQUIRE_MESSAGE(at != std::string::npos, "no #render-check in the DOM of " << html_path);
  const std::string element = check.dom.substr(at, check.dom.find('>', at) - at);
  auto attribute = [&](const std::string& name) {
    std::smatch match;
    return std::regex_search(element, match, std::regex(name + "=\"([^\"]*)\"")) ? match[1].str() : std::string();
  };
  auto number = [&](const std::string& name) {
    const std::string text = attribute(name);
    return text.empty() ? -1 : std::stoi(text);
  };
  check.status = attribute("data-status");
  check.tables = number("data-tables");
  check.images = number("data-images");
  check.images_broken = number("data-images-broken");
  check.script_errors = number("data-script-errors");
  return check;
}

// The page renders cleanly and the browser saw every table and image the file holds; returns the check.
RenderCheck require_renders(const std::string& html_path) {
  const std::string html = read_bytes(html_path);
  REQUIRE_MESSAGE(!html.empty(), html_path << " is missing or empty");
  // Self-contained: nothing is fetched from elsewhere (a linked video is a relative path, never a URL).
  CHECK(html.find("http://") == std::string::npos);
  CHECK(html.find("https://") == std::string::npos);
  CHECK(html.find("<link") == std::string::npos);
  CHECK(html.find("<script src") == std::string::npos);
  const RenderCheck check = render(html_path);
  CAPTURE(html_path);
  CHECK(check.status == "ok");
  CHECK(check.images_broken == 0);
  CHECK(check.script_errors == 0);
  CHECK(check.tables == int(count_of(html, "<table>")));
  CHECK(check.images == int(count_of(html, "<img ")));
  CHECK(count_of(check.dom, "<table>") == count_of(html, "<table>"));
  return check;
}

}  // namespace

TEST_CASE("HTML page: escaping, base64, determinism") {
  CHECK(lf::eval::html_escape("<b>\"R&D\"</b> it's") == "&lt;b&gt;&quot;R&amp;D&quot;&lt;/b&gt; it&#39;s");
  // RFC 4648, section 10.
  const std::pair<const char*, const char*> vectors[] = {{"", ""},
                                                         {"f", "Zg=="},
                                                         {"fo", "Zm8="},
                                                         {"foo", "Zm9v"},
                                                         {"foob", "Zm9vYg=="},
                                                         {"fooba", "Zm9vYmE="},
                                                         {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors) CHECK(lf::eval::base64_encode(plain) == encoded);
  CHECK(lf::eval::base64_encode(std::string("\xff\x00\xfe", 3)) == "/wD+");

  lf::eval::HtmlPage page("a <title>");
  page.paragraph("x < y & \"z\"");
  page.table({{"col <1>", "col 2"}, {{"<script>alert(1)</script>", "2"}}});
  page.image(kTinyPng, "pixel's <alt>");
  const std::string html = page.render();
  CHECK(html.find("<script>alert(1)") == std::string::npos);
  CHECK(html.find("&lt;script&gt;alert(1)&lt;/script&gt;") != std::string::npos);
  CHECK(html.find("<title>a &lt;title&gt;</title>") != std::string::npos);
  CHECK(html.find("alt=\"pixel&#39;s &lt;alt&gt;\"") != std::string::npos);
  CHECK(html.find("data:image/png;base64," + lf::eval::base64_encode(kTinyPng)) != std::string::npos);
  CHECK(page.render() == html);  // the same calls, the same bytes
  CHECK_THROWS_WITH_AS(page.table({{"a", "b"}, {{"only one"}}}), doctest::Contains("a row of 1 cells under 2"),
                       lf::Error);

  // A video above the limit is linked by its relative path, one at or below it embedded.
  const std::string dir = fresh_tmp_path("html_video");
  fs::create_directories(dir);
  write_text(dir + "/v.mp4", std::string(100, 'x'));
  lf::eval::HtmlPage videos("videos");
  videos.video(dir, "v.mp4", "embedded", 100);
  videos.video(dir, "v.mp4", "linked", 99);
  const std::string with_videos = videos.render();
  CHECK(with_videos.find("src=\"data:video/mp4;base64," + lf::eval::base64_encode(std::string(100, 'x'))) !=
        std::string::npos);
  CHECK(with_videos.find("src=\"v.mp4\"") != std::string::npos);
  CHECK(with_videos.find("linked, not embedded") != std::string::npos);
  CHECK_THROWS_WITH_AS(videos.video(dir, "missing.mp4", "x"), doctest::Contains("missing.mp4"), lf::Error);
}

TEST_CASE("the render check fails on a broken image and on a script error") {
  const std::string dir = fresh_tmp_path("html_check");
  fs::create_directories(dir);
  lf::eval::HtmlPage good("good");
  good.table({{"a"}, {{"1"}}});
  good.image(kTinyPng, "tiny.png");
  write_text(dir + "/good.html", good.render());
  const RenderCheck passed = require_renders(dir + "/good.html");
  CHECK(passed.images == 1);
  CHECK(passed.tables == 1);

  lf::eval::HtmlPage broken("broken");
  broken.table({{"a"}, {{"1"}}});
  broken.image(kTinyPng, "tiny.png");
  broken.image(kTinyPng.substr(0, 40), "truncated.png");  // cut inside the image data: cannot decode
  write_text(dir + "/broken.html", broken.render());
  const RenderCheck failed = render(dir + "/broken.html");
  CHECK(failed.status == "failed");
  CHECK(failed.images == 2);
  CHECK(failed.images_broken == 1);
  CHECK(failed.dom.find("truncated.png") != std::string::npos);  // the verdict names it

  std::string scripted = good.render();
  scripted.insert(scripted.rfind("</body>"), "<script>no_such_function();</script>\n");
  write_text(dir + "/script_error.html", scripted);
  const RenderCheck errored = render(dir + "/script_error.html");
  CHECK(errored.status == "failed");
  CHECK(errored.script_errors == 1);
  CHECK(errored.images_broken == 0);
}

TEST_CASE("compare-dense --report html: one self-contained page that renders, the prompt escaped") {
  const std::string out = fresh_tmp_path("html_compare");
  // Markup in the prompt must reach the page as text (the tiny model's word table reads it as unknown words).
  const std::string compare =
      "compare-dense " + kQuickArgs + "--prompt 'a red <b>circle</b> & \"friends\"' --attention lightforcing-short ";
  run_ok(compare + "--report html --out-dir " + out);
  const std::string html = read_bytes(out + "/compare-dense.html");
  CHECK(html.find("a red &lt;b&gt;circle&lt;/b&gt; &amp; &quot;friends&quot;") != std::string::npos);
  CHECK(html.find("<b>circle") == std::string::npos);
  CHECK(html.find("identical") != std::string::npos);  // chunk 0 runs dense under lightforcing
  CHECK(html.find("of 2 chunks that differ from dense") != std::string::npos);
  const RenderCheck check = require_renders(out + "/compare-dense.html");
  CHECK(check.tables == 3);  // runs, per chunk, teacher-forced
  CHECK(check.dom.find("<b>circle") == std::string::npos);
#if LF_WITH_OPENCV
  CHECK(check.images == 2);  // the PSNR and SSIM plots
#else
  CHECK(check.images == 0);
#endif
#if LF_WITH_FFMPEG
  // Small enough to embed: the side-by-side video inline, the single ones linked.
  CHECK(count_of(html, "src=\"data:video/mp4;base64,") == 1);
  CHECK(html.find("href=\"sparse.mp4\"") != std::string::npos);
#endif
  // Same inputs, same page bytes, timings aside: the HTML holds the run's seconds like the JSON does, so compare
  // the page with its numbers blanked out.
  run_ok(compare + "--report html --no-videos --out-dir " + out + "_again");
  const std::regex numbers("[0-9]+\\.[0-9]+x?");
  std::string first = read_bytes(out + "/compare-dense.html"), second = read_bytes(out + "_again/compare-dense.html");
  first = first.substr(0, first.find("<h2>Videos</h2>")) + first.substr(first.find("<h2>Run</h2>"));
  second = second.substr(0, second.find("<h2>Videos</h2>")) + second.substr(second.find("<h2>Run</h2>"));
  CHECK(std::regex_replace(first, numbers, "#") == std::regex_replace(second, numbers, "#"));
}

TEST_CASE("profile-sparsity --report html shows the table, a plot and the mask heatmaps") {
  const std::string out = fresh_tmp_path("html_profile");
  run_ok("profile-sparsity " + kQuickArgs +
         "--prompt 'a red circle moves right' --attention lightforcing-short --no-recall --report html --out-dir " +
         out);
  const RenderCheck check = require_renders(out + "/sparsity.html");
  CHECK(check.tables == 1);
#if LF_WITH_OPENCV
  // The density plot and the heatmaps of the last chunk, first and last layer, head 0.
  const nlohmann::json summary = nlohmann::json::parse(read_bytes(out + "/sparsity.json"));
  REQUIRE(summary.at("heatmaps").size() == 2);
  CHECK(check.images == 3);
  for (const auto& name : summary.at("heatmaps")) CHECK(check.dom.find(name.get<std::string>()) != std::string::npos);
#endif
}

TEST_CASE("compare-dense --sweep --report html ranks the points by the differing-chunk PSNR") {
  const std::string out = fresh_tmp_path("html_sweep");
  const RunResult result = run_ok("compare-dense " + kQuickArgs +
                                  "--prompt 'a red circle moves right' --attention lightforcing-short --sweep "
                                  "attention.sparsity=0.9,0.5 --report html --json --out-dir " +
                                  out);
  const RenderCheck check = require_renders(out + "/sweep.html");
  CHECK(check.tables == 1);
#if LF_WITH_OPENCV
  CHECK(check.images == 1);
#endif
  // The ranks, checked against the points' own differing-chunk PSNR: higher is better, rank 1 first.
  const nlohmann::json document = nlohmann::json::parse(result.out);
  const auto& points = document.at("points");
  REQUIRE(points.size() == 2);
  const double psnr_a = points[0].at("differing_chunks_mean").at("psnr").get<double>();
  const double psnr_b = points[1].at("differing_chunks_mean").at("psnr").get<double>();
  CHECK(points[0].at("rank") == (psnr_a >= psnr_b ? 1 : 2));
  CHECK(points[1].at("rank") == (psnr_a >= psnr_b ? 2 : 1));
  const std::string html = read_bytes(out + "/sweep.html");
  const std::string best = psnr_a >= psnr_b ? "attention.sparsity=0.9" : "attention.sparsity=0.5";
  const std::string worst = psnr_a >= psnr_b ? "attention.sparsity=0.5" : "attention.sparsity=0.9";
  CHECK(html.find("<td>1</td><td>" + best) != std::string::npos);
  CHECK(html.find("<td>2</td><td>" + worst) != std::string::npos);
}
