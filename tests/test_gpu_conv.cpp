// The decoder ops on the GPU (lib/ops/cuda/conv_cuda.cpp, kernels/conv/) against their CPU references, and the
// decoders on the GPU against the official fp32 fixtures. Inputs are fresh random values rounded to bf16 (what the
// GPU reads), so both sides compute the same function and the difference is the GPU's bf16 output rounding (and,
// for attention, its bf16 probabilities). Shapes: ragged ones (13 channels, 9x11 pixels: no multiple of the
// 8-tap padding, a warp or a transpose tile) and decoder-sized ones, one of which spans two im2col tiles.
//
// Bounds: a single bf16 rounding of each output has rel-L2 <= 2^-9 / sqrt(3) ~ 1.1e-3, two (the cuDNN path rounds
// the conv, then conv + bias + residual) ~1.6e-3; the bounds below allow 3e-3 (attention 8e-3: two roundings and a
// softmax), and the measured values are printed (MESSAGE) for docs/decoders.md. Whole decoders: the 1e-2
// against the official fp32 video. Both conv methods (LF_CONV=im2col and cudnn) are checked; cuDNN must load on
// the GPU machine (it has 9.14 system-wide): a missing cuDNN fails here rather than skipping its half.
#include <doctest/doctest.h>

#if LF_HAVE_CUDA
#include <cmath>
#include <cstring>

#include "kernels/conv/conv_cudnn.h"
#include "kernels/speed_switches.h"
#include "io/non_finite.h"
#include "model/taehv.h"
#include "model/wan_vae.h"
#include "ops/ops.h"
#include "test_decoders_fixture.h"
#include "test_util.h"

using namespace lf;
using test::random_tensor;
using test::rel_l2;

