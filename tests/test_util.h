#pragma once
// Shared test helpers: fresh random inputs (never zeros) and the rel-L2 measure every parity test uses.
#include <cmath>
#include <cstdint>
#include <string>

#include "core/tensor.h"

namespace lf::test {

// Deterministic but non-trivial values in [-scale, scale) from a simple LCG keyed by `seed`.
inline Tensor random_tensor(const Shape& shape, uint64_t seed, float scale = 1.0f) {
  Tensor tensor = Tensor::empty(shape);
  float* data = tensor.f32();
  uint64_t state = seed * 6364136223846793005ull + 1442695040888963407ull;
  for (int64_t i = 0; i < tensor.numel(); ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    data[i] = scale * (float((state >> 40) & 0xffffff) / float(1 << 23) - 1.0f);
  }
  return tensor;
}

// ||a - b|| / ||b||; NaN or Inf anywhere gives +Inf so that NaN never passes a `< tol` check.
inline double rel_l2(const Tensor& a, const Tensor& b) {
  if (a.numel() != b.numel()) return INFINITY;
  double diff = 0, ref = 0;
  const float* x = a.f32();
  const float* y = b.f32();
  for (int64_t i = 0; i < a.numel(); ++i) {
    if (!std::isfinite(x[i]) || !std::isfinite(y[i])) return INFINITY;
    diff += double(x[i] - y[i]) * double(x[i] - y[i]);
    ref += double(y[i]) * double(y[i]);
  }
  return ref > 0 ? std::sqrt(diff / ref) : std::sqrt(diff);
}

inline std::string tmp_path(const std::string& name) { return std::string(LF_TEST_TMP) + "/" + name; }

}  // namespace lf::test
