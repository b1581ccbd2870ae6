#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "io/frame.h"
#include "io/frame_writer.h"
#include "io/video_reader.h"
#include "io/video_writer.h"
#include "mp4_boxes.h"
#include "test_util.h"

#if LF_WITH_OPENCV
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#endif

using namespace lf;
namespace fs = std::filesystem;

namespace {

// Smooth content that moves from frame to frame, so the encoder has real motion but no aliasing-sized detail.
Frame gradient_frame(int width, int height, int t) {
  Frame frame{width, height, std::vector<uint8_t>(size_t(width) * size_t(height) * 3)};
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      uint8_t* pixel = &frame.rgb[(size_t(y) * width + x) * 3];
      pixel[0] = uint8_t(127.5 + 120.0 * std::sin((x + 2.0 * t) / 10.0));
      pixel[1] = uint8_t(10 + (y * 230) / (height - 1));
      pixel[2] = uint8_t(30 + ((x + y + 3 * t) * 190) / (width + height + 60));
    }
  }
  return frame;
}

std::vector<Frame> gradient_video(int width, int height, int count) {
  std::vector<Frame> frames;
  for (int t = 0; t < count; ++t) frames.push_back(gradient_frame(width, height, t));
  return frames;
}

std::string read_bytes(const std::string& path) {
  std::ifstream stream(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(stream), std::istreambuf_iterator<char>());
}

std::string temp_path_of(const std::string& path) { return path + ".tmp-" + std::to_string(::getpid()); }

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

// Minimal P6 reader: magic, width, height, maxval separated by single whitespace, then raw RGB.
Frame parse_ppm(const std::string& bytes) {
  std::istringstream header(bytes);
  std::string magic;
  int width = 0, height = 0, maxval = 0;
  header >> magic >> width >> height >> maxval;
  REQUIRE(magic == "P6");
  REQUIRE(maxval == 255);
  const size_t offset = size_t(header.tellg()) + 1;  // one whitespace byte after maxval
  Frame frame{width, height, {}};
  REQUIRE(bytes.size() == offset + size_t(width) * size_t(height) * 3);
  frame.rgb.assign(bytes.begin() + ptrdiff_t(offset), bytes.end());
  return frame;
}

void remove_all(const std::string& path) {
  std::error_code error;
  fs::remove_all(path, error);
}

}  // namespace

TEST_CASE("fp32 CHW images become RGB bytes with rounding, clamping and upscaling") {
  Tensor image = Tensor::empty({3, 1, 2});
  float* data = image.f32();
  // pixel 0: R G B, pixel 1: R G B (channel-major)
  data[0] = 0.5f;   // 127.5 -> 128
  data[1] = NAN;    // -> 0
  data[2] = 1.5f;   // clamps to 255
  data[3] = -0.2f;  // clamps to 0
  data[4] = 0.2f;   // 51
  data[5] = 1.0f / 255.0f * 3.49f;  // 3.49 -> 3
  Frame frame = frame_from_tensor(image);
  CHECK(frame.width == 2);
  CHECK(frame.height == 1);
  CHECK(frame.rgb == std::vector<uint8_t>{128, 255, 51, 0, 0, 3});

  Frame big = frame_from_tensor(image, 3);
  CHECK(big.width == 6);
  CHECK(big.height == 3);
  for (int y = 0; y < 3; ++y) {
    for (int x = 0; x < 6; ++x) {
      const uint8_t* pixel = &big.rgb[(size_t(y) * 6 + x) * 3];
      const uint8_t* expected = &frame.rgb[size_t(x / 3) * 3];
      CHECK(std::equal(pixel, pixel + 3, expected));
    }
  }
  CHECK_THROWS_AS(frame_from_tensor(Tensor::zeros({4, 2, 2})), Error);
  CHECK_THROWS_AS(frame_from_tensor(image, 0), Error);

  // A [3, T, H, W] video: frame 1 of 2 picks the second time slice of each channel.
  Tensor video = Tensor::zeros({3, 2, 1, 1});
  video.f32()[1] = 1.0f;  // R of frame 1
  video.f32()[5] = 1.0f;  // B of frame 1
  CHECK(frame_from_video_tensor(video, 1).rgb == std::vector<uint8_t>{255, 0, 255});
  CHECK(frame_from_video_tensor(video, 0).rgb == std::vector<uint8_t>{0, 0, 0});
}

