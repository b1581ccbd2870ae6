// lab_ops: times the memory-bound DiT ops of gpu_ops.h at one chunk (4680 tokens x 1536, 12 heads x 128) and
// reports achieved bandwidth against the fewest bytes each op must move (every input read once, every output
// written once). Correctness is test_gpu_ops' job; this says how far each op is from the memory floor.
//
//   lab_ops [--json out.json] [--iters 20]
//
// Each timing is the median over `iters` samples of (20 back-to-back calls between two CUDA events) / 20, rotating
// over 4 operand sets so the 60 MB L2 does not hold the working set.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "kernels/cuda_check.h"
#include "kernels/ops/gpu_ops.h"

namespace {

constexpr int kSets = 4;
constexpr int kCallsPerSample = 20;

__global__ void fill_pattern(uint32_t* words, size_t count, uint32_t seed, bool as_bf16) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < count; i += size_t(gridDim.x) * blockDim.x) {
    uint32_t h = uint32_t(i) * 2654435761u ^ seed;
    h ^= h >> 16, h *= 0x7feb352du, h ^= h >> 15;
    // Finite values in about [-1, 1]: an fp32, or two bf16, with a small exponent.
    const float v = float(h & 0xffff) / 32768.0f - 1.0f;
    const uint32_t bits = __float_as_uint(v);
    words[i] = as_bf16 ? (bits >> 16) | (bits & 0xffff0000u) : bits;
  }
}

struct Buffers {
  std::vector<void*> sets;
  Buffers(size_t bytes, bool bf16, uint32_t seed) {
    for (int s = 0; s < kSets; ++s) {
      void* p = nullptr;
      LF_CUDA_CHECK(cudaMalloc(&p, bytes), "lab_ops buffer of {} bytes", bytes);
      fill_pattern<<<1024, 256>>>(static_cast<uint32_t*>(p), bytes / 4, seed + 97u * s, bf16);
      sets.push_back(p);
    }
    LF_CUDA_LAUNCH_CHECK("lab_ops fill");
  }
  ~Buffers() {
    for (void* p : sets) cudaFree(p);
  }
  template <typename T>
  T* at(int s) const {
    return static_cast<T*>(sets[size_t(s)]);
  }
};

struct OpTiming {
  std::string name;
  double bytes, us;
};

