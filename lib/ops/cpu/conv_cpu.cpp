// Convolutions of the video decoders on the CPU: im2col of a tile of output pixels, then matmul_nt against the
// weight as stored ([O, C, kt, kh, kw] is already [O, K] with K in im2col's (c, dt, dy, dx) order). Each output
// element is one dot product over the whole of K (matmul_nt's fixed summation order), so the result does not
// depend on the tiling, the thread count or how many frames one call covers: decoding a video frame by frame
// gives the same bits as decoding it at once, which the streaming decoders rely on.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "ops/cpu/cpu_ops.h"

namespace lf::ops::cpu {

namespace {

// Output pixels per im2col tile: small enough that the tile (pixels x K floats) stays in L2 for the widest conv
// (K = 384 * 27), large enough that the weight panel is reused across many pixels.
constexpr int64_t kPixelTile = 48;
// Weight rows per matmul_nt call: a panel of W that stays cached while the tile's pixel strips stream past it.
constexpr int64_t kWeightPanel = 32;

struct ConvGeometry {
  int64_t frames, in_channels, out_channels, height, width, kt, kh, kw;
  int64_t taps() const { return in_channels * kt * kh * kw; }
  int64_t pixels() const { return height * width; }
};

// One output frame: `inputs[dt]` is the [C, H, W] input frame at temporal tap dt. out = [O, H, W].
void conv_frame(const ConvGeometry& g, const std::vector<const float*>& inputs, const float* weight, const float* bias,
                const float* residual, bool relu, float* out) {
  const int64_t taps = g.taps(), pixels = g.pixels(), pad_h = g.kh / 2, pad_w = g.kw / 2;
  const int64_t tiles = (pixels + kPixelTile - 1) / kPixelTile;
#pragma omp parallel
  {
    std::vector<float> columns(size_t(kPixelTile * taps));
#pragma omp for schedule(static)
    for (int64_t tile = 0; tile < tiles; ++tile) {
      const int64_t first = tile * kPixelTile, count = std::min(kPixelTile, pixels - first);
      for (int64_t p = 0; p < count; ++p) {
        const int64_t y = (first + p) / g.width, x = (first + p) % g.width;
        float* row = columns.data() + p * taps;
        int64_t k = 0;
        for (int64_t c = 0; c < g.in_channels; ++c)
          for (int64_t dt = 0; dt < g.kt; ++dt) {
            const float* plane = inputs[size_t(dt)] + c * pixels;
            for (int64_t dy = 0; dy < g.kh; ++dy) {
              const int64_t sy = y + dy - pad_h;
              for (int64_t dx = 0; dx < g.kw; ++dx, ++k) {
                const int64_t sx = x + dx - pad_w;
                row[k] = (sy >= 0 && sy < g.height && sx >= 0 && sx < g.width) ? plane[sy * g.width + sx] : 0.0f;
              }
            }
          }
      }
      for (int64_t o = 0; o < g.out_channels; o += kWeightPanel) {
        const int64_t rows = std::min(kWeightPanel, g.out_channels - o);
        matmul_nt({weight + o * taps, rows, taps, taps}, {columns.data(), count, taps, taps},
                  {out + o * pixels + first, rows, count, pixels});
      }
      // Epilogue in the official order: (conv + bias) + residual, then the activation.
      for (int64_t o = 0; o < g.out_channels; ++o) {
        float* dst = out + o * pixels + first;
        const float* res = residual ? residual + o * pixels + first : nullptr;
        for (int64_t p = 0; p < count; ++p) {
          float value = dst[p];
          if (bias) value += bias[o];
          if (res) value += res[p];
          dst[p] = relu ? std::max(value, 0.0f) : value;
        }
      }
    }
  }
}

const float* optional_f32(const Tensor& tensor) {
  return tensor.defined() && tensor.numel() > 0 ? tensor.f32() : nullptr;
}

}  // namespace

Tensor causal_conv3d(const Tensor& x, const Tensor& history, const Tensor& weight, const Tensor& bias,
                     const ConvEpilogue& epilogue) {
  LF_CHECK(x.rank() == 4, "causal_conv3d: input must be [T, C, H, W], found {}", shape_str(x.shape()));
  LF_CHECK(weight.rank() == 5 && weight.dim(1) == x.dim(1), "causal_conv3d: weight {} does not fit input {}",
           shape_str(weight.shape()), shape_str(x.shape()));
  const ConvGeometry g{x.dim(0), x.dim(1),      weight.dim(0), x.dim(2),
                       x.dim(3), weight.dim(2), weight.dim(3), weight.dim(4)};
  LF_CHECK(g.kh % 2 == 1 && g.kw % 2 == 1, "causal_conv3d: spatial kernel {}x{} must be odd", g.kh, g.kw);
  const int64_t history_frames = g.kt - 1;
  if (history_frames > 0)
    check_shape(history, {history_frames, g.in_channels, g.height, g.width}, "causal_conv3d history");
  const float* bias_data = optional_f32(bias);
  LF_CHECK(!bias_data || bias.numel() == g.out_channels, "causal_conv3d: bias {} for {} outputs",
           shape_str(bias.shape()), g.out_channels);
  if (epilogue.residual)
    check_shape(*epilogue.residual, {g.frames, g.out_channels, g.height, g.width}, "causal_conv3d residual");
  Tensor out = Tensor::empty({g.frames, g.out_channels, g.height, g.width});
  const int64_t frame_in = g.in_channels * g.pixels(), frame_out = g.out_channels * g.pixels();
  // Input frame t + dt - (kt - 1): from the history while negative.
  std::vector<const float*> inputs(size_t(g.kt));
  for (int64_t t = 0; t < g.frames; ++t) {
    for (int64_t dt = 0; dt < g.kt; ++dt) {
      const int64_t source = t + dt - history_frames;
      inputs[size_t(dt)] =
          source >= 0 ? x.f32() + source * frame_in : history.f32() + (source + history_frames) * frame_in;
    }
    conv_frame(g, inputs, weight.f32(), bias_data,
               epilogue.residual ? epilogue.residual->f32() + t * frame_out : nullptr, epilogue.relu,
               out.f32() + t * frame_out);
  }
  return out;
}

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const ConvEpilogue& epilogue) {
  LF_CHECK(weight.rank() == 4, "conv2d: weight must be [O, C, kh, kw], found {}", shape_str(weight.shape()));
  return cpu::causal_conv3d(
      x, Tensor(), weight.reshape({weight.dim(0), weight.dim(1), 1, weight.dim(2), weight.dim(3)}), bias, epilogue);
}