TEST_CASE("PPM frame writer round-trips pixels and creates its directory") {
  const std::string dir = test::tmp_path("video_ppm/nested/frames");
  remove_all(test::tmp_path("video_ppm"));
  FrameWriter writer(dir, FrameFormat::PPM);
  const std::vector<Frame> frames = gradient_video(10, 6, 3);
  for (const Frame& frame : frames) writer.write(frame);
  CHECK(writer.frames_written() == 3);
  for (int i = 0; i < 3; ++i) {
    const std::string path = dir + "/frame_0000" + std::to_string(i) + ".ppm";
    REQUIRE(fs::exists(path));
    CHECK(!fs::exists(temp_path_of(path)));
    const Frame back = parse_ppm(read_bytes(path));
    CHECK(back.width == 10);
    CHECK(back.height == 6);
    CHECK(back.rgb == frames[size_t(i)].rgb);
  }
  CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator()) == 3);
}

TEST_CASE("frame writer removes an earlier run's frames from its directory, and nothing else") {
  const std::string dir = test::tmp_path("video_reused");
  remove_all(dir);
  fs::create_directories(dir);
  for (const char* name : {"frame_00009.ppm", "frame_00003.png", "frame_123456.ppm", "notes.txt", "frame_00001.jpg",
                           "frame_x.ppm", "myframe_00001.ppm"})
    std::ofstream(dir + "/" + name) << "old";
  FrameWriter writer(dir, FrameFormat::PPM);
  writer.write(gradient_video(4, 4, 1).front());
  CHECK(fs::exists(dir + "/frame_00000.ppm"));
  for (const char* gone : {"frame_00009.ppm", "frame_00003.png", "frame_123456.ppm"}) CHECK(!fs::exists(dir + "/" + gone));
  for (const char* kept : {"notes.txt", "frame_00001.jpg", "frame_x.ppm", "myframe_00001.ppm"})
    CHECK(fs::exists(dir + "/" + kept));
}

TEST_CASE("frame writer refuses a directory it cannot create") {
  const std::string file = test::tmp_path("video_not_a_dir");
  std::ofstream(file) << "x";
  const std::string message = error_of([&] { FrameWriter(file + "/frames", FrameFormat::PPM); });
  CHECK(message.find(file + "/frames") != std::string::npos);
  const std::string message2 = error_of([&] { FrameWriter(file, FrameFormat::PPM); });
  CHECK(message2.find("not a directory") != std::string::npos);
  CHECK_THROWS_AS(FrameWriter("", FrameFormat::PPM), Error);
}

#if LF_WITH_OPENCV
TEST_CASE("PNG frame writer round-trips pixels") {
  CHECK(default_frame_format() == FrameFormat::PNG);
  const std::string dir = test::tmp_path("video_png");
  remove_all(dir);
  FrameWriter writer(dir, FrameFormat::PNG);
  const std::vector<Frame> frames = gradient_video(12, 8, 2);
  for (const Frame& frame : frames) writer.write(frame);
  for (int i = 0; i < 2; ++i) {
    const std::string path = writer.frame_path(i);
    CHECK(path == dir + "/frame_0000" + std::to_string(i) + ".png");
    cv::Mat bgr = cv::imread(path, cv::IMREAD_COLOR);
    REQUIRE(!bgr.empty());
    cv::Mat rgb;
    cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
    REQUIRE(rgb.isContinuous());
    CHECK(rgb.cols == 12);
    CHECK(rgb.rows == 8);
    CHECK(std::vector<uint8_t>(rgb.data, rgb.data + rgb.total() * 3) == frames[size_t(i)].rgb);
  }
}
#else
TEST_CASE("PNG frames need OpenCV") {
  CHECK(default_frame_format() == FrameFormat::PPM);
  const std::string message = error_of([] { FrameWriter(test::tmp_path("video_png"), FrameFormat::PNG); });
  CHECK(message.find("LF_WITH_OPENCV=OFF") != std::string::npos);
}
#endif

