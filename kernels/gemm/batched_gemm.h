#pragma once
// Strided-batched GEMM through cuBLAS (not Lt): many small products of one shape in one call, the operands of
// batch b at base + b * stride. Row-major throughout: c[m, n] = alpha * a[m, k] x op(b) + beta * c, where op(b) is
// b [k, n] (b_transposed false) or b^T for b [n, k] (true). Products accumulate in fp32 (CUBLAS_COMPUTE_32F,
// no TF32); a and b are both bf16 or both fp32, c is fp32. Plain C++ types; asynchronous on `stream`.
// umT5's attention uses it per head (kernels/ops/t5_ops.h, attention_with_bias_gemm).
#include <cstdint>

#include "kernels/gemm/gemm.h"

namespace lf::gpu {

struct BatchedGemmArgs {
  const void* a = nullptr;  // [m, k] of `operands`, row i at a + i * lda
  const void* b = nullptr;  // [k, n] (or [n, k] when b_transposed) of `operands`, rows ldb apart
  float* c = nullptr;       // [m, n] fp32, rows ldc apart
  GemmType operands = GemmType::BF16;
  bool b_transposed = false;
  int64_t m = 0, n = 0, k = 0, batch = 1;
  int64_t lda = 0, ldb = 0, ldc = 0;                   // elements
  int64_t stride_a = 0, stride_b = 0, stride_c = 0;    // elements between batches
  float alpha = 1.0f, beta = 0.0f;
  void* stream = nullptr;  // cudaStream_t
  const char* name = "batched_gemm";
};

void gemm_strided_batched(const BatchedGemmArgs& args);

}  // namespace lf::gpu
