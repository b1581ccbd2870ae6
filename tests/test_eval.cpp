// Video metrics (eval/metrics.h) against numpy / OpenCV values committed by tools/make_metric_fixtures.py and a
// direct 2-D SSIM written here; per-chunk aggregation, reports, plots and side-by-side frames.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "eval/metrics.h"
#include "eval/report.h"
#include "io/frame.h"
#include "io/safetensors.h"
#include "test_util.h"

using namespace lf;
using namespace lf::eval;
namespace fs = std::filesystem;

namespace {

// Deterministic 64-bit LCG; the high bits are the usable ones.
struct Lcg {
  uint64_t state;
  explicit Lcg(uint64_t seed) : state(seed * 6364136223846793005ull + 1442695040888963407ull) {}
  uint32_t next() {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return uint32_t(state >> 33);
  }
  double uniform() { return double(next()) / double(1u << 31); }  // [0, 1)
};

Frame blank_frame(int width, int height, uint8_t value) {
  return Frame{width, height, std::vector<uint8_t>(size_t(width) * size_t(height) * 3, value)};
}

// Bytes in [low, high], never a constant image.
Frame random_frame(int width, int height, uint64_t seed, int low = 0, int high = 255) {
  Frame frame = blank_frame(width, height, 0);
  Lcg rng(seed);
  for (uint8_t& byte : frame.rgb) byte = uint8_t(low + int(rng.next() % uint32_t(high - low + 1)));
  return frame;
}

Frame add_noise(const Frame& frame, int amplitude, uint64_t seed) {
  Frame out = frame;
  Lcg rng(seed);
  for (uint8_t& byte : out.rgb) {
    const int noise = int(rng.next() % uint32_t(2 * amplitude + 1)) - amplitude;
    byte = uint8_t(std::clamp(int(byte) + noise, 0, 255));
  }
  return out;
}

// A smooth colour texture defined everywhere on the plane (sum of oblique sinusoids, periods ~12-40 px), so a
// shifted crop has real content at the borders and enough structure for optical flow.
struct Texture {
  struct Wave {
    double fx, fy, phase, amplitude;
  };
  std::vector<Wave> waves[3];
  explicit Texture(uint64_t seed) {
    Lcg rng(seed);
    for (auto& channel : waves) {
      for (int k = 0; k < 4; ++k) {
        const double period = 12 + 28 * rng.uniform(), angle = 6.2831853 * rng.uniform();
        channel.push_back({std::cos(angle) * 6.2831853 / period, std::sin(angle) * 6.2831853 / period,
                           6.2831853 * rng.uniform(), 20 + 15 * rng.uniform()});
      }
    }
  }
  Frame render(int width, int height, double dx, double dy) const {
    Frame frame = blank_frame(width, height, 0);
    for (int y = 0; y < height; ++y) {
      for (int x = 0; x < width; ++x) {
        for (int c = 0; c < 3; ++c) {
          double value = 128;
          for (const Wave& wave : waves[c])
            value += wave.amplitude * std::sin(wave.fx * (x - dx) + wave.fy * (y - dy) + wave.phase);
          frame.rgb[(size_t(y) * width + x) * 3 + c] = uint8_t(std::clamp(std::lround(value), 0l, 255l));
        }
      }
    }
    return frame;
  }
};

// SSIM straight from the definition: full 2-D window (no separability), variances as weighted sums of squared
// deviations (not E[x^2] - mu^2), double throughout; an independent check of the fast implementation.
double reference_ssim(const Frame& a, const Frame& b) {
  const int n = 11, half = 5;
  std::vector<double> g(n);
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += g[size_t(i)] = std::exp(-double((i - half) * (i - half)) / (2 * 1.5 * 1.5));
  std::vector<double> window(size_t(n * n));
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) window[size_t(i * n + j)] = g[size_t(i)] * g[size_t(j)] / (sum * sum);
  auto luma = [](const Frame& f, int x, int y) {
    const uint8_t* p = &f.rgb[(size_t(y) * f.width + x) * 3];
    return 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
  };
  const double c1 = 2.55 * 2.55, c2 = 7.65 * 7.65;
  double total = 0;
  int count = 0;
  for (int y = 0; y + n <= a.height; ++y) {
    for (int x = 0; x + n <= a.width; ++x) {
      double mu_a = 0, mu_b = 0;
      for (int i = 0; i < n; ++i) {
        for (int j = 0; j < n; ++j) {
          mu_a += window[size_t(i * n + j)] * luma(a, x + j, y + i);
          mu_b += window[size_t(i * n + j)] * luma(b, x + j, y + i);
        }
      }
      double var_a = 0, var_b = 0, cov = 0;
      for (int i = 0; i < n; ++i) {
        for (int j = 0; j < n; ++j) {
          const double w = window[size_t(i * n + j)];
          const double da = luma(a, x + j, y + i) - mu_a, db = luma(b, x + j, y + i) - mu_b;
          var_a += w * da * da;
          var_b += w * db * db;
          cov += w * da * db;
        }
      }
      total += (2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2));
      ++count;
    }
  }
  return total / count;
}