#if LF_WITH_FFMPEG

namespace {

void write_mp4(const std::string& path, const std::vector<Frame>& frames, int fps = 16) {
  VideoWriter writer({.path = path, .width = frames[0].width, .height = frames[0].height, .fps = fps});
  for (const Frame& frame : frames) writer.write(frame);
  writer.finish();
}

}  // namespace

TEST_CASE("MP4 round trip: frame count, size, rate and pixels") {
  const std::string path = test::tmp_path("video_roundtrip.mp4");
  std::remove(path.c_str());
  const std::vector<Frame> frames = gradient_video(64, 48, 20);
  {
    VideoWriter writer({.path = path, .width = 64, .height = 48, .fps = 16});
    CHECK(writer.encoder_name() == "libx264");
    for (const Frame& frame : frames) writer.write(frame);
    CHECK(writer.frames_written() == 20);
    CHECK(!fs::exists(path));  // nothing at the final path until finish()
    writer.finish();
    CHECK_THROWS_AS(writer.finish(), Error);
    CHECK_THROWS_AS(writer.write(frames[0]), Error);
  }
  REQUIRE(fs::exists(path));
  CHECK(!fs::exists(temp_path_of(path)));

  const VideoInfo info = probe_video(path);
  CHECK(info.frames == 20);
  CHECK(info.width == 64);
  CHECK(info.height == 48);
  CHECK(info.fps == doctest::Approx(16.0));

  const std::vector<Frame> decoded = read_video_frames(path);
  REQUIRE(decoded.size() == 20);
  double total = 0;
  double worst_frame = 0;
  for (size_t i = 0; i < decoded.size(); ++i) {
    REQUIRE(decoded[i].width == 64);
    REQUIRE(decoded[i].height == 48);
    double sum = 0;
    for (size_t k = 0; k < frames[i].rgb.size(); ++k) sum += std::abs(int(decoded[i].rgb[k]) - int(frames[i].rgb[k]));
    const double mean = sum / double(frames[i].rgb.size());
    total += mean;
    worst_frame = std::max(worst_frame, mean);
  }
  MESSAGE("mean abs error " << total / 20 << ", worst frame " << worst_frame);
  CHECK(total / 20 < 6.0);
  CHECK(worst_frame < 8.0);
}

TEST_CASE("MP4 colours survive the RGB -> YUV -> RGB trip (matching matrix on both sides)") {
  const std::string path = test::tmp_path("video_colours.mp4");
  const uint8_t colours[4][3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {240, 200, 40}};
  std::vector<Frame> frames;
  for (const auto& colour : colours) {
    Frame frame{32, 32, std::vector<uint8_t>(32 * 32 * 3)};
    for (size_t i = 0; i < frame.rgb.size(); ++i) frame.rgb[i] = colour[i % 3];
    for (int repeat = 0; repeat < 4; ++repeat) frames.push_back(frame);
  }
  write_mp4(path, frames);
  const std::vector<Frame> decoded = read_video_frames(path);
  REQUIRE(decoded.size() == frames.size());
  for (size_t i = 0; i < frames.size(); ++i) {
    const size_t centre = (16 * 32 + 16) * 3;
    for (int c = 0; c < 3; ++c) CHECK(std::abs(int(decoded[i].rgb[centre + c]) - int(frames[i].rgb[centre + c])) <= 4);
  }
}

