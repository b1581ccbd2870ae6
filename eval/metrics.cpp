#include "eval/metrics.h"

#include <array>
#include <cmath>
#include <cstdlib>
#include <limits>

#include "core/error.h"

#if LF_WITH_OPENCV
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/video/tracking.hpp>
#endif

namespace lf::eval {

namespace {

constexpr double kInfinity = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

constexpr int kSsimWindow = 11;
constexpr double kSsimSigma = 1.5;
constexpr double kSsimC1 = (0.01 * 255.0) * (0.01 * 255.0);
constexpr double kSsimC2 = (0.03 * 255.0) * (0.03 * 255.0);

void check_same_size(const Frame& a, const Frame& b, const char* what) {
  check_frame(a, what);
  check_frame(b, what);
  LF_CHECK(a.width == b.width && a.height == b.height, "{}: frame sizes differ ({}x{} vs {}x{})", what, a.width,
           a.height, b.width, b.height);
}

void check_video(const std::vector<Frame>& frames, const char* what) {
  LF_CHECK(frames.size() >= 2, "{}: needs at least 2 frames, got {}", what, frames.size());
  for (size_t i = 0; i < frames.size(); ++i) {
    check_frame(frames[i], what);
    LF_CHECK(frames[i].width == frames[0].width && frames[i].height == frames[0].height,
             "{}: frame {} is {}x{} but frame 0 is {}x{}", what, i, frames[i].width, frames[i].height, frames[0].width,
             frames[0].height);
  }
}

void check_latents(const Tensor& tensor, const char* what) {
  LF_CHECK(tensor.defined(), "{}: undefined tensor", what);
  LF_CHECK(tensor.dtype() == DType::F32, "{}: latents must be f32", what);
  LF_CHECK(!tensor.is_cuda(), "{}: latents must be on the CPU", what);
}

// ||a - b|| / ||b|| over n floats; the non-finite and zero-reference rules are those documented for latent_rel_l2.
double rel_l2_span(const float* a, const float* b, int64_t n) {
  double diff = 0, ref = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i])) return kInfinity;
    const double d = double(a[i]) - double(b[i]);
    diff += d * d;
    ref += double(b[i]) * double(b[i]);
  }
  if (ref == 0) return diff == 0 ? 0.0 : kInfinity;
  return std::sqrt(diff / ref);
}

std::array<double, kSsimWindow> gaussian_window() {
  std::array<double, kSsimWindow> weights{};
  const int half = kSsimWindow / 2;
  double sum = 0;
  for (int i = 0; i < kSsimWindow; ++i) {
    const double offset = i - half;
    weights[size_t(i)] = std::exp(-offset * offset / (2 * kSsimSigma * kSsimSigma));
    sum += weights[size_t(i)];
  }
  for (double& weight : weights) weight /= sum;
  return weights;
}

std::vector<double> luma(const Frame& frame) {
  std::vector<double> y(size_t(frame.width) * size_t(frame.height));
  for (size_t i = 0; i < y.size(); ++i) {
    const uint8_t* pixel = &frame.rgb[i * 3];
    y[i] = 0.299 * pixel[0] + 0.587 * pixel[1] + 0.114 * pixel[2];
  }
  return y;
}

}  // namespace

double mse(const Frame& a, const Frame& b) {
  check_same_size(a, b, "mse");
  // Integer accumulation is exact; overflowing 64 bits would take more than 2^47 bytes of frame.
  uint64_t sum = 0;
  for (size_t i = 0; i < a.rgb.size(); ++i) {
    const int d = int(a.rgb[i]) - int(b.rgb[i]);
    sum += uint64_t(d * d);
  }
  return double(sum) / double(a.rgb.size());
}

double psnr(const Frame& a, const Frame& b) {
  const double error = mse(a, b);
  if (error == 0) return kInfinity;
  return 10.0 * std::log10(255.0 * 255.0 / error);
}

