#pragma once
// Decoding of videos back to RGB, for tests and quality metrics on the development machine. Needs FFmpeg; in a
// build without it every function throws lf::Error.
#include <cstdint>
#include <string>
#include <vector>

#include "io/frame.h"

namespace lf {

struct VideoInfo {
  int width = 0;
  int height = 0;
  int64_t frames = 0;  // frames actually decoded, not the container's claim
  double fps = 0;      // the stream's average frame rate (0 when the container does not say)
};

// Decodes the whole first video stream to count its frames.
VideoInfo probe_video(const std::string& path);

// Decodes every frame of the first video stream to RGB24, in presentation order.
std::vector<Frame> read_video_frames(const std::string& path);

}  // namespace lf
