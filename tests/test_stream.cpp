// `lightforce generate -o -`: the video streamed to stdout as each chunk finishes (docs/cli.md, "Streaming to a
// pipe"), and --frames-dir written chunk by chunk. The binary end to end, with the reader at the other end of a
// pipe, a terminal, or a file that the test reads while the run goes on.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "io/video_reader.h"
#include "mp4_boxes.h"
#include "test_util.h"

#if LF_WITH_OPENCV
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#endif

namespace fs = std::filesystem;

namespace {

using lf::test::fresh_tmp_path;
using lf::test::read_bytes;
using lf::test::run;
using lf::test::RunResult;

// 6 latent frames of the random `tiny` model: 2 chunks of 3 frames (its pixel decoder: one video frame each).
const std::string kTiny = "generate -m tiny --quiet --prompt 'a red circle moves right' --frames 6 ";

bool has_temp_leftovers(const std::string& final_path) {
  const std::string stem = fs::path(final_path).filename().string() + ".tmp-";
  for (const auto& entry : fs::directory_iterator(fs::path(final_path).parent_path()))
    if (entry.path().filename().string().rfind(stem, 0) == 0) return true;
  return false;
}

void write_file(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

// Starts the binary through `sh -c "exec ..."` with the given descriptors as its stdout and stderr, and SIGPIPE at
// its default (so a binary that forgot to ignore it would die of it, as under a shell).
pid_t spawn(const std::string& args, int out_fd, int err_fd) {
  const std::string command = "exec " + std::string(LF_BINARY) + " " + args;
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::signal(SIGPIPE, SIG_DFL);
    ::dup2(out_fd, STDOUT_FILENO);
    ::dup2(err_fd, STDERR_FILENO);
    ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

struct Ended {
  int exit_code = -1;  // when it exited
  int signal = 0;      // when a signal ended it
};

Ended wait_for(pid_t pid) {
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  Ended ended;
  if (WIFEXITED(status)) ended.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) ended.signal = WTERMSIG(status);
  return ended;
}

int open_for_writing(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  REQUIRE(fd >= 0);
  return fd;
}

int64_t lines_with(const std::string& text, const std::string& needle) {
  int64_t count = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++count;
  return count;
}

double mean_abs_difference(const std::vector<lf::Frame>& a, const std::vector<lf::Frame>& b) {
  double sum = 0, count = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    for (size_t k = 0; k < a[i].rgb.size() && k < b[i].rgb.size(); ++k, ++count)
      sum += std::abs(int(a[i].rgb[k]) - int(b[i].rgb[k]));
  return count > 0 ? sum / count : INFINITY;
}

// The frames a --frames-dir holds, in order: PNG (read by OpenCV) or binary PPM.
std::vector<lf::Frame> read_frame_files(const std::string& dir, int count) {
  std::vector<lf::Frame> frames;
  for (int i = 0; i < count; ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "/frame_%05d", i);
    const std::string stem = dir + name;
    lf::Frame frame;
#if LF_WITH_OPENCV
    const cv::Mat bgr = cv::imread(stem + ".png", cv::IMREAD_COLOR);
    REQUIRE(!bgr.empty());
    cv::Mat rgb;
    cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
    frame = {rgb.cols, rgb.rows, std::vector<uint8_t>(rgb.data, rgb.data + rgb.total() * 3)};
#else
    const std::string bytes = read_bytes(stem + ".ppm");
    std::istringstream header(bytes);
    std::string magic;
    int maxval = 0;
    header >> magic >> frame.width >> frame.height >> maxval;
    REQUIRE(magic == "P6");
    const size_t offset = size_t(header.tellg()) + 1;
    frame.rgb.assign(bytes.begin() + ptrdiff_t(offset), bytes.end());
#endif
    frames.push_back(std::move(frame));
  }
  return frames;
}

}  // namespace

#if LF_WITH_FFMPEG

