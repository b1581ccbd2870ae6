#include "io/video_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.h"
#include "io/atomic_file.h"

#if LF_WITH_FFMPEG
#include "io/ffmpeg_util.h"
#endif

namespace lf {

namespace {

// How messages name the output: a file by its quoted path, a stream by the name its caller gave ("to stdout").
std::string output_name(const VideoWriter::Options& options) {
  if (options.stream_fd < 0) return fmt::format("'{}'", options.path);
  return options.path.empty() ? fmt::format("to descriptor {}", options.stream_fd) : "to " + options.path;
}

}  // namespace

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

// FFmpeg 7 (libavformat 61) made the write callback's buffer const.
#if LIBAVFORMAT_VERSION_MAJOR >= 61
using AvioWriteBuffer = const uint8_t*;
#else
using AvioWriteBuffer = uint8_t*;
#endif

// The AVIOContext buffer of a stream; a fragment is flushed through it in pieces of this size.
constexpr int kStreamBufferBytes = 1 << 16;

struct StreamTarget {
  int fd = -1;
  int error_number = 0;  // errno of the write that failed (EPIPE: the reader is gone)
};

// write(2) until everything is out: a pipe takes a large buffer in pieces, and a signal that interrupts a write
// (EINTR) does not lose bytes. libavformat stops writing after the first error, which it keeps in pb->error.
int write_all(void* opaque, AvioWriteBuffer buffer, int size) {
  auto* target = static_cast<StreamTarget*>(opaque);
  const uint8_t* bytes = buffer;
  int left = size;
  while (left > 0) {
    const ssize_t written = ::write(target->fd, bytes, size_t(left));
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) {
      target->error_number = written < 0 ? errno : EIO;
      return AVERROR(target->error_number);
    }
    bytes += written;
    left -= int(written);
  }
  return size;
}

