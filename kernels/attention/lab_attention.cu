// Lab for the flash attention kernels (llm.c dev/cuda style): checks every variant against a CPU reference, then
// times them. It includes the production headers, so what is checked here is what the engine runs.
//
//   lab_attention [--json PATH] [--commit SHA] [--check-only] [--bench-only] [--reps N] [--quick]
//
// Check: random bf16 inputs (never zeros), output poisoned with NaN first; rel-L2 vs an fp32 CPU reference on the
// same bf16-rounded inputs must be < 1e-2 with no NaN/unwritten element. Shapes include ragged tiles, strided views
// (q/k/v inside a packed qkv buffer, out with a padded row) and a block-sparse schedule (the seam of the next
// milestone). Bench: Lq 4680, Lk 4680..32760, 12 heads, head_dim 128; inputs rotated over buffer sets larger than
// 3x the L2; CUDA events around each launch; median of --reps runs after warm-up; TFLOP/s = 4 Lq Lk H D / time.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "kernels/attention/flash_attention.h"
#include "kernels/attention/flash_fwd_hopper.cuh"
#include "kernels/attention/flash_fwd_mma.cuh"
#include "core/dtype.h"
#include "kernels/cuda_check.h"
#include "kernels/lab_common.h"
#include "kernels/device_info.h"

using namespace lf;
using namespace lf::gpu;
using namespace lf::gpu::flash;