// True when `action` throws an lf::Error whose message contains `needle`.
bool fails_with(const std::function<void()>& action, const std::string& needle) {
  try {
    action();
  } catch (const Error& error) {
    const bool found = std::string(error.what()).find(needle) != std::string::npos;
    if (!found) MESSAGE("unexpected error message: " << error.what());
    return found;
  }
  return false;
}

std::string read_bytes(const std::string& path) {
  std::ifstream stream(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(stream), std::istreambuf_iterator<char>());
}


// tests/fixtures/metrics/metrics_reference.safetensors, written by tools/make_metric_fixtures.py: seeded videos and
// the metrics numpy / OpenCV's Python bindings give for them, from the definitions in docs/metrics.md (each one
// computed two independent ways there, which agree to 1e-14). A missing file fails the test.
class MetricFixture {
 public:
  MetricFixture()
      : file_(SafetensorsCheckpoint::open(std::string(LF_FIXTURES_DIR) + "/metrics/metrics_reference.safetensors")) {}

  std::vector<Frame> video(const std::string& name) const {
    const Tensor frames = file_->view("frames_" + name);
    REQUIRE(frames.dtype() == DType::U8);
    REQUIRE(frames.rank() == 4);
    REQUIRE(frames.dim(3) == 3);
    const int64_t count = frames.dim(0), height = frames.dim(1), width = frames.dim(2);
    const uint8_t* bytes = static_cast<const uint8_t*>(frames.raw());
    std::vector<Frame> video;
    for (int64_t t = 0; t < count; ++t) {
      const uint8_t* first = bytes + t * height * width * 3;
      video.push_back(Frame{int(width), int(height), std::vector<uint8_t>(first, first + height * width * 3)});
    }
    return video;
  }

  std::vector<double> values(const std::string& name) const {
    const Tensor tensor = file_->view(name);
    REQUIRE(tensor.dtype() == DType::F64);
    const double* first = static_cast<const double*>(tensor.raw());
    return std::vector<double>(first, first + tensor.numel());
  }

 private:
  std::unique_ptr<SafetensorsCheckpoint> file_;
};

// Tolerances against tools/make_metric_fixtures.py, each from the difference measured on 2026-12-07 (x86-64-v3 build,
// numpy 1.24, OpenCV 4.6) with its margin. Every one is far below what a wrong definition moves: a window sigma
// of 1.6 instead of 1.5 moves SSIM by ~1e-3, RGB PSNR against luma PSNR differs by ~0.1 dB, a flow taken the other
// way round or a mask that keeps outside pixels moves the warping error by > 1e-4.
constexpr double kPsnrTolerance = 1e-12;     // measured 0 dB: both are log10 of the same exact integer MSE
constexpr double kSsimTolerance = 1e-13;     // measured 1.7e-15, 3.1e-15 in the ASan build; 30x for other CPUs, libms
constexpr double kFlickerTolerance = 1e-12;  // measured 0: integer sums divided once
// The warping error against the same steps done with cv2.remap (what eval/metrics.cpp calls, and the same
// Farneback flow from the same library): measured 0; 1e-7 stays 30x below the gap to exact bilinear sampling, so
// this check still tells remap from any other sampler.
constexpr double kWarpingRemapTolerance = 1e-7;
// Against numpy's exact bilinear sampling: remap rounds sample positions to 1/32 pixel; measured 2.9e-6 to 2.9e-5
// (up to 1.3% of a small warping error); 6e-5 is twice the largest.
constexpr double kWarpingBilinearTolerance = 6e-5;

}  // namespace

TEST_CASE("psnr: known uniform error, identical frames, symmetry, size mismatch") {
  const Frame base = random_frame(37, 23, 1, 0, 245);
  Frame plus10 = base;
  for (uint8_t& byte : plus10.rgb) byte = uint8_t(byte + 10);
  CHECK(mse(base, plus10) == doctest::Approx(100.0));
  CHECK(psnr(base, plus10) == doctest::Approx(20.0 * std::log10(255.0 / 10.0)).epsilon(1e-12));
  CHECK(psnr(plus10, base) == psnr(base, plus10));

  CHECK(std::isinf(psnr(base, base)));
  CHECK(psnr(base, base) > 0);
  CHECK(capped_psnr(psnr(base, base)) == kPsnrCapDb);
  CHECK(capped_psnr(30.0) == 30.0);
  CHECK(std::isnan(capped_psnr(NAN)));

  CHECK(fails_with([&] { psnr(base, random_frame(36, 23, 2)); }, "frame sizes differ"));
  CHECK(fails_with([&] { psnr(base, Frame{}); }, "empty frame"));
}

