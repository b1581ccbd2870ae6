// LayerNorm and RMSNorm reference: statistics in double so the reference is tighter than any GPU path.
#include <cmath>

#include "core/error.h"
#include "ops/cpu/cpu_ops.h"

namespace lf::ops::cpu {

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  const int64_t width = x.dim(-1), rows = x.numel() / width;
  const bool affine_weight = weight.defined() && weight.numel() > 0;
  const bool affine_bias = bias.defined() && bias.numel() > 0;
  LF_CHECK(!affine_weight || weight.numel() == width, "layer_norm: weight {} for width {}",
           shape_str(weight.shape()), width);
  LF_CHECK(!affine_bias || bias.numel() == width, "layer_norm: bias {} for width {}", shape_str(bias.shape()),
           width);
  Tensor y = Tensor::empty(x.shape());
  const float* xs = x.f32();
  float* ys = y.f32();
  const float* ws = affine_weight ? weight.f32() : nullptr;
  const float* bs = affine_bias ? bias.f32() : nullptr;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = xs + r * width;
    double sum = 0;
    for (int64_t i = 0; i < width; ++i) sum += row[i];
    const double mean = sum / double(width);
    double var = 0;
    for (int64_t i = 0; i < width; ++i) var += (row[i] - mean) * (row[i] - mean);
    const double inv = 1.0 / std::sqrt(var / double(width) + eps);
    float* out = ys + r * width;
    for (int64_t i = 0; i < width; ++i) {
      double value = (row[i] - mean) * inv;
      if (ws) value *= ws[i];
      if (bs) value += bs[i];
      out[i] = float(value);
    }
  }
  return y;
}

Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps) {
  const int64_t width = x.dim(-1), rows = x.numel() / width;
  LF_CHECK(weight.numel() == width, "rms_norm: weight {} for width {}", shape_str(weight.shape()), width);
  Tensor y = Tensor::empty(x.shape());
  const float* xs = x.f32();
  const float* ws = weight.f32();
  float* ys = y.f32();
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = xs + r * width;
    double sum_sq = 0;
    for (int64_t i = 0; i < width; ++i) sum_sq += double(row[i]) * row[i];
    const double inv = 1.0 / std::sqrt(sum_sq / double(width) + eps);
    for (int64_t i = 0; i < width; ++i) ys[r * width + i] = float(row[i] * inv) * ws[i];
  }
  return y;
}

}  // namespace lf::ops::cpu
