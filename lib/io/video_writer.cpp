#include "io/video_writer.h"

#include <array>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.h"
#include "io/atomic_file.h"

#if LF_WITH_FFMPEG
#include "io/ffmpeg_util.h"
#endif

namespace lf {

#if LF_WITH_FFMPEG

// Writer-only additions to the shared libav helpers (io/ffmpeg_util.h).
namespace av {

struct FormatContextFree {
  void operator()(AVFormatContext* context) const { avformat_free_context(context); }
};
using FormatContextPtr = std::unique_ptr<AVFormatContext, FormatContextFree>;

struct Dictionary {
  AVDictionary* dict = nullptr;
  ~Dictionary() { av_dict_free(&dict); }
};

// SWS_BITEXACT + SWS_ACCURATE_RND pick the exact C-equivalent paths, so the YUV (and thus the MP4 bytes) does
// not depend on which SIMD the host CPU has.
constexpr int kSwsFlags = SWS_BICUBIC | SWS_ACCURATE_RND | SWS_BITEXACT;

}  // namespace av

namespace {

constexpr std::array<std::string_view, 10> kX264Presets = {"ultrafast", "superfast", "veryfast", "faster", "fast",
                                                          "medium",    "slow",      "slower",   "veryslow", "placebo"};

// Every H.264 encoder of this libavcodec that accepts yuv420p, libx264 first: it is the one whose output is
// bit-exact and whose crf/preset we know; the others (hardware, openh264) are a fallback for odd builds.
std::vector<const AVCodec*> h264_encoders() {
  std::vector<const AVCodec*> encoders;
  if (const AVCodec* x264 = avcodec_find_encoder_by_name("libx264")) encoders.push_back(x264);
  void* iterator = nullptr;
  while (const AVCodec* codec = av_codec_iterate(&iterator)) {
    if (codec->id != AV_CODEC_ID_H264 || !av_codec_is_encoder(codec)) continue;
    if (!encoders.empty() && codec == encoders.front()) continue;
    bool yuv420p = codec->pix_fmts == nullptr;
    for (const AVPixelFormat* format = codec->pix_fmts; format && *format != AV_PIX_FMT_NONE; ++format)
      yuv420p = yuv420p || *format == AV_PIX_FMT_YUV420P;
    if (yuv420p) encoders.push_back(codec);
  }
  return encoders;
}

}  // namespace

struct VideoWriter::Impl {
  Options options;
  // Declared first so it is destroyed last, after the muxer below has closed the temporary file it removes.
  AtomicFile file;
  std::string encoder;
  av::FormatContextPtr format;  // output context: freed with avformat_free_context after avio_closep
  av::CodecContextPtr codec;
  av::SwsContextPtr sws;
  av::FramePtr yuv;
  av::PacketPtr packet;
  AVStream* stream = nullptr;
  int64_t frames = 0;
  bool finished = false;

  explicit Impl(const Options& opts) : options(opts), file(opts.path) {
    // libx264 prints its settings and statistics ("x264 [info]: ...") through av_log, and the muxer its own
    // complaints: stderr is the tool's, and every failure here is already one lf::Error naming the file.
    av_log_set_level(AV_LOG_QUIET);
  }

  ~Impl() {
    if (format && format->pb) avio_closep(&format->pb);
  }

  [[noreturn]] void av_fail(const char* what, int code) const {
    fail("cannot write MP4 '{}': {}: {}", options.path, what, av::error_string(code));
  }

