#pragma once
// One decoded or generated video frame as 8-bit RGB, the common currency of the MP4, PNG and PPM writers and of
// the MP4 reader. Model outputs are fp32 in [0, 1]; the helpers below are the single place they become bytes, so
// every output format sees exactly the same pixels.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"

namespace lf {

struct Frame {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;  // RGB24, row-major, 3 bytes a pixel, no row padding: size == width * height * 3
};

// Fails with a one-line error when `frame` is empty or its buffer does not match its size.
inline void check_frame(const Frame& frame, const char* what) {
  LF_CHECK(frame.width > 0 && frame.height > 0, "{}: empty frame ({}x{})", what, frame.width, frame.height);
  LF_CHECK(frame.rgb.size() == size_t(frame.width) * size_t(frame.height) * 3,
           "{}: frame {}x{} has {} bytes of RGB, expected {}", what, frame.width, frame.height, frame.rgb.size(),
           size_t(frame.width) * size_t(frame.height) * 3);
}

// [0, 1] -> [0, 255] with round-to-nearest (halves up) and clamping; NaN becomes 0 so a diverged pixel shows as
// black instead of becoming undefined behaviour in the float -> int cast.
inline uint8_t unit_to_u8(float value) {
  const float scaled = value * 255.0f;
  if (!(scaled > 0.0f)) return 0;  // also catches NaN
  if (scaled >= 255.0f) return 255;
  return uint8_t(scaled + 0.5f);
}

// Converts a channel-major fp32 image (channel c, row y, column x at data[c * channel_stride + y * width + x]) to a
// Frame, each pixel repeated `upscale` x `upscale` times (nearest neighbour). The explicit channel stride lets a
// frame be taken straight out of a [3, T, H, W] video (channel_stride = T * H * W) without a copy.
inline Frame frame_from_chw(const float* data, int64_t channel_stride, int height, int width, int upscale = 1) {
  LF_CHECK(height > 0 && width > 0, "frame_from_chw: empty image {}x{}", width, height);
  LF_CHECK(upscale >= 1, "frame_from_chw: upscale factor must be >= 1, got {}", upscale);
  LF_CHECK(channel_stride >= int64_t(height) * width, "frame_from_chw: channel stride {} is smaller than {}x{}",
           channel_stride, width, height);
  Frame frame;
  frame.width = width * upscale;
  frame.height = height * upscale;
  frame.rgb.resize(size_t(frame.width) * size_t(frame.height) * 3);
  std::vector<uint8_t> row(size_t(frame.width) * 3);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      const int64_t offset = int64_t(y) * width + x;
      const uint8_t pixel[3] = {unit_to_u8(data[offset]), unit_to_u8(data[channel_stride + offset]),
                                unit_to_u8(data[2 * channel_stride + offset])};
      for (int repeat = 0; repeat < upscale; ++repeat) {
        uint8_t* out = &row[(size_t(x) * upscale + repeat) * 3];
        out[0] = pixel[0];
        out[1] = pixel[1];
        out[2] = pixel[2];
      }
    }
    for (int repeat = 0; repeat < upscale; ++repeat) {
      const size_t out_row = size_t(y) * upscale + repeat;
      std::copy(row.begin(), row.end(), frame.rgb.begin() + ptrdiff_t(out_row * row.size()));
    }
  }
  return frame;
}

// `image` is f32 [3, H, W] in [0, 1].
inline Frame frame_from_tensor(const Tensor& image, int upscale = 1) {
  check_shape(image, {3, -1, -1}, "frame_from_tensor");
  return frame_from_chw(image.f32(), image.dim(1) * image.dim(2), int(image.dim(1)), int(image.dim(2)), upscale);
}

// `video` is f32 [3, T, H, W] in [0, 1]; returns frame `index` (0 <= index < T).
inline Frame frame_from_video_tensor(const Tensor& video, int64_t index, int upscale = 1) {
  check_shape(video, {3, -1, -1, -1}, "frame_from_video_tensor");
  LF_CHECK(index >= 0 && index < video.dim(1), "frame_from_video_tensor: frame {} out of range for shape {}", index,
           shape_str(video.shape()));
  const int64_t plane = video.dim(2) * video.dim(3);
  return frame_from_chw(video.f32() + index * plane, video.dim(1) * plane, int(video.dim(2)), int(video.dim(3)),
                        upscale);
}

}  // namespace lf
