#include "io/video_reader.h"

#include <cstring>
#include <functional>
#include <memory>

#include "core/error.h"

#if LF_WITH_FFMPEG
#include "io/ffmpeg_util.h"
extern "C" {
#include <libavutil/pixdesc.h>
}
#endif

namespace lf {

#if LF_WITH_FFMPEG

namespace {

struct InputContextClose {
  void operator()(AVFormatContext* context) const { avformat_close_input(&context); }
};
using av::CodecContextFree;
using av::error_string;
using av::FrameFree;
using av::PacketFree;
using av::SwsContextFree;

// Opens `path`, decodes its first video stream and hands every decoded frame to `on_frame`.
class Decoder {
 public:
  explicit Decoder(const std::string& path) : path_(path) {
    av::quiet_logs();
    // "file:" keeps a colon in the path from being read as a protocol.
    const std::string url = "file:" + path;
    AVFormatContext* raw = nullptr;
    int status = avformat_open_input(&raw, url.c_str(), nullptr, nullptr);
    if (status < 0) fail("cannot read video '{}': {}", path, error_string(status));
    format_.reset(raw);
    status = avformat_find_stream_info(format_.get(), nullptr);
    if (status < 0) av_fail("cannot read stream info", status);
    const AVCodec* decoder = nullptr;
    stream_index_ = av_find_best_stream(format_.get(), AVMEDIA_TYPE_VIDEO, -1, -1, &decoder, 0);
    if (stream_index_ < 0) av_fail("no decodable video stream", stream_index_);
    stream_ = format_->streams[stream_index_];
    codec_.reset(avcodec_alloc_context3(decoder));
    LF_CHECK(codec_ != nullptr, "cannot read video '{}': out of memory allocating the decoder", path);
    status = avcodec_parameters_to_context(codec_.get(), stream_->codecpar);
    if (status < 0) av_fail("cannot copy stream parameters", status);
    status = avcodec_open2(codec_.get(), decoder, nullptr);
    if (status < 0) av_fail(fmt::format("cannot open decoder {}", decoder->name).c_str(), status);
    packet_.reset(av_packet_alloc());
    frame_.reset(av_frame_alloc());
    LF_CHECK(packet_ && frame_, "cannot read video '{}': out of memory allocating frames", path);
  }

  const AVStream* stream() const { return stream_; }
  const AVCodecContext* codec() const { return codec_.get(); }

  [[noreturn]] void av_fail(const char* what, int code) const {
    fail("cannot read video '{}': {}: {}", path_, what, error_string(code));
  }

  void decode_all(const std::function<void(const AVFrame&)>& on_frame) {
    while (true) {
      const int status = av_read_frame(format_.get(), packet_.get());
      if (status == AVERROR_EOF) break;
      if (status < 0) av_fail("cannot read a packet", status);
      if (packet_->stream_index == stream_index_) send(packet_.get(), on_frame);
      av_packet_unref(packet_.get());
    }
    send(nullptr, on_frame);  // flush the frames the decoder still holds back for reordering
  }

 private:
  void send(const AVPacket* packet, const std::function<void(const AVFrame&)>& on_frame) {
    int status = avcodec_send_packet(codec_.get(), packet);
    if (status < 0) av_fail("decoder rejected a packet", status);
    while (true) {
      status = avcodec_receive_frame(codec_.get(), frame_.get());
      if (status == AVERROR(EAGAIN) || status == AVERROR_EOF) return;
      if (status < 0) av_fail("decoding failed", status);
      on_frame(*frame_);
      av_frame_unref(frame_.get());
    }
  }

  std::string path_;
  std::unique_ptr<AVFormatContext, InputContextClose> format_;
  std::unique_ptr<AVCodecContext, CodecContextFree> codec_;
  std::unique_ptr<AVPacket, PacketFree> packet_;
  std::unique_ptr<AVFrame, FrameFree> frame_;
  AVStream* stream_ = nullptr;
  int stream_index_ = -1;
};

// Converts decoded frames of any pixel format to RGB24 with the matrix and range the stream is tagged with
// (BT.601 when untagged, as players assume for small videos).
class RgbConverter {
 public:
  explicit RgbConverter(const std::string& path) : path_(path), rgb_(av_frame_alloc()) {
    LF_CHECK(rgb_ != nullptr, "cannot read video '{}': out of memory allocating frames", path);
  }