TEST_CASE("MP4 output is deterministic: same frames, same bytes") {
  const std::vector<Frame> frames = gradient_video(64, 48, 20);
  const std::string first = test::tmp_path("video_det_a.mp4");
  const std::string second = test::tmp_path("video_det_b.mp4");
  write_mp4(first, frames);
  // Long enough for any wall-clock timestamp (seconds resolution in MP4) to differ between the two files.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  write_mp4(second, frames);
  const std::string a = read_bytes(first);
  const std::string b = read_bytes(second);
  CHECK(a.size() > 1000);
  CHECK(a == b);
}

TEST_CASE("MP4 writer refuses odd sizes and bad settings") {
  const std::string path = test::tmp_path("video_odd.mp4");
  std::remove(path.c_str());
  std::string message = error_of([&] { VideoWriter({.path = path, .width = 63, .height = 48}); });
  CHECK(message.find("63x48") != std::string::npos);
  CHECK(message.find("even") != std::string::npos);
  message = error_of([&] { VideoWriter({.path = path, .width = 64, .height = 47}); });
  CHECK(message.find("64x47") != std::string::npos);
  message = error_of([&] { VideoWriter({.path = path, .width = 64, .height = 48, .preset = "warp"}); });
  CHECK(message.find("warp") != std::string::npos);
  CHECK_THROWS_AS(VideoWriter({.path = path, .width = 64, .height = 48, .crf = 60}), Error);
  CHECK_THROWS_AS(VideoWriter({.path = path, .width = 64, .height = 48, .fps = 0}), Error);
  CHECK(!fs::exists(path));
  CHECK(!fs::exists(temp_path_of(path)));

  VideoWriter writer({.path = path, .width = 64, .height = 48});
  message = error_of([&] { writer.write(gradient_frame(32, 48, 0)); });
  CHECK(message.find("32x48") != std::string::npos);
}

TEST_CASE("MP4 writer refuses an unwritable path before encoding") {
  const std::string path = "/nonexistent_dir/x.mp4";
  const std::string message = error_of([&] { VideoWriter({.path = path, .width = 64, .height = 48}); });
  CHECK(message.find(path) != std::string::npos);
  CHECK(!fs::exists("/nonexistent_dir"));

  // A directory given as the output file.
  const std::string dir = test::tmp_path("video_dir.mp4");
  fs::create_directories(dir);
  CHECK(error_of([&] { VideoWriter({.path = dir, .width = 64, .height = 48}); }).find(dir) != std::string::npos);

  // Permissions do not bind root, so the read-only case only means something for other users.
  if (::geteuid() != 0) {
    const std::string readonly = test::tmp_path("video_readonly");
    fs::create_directories(readonly);
    fs::permissions(readonly, fs::perms::owner_read | fs::perms::owner_exec);
    const std::string inside = readonly + "/x.mp4";
    CHECK(error_of([&] { VideoWriter({.path = inside, .width = 64, .height = 48}); }).find(inside) !=
          std::string::npos);
    CHECK(fs::is_empty(readonly));
    fs::permissions(readonly, fs::perms::owner_all);
  }
}

TEST_CASE("MP4 writer destroyed without finish() leaves nothing behind") {
  const std::string path = test::tmp_path("video_abandoned.mp4");
  std::remove(path.c_str());
  {
    VideoWriter writer({.path = path, .width = 64, .height = 48, .preset = "ultrafast"});
    for (const Frame& frame : gradient_video(64, 48, 8)) writer.write(frame);
    CHECK(fs::exists(temp_path_of(path)));  // the stream is being written as frames arrive
    CHECK(!fs::exists(path));
  }
  CHECK(!fs::exists(path));
  CHECK(!fs::exists(temp_path_of(path)));

  // Same when an exception unwinds through generation.
  CHECK_THROWS_AS(([&] {
                    VideoWriter writer({.path = path, .width = 64, .height = 48});
                    writer.write(gradient_frame(64, 48, 0));
                    fail("generation failed");
                  }()),
                  Error);
  CHECK(!fs::exists(path));
  CHECK(!fs::exists(temp_path_of(path)));
}

