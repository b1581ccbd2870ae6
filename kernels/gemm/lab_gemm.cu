// lab_gemm: checks gemm_bf16 against a CPU reference at small ragged shapes (every bias / output type / epilogue
// combination, GELU tanh vs erf told apart), then times it at the DiT's shapes against plain cublasGemmEx (bf16 in
// and out, fp32 compute, default algorithm: the ceiling a wrapper should reach).
//
//   lab_gemm [--json out.json] [--iters 50] [--warmup 10]
//
// Exit status 1 when a check fails. Timings: medians of CUDA-event times of single calls after warm-up, rotating
// over 4 operand sets so that the L2 (60 MB on an H200) does not keep a whole GEMM resident across calls.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "kernels/cuda_check.h"
#include "kernels/gemm/gemm.h"

using lf::gpu::GemmArgs;
using lf::gpu::GemmEpilogue;
using lf::gpu::GemmType;

namespace {

struct DeviceMemory {
  void* pointer = nullptr;
  explicit DeviceMemory(size_t bytes) { LF_CUDA_CHECK(cudaMalloc(&pointer, std::max<size_t>(bytes, 1)), "lab"); }
  ~DeviceMemory() { cudaFree(pointer); }
  DeviceMemory(DeviceMemory&& other) noexcept : pointer(other.pointer) { other.pointer = nullptr; }
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;
  template <typename T>
  T* as() const { return static_cast<T*>(pointer); }
};

std::vector<float> random_values(size_t count, uint64_t seed, float scale) {
  std::vector<float> values(count);
  uint64_t state = seed * 6364136223846793005ull + 1442695040888963407ull;
  for (float& v : values) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    v = scale * (float((state >> 40) & 0xffffff) / float(1 << 23) - 1.0f);
  }
  return values;
}

std::vector<uint16_t> to_bf16(const std::vector<float>& values) {
  std::vector<uint16_t> bits(values.size());
  for (size_t i = 0; i < values.size(); ++i) bits[i] = lf::f32_to_bf16(values[i]);
  return bits;
}

double gelu_tanh(double v) { return 0.5 * v * (1.0 + std::tanh(0.7978845608028654 * (v + 0.044715 * v * v * v))); }
double gelu_erf(double v) { return 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0))); }

double rel_l2(const std::vector<double>& out, const std::vector<double>& ref) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    if (!std::isfinite(out[i])) return INFINITY;
    diff += (out[i] - ref[i]) * (out[i] - ref[i]);
    norm += ref[i] * ref[i];
  }
  return std::sqrt(diff / std::max(norm, 1e-300));
}

struct CheckCase {
  GemmType y_type;
  GemmType bias_type;
  bool bias;
  GemmEpilogue epilogue;
  bool accumulate;
  bool optional;  // a combination some cuBLASLt versions refuse: reported, not failed
};

struct CheckResult {
  std::string label;
  double rel = 0, rel_erf = -1;
  bool passed = false, supported = true;
};