struct AvioContextFree {
  void operator()(AVIOContext* context) const {
    av_freep(&context->buffer);
    avio_context_free(&context);
  }
};

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
  std::string name;  // output_name(options)
  // Declared first so it is destroyed last, after the muxer below has closed the temporary file it removes. None for
  // a stream: there is no file to rename, and what reached the pipe cannot be taken back.
  std::optional<AtomicFile> file;
  StreamTarget stream_target;
  std::unique_ptr<AVIOContext, AvioContextFree> stream_io;  // a stream's output; outlives `format`, which uses it
  std::string encoder;
  av::FormatContextPtr format;  // output context: freed with avformat_free_context after avio_closep
  av::CodecContextPtr codec;
  av::SwsContextPtr sws;
  av::FramePtr yuv;
  av::PacketPtr packet;
  AVStream* stream = nullptr;
  int64_t frames = 0;
  int64_t frames_in_fragment = 0;  // a stream's frames since the last flush()
  int64_t frames_sent = 0;         // a stream's frames in complete fragments that reached the descriptor
  bool finished = false;

  explicit Impl(const Options& opts) : options(opts), name(output_name(opts)) {
    if (options.stream_fd < 0) file.emplace(options.path);  // checks the directory before any encoding work
    // libx264 prints its settings and statistics ("x264 [info]: ...") through av_log, and the muxer its own
    // complaints: stderr is the tool's, and every failure here is already one lf::Error naming the file.
    av_log_set_level(AV_LOG_QUIET);
  }

  ~Impl() {
    // A stream's AVIOContext is ours (AVFMT_FLAG_CUSTOM_IO): stream_io frees it, and the descriptor stays open.
    if (format && format->pb && !stream_io) avio_closep(&format->pb);
  }

  bool streaming() const { return options.stream_fd >= 0; }

  [[noreturn]] void av_fail(const char* what, int code) const {
    // The one failure a stream's user causes on purpose (closing the player, `| head -c N`): said plainly.
    if (streaming() && stream_target.error_number == EPIPE)
      fail("cannot write MP4 {}: the reader closed the pipe after {} frames", name, frames_sent);
    fail("cannot write MP4 {}: {}: {}", name, what, av::error_string(code));
  }

  // Opens the first encoder that accepts our settings; returns the last error when none does.
  void open_encoder() {
    const std::vector<const AVCodec*> candidates = h264_encoders();
    LF_CHECK(!candidates.empty(), "cannot write MP4 {}: this FFmpeg has no H.264 encoder (install libx264)", name);
    std::string tried;
    for (const AVCodec* candidate : candidates) {
      const bool x264 = std::string_view(candidate->name) == "libx264";
      if (x264) {
        bool known = false;
        for (std::string_view preset : kX264Presets) known = known || preset == options.preset;
        LF_CHECK(known, "cannot write MP4 {}: unknown x264 preset '{}' (ultrafast, superfast, veryfast, faster, "
                 "fast, medium, slow, slower, veryslow, placebo)", name, options.preset);
      }
      codec.reset(avcodec_alloc_context3(candidate));
      LF_CHECK(codec != nullptr, "cannot write MP4 {}: out of memory allocating the encoder", name);
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
      if (options.low_latency || streaming()) av_dict_set(&settings.dict, "tune", "zerolatency", 0);
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
    fail("cannot write MP4 {}: no H.264 encoder could be opened: {}", name, tried);
  }

  void open() {
    // The temporary name has no .mp4 extension, so the container is named instead of guessed; "file:" keeps a
    // colon in the path from being read as a protocol.
    const std::string url = streaming() ? std::string() : "file:" + file->temp_path();
    AVFormatContext* raw = nullptr;
    int status = avformat_alloc_output_context2(&raw, nullptr, "mp4", streaming() ? nullptr : url.c_str());
    if (status < 0) av_fail("cannot create the MP4 muxer", status);
    format.reset(raw);
    format->flags |= AVFMT_FLAG_BITEXACT;  // no library version strings; no creation_time is ever set

    open_encoder();

    stream = avformat_new_stream(format.get(), nullptr);
    LF_CHECK(stream != nullptr, "cannot write MP4 {}: out of memory adding the video stream", name);
    stream->time_base = codec->time_base;
    stream->avg_frame_rate = codec->framerate;
    status = avcodec_parameters_from_context(stream->codecpar, codec.get());
    if (status < 0) av_fail("cannot copy encoder parameters", status);

    sws.reset(sws_getContext(options.width, options.height, AV_PIX_FMT_RGB24, options.width, options.height,
                             AV_PIX_FMT_YUV420P, av::kSwsFlags | SWS_FULL_CHR_H_INP, nullptr, nullptr, nullptr));
    LF_CHECK(sws != nullptr, "cannot write MP4 {}: cannot create the RGB -> YUV converter", name);
    // RGB is full range; the output is limited-range BT.709 as tagged on the encoder above.
    status = sws_setColorspaceDetails(sws.get(), sws_getCoefficients(SWS_CS_ITU709), 1,
                                      sws_getCoefficients(SWS_CS_ITU709), 0, 0, 1 << 16, 1 << 16);
    if (status < 0) av_fail("cannot set the BT.709 conversion", status);

    yuv.reset(av_frame_alloc());
    packet.reset(av_packet_alloc());
    LF_CHECK(yuv && packet, "cannot write MP4 {}: out of memory allocating frames", name);
    yuv->format = AV_PIX_FMT_YUV420P;
    yuv->width = options.width;
    yuv->height = options.height;
    yuv->color_range = codec->color_range;
    yuv->colorspace = codec->colorspace;
    yuv->color_primaries = codec->color_primaries;
    yuv->color_trc = codec->color_trc;
    status = av_frame_get_buffer(yuv.get(), 0);
    if (status < 0) av_fail("cannot allocate a YUV frame", status);

    av::Dictionary muxer_settings;
    if (streaming()) {
      open_stream();
      // empty_moov: the index goes first and holds no samples, so nothing is rewritten later (a pipe cannot seek).
      // frag_custom: a fragment ends exactly at each flush() (one per chunk), not at keyframes, which x264 puts only
      // every 250 frames. default_base_moof: sample offsets relative to each fragment, as browsers (MSE) expect.
      av_dict_set(&muxer_settings.dict, "movflags", "+frag_custom+empty_moov+default_base_moof", 0);
    } else {
      status = avio_open(&format->pb, url.c_str(), AVIO_FLAG_WRITE);
      if (status < 0)
        fail("cannot write MP4 {}: cannot create '{}': {}", name, file->temp_path(), av::error_string(status));
      // faststart moves the index to the front at finish() so browsers can start playing before the download ends;
      // the frames themselves are still written as they arrive.
      av_dict_set(&muxer_settings.dict, "movflags", "+faststart", 0);
    }
    status = avformat_write_header(format.get(), &muxer_settings.dict);
    if (status < 0) av_fail("cannot write the MP4 header", status);
    // A player at the other end of the pipe learns the size and codec now, and a closed pipe fails here, before
    // any frame is generated.
    if (streaming()) push_to_descriptor();
  }

  void open_stream() {
    const int fd = options.stream_fd;
    LF_CHECK(::fcntl(fd, F_GETFL) != -1, "cannot write MP4 {}: descriptor {} is not open", name, fd);
    stream_target.fd = fd;
    auto* buffer = static_cast<unsigned char*>(av_malloc(kStreamBufferBytes));
    LF_CHECK(buffer != nullptr, "cannot write MP4 {}: out of memory allocating the output buffer", name);
    AVIOContext* io = avio_alloc_context(buffer, kStreamBufferBytes, 1, &stream_target, nullptr, write_all, nullptr);
    if (io == nullptr) {
      av_free(buffer);
      fail("cannot write MP4 {}: out of memory allocating the output context", name);
    }
    stream_io.reset(io);
    format->pb = io;
    format->flags |= AVFMT_FLAG_CUSTOM_IO;
  }

  // Empties libavformat's buffer into the descriptor or file; fails naming the error (a closed pipe plainly).
  void push_to_descriptor() {
    avio_flush(format->pb);
    if (format->pb->error < 0) av_fail("cannot write", format->pb->error);
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
    // video on disk rather than in a 32 KiB buffer. A stream's packets wait in the muxer for flush().
    if (!streaming()) push_to_descriptor();
  }

  void flush_fragment() {
    if (!streaming() || frames_in_fragment == 0) return;
    // NULL to the muxer ends the fragment (AVFMT_ALLOW_FLUSH): moof+mdat of every packet since the last one.
    const int status = av_write_frame(format.get(), nullptr);
    if (status < 0) av_fail("cannot write a fragment", status);
    push_to_descriptor();
    frames_in_fragment = 0;
    frames_sent = frames;
  }
};

