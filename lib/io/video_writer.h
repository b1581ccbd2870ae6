#pragma once
// H.264 MP4 output. Frames are encoded as they arrive (chunk by chunk during generation) into "<path>.tmp-<pid>",
// which is renamed to `path` only by finish(); an error mid-generation therefore never leaves a truncated MP4.
// Output is bit-exact: the same frames give the same file bytes (see docs/output.md).
//
// Streams (Options::stream_fd, `lightforce generate -o -`): the video goes to an open descriptor, a pipe a player
// reads as it arrives, so nothing can be renamed or rewritten afterwards. The container is then fragmented MP4
// (an empty index up front, then one moof+mdat fragment per flush()): the same H.264-in-MP4 family as the files, and
// FFmpeg reads it from a pipe. A stream is always low latency (below), so the frames of a flush are in the pipe when
// flush() returns. A reader that closes the pipe makes the next write fail with one lf::Error ("the reader closed
// the pipe"); the caller must ignore SIGPIPE for that (lightforce generate does), or the process dies of it.
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
    // x264 tuned "zerolatency" (no lookahead, no B-frames): each frame's packet leaves the encoder when the frame
    // goes in, instead of up to ~40 frames later (the default preset's rate-control lookahead plus B-frames).
    // Slightly larger files at the same crf; always on for a stream.
    bool low_latency = false;
    // >= 0: write fragmented MP4 to this open descriptor (a pipe, stdout) instead of a file; `path` then only names
    // the stream in messages ("stdout": "cannot write MP4 to stdout: ..."). The descriptor is left open.
    int stream_fd = -1;
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
  // A stream: ends the current fragment, so every frame written so far is in the descriptor (one fragment per call,
  // none when no frame came since the last). A file: nothing to do (each packet is already written as encoded).
  void flush();
  void finish();  // flush the encoder, write the trailer, rename into place (a stream: the last fragment)

  int64_t frames_written() const;
  const std::string& path() const;
  const std::string& encoder_name() const;  // "libx264" unless it fell back to another H.264 encoder

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lf