CheckResult run_check(int64_t m, int64_t n, int64_t k, const CheckCase& c, uint64_t seed) {
  CheckResult result;
  result.label = fmt::format("m {} n {} k {} {} out{}{}{}", m, n, k, c.y_type == GemmType::BF16 ? "bf16" : "f32",
                             c.bias ? (c.bias_type == GemmType::BF16 ? " bf16 bias" : " f32 bias") : "",
                             c.epilogue == GemmEpilogue::GeluTanh ? " gelu" : "", c.accumulate ? " accumulate" : "");
  const std::vector<uint16_t> x = to_bf16(random_values(size_t(m * k), seed, 1.0f));
  const std::vector<uint16_t> w = to_bf16(random_values(size_t(n * k), seed + 1, 0.5f));
  std::vector<float> bias = random_values(size_t(n), seed + 2, 1.0f);
  std::vector<float> y0 = random_values(size_t(m * n), seed + 3, 1.0f);
  if (c.bias_type == GemmType::BF16)
    for (float& b : bias) b = lf::round_to_bf16(b);
  if (c.y_type == GemmType::BF16)
    for (float& v : y0) v = lf::round_to_bf16(v);

  const size_t y_elem = c.y_type == GemmType::BF16 ? 2 : 4, bias_elem = c.bias_type == GemmType::BF16 ? 2 : 4;
  DeviceMemory dx(x.size() * 2), dw(w.size() * 2), dbias(bias.size() * bias_elem), dy(size_t(m * n) * y_elem);
  LF_CUDA_CHECK(cudaMemcpy(dx.pointer, x.data(), x.size() * 2, cudaMemcpyHostToDevice), "lab");
  LF_CUDA_CHECK(cudaMemcpy(dw.pointer, w.data(), w.size() * 2, cudaMemcpyHostToDevice), "lab");
  if (c.bias_type == GemmType::BF16) {
    const std::vector<uint16_t> bits = to_bf16(bias);
    LF_CUDA_CHECK(cudaMemcpy(dbias.pointer, bits.data(), bits.size() * 2, cudaMemcpyHostToDevice), "lab");
  } else {
    LF_CUDA_CHECK(cudaMemcpy(dbias.pointer, bias.data(), bias.size() * 4, cudaMemcpyHostToDevice), "lab");
  }
  if (c.y_type == GemmType::BF16) {
    const std::vector<uint16_t> bits = to_bf16(y0);
    LF_CUDA_CHECK(cudaMemcpy(dy.pointer, bits.data(), bits.size() * 2, cudaMemcpyHostToDevice), "lab");
  } else {
    LF_CUDA_CHECK(cudaMemcpy(dy.pointer, y0.data(), y0.size() * 4, cudaMemcpyHostToDevice), "lab");
  }

  GemmArgs args;
  args.x = dx.as<uint16_t>();
  args.weight = dw.as<uint16_t>();
  args.bias = c.bias ? dbias.pointer : nullptr;
  args.bias_type = c.bias_type;
  args.y = dy.pointer;
  args.y_type = c.y_type;
  args.m = m, args.n = n, args.k = k;
  args.epilogue = c.epilogue;
  args.accumulate = c.accumulate;
  args.name = "lab check";
  try {
    lf::gpu::gemm_bf16(args);
    LF_CUDA_CHECK(cudaDeviceSynchronize(), "lab check");
  } catch (const lf::Error& error) {
    result.supported = false;
    result.passed = c.optional;
    std::printf("  %s: %s\n", c.optional ? "unsupported (optional)" : "FAILED", error.what());
    return result;
  }

  std::vector<double> out(size_t(m * n)), ref(out.size()), ref_erf(out.size());
  if (c.y_type == GemmType::BF16) {
    std::vector<uint16_t> bits(out.size());
    LF_CUDA_CHECK(cudaMemcpy(bits.data(), dy.pointer, bits.size() * 2, cudaMemcpyDeviceToHost), "lab");
    for (size_t i = 0; i < out.size(); ++i) out[i] = lf::bf16_to_f32(bits[i]);
  } else {
    std::vector<float> values(out.size());
    LF_CUDA_CHECK(cudaMemcpy(values.data(), dy.pointer, values.size() * 4, cudaMemcpyDeviceToHost), "lab");
    for (size_t i = 0; i < out.size(); ++i) out[i] = values[i];
  }
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double sum = c.bias ? bias[size_t(j)] : 0.0;
      for (int64_t l = 0; l < k; ++l)
        sum += double(lf::bf16_to_f32(x[size_t(i * k + l)])) * lf::bf16_to_f32(w[size_t(j * k + l)]);
      if (c.accumulate) sum += y0[size_t(i * n + j)];
      const size_t at = size_t(i * n + j);
      ref[at] = c.epilogue == GemmEpilogue::GeluTanh ? gelu_tanh(sum) : sum;
      ref_erf[at] = c.epilogue == GemmEpilogue::GeluTanh ? gelu_erf(sum) : sum;
    }
  result.rel = rel_l2(out, ref);
  // fp32 output from identical bf16 inputs differs only by summation order; bf16 output adds one rounding.
  const double tolerance = c.y_type == GemmType::F32 ? 1e-5 : 1e-2;
  result.passed = result.rel < tolerance;
  if (c.epilogue == GemmEpilogue::GeluTanh) {
    result.rel_erf = rel_l2(out, ref_erf);
    // The two GELUs differ by up to ~5e-4 absolute: with fp32 output the epilogue must sit far closer to tanh.
    if (c.y_type == GemmType::F32) result.passed = result.passed && result.rel * 10 < result.rel_erf;
  }
  return result;
}

