// cuBLAS strided-batched GEMM (see batched_gemm.h). Row-major c[m, n] = a[m, k] op(b) is the column-major product
// c^T[n, m] = op(b)^T a^T: cuBLAS's first operand is b's memory (op T when b is stored [n, k], else none), its
// second a's memory as a column-major [k, m] (ld lda), and c's memory is column-major [n, m] (ld ldc).
#include <cublas_v2.h>

#include <cstdint>
#include <map>
#include <mutex>

#include "kernels/cuda_check.h"
#include "kernels/gemm/batched_gemm.h"

namespace lf::gpu {

namespace {

cublasHandle_t handle_for_current_device() {
  static std::mutex mutex;
  static std::map<int, cublasHandle_t> handles;
  int device = 0;
  LF_CUDA_CHECK(cudaGetDevice(&device), "batched GEMM: current device");
  const std::lock_guard<std::mutex> lock(mutex);
  auto found = handles.find(device);
  if (found != handles.end()) return found->second;
  cublasHandle_t handle = nullptr;
  const cublasStatus_t status = cublasCreate(&handle);
  if (status != CUBLAS_STATUS_SUCCESS)
    fail("cuBLAS: cublasCreate failed on device {}: {}", device, cublasGetStatusString(status));
  // Full fp32 products: no TF32 (the default math mode already excludes it for COMPUTE_32F; said explicitly).
  cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH);
  return handles.emplace(device, handle).first->second;
}

}  // namespace

void gemm_strided_batched(const BatchedGemmArgs& g) {
  LF_CHECK(g.m > 0 && g.n > 0 && g.k > 0 && g.batch > 0, "{}: m {} n {} k {} batch {} must be positive", g.name, g.m,
           g.n, g.k, g.batch);
  LF_CHECK(g.m <= INT32_MAX && g.n <= INT32_MAX && g.k <= INT32_MAX && g.batch <= INT32_MAX && g.lda <= INT32_MAX &&
               g.ldb <= INT32_MAX && g.ldc <= INT32_MAX,
           "{}: dimensions beyond cuBLAS's 32-bit range", g.name);
  LF_CHECK(g.lda >= g.k && g.ldc >= g.n && g.ldb >= (g.b_transposed ? g.k : g.n),
           "{}: leading dimensions lda {} ldb {} ldc {} too small for m {} n {} k {}", g.name, g.lda, g.ldb, g.ldc, g.m,
           g.n, g.k);
  cublasHandle_t handle = handle_for_current_device();
  cublasStatus_t status = cublasSetStream(handle, static_cast<cudaStream_t>(g.stream));
  if (status == CUBLAS_STATUS_SUCCESS) {
    const cudaDataType_t operand = g.operands == GemmType::BF16 ? CUDA_R_16BF : CUDA_R_32F;
    status = cublasGemmStridedBatchedEx(
        handle, g.b_transposed ? CUBLAS_OP_T : CUBLAS_OP_N, CUBLAS_OP_N, int(g.n), int(g.m), int(g.k), &g.alpha, g.b,
        operand, int(g.ldb), g.stride_b, g.a, operand, int(g.lda), g.stride_a, &g.beta, g.c, CUDA_R_32F, int(g.ldc),
        g.stride_c, int(g.batch), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  }
  if (status != CUBLAS_STATUS_SUCCESS)
    fail("{}: cuBLAS strided-batched GEMM failed ({}) for m {} n {} k {} batch {}", g.name,
         cublasGetStatusString(status), g.m, g.n, g.k, g.batch);
}

}  // namespace lf::gpu