VideoWriter::VideoWriter(const Options& options) {
  const std::string name = output_name(options);
  LF_CHECK(options.width > 0 && options.height > 0, "cannot write MP4 {}: invalid size {}x{}", name, options.width,
           options.height);
  LF_CHECK(options.width % 2 == 0 && options.height % 2 == 0,
           "cannot write MP4 {}: H.264 (yuv420p) needs an even width and height, got {}x{}", name, options.width,
           options.height);
  LF_CHECK(options.fps > 0 && options.fps <= 1000, "cannot write MP4 {}: fps must be in 1..1000, got {}", name,
           options.fps);
  LF_CHECK(options.crf >= 0 && options.crf <= 51, "cannot write MP4 {}: crf must be in 0..51, got {}", name,
           options.crf);
  av::quiet_logs();
  impl_ = std::make_unique<Impl>(options);  // checks the directory before any encoding work
  impl_->open();
}

void VideoWriter::write(const Frame& frame) {
  LF_CHECK(impl_ != nullptr, "VideoWriter::write on a moved-from writer");
  const Options& options = impl_->options;
  LF_CHECK(!impl_->finished, "cannot write MP4 {}: write() after finish()", impl_->name);
  check_frame(frame, "VideoWriter::write");
  LF_CHECK(frame.width == options.width && frame.height == options.height,
           "cannot write MP4 {}: frame is {}x{} but the video is {}x{}", impl_->name, frame.width, frame.height,
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
  ++impl_->frames_in_fragment;
}

void VideoWriter::flush() {
  LF_CHECK(impl_ != nullptr, "VideoWriter::flush on a moved-from writer");
  LF_CHECK(!impl_->finished, "cannot write MP4 {}: flush() after finish()", impl_->name);
  impl_->flush_fragment();
}

void VideoWriter::finish() {
  LF_CHECK(impl_ != nullptr, "VideoWriter::finish on a moved-from writer");
  LF_CHECK(!impl_->finished, "cannot write MP4 {}: finish() called twice", impl_->name);
  LF_CHECK(impl_->frames > 0, "cannot write MP4 {}: no frames were written", impl_->name);
  impl_->encode(nullptr);
  int status = av_write_trailer(impl_->format.get());  // a stream: its last fragment (and the fragment index)
  if (status < 0) impl_->av_fail("cannot write the MP4 trailer", status);
  if (impl_->streaming()) {
    impl_->push_to_descriptor();
  } else {
    status = avio_closep(&impl_->format->pb);
    if (status < 0) impl_->av_fail("cannot close the file", status);
    impl_->file->commit();
  }
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
  fail("this build has no FFmpeg (LF_WITH_FFMPEG=OFF): cannot write MP4 {}; use --frames-dir/--save-latents",
       output_name(options));
}

void VideoWriter::write(const Frame&) { fail("this build has no FFmpeg (LF_WITH_FFMPEG=OFF)"); }
void VideoWriter::flush() { fail("this build has no FFmpeg (LF_WITH_FFMPEG=OFF)"); }
void VideoWriter::finish() { fail("this build has no FFmpeg (LF_WITH_FFMPEG=OFF)"); }
int64_t VideoWriter::frames_written() const { return 0; }
const std::string& VideoWriter::path() const { return impl_->options.path; }
const std::string& VideoWriter::encoder_name() const { return impl_->encoder; }

#endif  // LF_WITH_FFMPEG

VideoWriter::~VideoWriter() = default;
VideoWriter::VideoWriter(VideoWriter&&) noexcept = default;
VideoWriter& VideoWriter::operator=(VideoWriter&&) noexcept = default;

}  // namespace lf
