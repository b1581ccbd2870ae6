// cuBLASLt wrapper for the DiT's linear layers (see gemm.h).
//
// Layout trick: cuBLAS is column-major, and a row-major [r, c] matrix is the same memory as a column-major [c, r]
// one. So row-major y[m, n] = x[m, k] W[n, k]^T is computed as the column-major product
//   y^T[n, m] = op(A) op(B),  A = W seen as column-major [k, n] (ld k) with op = transpose -> [n, k],
//                             B = x seen as column-major [k, m] (ld x_row_stride), op = none,
// i.e. the "TN" GEMM with cuBLAS m = n, n = m. The bias epilogue adds a vector along the rows of column-major D,
// which are our output features: exactly Linear's bias.
//
// Everything that does not change between calls of one shape (descriptor, layouts, chosen algorithm) is a cached
// plan; the handle is created once per device and each stream gets its own 32 MiB workspace, so GEMMs on different
// streams never share scratch memory.
#include <cublasLt.h>

#include <map>
#include <mutex>
#include <tuple>

#include "kernels/cuda_check.h"
#include "kernels/gemm/gemm.h"

namespace lf::gpu {

namespace {

constexpr size_t kWorkspaceBytes = size_t(32) << 20;  // what cuBLAS recommends for Hopper

#define LF_CUBLAS_CHECK(call, ...)                                                                       \
  do {                                                                                                   \
    const cublasStatus_t lf_cublas_status_ = (call);                                                     \
    if (lf_cublas_status_ != CUBLAS_STATUS_SUCCESS)                                                      \
      ::lf::fail("cuBLASLt error in {}: {} ({})", #call, cublasLtGetStatusString(lf_cublas_status_),     \
                 fmt::format(__VA_ARGS__));                                                              \
  } while (0)

// Largest power of two (up to 256, cuBLASLt's default assumption) dividing the address: the heuristic must only
// offer kernels that can read the operands as they are actually aligned.
uint32_t alignment_of(const void* pointer) {
  const uintptr_t address = reinterpret_cast<uintptr_t>(pointer);
  uint32_t alignment = 256;
  while (alignment > 1 && address % alignment != 0) alignment /= 2;
  return alignment;
}

cudaDataType_t cuda_type(GemmType type) { return type == GemmType::BF16 ? CUDA_R_16BF : CUDA_R_32F; }
const char* type_name(GemmType type) { return type == GemmType::BF16 ? "bf16" : "f32"; }

struct PlanKey {
  int device;
  int64_t m, n, k, x_stride, y_stride;
  GemmType y_type, bias_type;
  GemmEpilogue epilogue;
  bool has_bias, accumulate;
  uint32_t align_x, align_w, align_y, align_bias;

  auto tie() const {
    return std::tie(device, m, n, k, x_stride, y_stride, y_type, bias_type, epilogue, has_bias, accumulate, align_x,
                    align_w, align_y, align_bias);
  }
  bool operator<(const PlanKey& other) const { return tie() < other.tie(); }
};

struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
};

struct GemmState {
  std::mutex mutex;
  std::map<int, cublasLtHandle_t> handles;                     // per device
  std::map<std::pair<int, void*>, void*> workspaces;           // per (device, stream)
  std::map<PlanKey, Plan> plans;
};

// Leaked on purpose: destroying CUDA objects from a static destructor runs after the runtime may be gone.
GemmState& state() {
  static GemmState* instance = new GemmState;
  return *instance;
}

std::string describe(const GemmArgs& args) {
  return fmt::format("{}: m {} n {} k {}, {} out{}{}{}", args.name, args.m, args.n, args.k, type_name(args.y_type),
                     args.bias ? fmt::format(", {} bias", type_name(args.bias_type)) : "",
                     args.epilogue == GemmEpilogue::GeluTanh ? ", gelu" : "", args.accumulate ? ", accumulate" : "");
}

Plan make_plan(cublasLtHandle_t handle, const PlanKey& key, const GemmArgs& args, const std::string& what) {
  Plan plan;
  LF_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), "{}", what);
  const cublasOperation_t transpose = CUBLAS_OP_T, none = CUBLAS_OP_N;
  LF_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSA, &transpose,
                                                 sizeof(transpose)), "{}", what);
  LF_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSB, &none, sizeof(none)), "{}",
                  what);
  cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  if (key.epilogue == GemmEpilogue::GeluTanh)
    epilogue = key.has_bias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU;
  else if (key.has_bias)
    epilogue = CUBLASLT_EPILOGUE_BIAS;
  LF_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue,
                                                 sizeof(epilogue)), "{}", what);
  if (key.has_bias) {
    const int32_t bias_type = cuda_type(key.bias_type);
    LF_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type,
                                                   sizeof(bias_type)), "{}", what);
    // The heuristic reads the pointer's alignment; each call sets its own pointer again.
    LF_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &args.bias,
                                                   sizeof(args.bias)), "{}", what);
  }
  LF_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.a, CUDA_R_16BF, uint64_t(key.k), uint64_t(key.n), key.k), "{}",
                  what);
  LF_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.b, CUDA_R_16BF, uint64_t(key.k), uint64_t(key.m), key.x_stride),
                  "{}", what);
  LF_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.c, cuda_type(key.y_type), uint64_t(key.n), uint64_t(key.m),
                                             key.y_stride), "{}", what);

  cublasLtMatmulPreference_t preference = nullptr;
  LF_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&preference), "{}", what);
  const uint64_t workspace = kWorkspaceBytes;
  cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace,
                                       sizeof(workspace));
  // A is W, B is x, C and D are y.
  cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &key.align_w, 4);
  cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &key.align_x, 4);
  cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &key.align_y, 4);
  cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &key.align_y, 4);
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(handle, plan.desc, plan.a, plan.b, plan.c, plan.c,
                                                               preference, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(preference);
  if (status != CUBLAS_STATUS_SUCCESS || found == 0) {
    cublasLtMatrixLayoutDestroy(plan.c);
    cublasLtMatrixLayoutDestroy(plan.b);
    cublasLtMatrixLayoutDestroy(plan.a);
    cublasLtMatmulDescDestroy(plan.desc);
    fail("{}: cuBLASLt offers no algorithm ({}; alignments x {} W {} y {} bias {} bytes)", what,
         cublasLtGetStatusString(status), key.align_x, key.align_w, key.align_y, key.align_bias);
  }
  plan.algo = result.algo;
  return plan;
}