namespace {

constexpr double kOneRounding = 3e-3;
constexpr double kAttention = 8e-3;
constexpr double kDecoderVsOfficial = 1e-2;

// Values representable in bf16 (round to nearest even), still f32 on the host.
Tensor bf16_values(const Tensor& x) { return x.to(DType::BF16).to(DType::F32); }
Tensor gpu_bf16(const Tensor& x) { return x.to(DType::BF16).to(Device::CUDA); }
Tensor gpu_f32(const Tensor& x) { return x.to(Device::CUDA); }
Tensor host(const Tensor& x) { return to_host_f32(x); }

bool identical(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

// std::string, not const char*: doctest's MESSAGE / CAPTURE print a char pointer as an address.
std::string method_name(gpu::ConvMethod method) { return method == gpu::ConvMethod::Cudnn ? "cudnn" : "im2col"; }

// Runs `body` once per conv method, the speed switch set for it, and restores the switches after.
template <typename Body>
void for_each_conv_method(Body body) {
  std::string why;
  REQUIRE_MESSAGE(gpu::cudnn_available(&why), "cuDNN did not load: " << why);
  MESSAGE("cuDNN " << gpu::cudnn_version());
  const gpu::SpeedSwitches saved = gpu::speed_switches();
  for (gpu::ConvMethod method : {gpu::ConvMethod::Im2col, gpu::ConvMethod::Cudnn}) {
    gpu::SpeedSwitches switches = saved;
    switches.conv_method = method;
    gpu::set_speed_switches(switches);
    const std::string method_text = method_name(method);
    CAPTURE(method_text);
    body(method);
  }
  gpu::set_speed_switches(saved);
}

}  // namespace

TEST_CASE("GPU causal_conv3d / conv2d equal the CPU reference (ragged, decoder-sized, two im2col tiles)") {
  ops::initialize_cuda();
  struct Case {
    int64_t frames, channels, outs, height, width, kt, kh;
    bool residual, relu;
  };
  const Case cases[] = {
      {3, 13, 7, 9, 11, 3, 3, true, false},      // ragged: 351 taps -> 352
      {2, 13, 33, 7, 8, 3, 1, false, true},      // time_conv shape, 3x1x1
      {2, 19, 5, 10, 6, 1, 1, false, false},     // 1x1x1 (shortcut / TGrow / to_qkv)
      {2, 96, 96, 30, 52, 3, 3, true, true},     // decoder-sized
      {1, 96, 8, 240, 240, 3, 3, false, false},  // 57600 pixels x 2592 taps: more than one 256 MiB column tile
  };
  for_each_conv_method([&](gpu::ConvMethod method) {
  for (const Case& c : cases) {
    CAPTURE(c.channels);
    CAPTURE(c.height);
    const Tensor x = bf16_values(random_tensor({c.frames, c.channels, c.height, c.width}, 1, 2.0f));
    const Tensor w = bf16_values(random_tensor({c.outs, c.channels, c.kt, c.kh, c.kh}, 2, 0.2f));
    const Tensor b = random_tensor({c.outs}, 3);
    const Tensor history =
        c.kt > 1 ? bf16_values(random_tensor({c.kt - 1, c.channels, c.height, c.width}, 4)) : Tensor();
    const Tensor residual = bf16_values(random_tensor({c.frames, c.outs, c.height, c.width}, 5));
    ops::ConvEpilogue cpu_epilogue, gpu_epilogue;
    cpu_epilogue.relu = gpu_epilogue.relu = c.relu;
    const Tensor residual_gpu = gpu_bf16(residual);
    if (c.residual) {
      cpu_epilogue.residual = &residual;
      gpu_epilogue.residual = &residual_gpu;
    }
    const Tensor want = ops::causal_conv3d(x, history, w, b, cpu_epilogue);
    const Tensor got = host(
        ops::causal_conv3d(gpu_bf16(x), c.kt > 1 ? gpu_bf16(history) : Tensor(), gpu_f32(w), gpu_f32(b), gpu_epilogue));
    const double error = rel_l2(got, want);
    MESSAGE(method_name(method) << " conv " << c.channels << "->" << c.outs << " k" << c.kt << "x" << c.kh << " "
                                << c.height << "x" << c.width << ": rel-L2 " << error);
    CHECK(error < kOneRounding);
    CHECK(error > 0);  // the GPU output really is bf16: 0 would mean the reference was compared with itself
  }
  // conv2d is the kt = 1 case (3x3, per frame).
  const Tensor x = bf16_values(random_tensor({3, 24, 9, 13}, 6));
  const Tensor w = bf16_values(random_tensor({10, 24, 3, 3}, 7, 0.3f)), b = random_tensor({10}, 8);
  CHECK(rel_l2(host(ops::conv2d(gpu_bf16(x), gpu_f32(w), gpu_f32(b))), ops::conv2d(x, w, b)) < kOneRounding);
  });
}

TEST_CASE("cuDNN: a call's frames as one batch give the bits of one call a frame (streaming == whole needs it)") {
  ops::initialize_cuda();
  std::string why;
  REQUIRE_MESSAGE(gpu::cudnn_available(&why), "cuDNN did not load: " << why);
  struct Case {
    int64_t frames, channels, outs, height, width, kt, kh;
  };
  const Case cases[] = {
      {3, 13, 7, 9, 11, 3, 3},    // ragged causal 3x3x3: overlapping tap windows
      {5, 13, 33, 7, 8, 3, 1},    // time_conv shape, 3x1x1
      {4, 19, 5, 10, 6, 1, 1},    // 1x1x1
      {6, 64, 64, 30, 52, 1, 3},  // TAEHV-sized 2D 3x3
      {12, 48, 48, 24, 40, 3, 3}, // a chunk's 12 frames, causal
  };
  const gpu::SpeedSwitches saved = gpu::speed_switches();
  gpu::SpeedSwitches switches = saved;
  switches.conv_method = gpu::ConvMethod::Cudnn;
  int batched_cases = 0;
  for (const Case& c : cases) {
    CAPTURE(c.channels);
    CAPTURE(c.kt);
    const Tensor x = gpu_bf16(random_tensor({c.frames, c.channels, c.height, c.width}, 11, 2.0f));
    const Tensor w = gpu_f32(random_tensor({c.outs, c.channels, c.kt, c.kh, c.kh}, 12, 0.2f));
    const Tensor b = gpu_f32(random_tensor({c.outs}, 13));
    const Tensor history = c.kt > 1 ? gpu_bf16(random_tensor({c.kt - 1, c.channels, c.height, c.width}, 14)) : Tensor();
    const gpu::CudnnConvShape shape{c.frames, c.channels, c.height, c.width, c.outs, c.kt, c.kh, c.kh};
    switches.conv_batch_frames = true;
    gpu::set_speed_switches(switches);
    const bool batched = gpu::cudnn_conv_batched(shape);
    const Tensor one_batch = host(ops::causal_conv3d(x, history, w, b, {}));
    switches.conv_batch_frames = false;
    gpu::set_speed_switches(switches);
    CHECK_FALSE(gpu::cudnn_conv_batched(shape));
    const Tensor per_frame = host(ops::causal_conv3d(x, history, w, b, {}));
    MESSAGE("cuDNN conv " << c.channels << "->" << c.outs << " k" << c.kt << "x" << c.kh << ", " << c.frames
                          << " frames: " << std::string(batched ? "one batch" : "frame by frame (cuDNN refused)")
                          << ", " << gpu::cudnn_conv_plan_text(shape));
    batched_cases += batched ? 1 : 0;
    CHECK(find_non_finite(one_batch) < 0);
    CHECK(identical(one_batch, per_frame));
  }
  gpu::set_speed_switches(saved);
  CHECK(batched_cases >= 2);  // at least the 2D cases really ran batched: otherwise nothing was compared
}

TEST_CASE("GPU upsample, concat, clamp_affine (exact), channel RMS norm (+SiLU), tanh clamp") {
  ops::initialize_cuda();
  for (const Shape& shape : {Shape{2, 13, 9, 11}, Shape{3, 96, 30, 52}}) {
    CAPTURE(shape_str(shape));
    const Tensor x = bf16_values(random_tensor(shape, 11, 3.0f));
    CHECK(identical(host(ops::upsample_nearest2x(gpu_bf16(x))), ops::upsample_nearest2x(x)));
    const Tensor other = bf16_values(random_tensor({shape[0], 5, shape[2], shape[3]}, 12));
    CHECK(identical(host(ops::concat_channels(gpu_bf16(x), gpu_bf16(other))), ops::concat_channels(x, other)));
    // The decoders' last step (values of +-3 so both clamp bounds are hit), bit for bit against the CPU's.
    CHECK(identical(host(ops::clamp_affine(gpu_bf16(x), -1.0f, 1.0f, 0.5f, 0.5f)),
                    ops::clamp_affine(x, -1.0f, 1.0f, 0.5f, 0.5f)));
    CHECK(identical(host(ops::clamp_affine(gpu_bf16(x), 0.0f, 1.0f, 1.0f, 0.0f)), ops::clamp_affine(x, 0.0f, 1.0f, 1.0f, 0.0f)));
    const Tensor gamma = random_tensor({shape[1]}, 13);
    for (bool silu : {false, true}) {
      const double error = rel_l2(host(ops::channel_rms_norm(gpu_bf16(x), gpu_f32(gamma), 1e-12, silu)),
                                  ops::channel_rms_norm(x, gamma, 1e-12, silu));
      MESSAGE("channel_rms_norm silu=" << silu << ": rel-L2 " << error);
      CHECK(error < kOneRounding);
    }
    const Tensor latents = random_tensor(shape, 14, 6.0f);
    CHECK(rel_l2(host(ops::tanh_clamp(gpu_f32(latents), 3.0)), ops::tanh_clamp(latents, 3.0)) < kOneRounding);
  }
}

TEST_CASE("GPU spatial attention equals the CPU reference (ragged pixels, and the VAE's 384 channels)") {
  ops::initialize_cuda();
  for (const Shape& shape : {Shape{2, 3 * 16, 9, 11}, Shape{1, 3 * 384, 15, 26}}) {
    CAPTURE(shape_str(shape));
    const Tensor qkv = bf16_values(random_tensor(shape, 21, 1.5f));
    const double error = rel_l2(host(ops::spatial_attention(gpu_bf16(qkv))), ops::spatial_attention(qkv));
    MESSAGE("spatial_attention " << shape_str(shape) << ": rel-L2 " << error);
    CHECK(error < kAttention);
  }
}

TEST_CASE("GPU decoders (bf16) against the official fp32 fixtures; streaming equals one call on the GPU too") {
  ops::initialize_cuda();
  struct Case {
    const char* fixture;
    const char* config;  // "" = TAEHV
  };
  for_each_conv_method([&](gpu::ConvMethod method) {
  for (const Case& c : {Case{"lightvae_6x5", "lightvae"}, Case{"wan_vae_real_3x4", "wan-vae"}, Case{"taehv_4x5", ""}}) {
    const std::string fixture_name = c.fixture;
    CAPTURE(fixture_name);
    const test::Fixture fixture = test::read_fixture(c.fixture);
    std::unique_ptr<VideoDecoder> decoder;
    if (*c.config) {
      auto vae = std::make_unique<WanVaeDecoder>(load_wan_vae_config(c.config), fixture.latents.dim(2),
                                                 fixture.latents.dim(3));
      test::fixture_weights(vae->weight_slots(), fixture.weight_seed);
      vae->to_device(Device::CUDA);
      decoder = std::move(vae);
    } else {
      auto taehv = std::make_unique<TaehvDecoder>(TaehvConfig{}, fixture.latents.dim(2), fixture.latents.dim(3));
      test::fixture_weights(taehv->weight_slots(), fixture.weight_seed);
      taehv->to_device(Device::CUDA);
      decoder = std::move(taehv);
    }
    std::vector<Tensor> whole = decoder->decode_chunk(fixture.latents);
    REQUIRE(int64_t(whole.size()) == fixture.video.dim(0));
    Tensor video = Tensor::empty(fixture.video.shape());
    for (size_t f = 0; f < whole.size(); ++f)
      std::memcpy(video.f32() + f * whole[f].numel(), whole[f].f32(), whole[f].nbytes());
    const double error = rel_l2(video, fixture.video);
    MESSAGE(std::string(c.fixture) << " on the GPU (bf16, " << method_name(method) << "): rel-L2 " << error
                      << " vs the official fp32 video");
    CHECK(error <= kDecoderVsOfficial);
    decoder->reset();
    std::vector<Tensor> streamed = decoder->decode_chunk(fixture.latents.slice_rows(0, 1));
    for (const Tensor& image : decoder->decode_chunk(fixture.latents.slice_rows(1, fixture.latents.dim(0))))
      streamed.push_back(image);
    REQUIRE(streamed.size() == whole.size());
    bool same = true;
    for (size_t f = 0; f < whole.size(); ++f) same = same && identical(streamed[f], whole[f]);
    CHECK(same);
  }
  });
}

#endif  // LF_HAVE_CUDA
