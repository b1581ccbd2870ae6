#pragma once
// Frames as numbered image files in a directory: "frame_00000.png" (OpenCV builds) or "frame_00000.ppm" (binary
// P6, no library needed, so GPU machines without FFmpeg/OpenCV can still save what they generate). Each file is
// written to a temporary name and renamed, so a listed frame file is always complete.
#include <cstdint>
#include <string>

#include "io/frame.h"

namespace lf {

enum class FrameFormat { PNG, PPM };

const char* frame_format_extension(FrameFormat format);  // "png", "ppm"
FrameFormat default_frame_format();                       // PNG when built with OpenCV, else PPM

// The P6 encoding of `frame`: "P6\n<width> <height>\n255\n" followed by the RGB bytes.
std::string encode_ppm(const Frame& frame);

class FrameWriter {
 public:
  // Creates `dir` (and its parents) when missing; fails with lf::Error when it cannot be created or written, or
  // when PNG is asked of a build without OpenCV. Frames of an earlier run there (frame_<digits>.png / .ppm) are
  // removed; other files are left alone.
  FrameWriter(std::string dir, FrameFormat format);

  // Writes the next frame as "<dir>/frame_<index, 5 digits>.<ext>" and returns that path.
  std::string write(const Frame& frame);

  std::string frame_path(int64_t index) const;
  int64_t frames_written() const { return next_index_; }
  const std::string& dir() const { return dir_; }
  FrameFormat format() const { return format_; }

 private:
  std::string dir_;
  FrameFormat format_;
  int64_t next_index_ = 0;
};

}  // namespace lf