TEST_CASE("ssim: identity, symmetry, noise monotonicity, brute-force reference") {
  const Frame a = random_frame(48, 40, 3);
  CHECK(ssim(a, a) == doctest::Approx(1.0).epsilon(1e-12));

  const Frame b = random_frame(48, 40, 4);
  const double unrelated = ssim(a, b);
  CHECK(unrelated < 0.2);
  CHECK(ssim(b, a) == doctest::Approx(unrelated).epsilon(1e-12));

  // A structured image, so small noise leaves it recognisable and SSIM falls steadily with the noise level.
  const Frame textured = Texture(5).render(64, 48, 0, 0);
  double previous = 1.0;
  for (int amplitude : {2, 8, 24, 64}) {
    const double value = ssim(textured, add_noise(textured, amplitude, 100 + amplitude));
    CHECK(value < previous);
    previous = value;
  }
  CHECK(previous < 0.8);

  for (uint64_t seed : {10u, 11u, 12u}) {
    const Frame x = random_frame(23 + int(seed), 17, seed);
    const Frame y = add_noise(x, 40, seed + 50);
    CHECK(std::abs(ssim(x, y) - reference_ssim(x, y)) < 1e-6);
  }
  // Exactly the window size: a single map value.
  const Frame small = random_frame(11, 11, 13);
  const Frame small_noisy = add_noise(small, 30, 14);
  CHECK(std::abs(ssim(small, small_noisy) - reference_ssim(small, small_noisy)) < 1e-6);

  CHECK(fails_with([] { ssim(random_frame(10, 20, 1), random_frame(10, 20, 2)); }, "smaller than the 11x11"));
}

TEST_CASE("PSNR, SSIM, flicker and warping error equal numpy / OpenCV values (tools/make_metric_fixtures.py)") {
  const MetricFixture fixture;
  // Per-frame PSNR and SSIM of video a against video b: random bytes (SSIM ~0.01-0.04), a texture with light and
  // heavy noise (SSIM 0.98 and 0.49), and frames exactly the 11x11 window.
  double psnr_worst = 0, ssim_worst = 0;
  for (const auto& [a, b] : std::vector<std::pair<std::string, std::string>>{
           {"random_a", "random_b"}, {"texture_noise4", "texture"}, {"texture_noise40", "texture"},
           {"tiny_b", "tiny_a"}}) {
    CAPTURE(a);
    const std::vector<Frame> first = fixture.video(a), second = fixture.video(b);
    const std::vector<double> psnr_expected = fixture.values("psnr_" + a + "_" + b);
    const std::vector<double> ssim_expected = fixture.values("ssim_" + a + "_" + b);
    REQUIRE(first.size() == psnr_expected.size());
    REQUIRE(first.size() == ssim_expected.size());
    for (size_t t = 0; t < first.size(); ++t) {
      CAPTURE(t);
      const double psnr_error = std::abs(psnr(first[t], second[t]) - psnr_expected[t]);
      const double ssim_error = std::abs(ssim(first[t], second[t]) - ssim_expected[t]);
      psnr_worst = std::max(psnr_worst, psnr_error);
      ssim_worst = std::max(ssim_worst, ssim_error);
      CHECK(psnr_error < kPsnrTolerance);  // NaN fails: a comparison with NaN is false
      CHECK(ssim_error < kSsimTolerance);
    }
  }
  MESSAGE("largest difference from numpy: PSNR " << psnr_worst << " dB, SSIM " << ssim_worst);

  double flicker_worst = 0;
  for (const std::string name : {"texture", "texture_noise40", "random_a", "moving"}) {
    CAPTURE(name);
    const std::vector<Frame> video = fixture.video(name);
    const double difference_error =
        std::abs(mean_abs_frame_difference(video) - fixture.values("mean_abs_diff_" + name)[0]);
    const double flicker_error = std::abs(temporal_flicker(video) - fixture.values("flicker_" + name)[0]);
    flicker_worst = std::max({flicker_worst, difference_error, flicker_error});
    CHECK(difference_error < kFlickerTolerance);
    CHECK(flicker_error < kFlickerTolerance);
  }
  MESSAGE("largest difference from numpy: mean frame difference / flicker " << flicker_worst);

#if LF_WITH_OPENCV
  // [0]: numpy's exact bilinear sampling; [1]: the same steps with cv2.remap, which eval/metrics.cpp calls too and
  // which samples at positions rounded to 1/32 pixel. The flow is OpenCV's Farneback in both (the same library).
  for (const std::string name : {"moving", "shuffled", "texture"}) {
    CAPTURE(name);
    const std::vector<double> expected = fixture.values("warping_" + name);
    const double measured = warping_error(fixture.video(name));
    MESSAGE("warping error " << name << ": " << measured << ", minus cv2.remap's " << measured - expected[1]
                             << ", minus numpy bilinear's " << measured - expected[0]);
    CHECK(std::abs(measured - expected[1]) < kWarpingRemapTolerance);
    CHECK(std::abs(measured - expected[0]) < kWarpingBilinearTolerance);
  }
#else
  FAIL("this build has no OpenCV: the warping error cannot be checked (configure with OpenCV)");
#endif
}