  // Opens the first encoder that accepts our settings; returns the last error when none does.
  void open_encoder() {
    const std::vector<const AVCodec*> candidates = h264_encoders();
    LF_CHECK(!candidates.empty(), "cannot write MP4 '{}': this FFmpeg has no H.264 encoder (install libx264)",
             options.path);
    std::string tried;
    for (const AVCodec* candidate : candidates) {
      const bool x264 = std::string_view(candidate->name) == "libx264";
      if (x264) {
        bool known = false;
        for (std::string_view preset : kX264Presets) known = known || preset == options.preset;
        LF_CHECK(known, "cannot write MP4 '{}': unknown x264 preset '{}' (ultrafast, superfast, veryfast, faster, "
                 "fast, medium, slow, slower, veryslow, placebo)", options.path, options.preset);
      }
      codec.reset(avcodec_alloc_context3(candidate));
      LF_CHECK(codec != nullptr, "cannot write MP4 '{}': out of memory allocating the encoder", options.path);
      codec->width = options.width;
      codec->height = options.height;
      codec->pix_fmt = AV_PIX_FMT_YUV420P;
      codec->time_base = AVRational{1, options.fps};
      codec->framerate = AVRational{options.fps, 1};
      codec->sample_aspect_ratio = AVRational{1, 1};
      // Tagged so players convert back with the same matrix swscale used to convert in.
      codec->color_range = AVCOL_RANGE_MPEG;
      codec->colorspace = AVCOL_SPC_BT709;
      codec->color_primaries = AVCOL_PRI_BT709;
      codec->color_trc = AVCOL_TRC_BT709;
      codec->flags |= AV_CODEC_FLAG_BITEXACT;
      // One thread: x264's frame threading changes rate-control decisions with the thread count, so a fixed
      // count of 1 is what makes the bytes independent of the machine. Encoding cost is negligible next to
      // generating the frames.
      codec->thread_count = 1;
      if (format->oformat->flags & AVFMT_GLOBALHEADER) codec->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;

      av::Dictionary settings;
      av_dict_set(&settings.dict, "crf", std::to_string(options.crf).c_str(), 0);
      av_dict_set(&settings.dict, "preset", options.preset.c_str(), 0);
      const int status = avcodec_open2(codec.get(), candidate, &settings.dict);
      if (status >= 0) {
        encoder = candidate->name;
        return;
      }
      // A libx264 that refuses to open means our settings are wrong, not that another encoder would do better.
      if (x264) av_fail("cannot open encoder libx264", status);
      tried += fmt::format("{}{} ({})", tried.empty() ? "" : ", ", candidate->name, av::error_string(status));
      codec.reset();
    }
    fail("cannot write MP4 '{}': no H.264 encoder could be opened: {}", options.path, tried);
  }

  void open() {
    // The temporary name has no .mp4 extension, so the container is named instead of guessed; "file:" keeps a
    // colon in the path from being read as a protocol.
    const std::string url = "file:" + file.temp_path();
    AVFormatContext* raw = nullptr;
    int status = avformat_alloc_output_context2(&raw, nullptr, "mp4", url.c_str());
    if (status < 0) av_fail("cannot create the MP4 muxer", status);
    format.reset(raw);
    format->flags |= AVFMT_FLAG_BITEXACT;  // no library version strings; no creation_time is ever set

    open_encoder();

    stream = avformat_new_stream(format.get(), nullptr);
    LF_CHECK(stream != nullptr, "cannot write MP4 '{}': out of memory adding the video stream", options.path);
    stream->time_base = codec->time_base;
    stream->avg_frame_rate = codec->framerate;
    status = avcodec_parameters_from_context(stream->codecpar, codec.get());
    if (status < 0) av_fail("cannot copy encoder parameters", status);

    sws.reset(sws_getContext(options.width, options.height, AV_PIX_FMT_RGB24, options.width, options.height,
                             AV_PIX_FMT_YUV420P, av::kSwsFlags | SWS_FULL_CHR_H_INP, nullptr, nullptr, nullptr));
    LF_CHECK(sws != nullptr, "cannot write MP4 '{}': cannot create the RGB -> YUV converter", options.path);
    // RGB is full range; the output is limited-range BT.709 as tagged on the encoder above.
    status = sws_setColorspaceDetails(sws.get(), sws_getCoefficients(SWS_CS_ITU709), 1,
                                      sws_getCoefficients(SWS_CS_ITU709), 0, 0, 1 << 16, 1 << 16);
    if (status < 0) av_fail("cannot set the BT.709 conversion", status);

    yuv.reset(av_frame_alloc());
    packet.reset(av_packet_alloc());
    LF_CHECK(yuv && packet, "cannot write MP4 '{}': out of memory allocating frames", options.path);
    yuv->format = AV_PIX_FMT_YUV420P;
    yuv->width = options.width;
    yuv->height = options.height;
    yuv->color_range = codec->color_range;
    yuv->colorspace = codec->colorspace;
    yuv->color_primaries = codec->color_primaries;
    yuv->color_trc = codec->color_trc;
    status = av_frame_get_buffer(yuv.get(), 0);
    if (status < 0) av_fail("cannot allocate a YUV frame", status);

    status = avio_open(&format->pb, url.c_str(), AVIO_FLAG_WRITE);
    if (status < 0)
      fail("cannot write MP4 '{}': cannot create '{}': {}", options.path, file.temp_path(), av::error_string(status));
    // faststart moves the index to the front at finish() so browsers can start playing before the download ends;
    // the frames themselves are still written as they arrive.
    av::Dictionary muxer_settings;
    av_dict_set(&muxer_settings.dict, "movflags", "+faststart", 0);
    status = avformat_write_header(format.get(), &muxer_settings.dict);
    if (status < 0) av_fail("cannot write the MP4 header", status);
  }