  Frame convert(const AVFrame& source) {
    const auto format = AVPixelFormat(source.format);
    const bool full_range = source.color_range == AVCOL_RANGE_JPEG || format == AV_PIX_FMT_YUVJ420P ||
                            format == AV_PIX_FMT_YUVJ422P || format == AV_PIX_FMT_YUVJ444P;
    const int matrix = source.colorspace == AVCOL_SPC_UNSPECIFIED ? SWS_CS_DEFAULT : int(source.colorspace);
    if (!sws_ || source.width != width_ || source.height != height_ || format != format_ || matrix != matrix_ ||
        full_range != full_range_) {
      reconfigure(source.width, source.height, format, matrix, full_range);
    }
    const int status = sws_scale(sws_.get(), source.data, source.linesize, 0, source.height, rgb_->data,
                                 rgb_->linesize);
    LF_CHECK(status == source.height, "cannot read video '{}': RGB conversion failed", path_);
    Frame frame;
    frame.width = source.width;
    frame.height = source.height;
    frame.rgb.resize(size_t(frame.width) * size_t(frame.height) * 3);
    // Copied row by row because swscale's output is padded and aligned, the Frame is tightly packed.
    const size_t row_bytes = size_t(frame.width) * 3;
    for (int y = 0; y < frame.height; ++y)
      std::memcpy(&frame.rgb[size_t(y) * row_bytes], rgb_->data[0] + ptrdiff_t(y) * rgb_->linesize[0], row_bytes);
    return frame;
  }

 private:
  void reconfigure(int width, int height, AVPixelFormat format, int matrix, bool full_range) {
    LF_CHECK(width > 0 && height > 0 && format != AV_PIX_FMT_NONE, "cannot read video '{}': decoded an empty frame",
             path_);
    sws_.reset(sws_getContext(width, height, format, width, height, AV_PIX_FMT_RGB24,
                              SWS_BICUBIC | SWS_ACCURATE_RND | SWS_BITEXACT | SWS_FULL_CHR_H_INT, nullptr, nullptr,
                              nullptr));
    LF_CHECK(sws_ != nullptr, "cannot read video '{}': cannot convert pixel format {} to RGB", path_,
             av_get_pix_fmt_name(format) ? av_get_pix_fmt_name(format) : "?");
    // Fails harmlessly (returns -1) for RGB sources, where there is no matrix to set.
    sws_setColorspaceDetails(sws_.get(), sws_getCoefficients(matrix), full_range ? 1 : 0,
                             sws_getCoefficients(SWS_CS_DEFAULT), 1, 0, 1 << 16, 1 << 16);
    av_frame_unref(rgb_.get());
    rgb_->format = AV_PIX_FMT_RGB24;
    rgb_->width = width;
    rgb_->height = height;
    const int status = av_frame_get_buffer(rgb_.get(), 0);
    if (status < 0) fail("cannot read video '{}': cannot allocate an RGB frame: {}", path_, error_string(status));
    width_ = width;
    height_ = height;
    format_ = format;
    matrix_ = matrix;
    full_range_ = full_range;
  }

  std::string path_;
  std::unique_ptr<SwsContext, SwsContextFree> sws_;
  std::unique_ptr<AVFrame, FrameFree> rgb_;
  int width_ = 0;
  int height_ = 0;
  AVPixelFormat format_ = AV_PIX_FMT_NONE;
  int matrix_ = -1;
  bool full_range_ = false;
};

}  // namespace

VideoInfo probe_video(const std::string& path) {
  Decoder decoder(path);
  VideoInfo info;
  info.width = decoder.codec()->width;
  info.height = decoder.codec()->height;
  decoder.decode_all([&](const AVFrame& frame) {
    if (info.frames == 0) {
      info.width = frame.width;
      info.height = frame.height;
    }
    ++info.frames;
  });
  AVRational rate = decoder.stream()->avg_frame_rate;
  if (rate.num <= 0 || rate.den <= 0) rate = decoder.stream()->r_frame_rate;
  if (rate.num > 0 && rate.den > 0) info.fps = av_q2d(rate);
  return info;
}

std::vector<Frame> read_video_frames(const std::string& path) {
  Decoder decoder(path);
  RgbConverter converter(path);
  std::vector<Frame> frames;
  decoder.decode_all([&](const AVFrame& frame) { frames.push_back(converter.convert(frame)); });
  return frames;
}

#else  // !LF_WITH_FFMPEG

VideoInfo probe_video(const std::string& path) {
  fail("this build has no FFmpeg (LF_WITH_FFMPEG=OFF): cannot read video '{}'", path);
}

std::vector<Frame> read_video_frames(const std::string& path) {
  fail("this build has no FFmpeg (LF_WITH_FFMPEG=OFF): cannot read video '{}'", path);
}

#endif  // LF_WITH_FFMPEG

}  // namespace lf