double ssim(const Frame& a, const Frame& b) {
  check_same_size(a, b, "ssim");
  LF_CHECK(a.width >= kSsimWindow && a.height >= kSsimWindow, "ssim: frame {}x{} is smaller than the {}x{} window",
           a.width, a.height, kSsimWindow, kSsimWindow);
  static const std::array<double, kSsimWindow> weights = gaussian_window();
  const std::vector<double> x = luma(a);
  const std::vector<double> y = luma(b);
  const int width = a.width, height = a.height;
  const int out_w = width - kSsimWindow + 1, out_h = height - kSsimWindow + 1;

  // Horizontal pass over every row for the five moments (x, y, x^2, y^2, xy), then the vertical pass per output
  // pixel; the Gaussian is separable so this equals the 2-D window at 22 instead of 121 taps a moment.
  constexpr int kMoments = 5;
  std::vector<double> rows(size_t(height) * size_t(out_w) * kMoments);
  for (int r = 0; r < height; ++r) {
    const double* xr = &x[size_t(r) * width];
    const double* yr = &y[size_t(r) * width];
    for (int c = 0; c < out_w; ++c) {
      double m[kMoments] = {0, 0, 0, 0, 0};
      for (int k = 0; k < kSsimWindow; ++k) {
        const double w = weights[size_t(k)], xv = xr[c + k], yv = yr[c + k];
        m[0] += w * xv;
        m[1] += w * yv;
        m[2] += w * xv * xv;
        m[3] += w * yv * yv;
        m[4] += w * xv * yv;
      }
      double* out = &rows[(size_t(r) * out_w + c) * kMoments];
      for (int i = 0; i < kMoments; ++i) out[i] = m[i];
    }
  }
  double total = 0;
  for (int r = 0; r < out_h; ++r) {
    for (int c = 0; c < out_w; ++c) {
      double m[kMoments] = {0, 0, 0, 0, 0};
      for (int k = 0; k < kSsimWindow; ++k) {
        const double w = weights[size_t(k)];
        const double* in = &rows[(size_t(r + k) * out_w + c) * kMoments];
        for (int i = 0; i < kMoments; ++i) m[i] += w * in[i];
      }
      const double mu_x = m[0], mu_y = m[1];
      const double var_x = m[2] - mu_x * mu_x, var_y = m[3] - mu_y * mu_y, cov = m[4] - mu_x * mu_y;
      total += ((2 * mu_x * mu_y + kSsimC1) * (2 * cov + kSsimC2)) /
               ((mu_x * mu_x + mu_y * mu_y + kSsimC1) * (var_x + var_y + kSsimC2));
    }
  }
  return total / (double(out_w) * double(out_h));
}

double mean_abs_frame_difference(const std::vector<Frame>& frames) {
  check_video(frames, "mean_abs_frame_difference");
  double pair_sum = 0;
  for (size_t t = 0; t + 1 < frames.size(); ++t) {
    const std::vector<uint8_t>& a = frames[t].rgb;
    const std::vector<uint8_t>& b = frames[t + 1].rgb;
    uint64_t sum = 0;
    for (size_t i = 0; i < a.size(); ++i) sum += uint64_t(std::abs(int(a[i]) - int(b[i])));
    pair_sum += double(sum) / double(a.size());
  }
  return pair_sum / double(frames.size() - 1);
}

double temporal_flicker(const std::vector<Frame>& frames) { return 1.0 - mean_abs_frame_difference(frames) / 255.0; }

double latent_rel_l2(const Tensor& a, const Tensor& b) {
  check_latents(a, "latent_rel_l2 (first tensor)");
  check_latents(b, "latent_rel_l2 (reference)");
  LF_CHECK(a.shape() == b.shape(), "latent_rel_l2: shapes differ ({} vs {})", shape_str(a.shape()),
           shape_str(b.shape()));
  return rel_l2_span(a.f32(), b.f32(), a.numel());
}

bool have_opencv() { return LF_WITH_OPENCV != 0; }

#if LF_WITH_OPENCV