TEST_CASE("temporal flicker: static video = 1, alternating black/white = 0") {
  const Frame still = random_frame(16, 12, 20);
  const std::vector<Frame> static_video(5, still);
  CHECK(mean_abs_frame_difference(static_video) == 0.0);
  CHECK(temporal_flicker(static_video) == 1.0);

  std::vector<Frame> alternating;
  for (int t = 0; t < 6; ++t) alternating.push_back(blank_frame(16, 12, t % 2 ? 255 : 0));
  CHECK(mean_abs_frame_difference(alternating) == 255.0);
  CHECK(temporal_flicker(alternating) == 0.0);

  // Two pairs with mean differences 10 and 30 -> mean 20.
  const Frame base = random_frame(16, 12, 21, 0, 200);
  Frame plus10 = base, plus40 = base;
  for (uint8_t& byte : plus10.rgb) byte = uint8_t(byte + 10);
  for (uint8_t& byte : plus40.rgb) byte = uint8_t(byte + 40);
  CHECK(mean_abs_frame_difference({base, plus10, plus40}) == doctest::Approx(20.0));
  CHECK(temporal_flicker({base, plus10, plus40}) == doctest::Approx(1.0 - 20.0 / 255.0));

  CHECK(fails_with([&] { temporal_flicker({still}); }, "at least 2 frames"));
  CHECK(fails_with([&] { temporal_flicker({still, random_frame(8, 8, 1)}); }, "frame 1 is 8x8"));
}

TEST_CASE("latent_rel_l2") {
  const Tensor dense = test::random_tensor({3, 2, 4, 5}, 30);
  Tensor sparse = dense.clone();
  for (int64_t i = 0; i < sparse.numel(); ++i) sparse.f32()[i] *= 1.1f;
  CHECK(latent_rel_l2(sparse, dense) == doctest::Approx(0.1).epsilon(1e-5));
  CHECK(latent_rel_l2(dense, dense) == 0.0);

  Tensor broken = dense.clone();
  broken.f32()[7] = NAN;
  CHECK(std::isinf(latent_rel_l2(broken, dense)));
  const Tensor zeros = Tensor::zeros({3, 2, 4, 5});
  CHECK(latent_rel_l2(zeros, zeros) == 0.0);
  CHECK(std::isinf(latent_rel_l2(dense, zeros)));

  CHECK(fails_with([&] { latent_rel_l2(dense, test::random_tensor({3, 2, 4, 6}, 31)); }, "shapes differ"));
  CHECK(fails_with([&] { latent_rel_l2(Tensor(), dense); }, "undefined tensor"));
  CHECK(fails_with([&] { latent_rel_l2(dense.to(DType::BF16), dense); }, "must be f32"));
}

TEST_CASE("warping error: translated texture is small, shuffled video is large") {
  const Texture texture(40);
  std::vector<Frame> translated;
  for (int t = 0; t < 6; ++t) translated.push_back(texture.render(96, 64, 3.0 * t, 0));
  std::vector<Frame> shuffled;
  for (int t = 0; t < 6; ++t) shuffled.push_back(random_frame(96, 64, 200 + uint64_t(t)));
  std::vector<Frame> still(4, translated[0]);
#if LF_WITH_OPENCV
  CHECK(have_opencv());
  const double moving = warping_error(translated);
  const double noise = warping_error(shuffled);
  MESSAGE("warping error: translated " << moving << ", shuffled " << noise);
  CHECK(moving < 0.02);
  CHECK(noise > 0.1);
  CHECK(warping_error(still) < 1e-3);
  const WarpingComparison pair = warping_error_pair(shuffled, translated);
  CHECK(pair.sparse == noise);
  CHECK(pair.dense == moving);
  CHECK(fails_with([&] { warping_error({translated[0]}); }, "at least 2 frames"));
#else
  CHECK(!have_opencv());
  CHECK(fails_with([&] { warping_error(translated); }, "no OpenCV"));
#endif
}

