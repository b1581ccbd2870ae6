#pragma once
// Non-neural video metrics for `lightforce compare-dense`: a sparse-attention run against the dense run with the
// same seed and noise. Exact definitions and the reasons behind each variant are in docs/metrics.md; the strings
// in `metric_variants()` go into every report so numbers are never compared across different definitions.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/frame.h"

namespace lf::eval {

// Per-frame PSNR above this is reported as this value when frames are averaged or written to JSON: an identical
// frame has infinite PSNR, which would make any mean over frames infinite and is not valid JSON. 100 dB is below
// the PSNR of a single one-level difference in a 480x832 frame (~109 dB), so it reads as "indistinguishable".
inline constexpr double kPsnrCapDb = 100.0;

// PSNR in dB of 8-bit RGB frames with MAX = 255, MSE over all pixels and all three channels. Identical frames give
// +infinity (callers that average or serialise use `capped_psnr`). Sizes must match.
double psnr(const Frame& a, const Frame& b);
// NaN stays NaN (written as null), so an invalid value is never disguised as a perfect one.
inline double capped_psnr(double psnr_db) { return psnr_db > kPsnrCapDb ? kPsnrCapDb : psnr_db; }

// Mean squared error over all RGB bytes (0..255 scale): the number PSNR is made of.
double mse(const Frame& a, const Frame& b);

// SSIM (Wang et al. 2004) on luma Y = 0.299 R + 0.587 G + 0.114 B (unrounded, 0..255), 11x11 Gaussian window with
// sigma 1.5 (weights normalised to sum 1), K1 = 0.01, K2 = 0.03, L = 255, "valid" region only (no padding: the map
// is (H - 10) x (W - 10)), mean of the map. Symmetric; 1 for identical frames. Frames must be at least 11x11.
double ssim(const Frame& a, const Frame& b);

// Mean over consecutive pairs (t, t+1) of the mean absolute difference of all RGB bytes, on the 0..255 scale.
// Needs at least two frames of one size.
double mean_abs_frame_difference(const std::vector<Frame>& frames);

// VBench `temporal_flickering`: 1 - mean_abs_frame_difference / 255, in [0, 1]; higher = steadier. A static video
// scores 1, a video alternating black and white frames 0.
double temporal_flicker(const std::vector<Frame>& frames);

// ||a - b||_2 / ||b||_2 over all elements, `b` being the reference (the dense run), accumulated in double.
// Tensors must be f32, on the CPU, of one shape. A zero reference gives 0 when `a` is zero too, else +infinity;
// a NaN or infinity in either gives +infinity so that a diverged run never passes a `< tolerance` check.
double latent_rel_l2(const Tensor& a, const Tensor& b);

// Optical-flow warping error of one video (needs OpenCV; without it throws lf::Error): for each consecutive pair,
// Farneback flow from frame t to t+1 on grayscale (pyr_scale 0.5, levels 3, winsize 15, iterations 3, poly_n 5,
// poly_sigma 1.2, no flags), frame t+1 warped back onto t with cv::remap (bilinear), then the mean absolute RGB
// difference / 255 over the pixels whose flow target lies inside frame t+1. Returns the mean over pairs (pairs
// with no such pixel are skipped; NaN when every pair is). Needs at least two frames of one size.
double warping_error(const std::vector<Frame>& frames);

// The warping error of the sparse video next to the dense video's, each with its own flow: the dense value is the
// floor the model itself reaches, so only `sparse - dense` is attributable to sparse attention.
struct WarpingComparison {
  double sparse = 0;
  double dense = 0;
};
WarpingComparison warping_error_pair(const std::vector<Frame>& sparse, const std::vector<Frame>& dense);

// True when this build can compute warping errors and draw plots.
bool have_opencv();

// Fidelity of one chunk (or of the whole video when `chunk` == -1) of the sparse run against the dense run.
struct ChunkMetrics {
  int64_t chunk = 0;
  int64_t frames = 0;            // video frames in the chunk
  int64_t identical_frames = 0;  // frames bit-identical to the dense run (their PSNR enters the mean as kPsnrCapDb)
  double psnr = 0;               // mean over the chunk's frames of capped per-frame PSNR, dB
  double ssim = 0;               // mean over the chunk's frames of per-frame SSIM
  double latent_rel_l2 = 0;      // latent_rel_l2 over the chunk's latent frames; NaN when no latents were given
};

// How frames map to chunks: chunk c owns the next video_frames[c] video frames and latent_frames[c] latent frames
// (a causal VAE gives the first chunk fewer video frames). Both lists have one entry per chunk.
struct ChunkLayout {
  std::vector<int64_t> video_frames;
  std::vector<int64_t> latent_frames;
};

// One ChunkMetrics per chunk. `sparse`/`dense` are the decoded videos (same count and size); the latents are f32 CPU
// [F, C, H, W] of one shape, or both undefined (Tensor()) when only videos are compared. The layout must cover
// every frame and latent frame exactly.
std::vector<ChunkMetrics> per_chunk_metrics(const std::vector<Frame>& sparse, const std::vector<Frame>& dense,
                                            const Tensor& sparse_latents, const Tensor& dense_latents,
                                            const ChunkLayout& layout);

// The same measures over the whole video (chunk = -1): frame means over all frames, latent rel-L2 over the whole
// tensor (not a mean of per-chunk ratios).
ChunkMetrics overall_metrics(const std::vector<Frame>& sparse, const std::vector<Frame>& dense,
                             const Tensor& sparse_latents, const Tensor& dense_latents);

// True when every frame of the chunk is bit-identical to the baseline's (PSNR infinite, capped at kPsnrCapDb).
inline bool chunk_identical(const ChunkMetrics& metrics) {
  return metrics.frames > 0 && metrics.identical_frames == metrics.frames;
}

// The run-level numbers a report leads with: means over the chunks whose video differs from the baseline, each chunk
// counted once. A chunk that is identical to the baseline (chunk 0 runs dense in most backends) would enter a mean at
// the 100 dB cap and lift a run whose other chunks sit at 22 dB to "48 dB"; it says nothing about the sparse
// attention, so it is left out and counted instead. With no differing chunk the means are NaN (JSON null).
struct DifferingChunksMean {
  int64_t differing_chunks = 0;  // N: chunks with at least one frame that is not bit-identical
  int64_t chunks = 0;            // M: all chunks
  double psnr = 0;               // mean over the N chunks of the chunk's (frame-mean, capped) PSNR, dB
  double ssim = 0;               // mean over the N chunks of the chunk's SSIM
  double latent_rel_l2 = 0;      // mean over the N chunks of the chunk's latent rel-L2 (NaN without latents)
  bool all_identical() const { return differing_chunks == 0; }
};
DifferingChunksMean differing_chunks_mean(const std::vector<ChunkMetrics>& chunks);

// Name -> one-line definition of every metric above, as written into reports.
std::map<std::string, std::string> metric_variants();

}  // namespace lf::eval
