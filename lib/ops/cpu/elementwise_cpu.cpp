// Activations, per-frame modulation and gated residuals.
#include <cmath>

#include "core/error.h"
#include "ops/cpu/cpu_ops.h"

namespace lf::ops::cpu {

Tensor gelu_tanh(const Tensor& x) {
  Tensor y = Tensor::empty(x.shape());
  const float* xs = x.f32();
  float* ys = y.f32();
  const int64_t count = x.numel();
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < count; ++i) {
    const float v = xs[i];
    ys[i] = 0.5f * v * (1.0f + std::tanh(kSqrt2OverPi * (v + 0.044715f * v * v * v)));
  }
  return y;
}

Tensor silu(const Tensor& x) {
  Tensor y = Tensor::empty(x.shape());
  const float* xs = x.f32();
  float* ys = y.f32();
  for (int64_t i = 0; i < x.numel(); ++i) ys[i] = xs[i] / (1.0f + std::exp(-xs[i]));
  return y;
}

Tensor modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, int64_t tokens_per_frame) {
  const int64_t width = x.dim(-1), tokens = x.numel() / width;
  const int64_t frames = (tokens + tokens_per_frame - 1) / tokens_per_frame;
  check_shape(shift, {frames, width}, "modulate shift");
  check_shape(scale, {frames, width}, "modulate scale");
  Tensor y = Tensor::empty(x.shape());
  const float *xs = x.f32(), *sh = shift.f32(), *sc = scale.f32();
  float* ys = y.f32();
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < tokens; ++t) {
    const int64_t f = t / tokens_per_frame;
    for (int64_t i = 0; i < width; ++i)
      ys[t * width + i] = xs[t * width + i] * (1.0f + sc[f * width + i]) + sh[f * width + i];
  }
  return y;
}

void gated_add(Tensor& x, const Tensor& y, const Tensor& gate, int64_t tokens_per_frame) {
  LF_CHECK(x.shape() == y.shape(), "gated_add: {} vs {}", shape_str(x.shape()), shape_str(y.shape()));
  const int64_t width = x.dim(-1), tokens = x.numel() / width;
  const bool has_gate = gate.defined() && gate.numel() > 0;
  if (has_gate) check_shape(gate, {(tokens + tokens_per_frame - 1) / tokens_per_frame, width}, "gated_add gate");
  float* xs = x.f32();
  const float* ys = y.f32();
  const float* gs = has_gate ? gate.f32() : nullptr;
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < tokens; ++t) {
    const float* g = gs ? gs + (t / tokens_per_frame) * width : nullptr;
    for (int64_t i = 0; i < width; ++i) xs[t * width + i] += g ? g[i] * ys[t * width + i] : ys[t * width + i];
  }
}

Tensor axpby(double a, const Tensor& x, double b, const Tensor& y) {
  LF_CHECK(x.shape() == y.shape(), "axpby: {} vs {}", shape_str(x.shape()), shape_str(y.shape()));
  Tensor out = Tensor::empty(x.shape());
  const float *xs = x.f32(), *ys = y.f32();
  float* os = out.f32();
  for (int64_t i = 0; i < x.numel(); ++i) os[i] = float(a * double(xs[i]) + b * double(ys[i]));
  return out;
}

}  // namespace lf::ops::cpu