TEST_CASE("per-chunk metrics: identical first chunk, perturbed second chunk, layout checks") {
  // Chunk 0: 1 video frame / 2 latent frames, identical; chunk 1: 2 video frames / 2 latent frames, perturbed with
  // the fixture's heavy and light noise, so the expected means come from numpy's per-frame values, not from psnr()
  // and ssim() under test.
  const MetricFixture fixture;
  const std::vector<Frame> dense = fixture.video("texture");
  REQUIRE(dense.size() == 3);
  const std::vector<Frame> sparse = {dense[0], fixture.video("texture_noise40")[1], fixture.video("texture_noise4")[2]};
  const std::vector<double> psnr40 = fixture.values("psnr_texture_noise40_texture");
  const std::vector<double> psnr4 = fixture.values("psnr_texture_noise4_texture");
  const std::vector<double> ssim40 = fixture.values("ssim_texture_noise40_texture");
  const std::vector<double> ssim4 = fixture.values("ssim_texture_noise4_texture");
  const Tensor dense_latents = test::random_tensor({4, 3, 5, 6}, 80);
  Tensor sparse_latents = dense_latents.clone();
  const int64_t per_frame = 3 * 5 * 6;
  for (int64_t i = 2 * per_frame; i < 4 * per_frame; ++i) sparse_latents.f32()[i] *= 1.25f;
  const ChunkLayout layout{{1, 2}, {2, 2}};

  const std::vector<ChunkMetrics> chunks = per_chunk_metrics(sparse, dense, sparse_latents, dense_latents, layout);
  REQUIRE(chunks.size() == 2);
  CHECK(chunks[0].chunk == 0);
  CHECK(chunks[0].frames == 1);
  CHECK(chunks[0].identical_frames == 1);
  CHECK(chunks[0].psnr == kPsnrCapDb);
  CHECK(chunks[0].ssim == doctest::Approx(1.0).epsilon(1e-12));
  CHECK(chunks[0].latent_rel_l2 == 0.0);

  CHECK(chunks[1].chunk == 1);
  CHECK(chunks[1].frames == 2);
  CHECK(chunks[1].identical_frames == 0);
  const double psnr_mean = (psnr40[1] + psnr4[2]) / 2, ssim_mean = (ssim40[1] + ssim4[2]) / 2;
  CHECK(std::abs(chunks[1].psnr - psnr_mean) < kPsnrTolerance);
  CHECK(std::abs(chunks[1].ssim - ssim_mean) < kSsimTolerance);
  CHECK(chunks[1].latent_rel_l2 == doctest::Approx(0.25).epsilon(1e-5));

  const ChunkMetrics total = overall_metrics(sparse, dense, sparse_latents, dense_latents);
  CHECK(total.chunk == -1);
  CHECK(total.frames == 3);
  CHECK(total.identical_frames == 1);
  CHECK(std::abs(total.psnr - (kPsnrCapDb + psnr40[1] + psnr4[2]) / 3) < kPsnrTolerance);
  CHECK(std::abs(total.ssim - (1.0 + ssim40[1] + ssim4[2]) / 3) < kSsimTolerance);
  // Over the whole tensor (not a mean of the chunks' ratios), against a direct double sum.
  double diff = 0, ref = 0;
  for (int64_t i = 0; i < dense_latents.numel(); ++i) {
    const double d = double(sparse_latents.f32()[i]) - double(dense_latents.f32()[i]);
    diff += d * d;
    ref += double(dense_latents.f32()[i]) * double(dense_latents.f32()[i]);
  }
  CHECK(total.latent_rel_l2 == doctest::Approx(std::sqrt(diff / ref)).epsilon(1e-9));

  // Videos only: latent rel-L2 is NaN (null in JSON) and the latent layout is not needed.
  const std::vector<ChunkMetrics> video_only = per_chunk_metrics(sparse, dense, Tensor(), Tensor(), {{1, 2}, {}});
  CHECK(std::isnan(video_only[1].latent_rel_l2));
  CHECK(video_only[1].psnr == chunks[1].psnr);

  CHECK(fails_with(
      [&] {
        per_chunk_metrics(sparse, dense, sparse_latents, dense_latents, {{1, 1}, {2, 2}});
      },
      "covers 2 video frames, video has 3"));
  CHECK(fails_with(
      [&] {
        per_chunk_metrics(sparse, dense, sparse_latents, dense_latents, {{1, 2}, {2, 1}});
      },
      "covers 3 latent frames"));
  CHECK(fails_with([&] { per_chunk_metrics(sparse, dense, sparse_latents, Tensor(), layout); },
                   "latents given for the sparse run only"));
  const std::vector<Frame> short_video(dense.begin(), dense.begin() + 2);
  CHECK(fails_with([&] { overall_metrics(short_video, dense, Tensor(), Tensor()); },
                   "sparse video has 2 frames, dense video 3"));
}