__global__ void fill_random_bf16(uint16_t* data, size_t count, uint32_t seed, float scale) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < count; i += size_t(gridDim.x) * blockDim.x) {
    uint32_t h = uint32_t(i) * 2654435761u ^ seed;
    h ^= h >> 16, h *= 0x7feb352du, h ^= h >> 15, h *= 0x846ca68bu, h ^= h >> 16;
    const float v = scale * (float(h & 0xffffff) / float(1 << 23) - 1.0f);
    data[i] = __bfloat16_as_ushort(__float2bfloat16_rn(v));
  }
}

struct TimedShape {
  const char* name;
  int64_t m, n, k;
  GemmEpilogue epilogue;
  GemmType y_type;
};

struct Timing {
  TimedShape shape;
  double lt_ms, gemmex_ms;
};

double median(std::vector<float> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

Timing time_shape(const TimedShape& shape, cublasHandle_t cublas, int warmup, int iters) {
  constexpr int kSets = 4;
  const size_t y_elem = shape.y_type == GemmType::BF16 ? 2 : 4;
  std::vector<DeviceMemory> xs, ws, ys, biases;
  xs.reserve(kSets), ws.reserve(kSets), ys.reserve(kSets), biases.reserve(kSets);
  for (int s = 0; s < kSets; ++s) {
    xs.emplace_back(size_t(shape.m * shape.k) * 2);
    ws.emplace_back(size_t(shape.n * shape.k) * 2);
    ys.emplace_back(size_t(shape.m * shape.n) * y_elem);
    biases.emplace_back(size_t(shape.n) * y_elem);
    fill_random_bf16<<<1024, 256>>>(xs.back().as<uint16_t>(), size_t(shape.m * shape.k), 17u * s + 1, 1.0f);
    fill_random_bf16<<<1024, 256>>>(ws.back().as<uint16_t>(), size_t(shape.n * shape.k), 17u * s + 2, 0.05f);
    // A bf16 fill is a valid (small) fp32 pattern too: the bias only has to be finite.
    fill_random_bf16<<<64, 256>>>(biases.back().as<uint16_t>(), size_t(shape.n) * y_elem / 2, 17u * s + 3, 0.1f);
  }
  LF_CUDA_LAUNCH_CHECK("lab fill");
  cudaEvent_t start, stop;
  LF_CUDA_CHECK(cudaEventCreate(&start), "lab");
  LF_CUDA_CHECK(cudaEventCreate(&stop), "lab");
  auto run_lt = [&](int s) {
    GemmArgs args;
    args.x = xs[size_t(s)].as<uint16_t>();
    args.weight = ws[size_t(s)].as<uint16_t>();
    args.bias = biases[size_t(s)].pointer;
    args.bias_type = shape.y_type;
    args.y = ys[size_t(s)].pointer;
    args.y_type = shape.y_type;
    args.m = shape.m, args.n = shape.n, args.k = shape.k;
    args.epilogue = shape.epilogue;
    args.name = shape.name;
    lf::gpu::gemm_bf16(args);
  };
  auto run_gemmex = [&](int s) {
    const float alpha = 1.0f, beta = 0.0f;
    const cublasStatus_t status = cublasGemmEx(
        cublas, CUBLAS_OP_T, CUBLAS_OP_N, int(shape.n), int(shape.m), int(shape.k), &alpha, ws[size_t(s)].pointer,
        CUDA_R_16BF, int(shape.k), xs[size_t(s)].pointer, CUDA_R_16BF, int(shape.k), &beta, ys[size_t(s)].pointer,
        CUDA_R_16BF, int(shape.n), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (status != CUBLAS_STATUS_SUCCESS) lf::fail("cublasGemmEx {}: status {}", shape.name, int(status));
  };
  auto time_runs = [&](auto&& run) {
    for (int i = 0; i < warmup; ++i) run(i % kSets);
    std::vector<float> times;
    for (int i = 0; i < iters; ++i) {
      LF_CUDA_CHECK(cudaEventRecord(start), "lab");
      run(i % kSets);
      LF_CUDA_CHECK(cudaEventRecord(stop), "lab");
      LF_CUDA_CHECK(cudaEventSynchronize(stop), "lab");
      float ms = 0;
      LF_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop), "lab");
      times.push_back(ms);
    }
    return median(times);
  };
  Timing timing{shape, time_runs(run_lt), time_runs(run_gemmex)};
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return timing;
}