namespace {

// Farneback parameters (docs/metrics.md): OpenCV's sample values, which suit the small motions of
// consecutive generated frames; fixed so warping errors are comparable across runs.
constexpr double kFlowPyrScale = 0.5;
constexpr int kFlowLevels = 3;
constexpr int kFlowWinsize = 15;
constexpr int kFlowIterations = 3;
constexpr int kFlowPolyN = 5;
constexpr double kFlowPolySigma = 1.2;

cv::Mat rgb_mat(const Frame& frame) {
  return cv::Mat(frame.height, frame.width, CV_8UC3, const_cast<uint8_t*>(frame.rgb.data()));
}

// Mean |frame_t - warp(frame_t1)| / 255 over the pixels whose flow target is inside the image; NaN when none is.
double pair_warping_error(const Frame& current, const Frame& next) {
  const cv::Mat current_rgb = rgb_mat(current), next_rgb = rgb_mat(next);
  cv::Mat current_gray, next_gray;
  cv::cvtColor(current_rgb, current_gray, cv::COLOR_RGB2GRAY);
  cv::cvtColor(next_rgb, next_gray, cv::COLOR_RGB2GRAY);
  cv::Mat flow;
  cv::calcOpticalFlowFarneback(current_gray, next_gray, flow, kFlowPyrScale, kFlowLevels, kFlowWinsize, kFlowIterations,
                               kFlowPolyN, kFlowPolySigma, 0);

  const int width = current.width, height = current.height;
  cv::Mat map_x(height, width, CV_32FC1), map_y(height, width, CV_32FC1);
  for (int r = 0; r < height; ++r) {
    const cv::Vec2f* f = flow.ptr<cv::Vec2f>(r);
    float* mx = map_x.ptr<float>(r);
    float* my = map_y.ptr<float>(r);
    for (int c = 0; c < width; ++c) {
      mx[c] = float(c) + f[c][0];
      my[c] = float(r) + f[c][1];
    }
  }
  // Warp in float so the error is not quantised by remap's rounding back to 8 bits.
  cv::Mat next_float, warped;
  next_rgb.convertTo(next_float, CV_32FC3);
  cv::remap(next_float, warped, map_x, map_y, cv::INTER_LINEAR, cv::BORDER_REPLICATE);

  double sum = 0;
  int64_t valid = 0;
  const float max_x = float(width - 1), max_y = float(height - 1);
  for (int r = 0; r < height; ++r) {
    const float* mx = map_x.ptr<float>(r);
    const float* my = map_y.ptr<float>(r);
    const cv::Vec3f* w = warped.ptr<cv::Vec3f>(r);
    const uint8_t* cur = current_rgb.ptr<uint8_t>(r);
    for (int c = 0; c < width; ++c) {
      if (!(mx[c] >= 0 && mx[c] <= max_x && my[c] >= 0 && my[c] <= max_y)) continue;  // NaN flow is outside too
      for (int ch = 0; ch < 3; ++ch) sum += std::abs(double(cur[c * 3 + ch]) - double(w[c][ch]));
      ++valid;
    }
  }
  if (valid == 0) return kNaN;
  return sum / (double(valid) * 3.0 * 255.0);
}

}  // namespace

double warping_error(const std::vector<Frame>& frames) {
  check_video(frames, "warping_error");
  double sum = 0;
  int64_t pairs = 0;
  for (size_t t = 0; t + 1 < frames.size(); ++t) {
    const double error = pair_warping_error(frames[t], frames[t + 1]);
    if (std::isnan(error)) continue;
    sum += error;
    ++pairs;
  }
  return pairs == 0 ? kNaN : sum / double(pairs);
}

#else

double warping_error(const std::vector<Frame>& frames) {
  fail("warping_error: this build has no OpenCV (LF_WITH_OPENCV=OFF); cannot compute optical flow for {} frames",
       frames.size());
}

#endif

WarpingComparison warping_error_pair(const std::vector<Frame>& sparse, const std::vector<Frame>& dense) {
  return {warping_error(sparse), warping_error(dense)};
}