TEST_CASE("headline means leave out chunks identical to dense") {
  // Chunk 0 identical (as when it runs dense), chunk 1 heavy noise, chunk 2 light noise, chunk 3 half identical: the
  // headline is the mean over chunks 1-3 only, computed here from numpy's per-frame values and, separately, from the
  // per-chunk values the report lists.
  const MetricFixture fixture;
  const std::vector<Frame> texture = fixture.video("texture");
  const std::vector<Frame> dense = {texture[0], texture[1], texture[2], texture[0], texture[1]};
  const std::vector<Frame> sparse = {texture[0], fixture.video("texture_noise40")[1],
                                     fixture.video("texture_noise4")[2], texture[0],
                                     fixture.video("texture_noise40")[1]};
  const std::vector<double> psnr40 = fixture.values("psnr_texture_noise40_texture");
  const std::vector<double> psnr4 = fixture.values("psnr_texture_noise4_texture");
  const std::vector<double> ssim40 = fixture.values("ssim_texture_noise40_texture");
  const std::vector<double> ssim4 = fixture.values("ssim_texture_noise4_texture");
  const std::vector<ChunkMetrics> chunks = per_chunk_metrics(sparse, dense, Tensor(), Tensor(), {{1, 1, 1, 2}, {}});
  REQUIRE(chunks.size() == 4);
  CHECK(chunk_identical(chunks[0]));
  CHECK_FALSE(chunk_identical(chunks[1]));
  CHECK_FALSE(chunk_identical(chunks[3]));  // one identical frame of two: the chunk still differs

  const DifferingChunksMean mean = differing_chunks_mean(chunks);
  CHECK(mean.chunks == 4);
  CHECK(mean.differing_chunks == 3);
  CHECK_FALSE(mean.all_identical());
  // Chunk 3's PSNR is the mean of its frames, the identical one at the 100 dB cap (docs/metrics.md).
  const double chunk3_psnr = (kPsnrCapDb + psnr40[1]) / 2, chunk3_ssim = (1.0 + ssim40[1]) / 2;
  CHECK(std::abs(mean.psnr - (psnr40[1] + psnr4[2] + chunk3_psnr) / 3) < kPsnrTolerance);
  CHECK(std::abs(mean.ssim - (ssim40[1] + ssim4[2] + chunk3_ssim) / 3) < kSsimTolerance);
  CHECK(std::isnan(mean.latent_rel_l2));  // no latents

  CompareDenseReport report;
  report.sparse.backend = "light-forcing";
  report.dense.backend = "dense";
  report.chunks = chunks;
  report.total = overall_metrics(sparse, dense, Tensor(), Tensor());
  const nlohmann::json json = nlohmann::json::parse(compare_dense_json(report).dump());
  // The headline against the per-chunk numbers of the same JSON: the mean of those not marked identical.
  double psnr_sum = 0, ssim_sum = 0;
  int differing = 0;
  for (const auto& chunk : json.at("chunks")) {
    CHECK(chunk.at("identical").get<bool>() == (chunk.at("identical_frames") == chunk.at("frames")));
    if (chunk.at("identical").get<bool>()) continue;
    psnr_sum += chunk.at("psnr").get<double>();
    ssim_sum += chunk.at("ssim").get<double>();
    ++differing;
  }
  REQUIRE(differing == 3);
  const nlohmann::json& headline = json.at("differing_chunks_mean");
  CHECK(headline.at("psnr").get<double>() == doctest::Approx(psnr_sum / differing).epsilon(1e-12));
  CHECK(headline.at("ssim").get<double>() == doctest::Approx(ssim_sum / differing).epsilon(1e-12));
  CHECK(headline.at("differing_chunks") == 3);
  CHECK(headline.at("chunks") == 4);
  CHECK(headline.at("all_identical") == false);
  CHECK(headline.at("latent_rel_l2").is_null());
  CHECK(json.at("teacher_forced_differing_chunks_mean").is_null());  // no teacher-forced run
  // The all-frames mean stays in "total", where the identical frames lift it.
  CHECK(json.at("total").at("psnr").get<double>() > headline.at("psnr").get<double>() + 10);

  const std::string md = compare_dense_markdown(report, {});
  CHECK(md.find("mean over the 3 of 4 chunks that differ from dense") != std::string::npos);
  CHECK(md.find("| 0 | 1 | identical |") != std::string::npos);
  CHECK(md.find(fmt::format("| mean of the 3 of 4 differing chunks |  | {:.2f} |", psnr_sum / differing)) !=
        std::string::npos);
  CHECK(md.find("(1/2 identical)") != std::string::npos);  // chunk 3: its one identical frame is named

  // Every chunk identical: no number to quote, said plainly, null (never NaN) in the JSON.
  CompareDenseReport same = report;
  const std::vector<Frame> copy = dense;
  same.chunks = per_chunk_metrics(copy, dense, Tensor(), Tensor(), {{1, 1, 1, 2}, {}});
  same.total = overall_metrics(copy, dense, Tensor(), Tensor());
  const nlohmann::json same_json = nlohmann::json::parse(compare_dense_json(same).dump());
  CHECK(same_json.at("differing_chunks_mean").at("all_identical") == true);
  CHECK(same_json.at("differing_chunks_mean").at("differing_chunks") == 0);
  for (const char* key : {"psnr", "ssim", "latent_rel_l2"})
    CHECK_MESSAGE(same_json.at("differing_chunks_mean").at(key).is_null(), key);
  CHECK(compare_dense_markdown(same, {}).find("Every chunk (4 of 4) is identical to dense") != std::string::npos);
}