void check_args(const GemmArgs& args) {
  LF_CHECK(args.m >= 0 && args.n > 0 && args.k > 0, "{}: bad GEMM shape m {} n {} k {}", args.name, args.m, args.n,
           args.k);
  LF_CHECK(args.x != nullptr && args.weight != nullptr && args.y != nullptr, "{}: null operand", args.name);
  LF_CHECK(args.x_row_stride >= args.k && args.y_row_stride >= args.n, "{}: row strides x {} y {} for k {} n {}",
           args.name, args.x_row_stride, args.y_row_stride, args.k, args.n);
  LF_CHECK(!(args.accumulate && args.epilogue != GemmEpilogue::None),
           "{}: accumulate with an activation epilogue is ambiguous", args.name);
  LF_CHECK(args.bias == nullptr || reinterpret_cast<uintptr_t>(args.bias) % 16 == 0,
           "{}: bias must be 16-byte aligned", args.name);
}

}  // namespace

void gemm_bf16(const GemmArgs& input) {
  GemmArgs args = input;
  if (args.x_row_stride == 0) args.x_row_stride = args.k;
  if (args.y_row_stride == 0) args.y_row_stride = args.n;
  check_args(args);
  if (args.m == 0) return;

  int device = 0;
  LF_CUDA_CHECK(cudaGetDevice(&device), "{}", args.name);
  PlanKey key{device,
              args.m,
              args.n,
              args.k,
              args.x_row_stride,
              args.y_row_stride,
              args.y_type,
              args.bias ? args.bias_type : GemmType::BF16,
              args.epilogue,
              args.bias != nullptr,
              args.accumulate,
              alignment_of(args.x),
              alignment_of(args.weight),
              alignment_of(args.y),
              args.bias ? alignment_of(args.bias) : 256};

  GemmState& gemm = state();
  std::lock_guard<std::mutex> lock(gemm.mutex);
  auto handle_slot = gemm.handles.find(device);
  if (handle_slot == gemm.handles.end()) {
    cublasLtHandle_t handle = nullptr;
    LF_CUBLAS_CHECK(cublasLtCreate(&handle), "creating the cuBLASLt handle on device {}", device);
    handle_slot = gemm.handles.emplace(device, handle).first;
  }
  const cublasLtHandle_t handle = handle_slot->second;
  auto workspace_slot = gemm.workspaces.find({device, args.stream});
  if (workspace_slot == gemm.workspaces.end()) {
    void* workspace = nullptr;
    LF_CUDA_CHECK(cudaMalloc(&workspace, kWorkspaceBytes), "cuBLASLt workspace of {} MiB", kWorkspaceBytes >> 20);
    workspace_slot = gemm.workspaces.emplace(std::make_pair(device, args.stream), workspace).first;
  }
  auto plan_slot = gemm.plans.find(key);
  if (plan_slot == gemm.plans.end())
    plan_slot = gemm.plans.emplace(key, make_plan(handle, key, args, describe(args))).first;
  const Plan& plan = plan_slot->second;

  if (args.bias != nullptr)
    LF_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &args.bias,
                                                   sizeof(args.bias)), "{}", describe(args));
  const float alpha = 1.0f, beta = args.accumulate ? 1.0f : 0.0f;
  LF_CUBLAS_CHECK(cublasLtMatmul(handle, plan.desc, &alpha, args.weight, plan.a, args.x, plan.b, &beta, args.y, plan.c,
                                 args.y, plan.c, &plan.algo, workspace_slot->second, kWorkspaceBytes,
                                 static_cast<cudaStream_t>(args.stream)),
                  "{}", describe(args));
}

void gemm_release_resources() {
  GemmState& gemm = state();
  std::lock_guard<std::mutex> lock(gemm.mutex);
  for (auto& [key, plan] : gemm.plans) {
    cublasLtMatrixLayoutDestroy(plan.c);
    cublasLtMatrixLayoutDestroy(plan.b);
    cublasLtMatrixLayoutDestroy(plan.a);
    cublasLtMatmulDescDestroy(plan.desc);
  }
  gemm.plans.clear();
  for (auto& [slot, workspace] : gemm.workspaces) cudaFree(workspace);  // synchronises: pending GEMMs finish first
  gemm.workspaces.clear();
  for (auto& [device, handle] : gemm.handles) cublasLtDestroy(handle);
  gemm.handles.clear();
}

}  // namespace lf::gpu