TEST_CASE("MP4 file grows while frames are written") {
  const std::string path = test::tmp_path("video_growing.mp4");
  VideoWriter writer({.path = path, .width = 128, .height = 96, .preset = "ultrafast"});
  const std::vector<Frame> frames = gradient_video(128, 96, 80);
  uintmax_t size_after_header = fs::file_size(temp_path_of(path));
  for (const Frame& frame : frames) writer.write(frame);
  // ultrafast has no lookahead, so encoded packets reach the file before finish().
  CHECK(fs::file_size(temp_path_of(path)) > size_after_header);
  writer.finish();
  CHECK(probe_video(path).frames == 80);
}

namespace {

// A regular file opened for a stream: it receives exactly the bytes a pipe would (the stream never seeks), and the
// test can read them back at any moment.
struct StreamFile {
  std::string path;
  int fd = -1;
  explicit StreamFile(const std::string& name) : path(test::tmp_path(name)) {
    fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    REQUIRE(fd >= 0);
  }
  ~StreamFile() { ::close(fd); }
};

void write_stream(const StreamFile& file, const std::vector<Frame>& frames, int frames_per_flush) {
  VideoWriter writer(
      {.path = "test stream", .width = frames[0].width, .height = frames[0].height, .stream_fd = file.fd});
  for (size_t i = 0; i < frames.size(); ++i) {
    writer.write(frames[i]);
    if ((i + 1) % size_t(frames_per_flush) == 0) writer.flush();
  }
  writer.finish();
}

// SIGPIPE ignored for one scope, as lightforce generate does for -o -: a write to a closed pipe then fails with EPIPE.
struct IgnoreSigpipe {
  struct sigaction previous {};
  IgnoreSigpipe() {
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    ::sigaction(SIGPIPE, &ignore, &previous);
  }
  ~IgnoreSigpipe() { ::sigaction(SIGPIPE, &previous, nullptr); }
};

double mean_abs_difference(const std::vector<Frame>& a, const std::vector<Frame>& b) {
  double sum = 0, count = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    for (size_t k = 0; k < a[i].rgb.size() && k < b[i].rgb.size(); ++k, ++count)
      sum += std::abs(int(a[i].rgb[k]) - int(b[i].rgb[k]));
  return count > 0 ? sum / count : INFINITY;
}

}  // namespace

TEST_CASE("MP4 stream: the index first, then one fragment per flush, each readable when flush() returns") {
  StreamFile file("video_stream.mp4");
  const std::vector<Frame> frames = gradient_video(64, 48, 15);
  {
    VideoWriter writer({.path = "test stream", .width = 64, .height = 48, .fps = 16, .stream_fd = file.fd});
    // The player learns size and codec before any frame is generated.
    CHECK(test::read_mp4_fragments(read_bytes(file.path)).boxes == std::vector<std::string>{"ftyp", "moov"});
    for (int chunk = 0; chunk < 3; ++chunk) {
      for (int i = 0; i < 5; ++i) writer.write(frames[size_t(chunk * 5 + i)]);
      writer.flush();
      writer.flush();  // nothing new since the last: no empty fragment
      CAPTURE(chunk);
      // Every frame of every flushed chunk is out (the default encoder's lookahead would still hold them all).
      CHECK(test::read_mp4_fragments(read_bytes(file.path)).samples_per_fragment ==
            std::vector<int64_t>(size_t(chunk + 1), 5));
      CHECK(read_video_frames(file.path).size() == size_t(5 * (chunk + 1)));  // FFmpeg reads it as it stands
    }
    writer.finish();
    CHECK_THROWS_AS(writer.flush(), Error);
  }
  CHECK(::fcntl(file.fd, F_GETFD) != -1);  // the caller's descriptor is left open
  const test::Mp4Fragments done = test::read_mp4_fragments(read_bytes(file.path));
  CHECK(done.samples_per_fragment == std::vector<int64_t>{5, 5, 5});
  const VideoInfo info = probe_video(file.path);
  CHECK(info.frames == 15);
  CHECK(info.width == 64);
  CHECK(info.height == 48);
  CHECK(info.fps == doctest::Approx(16.0));
}