TEST_CASE("report: JSON keys, speedups, null for unknowns, Markdown, files") {
  CompareDenseReport report;
  report.sparse = {.backend = "light-forcing",
                   .seconds = 2.0,
                   .attention_seconds = 0.5,
                   .temporal_flicker = 0.97,
                   .mean_abs_frame_difference = 7.65,
                   .warping_error = 0.012};
  report.dense = {.backend = "dense",
                  .seconds = 3.0,
                  .attention_seconds = 1.5,
                  .temporal_flicker = 0.98,
                  .mean_abs_frame_difference = 5.1,
                  .warping_error = std::nullopt};
  report.chunks = {{0, 9, 9, INFINITY, 1.0, 0.0}, {1, 12, 0, 31.5, 0.93, 0.042}, {2, 12, 0, 27.25, 0.88, NAN}};
  report.total = {-1, 33, 9, 50.0, 0.93, 0.05};
  report.extra = {{"seed", 42}, {"prompt", "a cat"}};

  const nlohmann::json json = compare_dense_json(report);
  for (const char* key : {"chunks", "speedup", "attention_speedup", "sparse", "dense", "total", "metric_variants",
                          "psnr_cap_db", "seed", "prompt"}) {
    CHECK_MESSAGE(json.contains(key), key);
  }
  CHECK(json["speedup"].get<double>() == doctest::Approx(1.5));
  CHECK(json["attention_speedup"].get<double>() == doctest::Approx(3.0));
  CHECK(json["sparse"]["backend"] == "light-forcing");
  CHECK(json["dense"]["seconds"].get<double>() == 3.0);
  CHECK(json["sparse"]["warping_error"].get<double>() == 0.012);
  CHECK(json["dense"]["warping_error"].is_null());
  REQUIRE(json["chunks"].size() == 3);
  for (const auto& chunk : json["chunks"]) {
    for (const char* key : {"chunk", "psnr", "ssim", "latent_rel_l2", "frames", "identical_frames"}) {
      CHECK_MESSAGE(chunk.contains(key), key);
    }
  }
  CHECK(json["chunks"][0]["psnr"].get<double>() == kPsnrCapDb);  // infinite PSNR is capped, not null
  CHECK(json["chunks"][0]["identical"] == true);
  CHECK(json["chunks"][1]["identical"] == false);
  CHECK(json["differing_chunks_mean"]["psnr"].get<double>() == doctest::Approx((31.5 + 27.25) / 2));
  CHECK(json["chunks"][1]["psnr"].get<double>() == 31.5);
  CHECK(json["chunks"][2]["latent_rel_l2"].is_null());
  CHECK(json["total"]["chunk"] == -1);
  for (const char* key : {"psnr", "ssim", "temporal_flicker", "warping_error", "latent_rel_l2"}) {
    CHECK_MESSAGE(json["metric_variants"].contains(key), key);
  }
  // The dump must be valid JSON (no NaN/Infinity tokens) and parse back.
  CHECK(nlohmann::json::parse(json.dump())["chunks"][2]["latent_rel_l2"].is_null());

  CompareDenseReport unknown = report;
  unknown.sparse.seconds = 0;
  unknown.dense.attention_seconds = -1;
  const nlohmann::json unknown_json = compare_dense_json(unknown);
  CHECK(unknown_json["speedup"].is_null());
  CHECK(unknown_json["attention_speedup"].is_null());
  CHECK(unknown_json["sparse"]["seconds"].is_null());

  CompareDenseReport colliding = report;
  colliding.extra = {{"speedup", 9}};
  CHECK(fails_with([&] { compare_dense_json(colliding); }, "extra field 'speedup' collides"));

  const std::string md = compare_dense_markdown(report, {});
  CHECK(md.find("| chunk | frames | PSNR (dB) | SSIM | latent rel-L2 |") != std::string::npos);
  CHECK(md.find("| 1 | 12 | 31.50 | 0.9300 | 4.200e-02 |") != std::string::npos);
  CHECK(md.find("| 0 | 9 | identical | 1.0000 |") != std::string::npos);
  CHECK(md.find("| all frames (identical at 100 dB) | 33 | 50.00 (9/33 identical) |") != std::string::npos);
  // (31.5 + 27.25) / 2 and (0.93 + 0.88) / 2: chunk 0 is identical and left out; chunk 2 has no latents.
  CHECK(md.find("| mean of the 2 of 3 differing chunks |  | 29.38 | 0.9050 | n/a |") != std::string::npos);
  CHECK(md.find("PSNR 29.38 dB, SSIM 0.9050") != std::string::npos);
  CHECK(md.find("end-to-end 1.500x, attention 3.000x") != std::string::npos);
  CHECK(md.find("- seed: `42`") != std::string::npos);
  CHECK(md.find("![x.png](x.png)") == std::string::npos);
  CHECK(compare_dense_markdown(report, {"x.png"}).find("![x.png](x.png)") != std::string::npos);

  const std::string dir = test::tmp_path("eval_report");
  fs::remove_all(dir);
  const std::vector<std::string> written = write_compare_dense_report(report, dir, "run");
  CHECK(written[0] == (fs::path(dir) / "run.json").string());
  CHECK(written[1] == (fs::path(dir) / "run.md").string());
  CHECK(nlohmann::json::parse(read_bytes(written[0])) == json);
  const std::string written_md = read_bytes(written[1]);
#if LF_WITH_OPENCV
  REQUIRE(written.size() == 4);
  for (size_t i = 2; i < 4; ++i) CHECK(read_bytes(written[i]).substr(1, 3) == "PNG");
  CHECK(written_md.find("![run-psnr.png](run-psnr.png)") != std::string::npos);
#else
  CHECK(written.size() == 2);
  CHECK(written_md.find("Plots skipped: this build has no OpenCV") != std::string::npos);
#endif
  for (const auto& entry : fs::directory_iterator(dir)) {
    CHECK_MESSAGE(entry.path().string().find(".tmp-") == std::string::npos, entry.path().string());
  }
}

