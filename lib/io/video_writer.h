#pragma once
// H.264 MP4 output. Frames are encoded as they arrive (chunk by chunk during generation) into "<path>.tmp-<pid>",
// which is renamed to `path` only by finish(); an error mid-generation therefore never leaves a truncated MP4.
// Output is bit-exact: the same frames give the same file bytes (see docs/output.md).
#include <cstdint>
#include <memory>
#include <string>

#include "io/frame.h"

namespace lf {

class VideoWriter {
 public:
  struct Options {
    std::string path;
    int width = 0;   // must be even (4:2:0 chroma)
    int height = 0;  // must be even
    int fps = 16;
    int crf = 18;  // x264 constant rate factor, 0 (lossless) .. 51
    std::string preset = "medium";  // x264 preset: ultrafast .. placebo
  };

  // Validates the options and the output directory, then opens the encoder and writes the container header.
  // Throws lf::Error (naming the path) on any failure, and always when the build has no FFmpeg.
  explicit VideoWriter(const Options& options);
  ~VideoWriter();  // without finish(): discards the temporary file; nothing appears at `path`
  VideoWriter(VideoWriter&&) noexcept;
  VideoWriter& operator=(VideoWriter&&) noexcept;
  VideoWriter(const VideoWriter&) = delete;
  VideoWriter& operator=(const VideoWriter&) = delete;

  void write(const Frame& frame);  // frame must be exactly width x height
  void finish();                   // flush the encoder, write the trailer, rename into place

  int64_t frames_written() const;
  const std::string& path() const;
  const std::string& encoder_name() const;  // "libx264" unless it fell back to another H.264 encoder

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lf
