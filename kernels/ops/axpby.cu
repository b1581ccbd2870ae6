// out = a * x + b * y (f32): the chunk loop's x0 prediction and re-noising. Coefficients arrive in double and the
// product is formed in fp32 FMA form; the CPU reference computes in double (difference ~1 ulp of f32).
#include "kernels/cuda_check.h"
#include "kernels/ops/axpby.h"

namespace lf::gpu {

namespace {
__global__ void axpby_kernel(float a, const float* x, float b, const float* y, float* out, int64_t count) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = fmaf(a, x[i], b * y[i]);
}
}  // namespace

void axpby(double a, const float* x, double b, const float* y, float* out, int64_t count, void* stream) {
  if (count == 0) return;
  constexpr int kThreads = 256;
  const int blocks = int(std::min<int64_t>((count + kThreads - 1) / kThreads, 65535));
  axpby_kernel<<<blocks, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(float(a), x, float(b), y, out, count);
  LF_CUDA_LAUNCH_CHECK("axpby of {} elements", count);
}

}  // namespace lf::gpu
