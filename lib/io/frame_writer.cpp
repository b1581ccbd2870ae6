#include "io/frame_writer.h"

#include <unistd.h>

#include <filesystem>
#include <system_error>
#include <utility>
#include <vector>

#include "core/error.h"
#include "io/atomic_file.h"

#if LF_WITH_OPENCV
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#endif

namespace lf {

namespace fs = std::filesystem;

const char* frame_format_extension(FrameFormat format) { return format == FrameFormat::PNG ? "png" : "ppm"; }

FrameFormat default_frame_format() { return LF_WITH_OPENCV ? FrameFormat::PNG : FrameFormat::PPM; }

std::string encode_ppm(const Frame& frame) {
  check_frame(frame, "encode_ppm");
  std::string bytes = fmt::format("P6\n{} {}\n255\n", frame.width, frame.height);
  bytes.append(reinterpret_cast<const char*>(frame.rgb.data()), frame.rgb.size());
  return bytes;
}

namespace {

#if LF_WITH_OPENCV
std::string encode_png(const Frame& frame, const std::string& path) {
  // OpenCV wants BGR; the Mat header borrows the frame's bytes and cvtColor makes the one copy.
  const cv::Mat rgb(frame.height, frame.width, CV_8UC3, const_cast<uint8_t*>(frame.rgb.data()));
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  std::vector<uchar> bytes;
  // Encoded in memory because imwrite picks the codec from the extension, which the temporary name lacks.
  LF_CHECK(cv::imencode(".png", bgr, bytes), "cannot encode PNG frame '{}'", path);
  return std::string(bytes.begin(), bytes.end());
}
#endif

}  // namespace

FrameWriter::FrameWriter(std::string dir, FrameFormat format) : dir_(std::move(dir)), format_(format) {
  LF_CHECK(!dir_.empty(), "frame directory: empty path");
#if !LF_WITH_OPENCV
  LF_CHECK(format_ != FrameFormat::PNG,
           "this build has no OpenCV (LF_WITH_OPENCV=OFF): cannot write PNG frames to '{}'; use PPM frames", dir_);
#endif
  std::error_code error;
  if (!fs::is_directory(dir_, error)) {
    LF_CHECK(!fs::exists(dir_, error), "frame directory '{}' exists but is not a directory", dir_);
    fs::create_directories(dir_, error);
    LF_CHECK(!error, "cannot create frame directory '{}': {}", dir_, error.message());
  }
  LF_CHECK(::access(dir_.c_str(), W_OK) == 0, "frame directory '{}' is not writable", dir_);
  // Frames an earlier run left here (this writer's own names only: frame_<5+ digits>.png / .ppm) would sit beside
  // the new ones and read as part of this video; nothing else in the directory is touched.
  for (const auto& entry : fs::directory_iterator(dir_, error)) {
    const std::string name = entry.path().filename().string();
    const size_t dot = name.rfind('.');
    if (name.rfind("frame_", 0) != 0 || dot == std::string::npos || dot < 11 || !entry.is_regular_file(error)) continue;
    const std::string digits = name.substr(6, dot - 6), extension = name.substr(dot + 1);
    if ((extension == "png" || extension == "ppm") &&
        digits.find_first_not_of("0123456789") == std::string::npos)
      fs::remove(entry.path(), error);
  }
}

std::string FrameWriter::frame_path(int64_t index) const {
  return (fs::path(dir_) / fmt::format("frame_{:05d}.{}", index, frame_format_extension(format_))).string();
}

std::string FrameWriter::write(const Frame& frame) {
  check_frame(frame, "FrameWriter::write");
  const std::string path = frame_path(next_index_);
#if LF_WITH_OPENCV
  const std::string bytes = format_ == FrameFormat::PNG ? encode_png(frame, path) : encode_ppm(frame);
#else
  const std::string bytes = encode_ppm(frame);
#endif
  write_file_atomic(path, bytes);
  ++next_index_;
  return path;
}

}  // namespace lf
