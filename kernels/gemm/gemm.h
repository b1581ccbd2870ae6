#pragma once
// y = x W^T (+ bias) (+ y) with an optional GELU (tanh) epilogue, through cuBLASLt: the DiT's linear layers.
//
// Plain C++ types only (g++ can include this). x and W are bf16 (uint16_t bits), row-major, W in PyTorch Linear
// layout [n, k]; products accumulate in fp32 (CUBLAS_COMPUTE_32F); y is bf16 or fp32. Asynchronous on `stream`.
// Errors throw lf::Error naming the op and m/n/k. See docs/gpu-ops.md for the layout trick and the epilogue.
#include <cstdint>

namespace lf::gpu {

enum class GemmType : uint8_t { BF16, F32 };

enum class GemmEpilogue : uint8_t {
  None,
  // y = gelu_tanh(x W^T + bias): cuBLASLt's GELU epilogue, which is the tanh approximation (as ops::gelu_tanh and
  // Wan's FFN / text MLP); test_gpu_ops checks it against both GELU forms.
  GeluTanh,
};

struct GemmArgs {
  const uint16_t* x = nullptr;       // [m, k] bf16; row i at x + i * x_row_stride
  const uint16_t* weight = nullptr;  // [n, k] bf16, contiguous
  const void* bias = nullptr;        // [n] of bias_type, or nullptr; 16-byte aligned
  // Use y_type: cuBLASLt 13.1 on the H200 offers no algorithm for an fp32 bias with bf16 output (lab_gemm checks).
  GemmType bias_type = GemmType::BF16;
  void* y = nullptr;                 // [m, n] of y_type; row i at y + i * y_row_stride
  GemmType y_type = GemmType::BF16;
  int64_t m = 0, n = 0, k = 0;
  int64_t x_row_stride = 0;  // elements; 0 means k
  int64_t y_row_stride = 0;  // elements; 0 means n (a larger stride writes into columns of a wider matrix)
  GemmEpilogue epilogue = GemmEpilogue::None;
  // y = x W^T + bias + y (beta = 1): an ungated residual add into an fp32 stream, for free. Not with GELU.
  bool accumulate = false;
  void* stream = nullptr;  // cudaStream_t
  const char* name = "gemm";  // for error messages ("ffn_in", "self_q", ...)
};

void gemm_bf16(const GemmArgs& args);

// Drops the cached plans, workspaces and handles (before cudaDeviceReset, or to return the memory). Not needed at
// exit. Must not race with gemm_bf16 calls still being enqueued.
void gemm_release_resources();

}  // namespace lf::gpu