TEST_CASE("-o - streams fragmented MP4 to stdout: one fragment per chunk, the video's frames, the same bytes twice") {
  const RunResult first = run(kTiny + "--seed 3 -o -");
  REQUIRE_MESSAGE(first.exit_code == 0, first.err);
  CHECK(first.err.empty());  // --quiet: nothing on stderr either
  const lf::test::Mp4Fragments boxes = lf::test::read_mp4_fragments(first.out);
  CHECK(boxes.boxes.front() == "ftyp");
  CHECK(boxes.samples_per_fragment == std::vector<int64_t>{3, 3});  // 2 chunks of 3 frames
  const std::string streamed = fresh_tmp_path("stream_tiny.mp4");
  write_file(streamed, first.out);
  const lf::VideoInfo info = lf::probe_video(streamed);
  CHECK(info.frames == 6);
  CHECK(info.width == 256);
  CHECK(info.height == 256);
  CHECK(info.fps == doctest::Approx(16.0));

  // Deterministic: no wall-clock time or library version in the bytes; another seed, other bytes.
  CHECK(run(kTiny + "--seed 3 -o -").out == first.out);
  CHECK(run(kTiny + "--seed 4 -o -").out != first.out);

  // The file of the same run holds the same video. Not bit-equal pixels: the stream's encoder has no lookahead and
  // no B-frames (so frames leave with their chunk), the file's has; both at the same crf. So each is compared with
  // the exact frames (the lossless PNGs of --frames-dir): the stream must be about as faithful as the file.
  const std::string file = fresh_tmp_path("stream_tiny_file.mp4"), frames_dir = fresh_tmp_path("stream_tiny_frames");
  REQUIRE(run(kTiny + "--seed 3 -o " + file + " --frames-dir " + frames_dir).exit_code == 0);
  const std::vector<lf::Frame> from_stream = lf::read_video_frames(streamed), from_file = lf::read_video_frames(file);
  REQUIRE(from_stream.size() == 6);
  REQUIRE(from_file.size() == 6);
  const std::vector<lf::Frame> exact = read_frame_files(frames_dir, 6);
  const double stream_error = mean_abs_difference(from_stream, exact);
  const double file_error = mean_abs_difference(from_file, exact);
  MESSAGE("tiny: stream " << first.out.size() << " bytes, file " << fs::file_size(file) << " bytes; mean abs error "
                          << "against the exact frames: stream " << stream_error << ", file " << file_error
                          << "; stream against file " << mean_abs_difference(from_stream, from_file));
  // Both lose ~13 levels in 255 on this noise-like random-model video (mostly 4:2:0 chroma); a wrong or shifted
  // frame would lose several times that.
  CHECK(stream_error < 1.25 * file_error + 0.25);
}