TEST_CASE("MP4 stream: deterministic bytes, the same pixels as a low-latency file, close to the default file") {
  const std::vector<Frame> frames = gradient_video(64, 48, 20);
  StreamFile first("video_stream_a.mp4"), second("video_stream_b.mp4");
  write_stream(first, frames, 4);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // a wall-clock time in the bytes would differ
  write_stream(second, frames, 4);
  const std::string bytes = read_bytes(first.path);
  CHECK(bytes.size() > 1000);
  CHECK(bytes == read_bytes(second.path));

  // The same encoder settings in a plain file: the container differs, the decoded pixels may not.
  const std::string low_latency = test::tmp_path("video_low_latency.mp4");
  VideoWriter writer({.path = low_latency, .width = 64, .height = 48, .low_latency = true});
  for (const Frame& frame : frames) writer.write(frame);
  writer.finish();
  const std::vector<Frame> streamed = read_video_frames(first.path);
  const std::vector<Frame> from_file = read_video_frames(low_latency);
  REQUIRE(streamed.size() == 20);
  REQUIRE(from_file.size() == 20);
  for (size_t i = 0; i < streamed.size(); ++i) CHECK(streamed[i].rgb == from_file[i].rgb);

  // The default file (lookahead, B-frames) encodes the same frames a little differently.
  const std::string default_file = test::tmp_path("video_default_settings.mp4");
  write_mp4(default_file, frames);
  const double difference = mean_abs_difference(streamed, read_video_frames(default_file));
  MESSAGE("stream " << bytes.size() << " bytes, default file " << fs::file_size(default_file)
                    << " bytes, mean abs pixel difference " << difference);
  CHECK(difference < 2.0);
}

TEST_CASE("MP4 stream to a pipe whose reader is gone: one error saying so, at the header or at the next flush") {
  IgnoreSigpipe ignore;
  const std::vector<Frame> frames = gradient_video(64, 48, 6);
  int ends[2];
  REQUIRE(::pipe(ends) == 0);
  ::close(ends[0]);
  std::string message =
      error_of([&] { VideoWriter({.path = "stdout", .width = 64, .height = 48, .stream_fd = ends[1]}); });
  CHECK(message == "cannot write MP4 to stdout: the reader closed the pipe after 0 frames");
  ::close(ends[1]);

  REQUIRE(::pipe(ends) == 0);
  {
    VideoWriter writer({.path = "stdout", .width = 64, .height = 48, .stream_fd = ends[1]});
    for (int i = 0; i < 3; ++i) writer.write(frames[size_t(i)]);
    writer.flush();  // fits the pipe's buffer: nobody needs to read yet
    ::close(ends[0]);  // the player quits
    for (int i = 3; i < 6; ++i) writer.write(frames[size_t(i)]);
    message = error_of([&] { writer.flush(); });
    CHECK(message == "cannot write MP4 to stdout: the reader closed the pipe after 3 frames");  // the first flush's
  }
  ::close(ends[1]);

  message = error_of([&] { VideoWriter({.path = "", .width = 64, .height = 48, .stream_fd = 999}); });
  CHECK(message == "cannot write MP4 to descriptor 999: descriptor 999 is not open");
}

#else  // !LF_WITH_FFMPEG

TEST_CASE("without FFmpeg the MP4 writer and reader fail with a pointer to the alternatives") {
  const std::string path = test::tmp_path("video_none.mp4");
  const std::string message = error_of([&] { VideoWriter({.path = path, .width = 64, .height = 48}); });
  CHECK(message.find("LF_WITH_FFMPEG=OFF") != std::string::npos);
  CHECK(message.find(path) != std::string::npos);
  CHECK(message.find("--frames-dir") != std::string::npos);
  CHECK_THROWS_AS(probe_video(path), Error);
  CHECK_THROWS_AS(read_video_frames(path), Error);
  CHECK(!fs::exists(path));
}

#endif  // LF_WITH_FFMPEG