namespace {

struct FrameScores {
  std::vector<double> psnr;  // uncapped
  std::vector<double> ssim;
};

// Per-frame scores, frames in parallel; each score is computed serially so results do not depend on threads.
FrameScores frame_scores(const std::vector<Frame>& sparse, const std::vector<Frame>& dense) {
  LF_CHECK(sparse.size() == dense.size(), "compare-dense: sparse video has {} frames, dense video {}", sparse.size(),
           dense.size());
  LF_CHECK(!sparse.empty(), "compare-dense: no frames to compare");
  for (size_t i = 0; i < sparse.size(); ++i) {
    check_frame(sparse[i], "compare-dense (sparse video)");
    check_frame(dense[i], "compare-dense (dense video)");
    LF_CHECK(sparse[i].width == dense[i].width && sparse[i].height == dense[i].height,
             "compare-dense: frame {} is {}x{} in the sparse video but {}x{} in the dense one", i, sparse[i].width,
             sparse[i].height, dense[i].width, dense[i].height);
  }
  FrameScores scores{std::vector<double>(sparse.size()), std::vector<double>(sparse.size())};
  const int64_t count = int64_t(sparse.size());
  // Errors inside an OpenMP region must not escape it; sizes were checked above, so only the SSIM minimum-size
  // check can fire, and it is checked here instead.
  LF_CHECK(sparse[0].width >= kSsimWindow && sparse[0].height >= kSsimWindow,
           "compare-dense: frames {}x{} are smaller than the {}x{} SSIM window", sparse[0].width, sparse[0].height,
           kSsimWindow, kSsimWindow);
  for (const Frame& frame : sparse) {
    LF_CHECK(frame.width == sparse[0].width && frame.height == sparse[0].height,
             "compare-dense: frames change size within the video ({}x{} vs {}x{})", frame.width, frame.height,
             sparse[0].width, sparse[0].height);
  }
#pragma omp parallel for schedule(dynamic)
  for (int64_t i = 0; i < count; ++i) {
    scores.psnr[size_t(i)] = psnr(sparse[size_t(i)], dense[size_t(i)]);
    scores.ssim[size_t(i)] = ssim(sparse[size_t(i)], dense[size_t(i)]);
  }
  return scores;
}

void fill_frame_means(const FrameScores& scores, size_t begin, size_t end, ChunkMetrics& out) {
  double psnr_sum = 0, ssim_sum = 0;
  int64_t identical = 0;
  for (size_t i = begin; i < end; ++i) {
    if (std::isinf(scores.psnr[i])) ++identical;
    psnr_sum += capped_psnr(scores.psnr[i]);
    ssim_sum += scores.ssim[i];
  }
  out.frames = int64_t(end - begin);
  out.identical_frames = identical;
  out.psnr = psnr_sum / double(end - begin);
  out.ssim = ssim_sum / double(end - begin);
}

// Both undefined -> false (no latent comparison); both defined -> validated, true; anything else fails.
bool check_latent_pair(const Tensor& sparse, const Tensor& dense) {
  LF_CHECK(sparse.defined() == dense.defined(), "compare-dense: latents given for the {} run only",
           sparse.defined() ? "sparse" : "dense");
  if (!sparse.defined()) return false;
  check_latents(sparse, "compare-dense (sparse latents)");
  check_latents(dense, "compare-dense (dense latents)");
  LF_CHECK(sparse.shape() == dense.shape(), "compare-dense: latent shapes differ (sparse {} vs dense {})",
           shape_str(sparse.shape()), shape_str(dense.shape()));
  LF_CHECK(sparse.rank() == 4, "compare-dense: latents must be [F, C, H, W], got {}", shape_str(sparse.shape()));
  return true;
}

}  // namespace

std::vector<ChunkMetrics> per_chunk_metrics(const std::vector<Frame>& sparse, const std::vector<Frame>& dense,
                                            const Tensor& sparse_latents, const Tensor& dense_latents,
                                            const ChunkLayout& layout) {
  const size_t chunks = layout.video_frames.size();
  LF_CHECK(chunks > 0, "per_chunk_metrics: empty chunk layout");
  const bool with_latents = check_latent_pair(sparse_latents, dense_latents);
  int64_t video_total = 0;
  for (size_t c = 0; c < chunks; ++c) {
    LF_CHECK(layout.video_frames[c] > 0, "per_chunk_metrics: chunk {} has {} video frames", c, layout.video_frames[c]);
    video_total += layout.video_frames[c];
  }
  LF_CHECK(video_total == int64_t(sparse.size()),
           "per_chunk_metrics: chunk layout covers {} video frames, video has {}", video_total, sparse.size());
  int64_t frame_numel = 0;
  if (with_latents) {
    LF_CHECK(layout.latent_frames.size() == chunks, "per_chunk_metrics: {} latent chunk sizes for {} chunks",
             layout.latent_frames.size(), chunks);
    int64_t latent_total = 0;
    for (size_t c = 0; c < chunks; ++c) {
      LF_CHECK(layout.latent_frames[c] > 0, "per_chunk_metrics: chunk {} has {} latent frames", c,
               layout.latent_frames[c]);
      latent_total += layout.latent_frames[c];
    }
    LF_CHECK(latent_total == sparse_latents.dim(0),
             "per_chunk_metrics: chunk layout covers {} latent frames, latents {}", latent_total,
             shape_str(sparse_latents.shape()));
    frame_numel = sparse_latents.numel() / sparse_latents.dim(0);
  }

  const FrameScores scores = frame_scores(sparse, dense);
  std::vector<ChunkMetrics> result(chunks);
  size_t frame = 0;
  int64_t latent = 0;
  for (size_t c = 0; c < chunks; ++c) {
    ChunkMetrics& metrics = result[c];
    metrics.chunk = int64_t(c);
    fill_frame_means(scores, frame, frame + size_t(layout.video_frames[c]), metrics);
    frame += size_t(layout.video_frames[c]);
    if (with_latents) {
      metrics.latent_rel_l2 =
          rel_l2_span(sparse_latents.f32() + latent * frame_numel, dense_latents.f32() + latent * frame_numel,
                      layout.latent_frames[c] * frame_numel);
      latent += layout.latent_frames[c];
    } else {
      metrics.latent_rel_l2 = kNaN;
    }
  }
  return result;
}