double time_us(const std::function<void(int)>& run, int iters) {
  cudaEvent_t start, stop;
  LF_CUDA_CHECK(cudaEventCreate(&start), "lab_ops");
  LF_CUDA_CHECK(cudaEventCreate(&stop), "lab_ops");
  for (int i = 0; i < kCallsPerSample; ++i) run(i % kSets);  // warm-up
  std::vector<float> samples;
  for (int it = 0; it < iters; ++it) {
    LF_CUDA_CHECK(cudaEventRecord(start), "lab_ops");
    for (int i = 0; i < kCallsPerSample; ++i) run(i % kSets);
    LF_CUDA_CHECK(cudaEventRecord(stop), "lab_ops");
    LF_CUDA_CHECK(cudaEventSynchronize(stop), "lab_ops");
    float ms = 0;
    LF_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop), "lab_ops");
    samples.push_back(ms * 1000.0f / kCallsPerSample);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::string json_path;
  int iters = 20;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--json" && i + 1 < argc) json_path = argv[++i];
    else if (arg == "--iters" && i + 1 < argc) iters = std::max(1, std::atoi(argv[++i]));
    else {
      std::fprintf(stderr, "usage: lab_ops [--json out.json] [--iters N]\n");
      return 2;
    }
  }
  try {
    namespace gpu = lf::gpu;
    constexpr int64_t tokens = 4680, dim = 1536, tpf = 1560, frames = 3, ffn = 8960;
    const gpu::RopeLayout layout{12, 128, tpf, 52, 10000.0};
    const int64_t positions[] = {3, 4, 5};
    Buffers x(tokens * dim * 4, false, 1), table(frames * 6 * dim * 4, false, 2), weight(dim * 4, false, 3);
    Buffers act(tokens * dim * 2, true, 4), act_out(tokens * dim * 2, true, 5), qkv(tokens * 3 * dim * 2, true, 6);
    Buffers hidden(tokens * ffn * 2, true, 7);
    const float* w = weight.at<float>(0);
    const double f32_rows = double(tokens * dim) * 4, bf16_rows = double(tokens * dim) * 2;

    std::vector<OpTiming> timings;
    auto add = [&](const std::string& name, double bytes, const std::function<void(int)>& run) {
      timings.push_back({name, bytes, time_us(run, iters)});
    };
    add("layer_norm_modulate", f32_rows + bf16_rows, [&](int s) {
      gpu::layer_norm_modulate(x.at<float>(s), tokens, dim, gpu::table_slot(table.at<float>(s), 6, dim, 0),
                               gpu::table_slot(table.at<float>(s), 6, dim, 1), tpf, 1e-6, act_out.at<uint16_t>(s),
                               nullptr);
    });
    add("layer_norm_affine", f32_rows + bf16_rows, [&](int s) {
      gpu::layer_norm_affine(x.at<float>(s), tokens, dim, w, w, 1e-6, act_out.at<uint16_t>(s), nullptr);
    });
    add("rms_norm", 2 * bf16_rows, [&](int s) {
      gpu::rms_norm(act.at<uint16_t>(s), 0, tokens, dim, w, 1e-6, act_out.at<uint16_t>(s), 0, nullptr);
    });
    add("rms_norm (k of fused qkv)", 2 * bf16_rows, [&](int s) {
      gpu::rms_norm(qkv.at<uint16_t>(s) + dim, 3 * dim, tokens, dim, w, 1e-6, act_out.at<uint16_t>(s), 0, nullptr);
    });
    add("rms_norm_rope", 2 * bf16_rows, [&](int s) {
      gpu::rms_norm_rope(act.at<uint16_t>(s), 0, tokens, w, 1e-6, layout, positions, frames, act_out.at<uint16_t>(s),
                         0, nullptr);
    });
    add("rope_apply (bf16, in place)", 2 * bf16_rows, [&](int s) {
      gpu::rope_apply(act_out.at<uint16_t>(s), 0, tokens, layout, positions, frames, nullptr);
    });
    add("gated_residual (bf16 y)", 2 * f32_rows + bf16_rows, [&](int s) {
      gpu::gated_residual(x.at<float>(s), act.at<uint16_t>(s), tokens, dim,
                          gpu::table_slot(table.at<float>(s), 6, dim, 2), tpf, nullptr);
    });
    add("gelu_tanh_inplace (ffn hidden)", 2.0 * double(tokens * ffn) * 2, [&](int s) {
      gpu::gelu_tanh_inplace(hidden.at<uint16_t>(s), tokens * ffn, nullptr);
    });
    add("convert_f32_to_bf16", f32_rows + bf16_rows, [&](int s) {
      gpu::convert_f32_to_bf16(x.at<float>(s), tokens * dim, act_out.at<uint16_t>(s), nullptr);
    });
    LF_CUDA_CHECK(cudaDeviceSynchronize(), "lab_ops");

    cudaDeviceProp props{};
    LF_CUDA_CHECK(cudaGetDeviceProperties(&props, 0), "lab_ops");
    std::printf("device: %s; one chunk: %lld tokens x %lld\n\n%-32s %10s %10s %8s\n", props.name, (long long)tokens,
                (long long)dim, "op", "us", "MB moved", "GB/s");
    std::string json = fmt::format("{{\n  \"device\": \"{}\",\n  \"ops\": [\n", props.name);
    for (size_t i = 0; i < timings.size(); ++i) {
      const OpTiming& t = timings[i];
      std::printf("%-32s %10.2f %10.1f %8.0f\n", t.name.c_str(), t.us, t.bytes / 1e6, t.bytes / t.us / 1e3);
      json += fmt::format("    {{\"op\": \"{}\", \"us\": {:.3f}, \"bytes\": {:.0f}, \"gb_per_s\": {:.1f}}}{}\n", t.name,
                          t.us, t.bytes, t.bytes / t.us / 1e3, i + 1 < timings.size() ? "," : "");
    }
    json += fmt::format("  ],\n  \"iters\": {}, \"calls_per_sample\": {}\n}}\n", iters, kCallsPerSample);
    if (!json_path.empty()) {
      FILE* file = std::fopen(json_path.c_str(), "w");
      if (file == nullptr) lf::fail("cannot write {}", json_path);
      std::fwrite(json.data(), 1, json.size(), file);
      std::fclose(file);
      std::printf("wrote %s\n", json_path.c_str());
    }
    return 0;
  } catch (const lf::Error& error) {
    std::fprintf(stderr, "lab_ops: %s\n", error.what());
    return 1;
  }
}