TEST_CASE("line plot: PNG of the right size, or a clear error without OpenCV") {
  LinePlot plot{.title = "t",
                .x_label = "chunk",
                .y_label = "y",
                .x = {0, 1, 2, 3},
                .series = {{"a", {1.0, 2.0, NAN, 1.5}, {}}, {"flat", {3.0, 3.0, 3.0, 3.0}, {true, false, false, false}}},
                .width = 320,
                .height = 200};
#if LF_WITH_OPENCV
  const std::string png = line_plot_png(plot);
  REQUIRE(png.size() > 24);
  CHECK(png.substr(1, 3) == "PNG");
  auto be32 = [&](size_t at) {
    return (uint32_t(uint8_t(png[at])) << 24) | (uint32_t(uint8_t(png[at + 1])) << 16) |
           (uint32_t(uint8_t(png[at + 2])) << 8) | uint32_t(uint8_t(png[at + 3]));
  };
  CHECK(be32(16) == 320);             // IHDR width
  CHECK(be32(20) == 200);             // IHDR height
  CHECK(line_plot_png(plot) == png);  // deterministic
  plot.x = {0.0};
  plot.series = {{"one", {0.5}, {}}};
  CHECK(line_plot_png(plot).substr(1, 3) == "PNG");  // a single point still gets a usable axis range
  plot.series = {{"short", {}, {}}};
  CHECK(fails_with([&] { line_plot_png(plot); }, "series 'short' has 0 values"));
  plot.series = {{"pins", {0.5}, {true, false}}};
  CHECK(fails_with([&] { line_plot_png(plot); }, "series 'pins' has 2 pinned flags for 1 x values"));
  plot.series = {{"all pinned", {100.0}, {true}}};
  CHECK(line_plot_png(plot).substr(1, 3) == "PNG");  // nothing left to fit the axis to: still a plot
#else
  CHECK(fails_with([&] { line_plot_png(plot); }, "no OpenCV"));
#endif
}

TEST_CASE("side_by_side: sizes, placement, gap and padding") {
  const Frame left = random_frame(10, 6, 90);
  const Frame right = random_frame(12, 8, 91);
  const Frame both = side_by_side(left, right, 4);
  CHECK(both.width == 26);
  CHECK(both.height == 8);
  REQUIRE(both.rgb.size() == size_t(26 * 8 * 3));
  auto pixel = [](const Frame& frame, int x, int y, int c) { return frame.rgb[(size_t(y) * frame.width + x) * 3 + c]; };
  // Left is 2 rows shorter: centred with one white row above and below.
  for (int c = 0; c < 3; ++c) {
    CHECK(pixel(both, 3, 0, c) == 255);
    CHECK(pixel(both, 3, 7, c) == 255);
    CHECK(pixel(both, 3, 1, c) == pixel(left, 3, 0, c));
    CHECK(pixel(both, 9, 6, c) == pixel(left, 9, 5, c));
    CHECK(pixel(both, 11, 4, c) == 255);  // gap
    CHECK(pixel(both, 14, 0, c) == pixel(right, 0, 0, c));
    CHECK(pixel(both, 25, 7, c) == pixel(right, 11, 7, c));
  }
  const Frame no_gap = side_by_side(left, left, 0);
  CHECK(no_gap.width == 20);
  CHECK(no_gap.height == 6);
  CHECK(side_by_side(left, right).width == 30);  // default gap 8

  const std::vector<Frame> video = side_by_side(std::vector<Frame>{left, left}, std::vector<Frame>{right, right}, 2);
  CHECK(video.size() == 2);
  CHECK(video[1].width == 24);
  CHECK(fails_with(
      [&] {
        side_by_side(std::vector<Frame>{left}, std::vector<Frame>{right, right});
      },
      "left video has 1 frames, right video 2"));
  CHECK(fails_with([&] { side_by_side(left, right, -1); }, "negative gap"));
}