// Times every algorithm cuBLASLt's heuristic proposes (best first) for one shape, with the same descriptor as
// gemm_bf16 builds: says whether timing the candidates (autotuning) would beat taking the first one.
std::vector<double> sweep_algorithms(const TimedShape& shape, int iters) {
  const size_t y_elem = shape.y_type == GemmType::BF16 ? 2 : 4;
  DeviceMemory x(size_t(shape.m * shape.k) * 2), w(size_t(shape.n * shape.k) * 2);
  DeviceMemory y(size_t(shape.m * shape.n) * y_elem);
  DeviceMemory bias(size_t(shape.n) * y_elem), workspace(size_t(32) << 20);
  fill_random_bf16<<<1024, 256>>>(x.as<uint16_t>(), size_t(shape.m * shape.k), 5u, 1.0f);
  fill_random_bf16<<<1024, 256>>>(w.as<uint16_t>(), size_t(shape.n * shape.k), 6u, 0.05f);
  fill_random_bf16<<<64, 256>>>(bias.as<uint16_t>(), size_t(shape.n) * y_elem / 2, 7u, 0.1f);
  LF_CUDA_LAUNCH_CHECK("lab fill");
  auto check = [](cublasStatus_t status, const char* what) {
    if (status != CUBLAS_STATUS_SUCCESS) lf::fail("sweep: {}: {}", what, cublasLtGetStatusString(status));
  };
  cublasLtHandle_t handle = nullptr;
  check(cublasLtCreate(&handle), "create");
  cublasLtMatmulDesc_t desc = nullptr;
  check(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), "desc");
  const cublasOperation_t transpose = CUBLAS_OP_T;
  check(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &transpose, sizeof(transpose)), "transa");
  const cublasLtEpilogue_t epilogue =
      shape.epilogue == GemmEpilogue::GeluTanh ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_BIAS;
  check(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)), "epilogue");
  const void* bias_pointer = bias.pointer;
  check(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias_pointer, sizeof(bias_pointer)),
        "bias");
  const cudaDataType_t y_type = shape.y_type == GemmType::BF16 ? CUDA_R_16BF : CUDA_R_32F;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  check(cublasLtMatrixLayoutCreate(&a, CUDA_R_16BF, uint64_t(shape.k), uint64_t(shape.n), shape.k), "a");
  check(cublasLtMatrixLayoutCreate(&b, CUDA_R_16BF, uint64_t(shape.k), uint64_t(shape.m), shape.k), "b");
  check(cublasLtMatrixLayoutCreate(&c, y_type, uint64_t(shape.n), uint64_t(shape.m), shape.n), "c");
  cublasLtMatmulPreference_t preference = nullptr;
  check(cublasLtMatmulPreferenceCreate(&preference), "preference");
  const uint64_t workspace_bytes = size_t(32) << 20;
  check(cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_bytes,
                                             sizeof(workspace_bytes)), "workspace");
  cublasLtMatmulHeuristicResult_t results[16] = {};
  int found = 0;
  check(cublasLtMatmulAlgoGetHeuristic(handle, desc, a, b, c, c, preference, 16, results, &found), "heuristic");
  cudaEvent_t start, stop;
  LF_CUDA_CHECK(cudaEventCreate(&start), "lab");
  LF_CUDA_CHECK(cudaEventCreate(&stop), "lab");
  std::vector<double> times;
  const float alpha = 1.0f, beta = 0.0f;
  for (int i = 0; i < found; ++i) {
    std::vector<float> samples;
    bool ok = true;
    for (int run = 0; run < iters + 3 && ok; ++run) {
      LF_CUDA_CHECK(cudaEventRecord(start), "lab");
      ok = cublasLtMatmul(handle, desc, &alpha, w.pointer, a, x.pointer, b, &beta, y.pointer, c, y.pointer, c,
                          &results[i].algo, workspace.pointer, workspace_bytes, nullptr) == CUBLAS_STATUS_SUCCESS;
      LF_CUDA_CHECK(cudaEventRecord(stop), "lab");
      LF_CUDA_CHECK(cudaEventSynchronize(stop), "lab");
      float ms = 0;
      LF_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop), "lab");
      if (run >= 3) samples.push_back(ms);
    }
    times.push_back(ok ? median(samples) : INFINITY);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cublasLtMatmulPreferenceDestroy(preference);
  cublasLtMatrixLayoutDestroy(c);
  cublasLtMatrixLayoutDestroy(b);
  cublasLtMatrixLayoutDestroy(a);
  cublasLtMatmulDescDestroy(desc);
  cublasLtDestroy(handle);
  return times;
}

}  // namespace