Tensor upsample_nearest2x(const Tensor& x) {
  LF_CHECK(x.rank() == 4, "upsample_nearest2x: input must be [T, C, H, W], found {}", shape_str(x.shape()));
  const int64_t planes = x.dim(0) * x.dim(1), height = x.dim(2), width = x.dim(3);
  Tensor out = Tensor::empty({x.dim(0), x.dim(1), 2 * height, 2 * width});
  const float* in = x.f32();
  float* dst = out.f32();
#pragma omp parallel for schedule(static)
  for (int64_t plane = 0; plane < planes; ++plane)
    for (int64_t y = 0; y < 2 * height; ++y)
      for (int64_t xo = 0; xo < 2 * width; ++xo)
        dst[(plane * 2 * height + y) * 2 * width + xo] = in[(plane * height + y / 2) * width + xo / 2];
  return out;
}

Tensor channel_rms_norm(const Tensor& x, const Tensor& gamma, double eps, bool then_silu) {
  LF_CHECK(x.rank() == 4, "channel_rms_norm: input must be [T, C, H, W], found {}", shape_str(x.shape()));
  const int64_t frames = x.dim(0), channels = x.dim(1), pixels = x.dim(2) * x.dim(3);
  LF_CHECK(gamma.numel() == channels, "channel_rms_norm: gamma {} for {} channels", shape_str(gamma.shape()), channels);
  Tensor out = Tensor::empty(x.shape());
  const float *in = x.f32(), *g = gamma.f32();
  float* dst = out.f32();
  const double root_channels = std::sqrt(double(channels));
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t t = 0; t < frames; ++t)
    for (int64_t p = 0; p < pixels; ++p) {
      const float* column = in + t * channels * pixels + p;
      double sum_sq = 0;
      for (int64_t c = 0; c < channels; ++c) sum_sq += double(column[c * pixels]) * column[c * pixels];
      // F.normalize divides by max(||x||, eps).
      const double scale = root_channels / std::max(std::sqrt(sum_sq), eps);
      float* out_column = dst + t * channels * pixels + p;
      for (int64_t c = 0; c < channels; ++c) {
        const float value = float(double(column[c * pixels]) * scale * double(g[c]));
        out_column[c * pixels] = then_silu ? float(double(value) / (1.0 + std::exp(-double(value)))) : value;
      }
    }
  return out;
}