TEST_CASE("-o - with the default (testbed) model: ffprobe or the project's reader counts every frame") {
  const std::string args = "generate --quiet --prompt 'a red circle moves right' --frames 6 --seed 1 -o -";
  const std::string saved = fresh_tmp_path("stream_testbed.mp4");
  // FFmpeg's own tools read it from the pipe, as a user's `| ffplay -` would (where the machine has them); tee keeps
  // the bytes for the checks below.
  if (std::system("command -v ffprobe >/dev/null 2>&1") == 0) {
    const std::string pipeline = std::string(LF_BINARY) + " " + args + " | tee " + saved +
                                 " | ffprobe -v error -count_frames -select_streams v:0 -show_entries "
                                 "stream=nb_read_frames,width,height -of csv=p=0 -";
    FILE* pipe = ::popen(pipeline.c_str(), "r");
    REQUIRE(pipe != nullptr);
    std::string out;
    char buffer[256];
    for (size_t n; (n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0;) out.append(buffer, n);
    CHECK(::pclose(pipe) == 0);
    CHECK(out == "256,256,6\n");
  } else {
    MESSAGE("ffprobe not installed: the pipe into ffprobe is not tried");
    const RunResult streamed = run(args);
    REQUIRE_MESSAGE(streamed.exit_code == 0, streamed.err);
    write_file(saved, streamed.out);
  }
  CHECK(lf::test::read_mp4_fragments(read_bytes(saved)).samples_per_fragment == std::vector<int64_t>{3, 3});
  CHECK(lf::probe_video(saved).frames == 6);
}

TEST_CASE("-o - refuses --json and a terminal, before any work") {
  const RunResult json = run(kTiny + "--json -o -");
  CHECK(json.exit_code == 2);
  CHECK(json.out.empty());
  CHECK(json.err.find("--json prints to stdout") != std::string::npos);
  CHECK(std::count(json.err.begin(), json.err.end(), '\n') == 1);

  // A pseudo-terminal as stdout, as in an interactive shell.
  const int terminal = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  REQUIRE(terminal >= 0);
  REQUIRE(::grantpt(terminal) == 0);
  REQUIRE(::unlockpt(terminal) == 0);
  const int user_side = ::open(::ptsname(terminal), O_RDWR | O_NOCTTY | O_CLOEXEC);
  REQUIRE(user_side >= 0);
  const std::string err_path = fresh_tmp_path("stream_tty_err.txt");
  const int err_fd = open_for_writing(err_path);
  const Ended ended = wait_for(spawn(kTiny + "-o -", user_side, err_fd));
  ::close(err_fd);
  ::close(user_side);
  const std::string err = read_bytes(err_path);
  CAPTURE(err);
  CHECK(ended.exit_code == 2);
  CHECK(err.find("stdout, which is a terminal") != std::string::npos);
  CHECK(std::count(err.begin(), err.end(), '\n') == 1);
  ::fcntl(terminal, F_SETFL, O_NONBLOCK);
  char byte = 0;
  CHECK(::read(terminal, &byte, 1) <= 0);  // not one byte of video reached the terminal
  ::close(terminal);

  // The same command line with stdout a pipe is fine (the refusals are about the flags and the terminal only).
  CHECK(run(kTiny + "-o -").exit_code == 0);
}

TEST_CASE("-o - into a pipe whose reader is gone: one error line, exit 1, no signal death, no temporaries") {
  const std::string latents = fresh_tmp_path("stream_broken_latents.safetensors");
  const std::string err_path = fresh_tmp_path("stream_broken_err.txt");

  SUBCASE("closed before the run starts") {
    int ends[2];
    REQUIRE(::pipe2(ends, O_CLOEXEC) == 0);  // the child keeps only the end it is given
    ::close(ends[0]);
    const int err_fd = open_for_writing(err_path);
    const Ended ended = wait_for(spawn(kTiny + "-o - --save-latents " + latents, ends[1], err_fd));
    ::close(err_fd);
    ::close(ends[1]);
    const std::string err = read_bytes(err_path);
    CAPTURE(err);
    CHECK(ended.signal == 0);
    CHECK(ended.exit_code == 1);
    CHECK(err.find("cannot write MP4 to stdout: the reader closed the pipe after 0 frames") != std::string::npos);
    CHECK(std::count(err.begin(), err.end(), '\n') == 1);
  }

  SUBCASE("closed mid-run, as `| head -c 1000` does") {
    int ends[2];
    REQUIRE(::pipe2(ends, O_CLOEXEC) == 0);  // the child keeps only the end it is given
    const int err_fd = open_for_writing(err_path);
    // 3 chunks: the reader closes after chunk 0's fragment, seconds before chunk 1's is written.
    const pid_t pid = spawn(
        "generate -m tiny --quiet --prompt 'a red circle' --frames 9 -o - --save-latents " + latents, ends[1], err_fd);
    ::close(ends[1]);
    ::close(err_fd);
    std::string head;
    char buffer[1000];
    while (head.size() < 1000) {
      const ssize_t n = ::read(ends[0], buffer, 1000 - head.size());
      if (n <= 0) break;
      head.append(buffer, size_t(n));
    }
    ::close(ends[0]);
    const Ended ended = wait_for(pid);
    const std::string err = read_bytes(err_path);
    CAPTURE(err);
    CHECK(head.size() == 1000);
    CHECK(head.substr(4, 4) == "ftyp");
    CHECK(ended.signal == 0);
    CHECK(ended.exit_code == 1);
    // The header (~760 bytes) and part of chunk 0's fragment were read; chunk 1's fragment found the pipe closed.
    CHECK(err.find("cannot write MP4 to stdout: the reader closed the pipe after 3 frames") != std::string::npos);
    CHECK(std::count(err.begin(), err.end(), '\n') == 1);
  }

  CHECK_FALSE(fs::exists(latents));
  CHECK_FALSE(has_temp_leftovers(latents));
}

TEST_CASE("the stream and --frames-dir carry each chunk's frames before the chunk's progress line") {
  // stdout a file the test reads while the run goes on; stderr the progress, one "  chunk i/4" line per chunk,
  // printed after that chunk's frames were written. Whenever k lines are there, 3k frames must be out already.
  const std::string stream_path = fresh_tmp_path("stream_progress.mp4");
  const std::string err_path = fresh_tmp_path("stream_progress.txt");
  const std::string frames_dir = fresh_tmp_path("stream_progress_frames");
  const int out_fd = open_for_writing(stream_path), err_fd = open_for_writing(err_path);
  const pid_t pid =
      spawn("generate -m tiny --prompt 'a red circle' --frames 12 -o - --frames-dir " + frames_dir, out_fd, err_fd);
  ::close(out_fd);
  ::close(err_fd);
  int64_t mid_run_looks = 0, behind = 0;
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    const int64_t chunks_reported = lines_with(read_bytes(err_path), "  chunk ");
    int64_t frame_files = 0;
    std::error_code error;
    for (const auto& entry : fs::directory_iterator(frames_dir, error))
      frame_files += entry.path().extension() == ".png" || entry.path().extension() == ".ppm";
    const int64_t streamed = lf::test::read_mp4_fragments(read_bytes(stream_path)).samples();
    if (chunks_reported > 0 && chunks_reported < 4) ++mid_run_looks;
    if ((frame_files < 3 * chunks_reported || streamed < 3 * chunks_reported) && behind++ == 0) {
      MESSAGE("after " << chunks_reported << " chunks: " << frame_files << " frame files, " << streamed
                       << " frames streamed");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(behind == 0);
  // Looks taken while the run was under way, or the check above said nothing.
  MESSAGE(mid_run_looks << " looks mid-run");
  CHECK(mid_run_looks > 0);
  CHECK(lf::test::read_mp4_fragments(read_bytes(stream_path)).samples_per_fragment == std::vector<int64_t>(4, 3));
}

#endif  // LF_WITH_FFMPEG
