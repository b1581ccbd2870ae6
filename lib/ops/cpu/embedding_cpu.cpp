// Timestep sinusoid and (un)patchify, with Wan's element orders.
#include <cmath>

#include "core/error.h"
#include "ops/cpu/cpu_ops.h"

namespace lf::ops::cpu {

Tensor timestep_embedding(double timestep, int64_t dim) {
  LF_CHECK(dim % 2 == 0, "timestep_embedding: dim {} is odd", dim);
  const int64_t half = dim / 2;
  Tensor out = Tensor::empty({dim});
  float* data = out.f32();
  for (int64_t i = 0; i < half; ++i) {
    const double angle = timestep * std::pow(10000.0, -double(i) / double(half));
    data[i] = float(std::cos(angle));  // cos first, as Wan's sinusoidal_embedding_1d
    data[half + i] = float(std::sin(angle));
  }
  return out;
}

Tensor patchify(const Tensor& latents, int64_t patch_h, int64_t patch_w) {
  LF_CHECK(latents.rank() == 4, "patchify: expected [frames, channels, height, width], found {}",
           shape_str(latents.shape()));
  const int64_t frames = latents.dim(0), channels = latents.dim(1), height = latents.dim(2), width = latents.dim(3);
  LF_CHECK(height % patch_h == 0 && width % patch_w == 0, "patchify: {}x{} not divisible by patch {}x{}", height,
           width, patch_h, patch_w);
  const int64_t gh = height / patch_h, gw = width / patch_w, patch_dim = channels * patch_h * patch_w;
  Tensor out = Tensor::empty({frames * gh * gw, patch_dim});
  const float* in = latents.f32();
  float* o = out.f32();
  for (int64_t f = 0; f < frames; ++f)
    for (int64_t y = 0; y < gh; ++y)
      for (int64_t x = 0; x < gw; ++x) {
        float* token = o + ((f * gh + y) * gw + x) * patch_dim;
        for (int64_t c = 0; c < channels; ++c)
          for (int64_t q = 0; q < patch_h; ++q)
            for (int64_t r = 0; r < patch_w; ++r)
              token[(c * patch_h + q) * patch_w + r] =
                  in[((f * channels + c) * height + y * patch_h + q) * width + x * patch_w + r];
      }
  return out;
}

Tensor unpatchify(const Tensor& tokens, int64_t frames, int64_t channels, int64_t grid_h, int64_t grid_w,
                  int64_t patch_h, int64_t patch_w) {
  check_shape(tokens, {frames * grid_h * grid_w, patch_h * patch_w * channels}, "unpatchify input");
  const int64_t height = grid_h * patch_h, width = grid_w * patch_w;
  Tensor out = Tensor::empty({frames, channels, height, width});
  const float* in = tokens.f32();
  float* o = out.f32();
  const int64_t patch_dim = patch_h * patch_w * channels;
  for (int64_t f = 0; f < frames; ++f)
    for (int64_t y = 0; y < grid_h; ++y)
      for (int64_t x = 0; x < grid_w; ++x) {
        const float* token = in + ((f * grid_h + y) * grid_w + x) * patch_dim;
        for (int64_t q = 0; q < patch_h; ++q)
          for (int64_t r = 0; r < patch_w; ++r)
            for (int64_t c = 0; c < channels; ++c)
              o[((f * channels + c) * height + y * patch_h + q) * width + x * patch_w + r] =
                  token[(q * patch_w + r) * channels + c];
      }
  return out;
}

}  // namespace lf::ops::cpu