ChunkMetrics overall_metrics(const std::vector<Frame>& sparse, const std::vector<Frame>& dense,
                             const Tensor& sparse_latents, const Tensor& dense_latents) {
  const bool with_latents = check_latent_pair(sparse_latents, dense_latents);
  const FrameScores scores = frame_scores(sparse, dense);
  ChunkMetrics metrics;
  metrics.chunk = -1;
  fill_frame_means(scores, 0, sparse.size(), metrics);
  metrics.latent_rel_l2 = with_latents ? latent_rel_l2(sparse_latents, dense_latents) : kNaN;
  return metrics;
}

DifferingChunksMean differing_chunks_mean(const std::vector<ChunkMetrics>& chunks) {
  DifferingChunksMean mean;
  mean.chunks = int64_t(chunks.size());
  double psnr_sum = 0, ssim_sum = 0, latent_sum = 0;
  for (const ChunkMetrics& chunk : chunks) {
    if (chunk_identical(chunk)) continue;
    ++mean.differing_chunks;
    psnr_sum += capped_psnr(chunk.psnr);
    ssim_sum += chunk.ssim;
    latent_sum += chunk.latent_rel_l2;
  }
  const double count = double(mean.differing_chunks);
  mean.psnr = mean.differing_chunks > 0 ? psnr_sum / count : kNaN;
  mean.ssim = mean.differing_chunks > 0 ? ssim_sum / count : kNaN;
  mean.latent_rel_l2 = mean.differing_chunks > 0 ? latent_sum / count : kNaN;
  return mean;
}

std::map<std::string, std::string> metric_variants() {
  return {
      {"psnr",
       "10*log10(255^2/MSE), MSE over all pixels and R,G,B of 8-bit frames; per-frame values capped at 100 dB "
       "(identical = 100), averaged over frames; a run's headline PSNR averages the chunks that differ from "
       "the baseline (identical chunks left out)"},
      {"ssim",
       "Wang 2004 SSIM on luma Y=0.299R+0.587G+0.114B (0..255), 11x11 Gaussian window sigma 1.5, K1=0.01, "
       "K2=0.03, L=255, valid region (no padding), mean of map, averaged over frames"},
      {"latent_rel_l2", "||sparse-dense||_2/||dense||_2 over the f32 latents [F,C,H,W] (per chunk: its latent frames)"},
      {"temporal_flicker",
       "VBench temporal_flickering: 1 - mean_t(mean |frame_t+1 - frame_t| over R,G,B)/255; "
       "1 = static"},
      {"mean_abs_frame_difference", "mean_t(mean |frame_t+1 - frame_t| over R,G,B), 0..255 scale"},
      {"warping_error",
       "Farneback flow t->t+1 on gray (pyr_scale 0.5, levels 3, winsize 15, iterations 3, poly_n 5, "
       "poly_sigma 1.2), frame t+1 remapped (bilinear) onto t, mean |RGB diff|/255 over pixels whose "
       "flow target is inside the image, mean over pairs"},
  };
}

}  // namespace lf::eval