namespace {

// ---- variants -----------------------------------------------------------------------------------------------
using KernelLauncher = std::function<void(const FlashAttentionParams&, cudaStream_t)>;

FlashKernelArgs kernel_args(const FlashAttentionParams& p) {
  return {static_cast<const __nv_bfloat16*>(p.q), static_cast<const __nv_bfloat16*>(p.k),
          static_cast<const __nv_bfloat16*>(p.v), static_cast<__nv_bfloat16*>(p.out), p.q_row_stride,
          p.k_row_stride, p.v_row_stride, p.out_row_stride, p.lq, p.lk, p.heads,
          float(double(p.scale) * 1.4426950408889634)};
}

template <template <int> class TraitsOf, bool kHopper>
void launch_dense(const FlashAttentionParams& p, cudaStream_t stream) {
  const FlashKernelArgs args = kernel_args(p);
  auto run = [&](auto traits) {
    using Traits = decltype(traits);
    if constexpr (kHopper)
      launch_flash_fwd_hopper<Traits>(args, DenseKeyBlocks<Traits::kBlockN>{p.lk}, stream);
    else
      launch_flash_fwd_mma<Traits>(args, DenseKeyBlocks<Traits::kBlockN>{p.lk}, stream);
  };
  if (p.head_dim == 128)
    run(TraitsOf<128>{});
  else
    run(TraitsOf<64>{});
}

template <int D> using MmaQInRegisters = MmaSyncTileTraits<D, 4, 64, 3, 1, 1>;  // the first version
template <int D> using MmaRows32W8 = MmaSyncTileTraits<D, 8, 64, 2, 1, 2>;
template <int D> using MmaRows32S3 = MmaSyncTileTraits<D, 4, 64, 3, 1, 2>;
template <int D> using HopperS2 = HopperTileTraits<D, 128, 2, true, false>;
template <int D> using HopperNoPingPong = HopperTileTraits<D, 128, 3, false, false>;
template <int D> using HopperSplitPv = HopperTileTraits<D, 128, 3, true, true>;

struct Variant {
  std::string name;
  bool hopper;  // needs the sm_90a build
  KernelLauncher launch;
};

std::vector<Variant> all_variants() {
  auto api = [](FlashVariant v) {
    return [v](const FlashAttentionParams& p, cudaStream_t s) { flash_attention_forward(p, v, s); };
  };
  return {
      {"mma_sync", false, api(FlashVariant::MmaSync)},
      {"hopper", true, api(FlashVariant::Hopper)},
      {"auto", false, api(FlashVariant::Auto)},
      {"mma_q_in_registers", false, launch_dense<MmaQInRegisters, false>},
      {"mma_r32_w8", false, launch_dense<MmaRows32W8, false>},
      {"mma_r32_s3", false, launch_dense<MmaRows32S3, false>},
      {"hopper_s2", true, launch_dense<HopperS2, true>},
      {"hopper_nopingpong", true, launch_dense<HopperNoPingPong, true>},
      {"hopper_splitpv", true, launch_dense<HopperSplitPv, true>},
  };
}

// ---- host data ------------------------------------------------------------------------------------------------
// bf16 values uniform in [-amplitude, amplitude); deterministic per seed.
std::vector<uint16_t> random_bf16(size_t count, uint64_t seed, float amplitude) {
  std::vector<uint16_t> out(count);
  uint64_t state = seed * 6364136223846793005ull + 1442695040888963407ull;
  for (size_t i = 0; i < count; ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    const float unit = float((state >> 40) & 0xffffff) / float(1 << 23) - 1.0f;
    out[i] = f32_to_bf16(amplitude * unit);
  }
  return out;
}

using lab::parallel_for;

// fp32 reference on bf16-rounded inputs (row strides in elements). `allowed(head, query, key)` restricts the keys
// (block-sparse check); rows with no allowed key are 0.
std::vector<float> reference_attention(const std::vector<uint16_t>& q, int64_t q_stride, const std::vector<uint16_t>& k,
                                       int64_t k_stride, const std::vector<uint16_t>& v, int64_t v_stride, int lq,
                                       int lk, int heads, int dim, float scale,
                                       const std::function<bool(int, int, int)>& allowed = nullptr) {
  std::vector<float> out(size_t(lq) * heads * dim, 0.f);
  parallel_for(lq * heads, [&](int task) {
    const int row = task / heads, h = task % heads;
    std::vector<float> qf(dim), scores(lk);
    for (int d = 0; d < dim; ++d) qf[d] = bf16_to_f32(q[size_t(row) * q_stride + h * dim + d]);
    float best = -INFINITY;
    for (int j = 0; j < lk; ++j) {
      if (allowed && !allowed(h, row, j)) {
        scores[j] = -INFINITY;
        continue;
      }
      float dot = 0.f;
      const uint16_t* kr = &k[size_t(j) * k_stride + h * dim];
      for (int d = 0; d < dim; ++d) dot += qf[d] * bf16_to_f32(kr[d]);
      scores[j] = dot * scale;
      best = std::max(best, scores[j]);
    }
    if (best == -INFINITY) return;
    std::vector<double> acc(dim, 0.0);
    double total = 0;
    for (int j = 0; j < lk; ++j) {
      if (scores[j] == -INFINITY) continue;
      const double p = std::exp(double(scores[j]) - best);
      total += p;
      const uint16_t* vr = &v[size_t(j) * v_stride + h * dim];
      for (int d = 0; d < dim; ++d) acc[d] += p * bf16_to_f32(vr[d]);
    }
    for (int d = 0; d < dim; ++d) out[(size_t(row) * heads + h) * dim + d] = float(acc[d] / total);
  });
  return out;
}

using lab::synchronize_or_die;

struct DeviceBuffer {
  void* ptr = nullptr;
  size_t bytes = 0;
  explicit DeviceBuffer(size_t n) : bytes(n) { LF_CUDA_CHECK(cudaMalloc(&ptr, n), "lab buffer of {} bytes", n); }
  ~DeviceBuffer() { cudaFree(ptr); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  template <class T> T* as() const { return static_cast<T*>(ptr); }
};

// ---- checks -----------------------------------------------------------------------------------------------------
struct Shape {
  int lq, lk, heads, dim;
  float amplitude;  // of q and k: larger = peakier softmax (and scores that overflow exp without the max shift)
  bool packed_views;  // q/k/v inside one [L, 3, H, D] buffer, out rows padded by 64 elements
};

struct CheckResult {
  double rel_l2 = 0, max_abs = 0;
  int64_t bad = 0;  // NaN, Inf or never written (still the NaN poison)
  int64_t worst_index = -1;
};

CheckResult compare(const std::vector<uint16_t>& got, int64_t out_stride, const std::vector<float>& ref, int lq,
                    int heads, int dim) {
  CheckResult r;
  double diff2 = 0, ref2 = 0;
  for (int row = 0; row < lq; ++row)
    for (int c = 0; c < heads * dim; ++c) {
      const float x = bf16_to_f32(got[size_t(row) * out_stride + c]);
      const float y = ref[size_t(row) * heads * dim + c];
      if (!std::isfinite(x)) {
        if (r.bad++ == 0) r.worst_index = int64_t(row) * heads * dim + c;
        continue;
      }
      const double e = std::fabs(double(x) - y);
      if (e > r.max_abs) {
        r.max_abs = e;
        if (r.bad == 0) r.worst_index = int64_t(row) * heads * dim + c;
      }
      diff2 += e * e;
      ref2 += double(y) * y;
    }
  r.rel_l2 = r.bad ? INFINITY : std::sqrt(diff2 / std::max(ref2, 1e-30));
  return r;
}

bool check_shape(const Shape& s, const std::vector<Variant>& variants, bool hopper_ok, uint64_t seed) {
  const int64_t row = int64_t(s.heads) * s.dim;
  const float scale = 1.0f / std::sqrt(float(s.dim));
  std::vector<uint16_t> q, k, v;
  int64_t q_stride = row, k_stride = row, v_stride = row, out_stride = row;
  std::vector<uint16_t> packed;
  if (s.packed_views) {
    // [L, 3, H, D] with L = max(lq, lk): q = slot 0, k = slot 1, v = slot 2 (the fused-projection layout).
    const int l = std::max(s.lq, s.lk);
    packed = random_bf16(size_t(l) * 3 * row, seed, s.amplitude);
    q_stride = k_stride = v_stride = 3 * row;
    out_stride = row + 64;
  } else {
    q = random_bf16(size_t(s.lq) * row, seed, s.amplitude);
    k = random_bf16(size_t(s.lk) * row, seed + 1, s.amplitude);
    v = random_bf16(size_t(s.lk) * row, seed + 2, 1.0f);
  }
  const std::vector<uint16_t>& hq = s.packed_views ? packed : q;
  const std::vector<uint16_t>& hk = s.packed_views ? packed : k;
  const std::vector<uint16_t>& hv = s.packed_views ? packed : v;
  const size_t k_offset = s.packed_views ? size_t(row) : 0, v_offset = s.packed_views ? size_t(2 * row) : 0;
  const std::vector<uint16_t> hk_view(hk.begin() + k_offset, hk.end()), hv_view(hv.begin() + v_offset, hv.end());
  const std::vector<float> ref = reference_attention(hq, q_stride, hk_view, k_stride, hv_view, v_stride, s.lq, s.lk,
                                                     s.heads, s.dim, scale);

  DeviceBuffer dq(hq.size() * 2), dk(s.packed_views ? 0 : hk.size() * 2), dv(s.packed_views ? 0 : hv.size() * 2);
  const size_t out_elems = size_t(s.lq) * out_stride;
  DeviceBuffer dout(out_elems * 2);
  LF_CUDA_CHECK(cudaMemcpy(dq.ptr, hq.data(), hq.size() * 2, cudaMemcpyHostToDevice), "q");
  if (!s.packed_views) {
    LF_CUDA_CHECK(cudaMemcpy(dk.ptr, hk.data(), hk.size() * 2, cudaMemcpyHostToDevice), "k");
    LF_CUDA_CHECK(cudaMemcpy(dv.ptr, hv.data(), hv.size() * 2, cudaMemcpyHostToDevice), "v");
  }
  FlashAttentionParams p;
  p.q = dq.ptr;
  p.k = s.packed_views ? static_cast<const void*>(dq.as<uint16_t>() + k_offset) : dk.ptr;
  p.v = s.packed_views ? static_cast<const void*>(dq.as<uint16_t>() + v_offset) : dv.ptr;
  p.out = dout.ptr;
  p.q_row_stride = q_stride;
  p.k_row_stride = k_stride;
  p.v_row_stride = v_stride;
  p.out_row_stride = out_stride;
  p.lq = s.lq;
  p.lk = s.lk;
  p.heads = s.heads;
  p.head_dim = s.dim;
  p.scale = scale;

  bool all_ok = true;
  std::vector<uint16_t> got(out_elems);
  for (const Variant& variant : variants) {
    if (variant.hopper && !hopper_ok) continue;
    LF_CUDA_CHECK(cudaMemset(dout.ptr, 0xff, out_elems * 2), "poison");  // 0xffff = bf16 NaN
    std::string error;
    try {
      variant.launch(p, nullptr);
      synchronize_or_die(variant.name + " check lq " + std::to_string(s.lq) + " lk " + std::to_string(s.lk));
    } catch (const std::exception& e) {
      error = e.what();
    }
    if (!error.empty()) {
      std::printf("  FAIL %-18s lq %5d lk %5d h %2d d %3d amp %.1f%s: %s\n", variant.name.c_str(), s.lq, s.lk, s.heads,
                  s.dim, s.amplitude, s.packed_views ? " views" : "", error.c_str());
      all_ok = false;
      continue;
    }
    LF_CUDA_CHECK(cudaMemcpy(got.data(), dout.ptr, out_elems * 2, cudaMemcpyDeviceToHost), "out");
    const CheckResult r = compare(got, out_stride, ref, s.lq, s.heads, s.dim);
    const bool ok = r.bad == 0 && r.rel_l2 < 1e-2;
    all_ok &= ok;
    std::printf("  %s %-18s lq %5d lk %5d h %2d d %3d amp %.1f%s: rel_l2 %.2e max_abs %.2e bad %lld", ok ? "ok  " : "FAIL",
                variant.name.c_str(), s.lq, s.lk, s.heads, s.dim, s.amplitude, s.packed_views ? " views" : "", r.rel_l2,
                r.max_abs, static_cast<long long>(r.bad));
    if (!ok && r.worst_index >= 0) {
      const int64_t idx = r.worst_index;
      const int r_row = int(idx / row), r_head = int(idx % row) / s.dim, r_dim = int(idx % s.dim);
      std::printf(" | worst at row %d head %d dim %d: got %g ref %g", r_row, r_head, r_dim,
                  bf16_to_f32(got[size_t(r_row) * out_stride + r_head * s.dim + r_dim]), ref[idx]);
    }
    std::printf("\n");
  }
  return all_ok;
}

// Block-sparse seam: a random subset of key blocks per (head, query block), one row of blocks left empty (its
// output must be exactly 0), ragged blocks where the valid-length table cuts them short.
template <class Traits, bool kHopper>
bool check_sparse(uint64_t seed) {
  constexpr int kDim = Traits::kHeadDim, kBlockM = Traits::kBlockM, kBlockN = Traits::kBlockN;
  const int lq = 300, lk = 1000, heads = 2;
  const int q_blocks = (lq + kBlockM - 1) / kBlockM, k_blocks = (lk + kBlockN - 1) / kBlockN;
  const int64_t row = int64_t(heads) * kDim;
  const float scale = 1.0f / std::sqrt(float(kDim));
  const auto q = random_bf16(size_t(lq) * row, seed, 2.f), k = random_bf16(size_t(lk) * row, seed + 1, 2.f),
             v = random_bf16(size_t(lk) * row, seed + 2, 1.f);
  std::vector<int> row_begin{0}, block_index, valid;
  std::vector<std::vector<int>> valid_of(size_t(heads) * q_blocks, std::vector<int>(k_blocks, 0));
  uint64_t state = seed;
  for (int h = 0; h < heads; ++h)
    for (int qb = 0; qb < q_blocks; ++qb) {
      const bool empty_row = h == 1 && qb == q_blocks - 1;
      for (int kb = 0; kb < k_blocks && !empty_row; ++kb) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        if ((state >> 33) % 2 == 0) continue;
        const int full = std::min(kBlockN, lk - kb * kBlockN);
        const int keys = (state >> 40) % 4 == 0 ? 1 + int((state >> 20) % full) : full;
        block_index.push_back(kb);
        valid.push_back(keys);
        valid_of[size_t(h) * q_blocks + qb][kb] = keys;
      }
      row_begin.push_back(int(block_index.size()));
    }
  const auto ref = reference_attention(q, row, k, row, v, row, lq, lk, heads, kDim, scale, [&](int h, int r, int j) {
    return j % kBlockN < valid_of[size_t(h) * q_blocks + r / kBlockM][j / kBlockN];
  });
  DeviceBuffer dq(q.size() * 2), dk(k.size() * 2), dv(v.size() * 2), dout(q.size() * 2);
  DeviceBuffer drow(row_begin.size() * 4), dindex(std::max<size_t>(1, block_index.size()) * 4),
      dvalid(std::max<size_t>(1, valid.size()) * 4);
  LF_CUDA_CHECK(cudaMemcpy(dq.ptr, q.data(), q.size() * 2, cudaMemcpyHostToDevice), "q");
  LF_CUDA_CHECK(cudaMemcpy(dk.ptr, k.data(), k.size() * 2, cudaMemcpyHostToDevice), "k");
  LF_CUDA_CHECK(cudaMemcpy(dv.ptr, v.data(), v.size() * 2, cudaMemcpyHostToDevice), "v");
  LF_CUDA_CHECK(cudaMemcpy(drow.ptr, row_begin.data(), row_begin.size() * 4, cudaMemcpyHostToDevice), "rows");
  LF_CUDA_CHECK(cudaMemcpy(dindex.ptr, block_index.data(), block_index.size() * 4, cudaMemcpyHostToDevice), "idx");
  LF_CUDA_CHECK(cudaMemcpy(dvalid.ptr, valid.data(), valid.size() * 4, cudaMemcpyHostToDevice), "valid");
  LF_CUDA_CHECK(cudaMemset(dout.ptr, 0xff, q.size() * 2), "poison");
  FlashAttentionParams p{dq.ptr, dk.ptr, dv.ptr, dout.ptr, row, row, row, row, lq, lk, heads, kDim, scale};
  SparseKeyBlocks<kBlockN> schedule{drow.as<int>(), dindex.as<int>(), dvalid.as<int>(), q_blocks, lk};
  if constexpr (kHopper)
    launch_flash_fwd_hopper<Traits>(kernel_args(p), schedule, nullptr);
  else
    launch_flash_fwd_mma<Traits>(kernel_args(p), schedule, nullptr);
  synchronize_or_die(std::string("sparse check ") + (kHopper ? "hopper" : "mma_sync"));
  std::vector<uint16_t> got(q.size());
  LF_CUDA_CHECK(cudaMemcpy(got.data(), dout.ptr, got.size() * 2, cudaMemcpyDeviceToHost), "out");
  const CheckResult r = compare(got, row, ref, lq, heads, kDim);
  const bool ok = r.bad == 0 && r.rel_l2 < 1e-2;
  std::printf("  %s %-18s block-sparse lq %d lk %d h %d d %d (%zu of %d blocks, one empty row): rel_l2 %.2e bad %lld\n",
              ok ? "ok  " : "FAIL", kHopper ? "hopper" : "mma_sync", lq, lk, heads, kDim, block_index.size(),
              heads * q_blocks * k_blocks, r.rel_l2, static_cast<long long>(r.bad));
  return ok;
}

// ---- bench ------------------------------------------------------------------------------------------------------
struct BenchRow {
  int lk;
  std::vector<std::pair<std::string, double>> ms;  // per variant
  std::vector<std::pair<std::string, double>> rel_l2_vs_first;
};

double median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

BenchRow bench_shape(int lq, int lk, int heads, int dim, const std::vector<Variant>& variants, bool hopper_ok,
                     int reps, size_t l2_bytes) {
  const int64_t row = int64_t(heads) * dim;
  const size_t set_bytes = (size_t(lq) * 2 + size_t(lk) * 2) * row * 2;  // q, out, k, v
  const int sets = int(std::max<size_t>(2, (3 * l2_bytes + set_bytes - 1) / set_bytes));
  std::vector<std::unique_ptr<DeviceBuffer>> buffers;
  std::vector<FlashAttentionParams> params;
  for (int i = 0; i < sets; ++i) {
    auto q = random_bf16(size_t(lq) * row, 100 + i, 2.f), k = random_bf16(size_t(lk) * row, 200 + i, 2.f),
         v = random_bf16(size_t(lk) * row, 300 + i, 1.f);
    FlashAttentionParams p{nullptr, nullptr, nullptr, nullptr, row, row, row, row, lq, lk, heads, dim,
                           1.0f / std::sqrt(float(dim))};
    const void** slots[3] = {&p.q, &p.k, &p.v};
    const std::vector<uint16_t>* data[3] = {&q, &k, &v};
    for (int t = 0; t < 3; ++t) {
      buffers.push_back(std::make_unique<DeviceBuffer>(data[t]->size() * 2));
      LF_CUDA_CHECK(cudaMemcpy(buffers.back()->ptr, data[t]->data(), data[t]->size() * 2, cudaMemcpyHostToDevice),
                    "bench input");
      *slots[t] = buffers.back()->ptr;
    }
    buffers.push_back(std::make_unique<DeviceBuffer>(size_t(lq) * row * 2));
    p.out = buffers.back()->ptr;
    params.push_back(p);
  }
  BenchRow result{lk, {}, {}};
  cudaEvent_t start, stop;
  LF_CUDA_CHECK(cudaEventCreate(&start), "event");
  LF_CUDA_CHECK(cudaEventCreate(&stop), "event");
  std::vector<uint16_t> first_out, out(size_t(lq) * row);
  for (const Variant& variant : variants) {
    if (variant.hopper && !hopper_ok) continue;
    if (variant.name == "auto") continue;  // same kernel as one of the others
    try {
      for (int w = 0; w < 3; ++w) variant.launch(params[w % sets], nullptr);
      synchronize_or_die(variant.name + " warm-up");
      std::vector<float> times;
      for (int r = 0; r < reps; ++r) {
        const FlashAttentionParams& p = params[r % sets];
        LF_CUDA_CHECK(cudaEventRecord(start), "event");
        variant.launch(p, nullptr);
        LF_CUDA_CHECK(cudaEventRecord(stop), "event");
        LF_CUDA_CHECK(cudaEventSynchronize(stop), "{}", variant.name);
        float ms = 0;
        LF_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop), "event");
        times.push_back(ms);
      }
      result.ms.push_back({variant.name, median(times)});
      // Outputs of set 0 must agree across variants (they were all run on it during warm-up).
      LF_CUDA_CHECK(cudaMemcpy(out.data(), params[0].out, out.size() * 2, cudaMemcpyDeviceToHost), "out");
      if (first_out.empty()) first_out = out;
      double d2 = 0, r2 = 0;
      for (size_t i = 0; i < out.size(); ++i) {
        const double a = bf16_to_f32(out[i]), b = bf16_to_f32(first_out[i]);
        d2 += std::isfinite(a) ? (a - b) * (a - b) : INFINITY;
        r2 += b * b;
      }
      result.rel_l2_vs_first.push_back({variant.name, std::sqrt(d2 / std::max(r2, 1e-30))});
    } catch (const std::exception& e) {
      std::printf("  %s at lk %d: %s\n", variant.name.c_str(), lk, e.what());
      (void)cudaGetLastError();
    }
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  std::string json_path, commit = "unknown";
  bool check = true, bench = true, quick = false;
  int reps = 30;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--json" && i + 1 < argc) json_path = argv[++i];
    else if (a == "--commit" && i + 1 < argc) commit = argv[++i];
    else if (a == "--reps" && i + 1 < argc) reps = std::max(5, std::atoi(argv[++i]));
    else if (a == "--check-only") bench = false;
    else if (a == "--bench-only") check = false;
    else if (a == "--quick") quick = true;
    else {
      std::fprintf(stderr, "usage: %s [--json PATH] [--commit SHA] [--check-only] [--bench-only] [--reps N] [--quick]\n",
                   argv[0]);
      return 2;
    }
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress must survive a pipe and a kill
  try {
    if (device_count() == 0) {
      std::printf("no CUDA device\n");
      return 77;
    }
    const std::string device = device_name(0);
    cudaDeviceProp props{};
    LF_CUDA_CHECK(cudaGetDeviceProperties(&props, 0), "properties");
    const bool hopper_ok = props.major == 9 && props.minor == 0 && hopper_kernels_built();
    std::printf("device: %s\nhopper (sm_90a) kernels: %s\n", device.c_str(),
                hopper_ok ? "yes" : (hopper_kernels_built() ? "built, device is not sm_90" : "not built (LF_CUDA_ARCHS=90a)"));
    const auto variants = all_variants();

    int failures = 0;
    if (check) {
      std::printf("== correctness (rel_l2 < 1e-2 vs fp32 CPU reference on the same bf16 inputs) ==\n");
      const Shape shapes[] = {
          {77, 131, 3, 64, 1.f, false},   {1, 1, 1, 64, 1.f, false},       {128, 128, 2, 128, 1.f, false},
          {300, 1000, 2, 128, 2.f, false}, {300, 1000, 2, 64, 8.f, false},  {129, 257, 2, 128, 8.f, true},
          {200, 190, 3, 64, 2.f, true},    {4680, 9360, 1, 128, 2.f, false},
      };
      uint64_t seed = 1;
      for (const Shape& s : shapes) failures += check_shape(s, variants, hopper_ok, seed += 7) ? 0 : 1;
      failures += check_sparse<MmaSyncDefaultTraits<128>, false>(11) ? 0 : 1;
      failures += check_sparse<MmaSyncDefaultTraits<64>, false>(12) ? 0 : 1;
      if (hopper_ok) {
        failures += check_sparse<HopperDefaultTraits<128>, true>(13) ? 0 : 1;
        failures += check_sparse<HopperDefaultTraits<64>, true>(14) ? 0 : 1;
      }
      std::printf("correctness: %s (%d failing case%s)\n", failures ? "FAILED" : "passed", failures,
                  failures == 1 ? "" : "s");
    }

    std::vector<BenchRow> rows;
    const int lq = 4680, heads = 12, dim = 128;
    if (bench) {
      std::printf("== bench: lq %d, heads %d, head_dim %d, bf16; median of %d runs; TFLOP/s = 4 lq lk h d / t ==\n", lq,
                  heads, dim, reps);
      std::vector<int> lks = quick ? std::vector<int>{4680, 32760}
                                   : std::vector<int>{4680, 9360, 14040, 18720, 23400, 28080, 32760};
      for (int lk : lks) {
        rows.push_back(bench_shape(lq, lk, heads, dim, variants, hopper_ok, reps, size_t(props.l2CacheSize)));
        const BenchRow& r = rows.back();
        const double flop = 4.0 * lq * double(lk) * heads * dim;
        std::printf("lk %5d:", lk);
        for (size_t i = 0; i < r.ms.size(); ++i)
          std::printf("  %s %.3f ms %.0f TF/s (vs first %.1e)", r.ms[i].first.c_str(), r.ms[i].second,
                      flop / (r.ms[i].second * 1e-3) / 1e12, r.rel_l2_vs_first[i].second);
        std::printf("\n");
      }
    }

    if (!json_path.empty()) {
      FILE* f = std::fopen(json_path.c_str(), "w");
      if (f == nullptr) fail("cannot write {}", json_path);
      std::fprintf(f, "{\n  \"device\": \"%s\",\n  \"commit\": \"%s\",\n  \"command\": \"", device.c_str(), commit.c_str());
      for (int i = 0; i < argc; ++i) std::fprintf(f, "%s%s", i ? " " : "", argv[i]);
      std::fprintf(f, "\",\n  \"correctness_failures\": %d,\n  \"lq\": %d, \"heads\": %d, \"head_dim\": %d,\n  \"rows\": [",
                   check ? failures : -1, lq, heads, dim);
      for (size_t i = 0; i < rows.size(); ++i) {
        const double flop = 4.0 * lq * double(rows[i].lk) * heads * dim;
        std::fprintf(f, "%s\n    {\"lk\": %d", i ? "," : "", rows[i].lk);
        for (const auto& [name, ms] : rows[i].ms)
          std::fprintf(f, ", \"%s_ms\": %.4f, \"%s_tflops\": %.1f", name.c_str(), ms, name.c_str(),
                       flop / (ms * 1e-3) / 1e12);
        std::fprintf(f, "}");
      }
      std::fprintf(f, "\n  ]\n}\n");
      std::fclose(f);
      std::printf("wrote %s\n", json_path.c_str());
    }
    return failures ? 1 : 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lab_attention: %s\n", e.what());
    return 1;
  }
}
