#pragma once
#include <cstdint>

namespace lf::gpu {
// out[i] = a * x[i] + b * y[i], f32 device pointers, asynchronous on `stream`.
void axpby(double a, const float* x, double b, const float* y, float* out, int64_t count, void* stream);
}  // namespace lf::gpu