  // Sends one frame (or nullptr to flush) and writes every packet the encoder has ready.
  void encode(const AVFrame* frame) {
    int status = avcodec_send_frame(codec.get(), frame);
    if (status < 0) av_fail("encoder rejected a frame", status);
    while (true) {
      status = avcodec_receive_packet(codec.get(), packet.get());
      if (status == AVERROR(EAGAIN) || status == AVERROR_EOF) break;
      if (status < 0) av_fail("encoding failed", status);
      av_packet_rescale_ts(packet.get(), codec->time_base, stream->time_base);
      packet->stream_index = stream->index;
      status = av_interleaved_write_frame(format.get(), packet.get());  // takes the packet's reference
      if (status < 0) av_fail("cannot write a packet", status);
    }
    // Frames arrive seconds apart, so pushing each one to the file costs nothing and keeps the partial
    // video on disk rather than in a 32 KiB buffer.
    avio_flush(format->pb);
    if (format->pb->error < 0) av_fail("cannot write to the file", format->pb->error);
  }
};

VideoWriter::VideoWriter(const Options& options) {
  LF_CHECK(options.width > 0 && options.height > 0, "cannot write MP4 '{}': invalid size {}x{}", options.path,
           options.width, options.height);
  LF_CHECK(options.width % 2 == 0 && options.height % 2 == 0,
           "cannot write MP4 '{}': H.264 (yuv420p) needs an even width and height, got {}x{}", options.path,
           options.width, options.height);
  LF_CHECK(options.fps > 0 && options.fps <= 1000, "cannot write MP4 '{}': fps must be in 1..1000, got {}",
           options.path, options.fps);
  LF_CHECK(options.crf >= 0 && options.crf <= 51, "cannot write MP4 '{}': crf must be in 0..51, got {}",
           options.path, options.crf);
  av::quiet_logs();
  impl_ = std::make_unique<Impl>(options);  // checks the directory before any encoding work
  impl_->open();
}

void VideoWriter::write(const Frame& frame) {
  LF_CHECK(impl_ != nullptr, "VideoWriter::write on a moved-from writer");
  const Options& options = impl_->options;
  LF_CHECK(!impl_->finished, "cannot write MP4 '{}': write() after finish()", options.path);
  check_frame(frame, "VideoWriter::write");
  LF_CHECK(frame.width == options.width && frame.height == options.height,
           "cannot write MP4 '{}': frame is {}x{} but the video is {}x{}", options.path, frame.width, frame.height,
           options.width, options.height);
  AVFrame* yuv = impl_->yuv.get();
  // The encoder may still reference the previous buffer; this copies only when it does.
  const int status = av_frame_make_writable(yuv);
  if (status < 0) impl_->av_fail("cannot get a writable YUV frame", status);
  const uint8_t* source[1] = {frame.rgb.data()};
  const int source_stride[1] = {frame.width * 3};
  sws_scale(impl_->sws.get(), source, source_stride, 0, frame.height, yuv->data, yuv->linesize);
  yuv->pts = impl_->frames;
  impl_->encode(yuv);
  ++impl_->frames;
}

void VideoWriter::finish() {
  LF_CHECK(impl_ != nullptr, "VideoWriter::finish on a moved-from writer");
  LF_CHECK(!impl_->finished, "cannot write MP4 '{}': finish() called twice", impl_->options.path);
  LF_CHECK(impl_->frames > 0, "cannot write MP4 '{}': no frames were written", impl_->options.path);
  impl_->encode(nullptr);
  int status = av_write_trailer(impl_->format.get());
  if (status < 0) impl_->av_fail("cannot write the MP4 trailer", status);
  status = avio_closep(&impl_->format->pb);
  if (status < 0) impl_->av_fail("cannot close the file", status);
  impl_->file.commit();
  impl_->finished = true;
}

int64_t VideoWriter::frames_written() const { return impl_ ? impl_->frames : 0; }
const std::string& VideoWriter::path() const { return impl_->options.path; }
const std::string& VideoWriter::encoder_name() const { return impl_->encoder; }

#else  // !LF_WITH_FFMPEG

struct VideoWriter::Impl {
  Options options;
  std::string encoder;
};

VideoWriter::VideoWriter(const Options& options) {
  fail("this build has no FFmpeg (LF_WITH_FFMPEG=OFF): cannot write MP4 '{}'; use --frames-dir/--save-latents",
       options.path);
}

void VideoWriter::write(const Frame&) { fail("this build has no FFmpeg (LF_WITH_FFMPEG=OFF)"); }
void VideoWriter::finish() { fail("this build has no FFmpeg (LF_WITH_FFMPEG=OFF)"); }
int64_t VideoWriter::frames_written() const { return 0; }
const std::string& VideoWriter::path() const { return impl_->options.path; }
const std::string& VideoWriter::encoder_name() const { return impl_->encoder; }

#endif  // LF_WITH_FFMPEG

VideoWriter::~VideoWriter() = default;
VideoWriter::VideoWriter(VideoWriter&&) noexcept = default;
VideoWriter& VideoWriter::operator=(VideoWriter&&) noexcept = default;

}  // namespace lf
