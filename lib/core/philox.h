#pragma once
// Counter-based Gaussian noise: every draw is a pure function of (seed, stream, step, element), so CPU and GPU,
// dense and sparse runs, and a video of any length draw the same numbers for the same chunk.
#include <cstdint>

#include "core/tensor.h"

namespace lf {

struct PhiloxKey {
  uint64_t seed;
  uint32_t stream;  // the chunk index
  uint32_t step;    // 0 = the chunk's initial noise, s >= 1 = the re-noise before denoising step s
};

// Philox4x32-10 (Salmon et al., SC'11): four 32-bit outputs per 128-bit counter.
void philox4x32(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]);

// Standard normal for one element, via Box-Muller on two 32-bit uniforms in (0, 1), computed in double and
// rounded once to float so the value does not depend on the device's libm.
float philox_normal(const PhiloxKey& key, uint64_t element);

// Fills an f32 tensor with philox_normal(key, 0..numel-1).
void fill_normal(Tensor& out, const PhiloxKey& key);

}  // namespace lf