int main(int argc, char** argv) {
  std::string json_path;
  int iters = 50, warmup = 10;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--json" && i + 1 < argc) json_path = argv[++i];
    else if (arg == "--iters" && i + 1 < argc) iters = std::max(1, std::atoi(argv[++i]));
    else if (arg == "--warmup" && i + 1 < argc) warmup = std::max(0, std::atoi(argv[++i]));
    else {
      std::fprintf(stderr, "usage: lab_gemm [--json out.json] [--iters N] [--warmup N]\n");
      return 2;
    }
  }
  try {
    cudaDeviceProp props{};
    LF_CUDA_CHECK(cudaGetDeviceProperties(&props, 0), "lab");
    std::printf("device: %s (sm_%d%d), cuBLASLt %zu\n", props.name, props.major, props.minor, cublasLtGetVersion());

    const GemmType B = GemmType::BF16, F = GemmType::F32;
    const GemmEpilogue none = GemmEpilogue::None, gelu = GemmEpilogue::GeluTanh;
    const std::vector<CheckCase> cases = {
        {B, B, false, none, false, false}, {B, B, true, none, false, false},  {F, F, true, none, false, false},
        {B, B, true, gelu, false, false},  {F, F, true, gelu, false, false},  {F, F, false, gelu, false, false},
        {F, F, true, none, true, false},   {B, B, false, none, true, false},  {B, F, true, none, false, true},
    };
    const int64_t shapes[][3] = {{77, 45, 37}, {77, 160, 96}, {130, 64, 1536}, {5, 1536, 256}};
    std::vector<CheckResult> checks;
    bool all_passed = true;
    uint64_t seed = 100;
    for (const auto& shape : shapes)
      for (const CheckCase& c : cases) {
        CheckResult r = run_check(shape[0], shape[1], shape[2], c, seed += 10);
        std::printf("check %-48s rel %.2e%s  %s\n", r.label.c_str(), r.rel,
                    r.rel_erf >= 0 ? fmt::format(" (vs erf gelu {:.2e})", r.rel_erf).c_str() : "",
                    r.passed ? (r.supported ? "ok" : "skipped") : "FAIL");
        all_passed = all_passed && r.passed;
        checks.push_back(r);
      }

    cublasHandle_t cublas = nullptr;
    if (cublasCreate(&cublas) != CUBLAS_STATUS_SUCCESS) lf::fail("cublasCreate failed");
    const int64_t tokens = 4680;  // one chunk: 3 frames x 1560
    const std::vector<TimedShape> timed = {
        {"self_q/k/v/o, cross_q/o", tokens, 1536, 1536, none, B},
        {"fused qkv", tokens, 4608, 1536, none, B},
        {"ffn_in + gelu", tokens, 8960, 1536, gelu, B},
        {"ffn_out", tokens, 1536, 8960, none, B},
        {"head (f32 out)", tokens, 64, 1536, none, F},
        {"patch_embedding", tokens, 1536, 64, none, B},
        {"text_embedding_0", 512, 1536, 4096, gelu, B},
        {"cross k/v (per prompt)", 512, 1536, 1536, none, B},
    };
    std::vector<Timing> timings;
    std::printf("\n%-26s %6s %6s %6s | %9s %8s | %9s %8s | %6s\n", "shape", "m", "n", "k", "lt ms", "TFLOP/s",
                "gemmex ms", "TFLOP/s", "lt/ex");
    for (const TimedShape& shape : timed) {
      const Timing t = time_shape(shape, cublas, warmup, iters);
      const double flops = 2.0 * double(shape.m) * double(shape.n) * double(shape.k);
      std::printf("%-26s %6lld %6lld %6lld | %9.4f %8.1f | %9.4f %8.1f | %6.2f\n", shape.name, (long long)shape.m,
                  (long long)shape.n, (long long)shape.k, t.lt_ms, flops / t.lt_ms / 1e9, t.gemmex_ms,
                  flops / t.gemmex_ms / 1e9, t.lt_ms / t.gemmex_ms);
      timings.push_back(t);
    }
    cublasDestroy(cublas);

    std::printf("\nheuristic candidates (bias epilogue as gemm_bf16), median ms each: first vs best\n");
    std::string sweep_json;
    for (const TimedShape& shape : timed) {
      const std::vector<double> times = sweep_algorithms(shape, std::max(5, iters / 2));
      if (times.empty()) continue;
      const size_t best = size_t(std::min_element(times.begin(), times.end()) - times.begin());
      std::printf("%-26s %2zu candidates: first %.4f ms, best #%zu %.4f ms (%.1f%% faster)\n", shape.name,
                  times.size(), times[0], best, times[best], 100.0 * (times[0] - times[best]) / times[0]);
      sweep_json += fmt::format("{}    {{\"name\": \"{}\", \"candidates\": {}, \"first_ms\": {:.5f}, "
                                "\"best_index\": {}, \"best_ms\": {:.5f}}}",
                                sweep_json.empty() ? "" : ",\n", shape.name, times.size(), times[0], best,
                                times[best]);
    }

    if (!json_path.empty()) {
      std::string json = fmt::format("{{\n  \"device\": \"{}\",\n  \"all_checks_passed\": {},\n  \"checks\": [\n",
                                     props.name, all_passed ? "true" : "false");
      for (size_t i = 0; i < checks.size(); ++i)
        json += fmt::format("    {{\"case\": \"{}\", \"rel_l2\": {:.3e}, \"rel_l2_vs_erf_gelu\": {:.3e}, "
                            "\"supported\": {}, \"passed\": {}}}{}\n",
                            checks[i].label, checks[i].rel, checks[i].rel_erf, checks[i].supported,
                            checks[i].passed, i + 1 < checks.size() ? "," : "");
      json += "  ],\n  \"timings\": [\n";
      for (size_t i = 0; i < timings.size(); ++i) {
        const Timing& t = timings[i];
        const double flops = 2.0 * double(t.shape.m) * double(t.shape.n) * double(t.shape.k);
        json += fmt::format("    {{\"name\": \"{}\", \"m\": {}, \"n\": {}, \"k\": {}, \"gelu\": {}, \"f32_out\": {}, "
                            "\"lt_ms\": {:.5f}, \"lt_tflops\": {:.1f}, \"gemmex_ms\": {:.5f}, "
                            "\"gemmex_tflops\": {:.1f}}}{}\n",
                            t.shape.name, t.shape.m, t.shape.n, t.shape.k, t.shape.epilogue == gelu,
                            t.shape.y_type == F, t.lt_ms, flops / t.lt_ms / 1e9, t.gemmex_ms,
                            flops / t.gemmex_ms / 1e9, i + 1 < timings.size() ? "," : "");
      }
      json += fmt::format("  ],\n  \"algorithm_sweep\": [\n{}\n  ],\n  \"iters\": {}, \"warmup\": {}\n}}\n",
                          sweep_json, iters, warmup);
      FILE* file = std::fopen(json_path.c_str(), "w");
      if (file == nullptr) lf::fail("cannot write {}", json_path);
      std::fwrite(json.data(), 1, json.size(), file);
      std::fclose(file);
      std::printf("wrote %s\n", json_path.c_str());
    }
    std::printf("%s\n", all_passed ? "all checks passed" : "SOME CHECKS FAILED");
    return all_passed ? 0 : 1;
  } catch (const lf::Error& error) {
    std::fprintf(stderr, "lab_gemm: %s\n", error.what());
    return 1;
  }
}