Tensor tanh_clamp(const Tensor& x, double limit) {
  Tensor out = Tensor::empty(x.shape());
  const float* in = x.f32();
  float* dst = out.f32();
  for (int64_t i = 0; i < x.numel(); ++i) dst[i] = float(std::tanh(double(in[i]) / limit) * limit);
  return out;
}

Tensor clamp_affine(const Tensor& x, float low, float high, float scale, float shift) {
  const Tensor in = x.dtype() == DType::F32 ? x : x.to(DType::F32);
  Tensor out = Tensor::empty(x.shape());
  const float* src = in.f32();
  float* dst = out.f32();
  for (int64_t i = 0; i < x.numel(); ++i) dst[i] = std::clamp(src[i], low, high) * scale + shift;
  return out;
}

Tensor spatial_attention(const Tensor& qkv) {
  LF_CHECK(qkv.rank() == 4 && qkv.dim(1) % 3 == 0, "spatial_attention: qkv must be [T, 3C, H, W], found {}",
           shape_str(qkv.shape()));
  const int64_t frames = qkv.dim(0), channels = qkv.dim(1) / 3, pixels = qkv.dim(2) * qkv.dim(3);
  Tensor out = Tensor::empty({frames, channels, qkv.dim(2), qkv.dim(3)});
  for (int64_t t = 0; t < frames; ++t) {
    // Channel-major planes -> token-major [pixels, 1 head, C] for the attention reference.
    Tensor parts[3];
    for (int64_t part = 0; part < 3; ++part) {
      parts[part] = Tensor::empty({pixels, 1, channels});
      const float* plane = qkv.f32() + (t * 3 + part) * channels * pixels;
      float* tokens = parts[part].f32();
      for (int64_t c = 0; c < channels; ++c)
        for (int64_t p = 0; p < pixels; ++p) tokens[p * channels + c] = plane[c * pixels + p];
    }
    const Tensor attended = cpu::attention(parts[0], parts[1], parts[2], 1.0 / std::sqrt(double(channels)));
    float* plane = out.f32() + t * channels * pixels;
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t p = 0; p < pixels; ++p) plane[c * pixels + p] = attended.f32()[p * channels + c];
  }
  return out;
}

Tensor concat_channels(const Tensor& a, const Tensor& b) {
  LF_CHECK(a.rank() == 4 && b.rank() == 4 && a.dim(0) == b.dim(0) && a.dim(2) == b.dim(2) && a.dim(3) == b.dim(3),
           "concat_channels: {} and {} differ outside the channel axis", shape_str(a.shape()), shape_str(b.shape()));
  const int64_t frames = a.dim(0), plane = a.dim(2) * a.dim(3);
  const int64_t a_frame = a.dim(1) * plane, b_frame = b.dim(1) * plane;
  Tensor out = Tensor::empty({frames, a.dim(1) + b.dim(1), a.dim(2), a.dim(3)});
  for (int64_t t = 0; t < frames; ++t) {
    std::copy_n(a.f32() + t * a_frame, a_frame, out.f32() + t * (a_frame + b_frame));
    std::copy_n(b.f32() + t * b_frame, b_frame, out.f32() + t * (a_frame + b_frame) + a_frame);
  }
  return out;
}

}  // namespace lf::ops::cpu
