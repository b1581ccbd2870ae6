// Lab for block-sparse flash attention and the GPU mask planners (llm.c dev/cuda style): checks, then times them
// against the dense kernel in the same run. It calls the public APIs, so what is checked is what the engine runs.
//
//   lab_sparse [--json PATH] [--commit SHA] [--check-only] [--bench-only] [--planner-only] [--reps N] [--quick]
//   lab_sparse --trace   (the Hopper kernel's per-item phase times, from in-kernel clock stamps)
//
// --planner-only: the planner checks and the cached planner's per-launch breakdown (lab_sparse_planner.cuh,
// JSON "planner_breakdown_rows"), no attention check or bench.
//
// Check: every supported (variant, query_block, key_block) on ragged frame-aligned blocks (1560 and 100 tokens per
// frame) vs an fp64 CPU masked reference, output NaN-poisoned, rel-L2 < 1e-2, an empty row exactly 0; a full mask
// vs the dense kernel at Lq 4680 x Lk 9360; the planners' selections at the bench shape vs CPU selections computed
// from the GPU's own pooled scores (identical sets expected).
// Bench: Lq 4680 (3 frames x 1560), Lk 4680..32760, 12 heads, head_dim 128, densities 0.1..1.0 as random masks with
// the same block count per row; inputs rotated over buffer sets larger than 3x the L2; CUDA events around each
// launch; median of --reps after warm-up. ratio = sparse_ms / (token_density x dense_ms of the same variant):
// 1.0 = the sparse kernel is exactly as efficient per key as dense. Planner: pooling + scores + selection per rule.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "attention/flash_attention.h"
#include "cuda_check.h"
#include "lab_common.h"
#include "device_info.h"
#include "attention/flash_fwd_hopper.cuh"
#include "sparse/block_sparse_attention.h"
#include "sparse/block_sparse_launch.cuh"
#include "sparse/sparse_planner.h"
#include "sparse/sparse_recall.h"
#include "sparse/lab_sparse_planner.cuh"

using namespace lf;
using namespace lf::gpu;

namespace {

constexpr int kBenchLq = 4680, kBenchHeads = 12, kBenchDim = 128, kTokensPerFrame = 1560;
const double kDensities[] = {0.1, 0.2, 0.3, 0.5, 0.7, 1.0};

struct DeviceBuffer {
  void* ptr = nullptr;
  explicit DeviceBuffer(size_t n) {
    LF_CUDA_CHECK(cudaMalloc(&ptr, std::max<size_t>(n, 16)), "lab buffer of {} bytes", n);
  }
  ~DeviceBuffer() { cudaFree(ptr); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  template <class T>
  T* as() const {
    return static_cast<T*>(ptr);
  }
};

template <class T>
std::unique_ptr<DeviceBuffer> upload(const std::vector<T>& host) {
  auto buffer = std::make_unique<DeviceBuffer>(host.size() * sizeof(T));
  if (!host.empty())
    LF_CUDA_CHECK(cudaMemcpy(buffer->ptr, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice), "upload");
  return buffer;
}
template <class T>
std::vector<T> download(const void* device, size_t count) {
  std::vector<T> host(count);
  if (count > 0) LF_CUDA_CHECK(cudaMemcpy(host.data(), device, count * sizeof(T), cudaMemcpyDeviceToHost), "download");
  return host;
}

// Deterministic uniform bf16 in [-amplitude, amplitude) from a hash of (seed, index): the same values on the device
// (bench inputs, fast) and on the host (check inputs, for the reference).
__host__ __device__ inline float hashed_uniform(uint64_t seed, uint64_t i) {
  uint64_t x = (seed + 1) * 0x9e3779b97f4a7c15ull ^ (i + 0x632be59bd9b4e019ull) * 0xbf58476d1ce4e5b9ull;
  x ^= x >> 31;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 29;
  return float((x >> 40) & 0xffffff) / float(1 << 23) - 1.0f;
}
__global__ void fill_kernel(__nv_bfloat16* out, size_t count, uint64_t seed, float amplitude) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < count; i += size_t(gridDim.x) * blockDim.x)
    out[i] = __float2bfloat16(amplitude * hashed_uniform(seed, i));
}
std::vector<float> host_values(size_t count, uint64_t seed, float amplitude) {
  std::vector<float> out(count);
  for (size_t i = 0; i < count; ++i) out[i] = __bfloat162float(__float2bfloat16(amplitude * hashed_uniform(seed, i)));
  return out;
}
std::unique_ptr<DeviceBuffer> device_values(size_t count, uint64_t seed, float amplitude) {
  auto buffer = std::make_unique<DeviceBuffer>(count * 2);
  fill_kernel<<<1024, 256>>>(buffer->as<__nv_bfloat16>(), count, seed, amplitude);
  LF_CUDA_LAUNCH_CHECK("fill");
  return buffer;
}

using lab::parallel_for;

using lab::synchronize_or_die;

// ---- masks --------------------------------------------------------------------------------------------------------
struct Geometry {
  int tokens_per_frame, key_block, query_block, lq, frames;
  int blocks_per_frame() const { return (tokens_per_frame + key_block - 1) / key_block; }
  int key_blocks() const { return frames * blocks_per_frame(); }
  int query_blocks() const { return (lq + query_block - 1) / query_block; }
  int lk() const { return frames * tokens_per_frame; }
  int block_start(int b) const {
    return (b / blocks_per_frame()) * tokens_per_frame + (b % blocks_per_frame()) * key_block;
  }
  int block_length(int b) const { return std::min(key_block, tokens_per_frame - (b % blocks_per_frame()) * key_block); }
};

struct Csr {
  std::vector<int> row_offsets{0}, key_indices;
};

// `per_row` distinct random blocks per row, ascending (per_row < 0: each block with probability 1/2, with the
// last row left empty and the first row full, for the checks). shared_rows: the rows of a head repeat its first.
Csr random_mask(const Geometry& g, int heads, int per_row, uint64_t seed, bool shared_rows = false) {
  Csr mask;
  const int k = g.key_blocks(), rows = heads * g.query_blocks();
  std::vector<int> pool(static_cast<size_t>(k));
  uint64_t state = seed * 0x9e3779b97f4a7c15ull + 7;
  auto next = [&] { return (state = state * 6364136223846793005ull + 1442695040888963407ull) >> 33; };
  for (int r = 0; r < rows; ++r) {
    if (shared_rows && per_row >= 0 && r % g.query_blocks() != 0) {
      // pool still starts with the head's first row (sorted), drawn in the branch below
      mask.key_indices.insert(mask.key_indices.end(), pool.begin(), pool.begin() + per_row);
    } else if (per_row >= 0) {
      std::iota(pool.begin(), pool.end(), 0);
      for (int i = 0; i < per_row; ++i) std::swap(pool[size_t(i)], pool[size_t(i + int(next() % uint64_t(k - i)))]);
      std::sort(pool.begin(), pool.begin() + per_row);
      mask.key_indices.insert(mask.key_indices.end(), pool.begin(), pool.begin() + per_row);
    } else if (r != rows - 1) {
      for (int b = 0; b < k; ++b)
        if (r == 0 || next() % 2 == 1) mask.key_indices.push_back(b);
    }
    mask.row_offsets.push_back(int(mask.key_indices.size()));
  }
  return mask;
}

double token_density(const Geometry& g, const Csr& mask) {
  double selected = 0;
  for (int b : mask.key_indices) selected += g.block_length(b);
  return selected / (double(mask.row_offsets.size() - 1) * g.lk());
}

struct DeviceMask {
  std::unique_ptr<DeviceBuffer> offsets, indices;
  BlockSparseLayout layout(const Geometry& g, int heads) const {
    BlockSparseLayout l;
    l.row_offsets = offsets->as<int>();
    l.key_indices = indices->as<int>();
    l.query_block = g.query_block;
    l.key_block = g.key_block;
    l.tokens_per_frame = g.tokens_per_frame;
    l.heads = heads;
    l.query_blocks = g.query_blocks();
    return l;
  }
};
DeviceMask upload_mask(const Csr& mask) { return {upload(mask.row_offsets), upload(mask.key_indices)}; }

FlashAttentionParams params_for(const void* q, const void* k, const void* v, void* out, int lq, int lk, int heads,
                                int dim) {
  const int64_t row = int64_t(heads) * dim;
  return {q, k, v, out, row, row, row, row, lq, lk, heads, dim, 1.0f / std::sqrt(float(dim))};
}

// The (variant, query_block, key_block) combinations the lab runs; unsupported ones are skipped with the reason.
struct Combo {
  FlashVariant variant;
  int query_block, key_block;
};
const Combo kCombos[] = {{FlashVariant::MmaSync, 128, 64},  {FlashVariant::MmaSync, 64, 64},
                         {FlashVariant::MmaSync, 128, 128}, {FlashVariant::MmaSync, 64, 128},
                         {FlashVariant::Hopper, 128, 128},  {FlashVariant::Hopper, 128, 64},
                         {FlashVariant::Auto, 128, 128},    {FlashVariant::Auto, 64, 64}};

// The Hopper block-sparse launches the lab checks and times ("grid" = one CTA per row, no packing: the kernel as it
// was before; the last is the default).
struct HopperTuning {
  const char* name;
  bool persistent, pack_tails, early_handover, double_q;
};
const HopperTuning kHopperTunings[] = {{"grid", false, false, false, false},
                                       {"persistent", true, false, false, false},
                                       {"persistent+packed", true, true, false, false},
                                       {"persistent+packed+handover", true, true, true, false},
                                       {"persistent+packed+2q", true, true, false, true},
                                       {"persistent+packed+2q+handover", true, true, true, true}};

// Narrowing flags (for ncu, which replays each kernel: one shape, one density, the default Hopper launch).
struct BenchFilter {
  int lk = 0;             // 0 = every Lk
  double density = -1;    // < 0 = every density
  bool hopper_default = false;  // only hopper q128 k128 persistent+packed (and the dense rows)
  bool planner = true;    // the planner breakdown after the kernel rows
  bool warm = false;      // one input set: K/V stay in L2 between launches (default: sets > 3x L2, cold as in the engine)
  // Every query block of a head selects the same random key blocks (bench rows only): the L2 best case of a mask,
  // against which the default masks (independent rows) show what the K/V working set beyond L2 costs.
  bool shared_rows = false;
};
BenchFilter g_filter;

std::string combo_name(const Combo& c) {
  return fmt::format("{} q{} k{}", flash_variant_name(c.variant), c.query_block, c.key_block);
}

// ---- checks -------------------------------------------------------------------------------------------------------
std::vector<float> reference_attention(const std::vector<float>& q, const std::vector<float>& k,
                                       const std::vector<float>& v, const Geometry& g, int heads, int dim,
                                       const Csr& mask, float scale) {
  std::vector<float> out(size_t(g.lq) * heads * dim, 0.f);
  parallel_for(g.lq * heads, [&](int task) {
    const int row = task / heads, h = task % heads, r = h * g.query_blocks() + row / g.query_block;
    std::vector<double> scores, acc(static_cast<size_t>(dim), 0.0);
    std::vector<int> keys;
    for (int i = mask.row_offsets[size_t(r)]; i < mask.row_offsets[size_t(r) + 1]; ++i)
      for (int t = 0; t < g.block_length(mask.key_indices[size_t(i)]); ++t)
        keys.push_back(g.block_start(mask.key_indices[size_t(i)]) + t);
    if (keys.empty()) return;
    double best = -INFINITY;
    for (int j : keys) {
      double dot = 0;
      for (int d = 0; d < dim; ++d)
        dot += double(q[(size_t(row) * heads + h) * dim + d]) * k[(size_t(j) * heads + h) * dim + d];
      scores.push_back(dot * scale);
      best = std::max(best, scores.back());
    }
    double total = 0;
    for (size_t i = 0; i < keys.size(); ++i) {
      const double p = std::exp(scores[i] - best);
      total += p;
      for (int d = 0; d < dim; ++d) acc[size_t(d)] += p * v[(size_t(keys[i]) * heads + h) * dim + d];
    }
    for (int d = 0; d < dim; ++d) out[(size_t(row) * heads + h) * dim + d] = float(acc[size_t(d)] / total);
  });
  return out;
}

// rel-L2 of bf16 `got` against `want`; NaN/Inf (or the unwritten poison) gives +Inf.
double rel_l2(const std::vector<uint16_t>& got, const std::vector<float>& want) {
  double diff = 0, ref = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    __nv_bfloat16_raw raw;
    raw.x = got[i];
    const float x = __bfloat162float(__nv_bfloat16(raw));
    if (!std::isfinite(x)) return INFINITY;
    diff += (double(x) - want[i]) * (double(x) - want[i]);
    ref += double(want[i]) * want[i];
  }
  return std::sqrt(diff / std::max(ref, 1e-30));
}
std::vector<float> to_float(const std::vector<uint16_t>& bits) {
  std::vector<float> out(bits.size());
  for (size_t i = 0; i < bits.size(); ++i) {
    __nv_bfloat16_raw raw;
    raw.x = bits[i];
    out[i] = __bfloat162float(__nv_bfloat16(raw));
  }
  return out;
}

int check_attention() {
  int failures = 0;
  struct Case {
    int tokens_per_frame, frames, lq, dim;
  };
  // 1560: 24-key tails packed 5 to a tile on Hopper; 296 (2 x 128 + 40): tails of 40, 3 to a tile; 100: unpacked.
  const Case cases[] = {{1560, 3, 1000, 128}, {100, 5, 150, 64}, {100, 4, 333, 128}, {296, 9, 300, 128},
                        {296, 7, 260, 64}};
  uint64_t seed = 1;
  for (const Case& c : cases)
    for (const Combo& combo : kCombos) {
      const Geometry g{c.tokens_per_frame, combo.key_block, combo.query_block, c.lq, c.frames};
      const int heads = 2;
      const auto q = host_values(size_t(g.lq) * heads * c.dim, seed++, 2.f);
      const auto k = host_values(size_t(g.lk()) * heads * c.dim, seed++, 2.f);
      const auto v = host_values(size_t(g.lk()) * heads * c.dim, seed++, 1.f);
      auto dq = device_values(q.size(), seed - 3, 2.f), dk = device_values(k.size(), seed - 2, 2.f),
           dv = device_values(v.size(), seed - 1, 1.f);
      DeviceBuffer dout(q.size() * 2);
      const Csr mask = random_mask(g, heads, -1, seed);
      const DeviceMask device_mask = upload_mask(mask);
      const FlashAttentionParams p = params_for(dq->ptr, dk->ptr, dv->ptr, dout.ptr, g.lq, g.lk(), heads, c.dim);
      const BlockSparseLayout layout = device_mask.layout(g, heads);
      const std::string what =
          fmt::format("{} tpf {} lk {} lq {} d {}", combo_name(combo), g.tokens_per_frame, g.lk(), g.lq, c.dim);
      std::string why;
      if (!flash_attention_block_sparse_supported(p, layout, combo.variant, &why)) {
        std::printf("  skip %s: %s\n", what.c_str(), why.c_str());
        continue;
      }
      const std::vector<float> want = reference_attention(q, k, v, g, heads, c.dim, mask, p.scale);
      // Every Hopper launch (grid, persistent, persistent + packed tails) against the same reference.
      for (const HopperTuning& tuning : kHopperTunings) {
        if (combo.variant != FlashVariant::Hopper && (tuning.persistent || tuning.pack_tails)) continue;
        flash::block_sparse_hopper_tuning() = {tuning.persistent, tuning.pack_tails, nullptr, tuning.early_handover,
                                           tuning.double_q};
        LF_CUDA_CHECK(cudaMemset(dout.ptr, 0xff, q.size() * 2), "poison");
        flash_attention_block_sparse_forward(p, layout, combo.variant, nullptr);
        synchronize_or_die("check " + what + " " + tuning.name);
        const auto got = download<uint16_t>(dout.ptr, q.size());
        const double error = rel_l2(got, want);
        bool empty_row_zero = true;  // last query block of the last head
        for (int row = (g.query_blocks() - 1) * g.query_block; row < g.lq; ++row)
          for (int d = 0; d < c.dim; ++d) empty_row_zero &= got[(size_t(row) * heads + heads - 1) * c.dim + d] == 0;
        const bool ok = error < 1e-2 && empty_row_zero;
        failures += ok ? 0 : 1;
        std::printf("  %s %s %s: rel_l2 %.2e, empty row %s (%zu of %d blocks)\n", ok ? "ok  " : "FAIL", what.c_str(),
                    combo.variant == FlashVariant::Hopper ? tuning.name : "", error,
                    empty_row_zero ? "zero" : "NOT ZERO", mask.key_indices.size(),
                    heads * g.query_blocks() * g.key_blocks());
      }
      flash::block_sparse_hopper_tuning() = {};
    }

  // Full mask vs dense at a bench-sized shape (no CPU reference needed).
  for (const Combo& combo : kCombos) {
    const Geometry g{kTokensPerFrame, combo.key_block, combo.query_block, kBenchLq, 6};
    const int heads = 4;
    auto dq = device_values(size_t(g.lq) * heads * kBenchDim, 11, 2.f),
         dk = device_values(size_t(g.lk()) * heads * kBenchDim, 12, 2.f),
         dv = device_values(size_t(g.lk()) * heads * kBenchDim, 13, 1.f);
    DeviceBuffer dense_out(size_t(g.lq) * heads * kBenchDim * 2), sparse_out(size_t(g.lq) * heads * kBenchDim * 2);
    Csr full;
    for (int r = 0; r < heads * g.query_blocks(); ++r) {
      for (int b = 0; b < g.key_blocks(); ++b) full.key_indices.push_back(b);
      full.row_offsets.push_back(int(full.key_indices.size()));
    }
    const DeviceMask device_mask = upload_mask(full);
    FlashAttentionParams p = params_for(dq->ptr, dk->ptr, dv->ptr, sparse_out.ptr, g.lq, g.lk(), heads, kBenchDim);
    const std::string what = fmt::format("{} full mask vs dense lq {} lk {}", combo_name(combo), g.lq, g.lk());
    std::string why;
    if (!flash_attention_block_sparse_supported(p, device_mask.layout(g, heads), combo.variant, &why)) {
      std::printf("  skip %s: %s\n", what.c_str(), why.c_str());
      continue;
    }
    LF_CUDA_CHECK(cudaMemset(sparse_out.ptr, 0xff, size_t(g.lq) * heads * kBenchDim * 2), "poison");
    flash_attention_block_sparse_forward(p, device_mask.layout(g, heads), combo.variant, nullptr);
    FlashVariant dense_variant = combo.variant;
    flash_attention_block_sparse_select(p, device_mask.layout(g, heads), combo.variant, &dense_variant, nullptr);
    p.out = dense_out.ptr;
    flash_attention_forward(p, dense_variant, nullptr);
    synchronize_or_die("check " + what);
    const size_t n = size_t(g.lq) * heads * kBenchDim;
    const auto sparse_bits = download<uint16_t>(sparse_out.ptr, n), dense_bits = download<uint16_t>(dense_out.ptr, n);
    if (dense_variant == FlashVariant::Hopper) {
      // The persistent dense launch visits the same tiles in the same order per item: the same bits.
      flash::hopper_dense_persistent() = !flash::kHopperDensePersistent;
      LF_CUDA_CHECK(cudaMemset(dense_out.ptr, 0xff, n * 2), "poison");
      flash_attention_forward(p, dense_variant, nullptr);
      synchronize_or_die("check persistent dense");
      flash::hopper_dense_persistent() = flash::kHopperDensePersistent;
      const bool same = download<uint16_t>(dense_out.ptr, n) == dense_bits;
      failures += same ? 0 : 1;
      std::printf("  %s hopper dense %s launch vs %s: %s\n", same ? "ok  " : "FAIL",
                  flash::kHopperDensePersistent ? "grid" : "persistent",
                  flash::kHopperDensePersistent ? "persistent" : "grid", same ? "bitwise identical" : "DIFFERENT");
    }
    const double error = rel_l2(sparse_bits, to_float(dense_bits));
    const bool identical = sparse_bits == dense_bits;
    failures += error < 1e-2 ? 0 : 1;
    std::printf("  %s %s: rel_l2 %.2e%s\n", error < 1e-2 ? "ok  " : "FAIL", what.c_str(), error,
                identical ? " (bitwise identical)" : "");
  }
  return failures;
}

// CPU selections from the GPU's own scores; returns the number of rows that differ.
int compare_rows(const Csr& want, const std::vector<int>& offsets, const std::vector<int>& indices) {
  int bad = 0;
  for (size_t r = 0; r + 1 < want.row_offsets.size(); ++r) {
    const std::vector<int> a(want.key_indices.begin() + want.row_offsets[r],
                             want.key_indices.begin() + want.row_offsets[r + 1]);
    const std::vector<int> b(indices.begin() + offsets[r], indices.begin() + offsets[r + 1]);
    bad += a != b ? 1 : 0;
  }
  return bad;
}
std::vector<int> cpu_order(const float* scores, int count, const std::vector<char>* eligible = nullptr) {
  std::vector<int> order(static_cast<size_t>(count));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    const bool ea = !eligible || (*eligible)[size_t(a)], eb = !eligible || (*eligible)[size_t(b)];
    return ea != eb ? ea : scores[a] > scores[b];
  });
  return order;
}
void push_row(Csr& csr, std::vector<int> order, int keep) {
  std::sort(order.begin(), order.begin() + keep);
  csr.key_indices.insert(csr.key_indices.end(), order.begin(), order.begin() + keep);
  csr.row_offsets.push_back(int(csr.key_indices.size()));
}

// Planner checks at a bench shape: pooling vs CPU means, and each rule's selection vs the CPU rule applied to the
// GPU's own scores (so only the selection is compared). Top-p rows whose cut lies within 1e-4 of p are reported
// as near ties, not failures (fp32 vs fp64 sums may decide those either way).
int check_planners() {
  int failures = 0;
  sparse::PlannerGeometry g;
  g.heads = kBenchHeads;
  g.head_dim = kBenchDim;
  g.query_tokens = kBenchLq;
  g.key_frames = 21;
  g.tokens_per_frame = kTokensPerFrame;
  for (int block : {64, 128}) {
    g.query_block = g.key_block = block;
    const int64_t row = int64_t(g.heads) * g.head_dim;
    const auto k = host_values(size_t(g.key_tokens()) * row, 22, 2.f);
    auto dq = device_values(size_t(g.query_tokens) * row, 21, 2.f), dk = device_values(k.size(), 22, 2.f);
    const size_t bytes = sparse::planner_workspace_bytes(g);
    DeviceBuffer workspace(bytes);
    const sparse::PlannerBuffers b = sparse::planner_buffers(workspace.ptr, g);
    const int rows = g.rows(), kb = g.key_blocks();
    DeviceBuffer offsets(size_t(rows + 1) * 4), indices(size_t(sparse::planner_max_selected(g)) * 4);
    const sparse::MaskOutput out{offsets.as<int>(), indices.as<int>(), nullptr};

    // Pooled keys vs CPU (double) means.
    sparse::pool_keys(dk->ptr, row, g, b.pooled_keys, nullptr, nullptr);
    synchronize_or_die("pool_keys");
    const auto pooled = download<float>(b.pooled_keys, size_t(g.heads) * kb * g.head_dim);
    const Geometry kg{g.tokens_per_frame, block, block, g.query_tokens, g.key_frames};
    double diff = 0, ref = 0;
    for (int h = 0; h < g.heads; ++h)
      for (int blk = 0; blk < kb; ++blk)
        for (int d = 0; d < g.head_dim; ++d) {
          double sum = 0;
          for (int t = 0; t < kg.block_length(blk); ++t)
            sum += k[(size_t(kg.block_start(blk) + t) * g.heads + h) * g.head_dim + d];
          const double want = sum / kg.block_length(blk), got = pooled[(size_t(h) * kb + blk) * g.head_dim + d];
          diff += (got - want) * (got - want);
          ref += want * want;
        }
    const double pool_error = std::sqrt(diff / ref);
    failures += pool_error < 1e-5 ? 0 : 1;
    std::printf("  %s pool_keys block %d: rel_l2 %.2e vs CPU means\n", pool_error < 1e-5 ? "ok  " : "FAIL", block,
                pool_error);

    const int topk = int(0.15 * kb);
    sparse::HsaParams hsa;  // the short config: chunk 3, keep_frames 6, sink 1, near 2
    hsa.topk = std::min(topk, sparse::hsa_eligible_blocks(g, hsa));
    const float scale = 1.f / std::sqrt(float(g.head_dim)), p = 0.9f;
    for (int rule = 0; rule < 3; ++rule) {
      const char* name = rule == 0 ? "topk" : rule == 1 ? "hsa" : "topp";
      if (rule == 0) sparse::plan_topk(dq->ptr, row, dk->ptr, row, g, topk, workspace.ptr, bytes, out);
      if (rule == 1) sparse::plan_hsa(dq->ptr, row, dk->ptr, row, g, hsa, workspace.ptr, bytes, out);
      if (rule == 2) sparse::plan_topp(dq->ptr, row, dk->ptr, row, g, scale, p, workspace.ptr, bytes, out);
      synchronize_or_die(std::string("plan_") + name);
      const auto scores = download<float>(b.scores, size_t(rows) * kb);
      const auto frame_scores = download<float>(b.frame_scores, size_t(rows) * g.key_frames);
      const auto got_offsets = download<int>(offsets.ptr, size_t(rows + 1));
      const auto got_indices = download<int>(indices.ptr, size_t(got_offsets.back()));
      Csr want;
      int near_ties = 0;
      for (int r = 0; r < rows; ++r) {
        const float* s = &scores[size_t(r) * kb];
        if (rule == 0) push_row(want, cpu_order(s, kb), topk);
        if (rule == 1) {
          const int past = g.key_frames - hsa.chunk_frames, middle_end = past - hsa.keep_near;
          std::vector<char> frame_ok(size_t(g.key_frames));
          for (int f = 0; f < g.key_frames; ++f) frame_ok[size_t(f)] = f < hsa.keep_sink || f >= middle_end;
          const auto middle =
              cpu_order(&frame_scores[size_t(r) * g.key_frames + hsa.keep_sink], middle_end - hsa.keep_sink);
          for (int i = 0; i < std::min(hsa.keep_frames - hsa.keep_sink - hsa.keep_near, int(middle.size())); ++i)
            frame_ok[size_t(hsa.keep_sink + middle[size_t(i)])] = 1;
          std::vector<char> eligible(static_cast<size_t>(kb));
          for (int blk = 0; blk < kb; ++blk) eligible[size_t(blk)] = frame_ok[size_t(blk / g.blocks_per_frame())];
          push_row(want, cpu_order(s, kb, &eligible), hsa.topk);
        }
        if (rule == 2) {
          const auto order = cpu_order(s, kb);
          double total = 0, mass = 0, margin = 1;
          for (int i = 0; i < kb; ++i) total += std::exp((double(s[i]) - s[order[0]]) * scale);
          int keep = 0;
          for (int j = 0; j < kb; ++j) {
            mass += std::exp((double(s[order[size_t(j)]]) - s[order[0]]) * scale) / total;
            margin = std::min(margin, std::fabs(mass - p));
            if (keep == 0 && mass >= p) keep = j + 1;
          }
          push_row(want, order, std::max(1, keep == 0 ? kb : keep));
          const std::vector<int> a(
              want.key_indices.end() - (want.row_offsets[size_t(r) + 1] - want.row_offsets[size_t(r)]),
              want.key_indices.end());
          const std::vector<int> got(got_indices.begin() + got_offsets[size_t(r)],
                                     got_indices.begin() + got_offsets[size_t(r) + 1]);
          if (a != got && margin < 1e-4) ++near_ties;
        }
      }
      const int bad = compare_rows(want, got_offsets, got_indices) - near_ties;
      failures += bad == 0 ? 0 : 1;
      std::printf("  %s plan_%s block %d: %d of %d rows differ from the CPU rule (%d near ties), %d blocks selected\n",
                  bad == 0 ? "ok  " : "FAIL", name, block, bad, rows, near_ties, got_offsets.back());
    }
  }
  return failures;
}

// ---- bench --------------------------------------------------------------------------------------------------------
double median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

// launch(i) runs repetition i (rotating over input sets); median ms of `reps` after 3 warm-ups.
double time_ms(const std::function<void(int)>& launch, int reps, const std::string& what) {
  for (int w = 0; w < 3; ++w) launch(w);
  synchronize_or_die(what + " warm-up");
  cudaEvent_t start, stop;
  LF_CUDA_CHECK(cudaEventCreate(&start), "event");
  LF_CUDA_CHECK(cudaEventCreate(&stop), "event");
  std::vector<float> times;
  for (int r = 0; r < reps; ++r) {
    LF_CUDA_CHECK(cudaEventRecord(start), "event");
    launch(r);
    LF_CUDA_CHECK(cudaEventRecord(stop), "event");
    synchronize_or_die(what);
    float ms = 0;
    LF_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop), "event");
    times.push_back(ms);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return median(times);
}

// Kernel rows: kQueuedLaunches launches (rotating input sets) between one pair of events, divided: the GPU time of
// a launch in a queue, as in the engine. One launch alone between events also counts the host's launch work
// (tensor-map encoding, attribute calls), which at density 0.1 and Lk 4680 is as long as the kernel itself.
constexpr int kQueuedLaunches = 10;
double time_queued_ms(const std::function<void(int)>& launch, int reps, const std::string& what) {
  return time_ms(
             [&](int r) {
               for (int i = 0; i < kQueuedLaunches; ++i) launch(r * kQueuedLaunches + i);
             },
             reps, what) /
         kQueuedLaunches;
}

// Host time of one launch call (selector, tensor maps, attributes, the launch itself): the mean over
// kQueuedLaunches calls without synchronisation, median over reps. When it exceeds the kernel's GPU time, a queue of
// launches is host-bound and the GPU idles between kernels.
double host_launch_us(const std::function<void(int)>& launch, int reps, const std::string& what) {
  for (int w = 0; w < 3; ++w) launch(w);
  synchronize_or_die(what + " warm-up");
  std::vector<float> times;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < kQueuedLaunches; ++i) launch(r * kQueuedLaunches + i);
    const auto t1 = std::chrono::steady_clock::now();
    synchronize_or_die(what);
    times.push_back(float(std::chrono::duration<double, std::micro>(t1 - t0).count() / kQueuedLaunches));
  }
  return median(times);
}

struct DenseRow {
  int lk;
  std::string variant, launch;  // launch: "grid" (one CTA per item) or "persistent" (Hopper)
  double ms;        // queued (kQueuedLaunches per event pair)
  double alone_ms;  // one launch per event pair
  double host_us;   // host_launch_us
};
// ratio = sparse_ms / (token_density x dense_ms), block_ratio = sparse_ms / (density x dense_ms), with dense_ms the
// faster dense launch of the chosen variant in this run. tuning: the Hopper sparse launch ("grid" = the kernel as
// it was before persistence and packing, "persistent", "persistent+packed" = the default).
struct SparseRow {
  int lk;
  std::string requested, chosen, tuning;
  int query_block, key_block;
  double density, token_density, sparse_ms, dense_ms, ratio, block_ratio;
  double sparse_alone_ms;  // one launch per event pair (host launch work included)
  double host_us;          // host_launch_us
  // HBM floors at the measured copy bandwidth (BenchResult::hbm_gbps): memory_floor_ms moves q, out and each head's
  // distinct selected K/V blocks once (perfect L2 reuse); no_reuse_ms moves K/V once per selected (row, block).
  double memory_floor_ms, no_reuse_ms;
};

struct PlannerRow {
  int lk, block, topk, hsa_topk;
  double pool_score_ms, topk_ms, hsa_ms, topp_ms;
  // The engine's cached planner with the rule the engine uses at this Lk (HSA once past > keep_frames, else
  // top-k): a chunk's first call (every key block pooled) and its later calls (only the chunk's 3 frames).
  double cached_first_ms = -1, cached_step_ms = -1;
  // 20 later calls back to back, per call: the slower of the host's submission and the GPU's execution. One call
  // alone on an idle GPU also pays the host's launch latency, which the engine hides behind the previous GEMMs.
  double cached_step_queued_ms = -1;
  double recall_ms = -1;  // sampled_recall of that mask, every 16th query row (the statistics path)
};

struct BenchResult {
  double hbm_gbps = 0;  // device-to-device copy, bytes read + written per second (measure_hbm_gbps)
  std::vector<DenseRow> dense;
  std::vector<SparseRow> sparse;
  std::vector<PlannerRow> planner;
  std::vector<lab::planner::BreakdownRow> planner_breakdown;  // lab_sparse_planner.cuh
};

// The HBM ceiling the memory floors use: a 1 GiB device-to-device copy (read + write), median of reps.
double measure_hbm_gbps(int reps) {
  const size_t bytes = size_t(1) << 30;
  DeviceBuffer a(bytes), b(bytes);
  LF_CUDA_CHECK(cudaMemset(a.ptr, 1, bytes), "hbm clear");
  const double ms = time_ms([&](int) { LF_CUDA_CHECK(cudaMemcpyAsync(b.ptr, a.ptr, bytes, cudaMemcpyDeviceToDevice),
                                                     "hbm copy"); },
                            reps, "hbm copy");
  return 2.0 * double(bytes) / (ms * 1e-3) / 1e9;
}

// Bytes of K and V the mask reads: each head's distinct blocks (reuse) or every (row, block) pair (no reuse).
std::pair<double, double> kv_bytes(const Geometry& g, int heads, int dim, const Csr& mask) {
  double distinct = 0, every = 0;
  for (int h = 0; h < heads; ++h) {
    std::vector<char> seen(size_t(g.key_blocks()), 0);
    for (int qb = 0; qb < g.query_blocks(); ++qb) {
      const int r = h * g.query_blocks() + qb;
      for (int i = mask.row_offsets[size_t(r)]; i < mask.row_offsets[size_t(r) + 1]; ++i) {
        const int b = mask.key_indices[size_t(i)];
        const double block_bytes = 2.0 * g.block_length(b) * dim * 2;  // K and V, bf16
        every += block_bytes;
        if (!seen[size_t(b)]) distinct += block_bytes, seen[size_t(b)] = 1;
      }
    }
  }
  return {distinct, every};
}

void bench_lk(int lk, int reps, size_t l2_bytes, BenchResult& result) {
  const int lq = kBenchLq, heads = kBenchHeads, dim = kBenchDim;
  const int64_t row = int64_t(heads) * dim;
  const size_t set_bytes = (size_t(lq) * 2 + size_t(lk) * 2) * row * 2;  // q, out, k, v
  const int sets = g_filter.warm ? 1 : int(std::max<size_t>(2, (3 * l2_bytes + set_bytes - 1) / set_bytes));
  std::vector<std::unique_ptr<DeviceBuffer>> buffers;
  std::vector<FlashAttentionParams> params;
  for (int i = 0; i < sets; ++i) {
    buffers.push_back(device_values(size_t(lq) * row, 100 + i, 2.f));
    buffers.push_back(device_values(size_t(lk) * row, 200 + i, 2.f));
    buffers.push_back(device_values(size_t(lk) * row, 300 + i, 1.f));
    buffers.push_back(std::make_unique<DeviceBuffer>(size_t(lq) * row * 2));
    const size_t n = buffers.size();
    params.push_back(params_for(buffers[n - 4]->ptr, buffers[n - 3]->ptr, buffers[n - 2]->ptr, buffers[n - 1]->ptr, lq,
                                lk, heads, dim));
  }
  std::map<FlashVariant, double> dense_ms;
  for (FlashVariant v : {FlashVariant::MmaSync, FlashVariant::Hopper}) {
    if (!flash_attention_supported(params[0], v, nullptr)) continue;
    for (bool persistent : {false, true}) {
      if (persistent && v != FlashVariant::Hopper) continue;
      flash::hopper_dense_persistent() = persistent;
      const double ms =
          time_queued_ms([&](int i) { flash_attention_forward(params[size_t(i % sets)], v, nullptr); }, reps,
                         fmt::format("dense {} lk {}", flash_variant_name(v), lk));
      const double alone_ms = time_ms([&](int i) { flash_attention_forward(params[size_t(i % sets)], v, nullptr); },
                                      reps, fmt::format("dense {} lk {} alone", flash_variant_name(v), lk));
      const char* launch = persistent ? "persistent" : "grid";
      const double host_us =
          host_launch_us([&](int i) { flash_attention_forward(params[size_t(i % sets)], v, nullptr); }, reps,
                         fmt::format("dense {} lk {} host", flash_variant_name(v), lk));
      result.dense.push_back({lk, flash_variant_name(v), launch, ms, alone_ms, host_us});
      dense_ms[v] = dense_ms.count(v) ? std::min(dense_ms[v], ms) : ms;
      std::printf("lk %5d dense %-8s %-10s %8.3f ms queued (%.3f ms alone, host %.1f us per launch)\n", lk,
                  flash_variant_name(v), launch, ms, alone_ms, host_us);
    }
    flash::hopper_dense_persistent() = flash::kHopperDensePersistent;
  }
  for (const Combo& combo : kCombos)
  for (const HopperTuning& tuning : kHopperTunings) {
    if (combo.variant == FlashVariant::Auto) continue;  // the same kernels as the explicit rows
    if (g_filter.hopper_default && !(combo.variant == FlashVariant::Hopper && combo.key_block == 128 &&
                                     tuning.persistent && tuning.pack_tails))
      continue;
    if (combo.variant != FlashVariant::Hopper && (tuning.persistent || tuning.pack_tails)) continue;  // one launch
    flash::block_sparse_hopper_tuning() = {tuning.persistent, tuning.pack_tails, nullptr, tuning.early_handover,
                                           tuning.double_q};
    const Geometry g{kTokensPerFrame, combo.key_block, combo.query_block, lq, lk / kTokensPerFrame};
    const std::vector<double> densities =
        g_filter.density >= 0 ? std::vector<double>{g_filter.density}
                              : std::vector<double>(std::begin(kDensities), std::end(kDensities));
    for (double density : densities) {
      const int per_row = std::max(1, int(std::lround(density * g.key_blocks())));
      const Csr mask = random_mask(g, heads, per_row, uint64_t(lk) * 31 + per_row, g_filter.shared_rows);
      const DeviceMask device_mask = upload_mask(mask);
      const BlockSparseLayout layout = device_mask.layout(g, heads);
      FlashVariant chosen = combo.variant;
      std::string why;
      if (!flash_attention_block_sparse_select(params[0], layout, combo.variant, &chosen, &why)) {
        if (density == densities[0]) std::printf("lk %5d skip %s: %s\n", lk, combo_name(combo).c_str(), why.c_str());
        break;
      }
      auto launch = [&](int i) {
        flash_attention_block_sparse_forward(params[size_t(i % sets)], layout, combo.variant, nullptr);
      };
      const double ms =
          time_queued_ms(launch, reps, fmt::format("sparse {} lk {} density {}", combo_name(combo), lk, density));
      const double alone_ms = time_ms(launch, reps, "sparse alone");
      const double host_us = host_launch_us(launch, reps, "sparse host");
      const double tokens = token_density(g, mask), dense = dense_ms[chosen];
      const double blocks = double(per_row) / g.key_blocks();
      const auto [kv_distinct, kv_every] = kv_bytes(g, heads, dim, mask);
      const double qo_bytes = 2.0 * lq * row * 2, gb_per_ms = result.hbm_gbps * 1e-3 * 1e9;
      const double memory_floor = (qo_bytes + kv_distinct) / gb_per_ms, no_reuse = (qo_bytes + kv_every) / gb_per_ms;
      const char* tuning_name = chosen == FlashVariant::Hopper ? tuning.name : "grid";
      result.sparse.push_back({lk, flash_variant_name(combo.variant), flash_variant_name(chosen), tuning_name,
                               combo.query_block, combo.key_block, blocks, tokens, ms, dense, ms / (tokens * dense),
                               ms / (blocks * dense), alone_ms, host_us, memory_floor, no_reuse});
      std::printf(
          "lk %5d %-18s %-17s density %.2f (tokens %.3f): sparse %8.3f ms, dense %8.3f ms, ratio %.2f (blocks "
          "%.2f); alone %.3f ms, host %.1f us; HBM floor %.3f ms (ratio %.2f), no L2 reuse %.3f ms\n",
          lk, combo_name(combo).c_str(), tuning_name, blocks, tokens, ms, dense, ms / (tokens * dense),
          ms / (blocks * dense), alone_ms, host_us, memory_floor, memory_floor / (tokens * dense), no_reuse);
    }
  }
  flash::block_sparse_hopper_tuning() = {};
  if (!g_filter.planner) return;
  // Planners on the same shape (one input set: pooling streams q and k once, like the attention call).
  for (int block : {64, 128}) {
    sparse::PlannerGeometry g;
    g.heads = heads;
    g.head_dim = dim;
    g.query_tokens = lq;
    g.query_block = g.key_block = block;
    g.key_frames = lk / kTokensPerFrame;
    g.tokens_per_frame = kTokensPerFrame;
    const size_t bytes = sparse::planner_workspace_bytes(g);
    DeviceBuffer workspace(bytes), offsets(size_t(g.rows() + 1) * 4),
        indices(size_t(sparse::planner_max_selected(g)) * 4);
    const sparse::MaskOutput out{offsets.as<int>(), indices.as<int>(), nullptr};
    const sparse::PlannerBuffers b = sparse::planner_buffers(workspace.ptr, g);
    const FlashAttentionParams& p = params[0];
    PlannerRow pr{lk, block, int(0.15 * g.key_blocks()), 0, 0, 0, -1, 0, -1, -1, -1, -1};
    pr.pool_score_ms = time_ms(
        [&](int) {
          sparse::pool_queries(p.q, row, g, b.pooled_queries);
          sparse::pool_keys(p.k, row, g, b.pooled_keys, b.pooled_frame_keys);
          sparse::block_scores(b.pooled_queries, b.pooled_keys, heads, g.query_blocks(), g.key_blocks(), dim, b.scores);
        },
        reps, "pool + scores");
    pr.topk_ms = time_ms([&](int) { sparse::plan_topk(p.q, row, p.k, row, g, pr.topk, workspace.ptr, bytes, out); },
                         reps, "plan_topk");
    sparse::HsaParams hsa;
    if (g.key_frames - hsa.chunk_frames > hsa.keep_frames) {  // the released dispatch: HSA once past > keep_frames
      hsa.topk = pr.hsa_topk = std::min(pr.topk, sparse::hsa_eligible_blocks(g, hsa));
      pr.hsa_ms = time_ms([&](int) { sparse::plan_hsa(p.q, row, p.k, row, g, hsa, workspace.ptr, bytes, out); }, reps,
                          "plan_hsa");
    }
    pr.topp_ms = time_ms(
        [&](int) {
          sparse::plan_topp(p.q, row, p.k, row, g, 1.f / std::sqrt(float(dim)), 0.9f, workspace.ptr, bytes, out);
        },
        reps, "plan_topp");
    {
      const size_t cached_bytes = sparse::cached_planner_workspace_bytes(g);
      DeviceBuffer cached_workspace(cached_bytes), pooled_keys(size_t(heads) * g.key_blocks() * dim * 4);
      sparse::CachedPlanInputs in;
      in.q = p.q;
      in.q_row_stride = row;
      in.k = p.k;
      in.k_row_stride = row;
      in.geometry = g;
      in.pooled_keys = pooled_keys.as<float>();
      in.workspace = cached_workspace.ptr;
      in.workspace_bytes = cached_bytes;
      auto plan = [&](int first_new_frame) {
        in.first_new_frame = first_new_frame;
        if (pr.hsa_topk > 0)
          sparse::plan_hsa_cached(in, hsa, out);
        else
          sparse::plan_topk_cached(in, pr.topk, out);
      };
      pr.cached_first_ms = time_ms([&](int) { plan(0); }, reps, "cached plan, first call");
      pr.cached_step_ms =
          time_ms([&](int) { plan(g.key_frames - hsa.chunk_frames); }, reps, "cached plan, later call");
      pr.cached_step_queued_ms = time_ms(
                                     [&](int) {
                                       for (int i = 0; i < 20; ++i) plan(g.key_frames - hsa.chunk_frames);
                                     },
                                     reps, "cached plan, 20 later calls") /
                                 20;
      DeviceBuffer recall(size_t(heads) * sparse::recall_sampled_rows(lq, 16) * 4);
      pr.recall_ms = time_ms(
          [&](int) {
            sparse::sampled_recall(p.q, row, p.k, row, g, out.row_offsets, out.key_indices, 16,
                                   1.f / std::sqrt(float(dim)), recall.as<float>());
          },
          5, "sampled recall");
    }
    result.planner.push_back(pr);
    std::printf(
        "lk %5d planner block %3d: pool+scores %.3f ms, topk(%d) %.3f ms, hsa(%d) %.3f ms, topp %.3f ms; cached %s: "
        "first call %.3f ms, later calls %.3f ms (%.4f ms queued); recall (rows / 16) %.3f ms\n",
        lk, block, pr.pool_score_ms, pr.topk, pr.topk_ms, pr.hsa_topk, pr.hsa_ms, pr.topp_ms,
        pr.hsa_topk > 0 ? "hsa" : "topk", pr.cached_first_ms, pr.cached_step_ms, pr.cached_step_queued_ms, pr.recall_ms);
  }
}

// ---- trace (--trace): where a work item's time goes in the Hopper kernel ------------------------------------------
// One launch per case with FlashKernelArgs::trace on (after an untraced warm-up launch of the same inputs), then
// the mean of each phase over every (CTA, item, consumer) stamped, in microseconds of the SM clock.
void trace_case(int lk, int per_row, int clock_khz, bool early_handover, bool double_q) {
  const int lq = kBenchLq, heads = kBenchHeads, dim = kBenchDim;
  const int64_t row = int64_t(heads) * dim;
  auto q = device_values(size_t(lq) * row, 11, 2.f), k = device_values(size_t(lk) * row, 12, 2.f),
       v = device_values(size_t(lk) * row, 13, 1.f);
  DeviceBuffer out(size_t(lq) * row * 2);
  const FlashAttentionParams params = params_for(q->ptr, k->ptr, v->ptr, out.ptr, lq, lk, heads, dim);
  const Geometry g{kTokensPerFrame, 128, 128, lq, lk / kTokensPerFrame};
  const Csr mask = random_mask(g, heads, per_row, uint64_t(lk) * 31 + per_row);
  const DeviceMask device_mask = upload_mask(mask);
  const BlockSparseLayout layout = device_mask.layout(g, heads);
  const int ctas = flash::hopper_persistent_ctas();
  const size_t stamps = size_t(ctas) * flash::kTraceItems * flash::kTraceRoles * flash::kTracePoints;
  DeviceBuffer trace(stamps * sizeof(long long));
  LF_CUDA_CHECK(cudaMemset(trace.ptr, 0, stamps * sizeof(long long)), "trace clear");
  flash::block_sparse_hopper_tuning() = {};
  flash::block_sparse_hopper_tuning().early_handover = early_handover;
  flash::block_sparse_hopper_tuning().double_q = double_q;
  flash_attention_block_sparse_forward(params, layout, FlashVariant::Hopper, nullptr);  // warm-up
  cudaEvent_t start, stop;
  LF_CUDA_CHECK(cudaEventCreate(&start), "event");
  LF_CUDA_CHECK(cudaEventCreate(&stop), "event");
  flash::block_sparse_hopper_tuning().trace = trace.as<long long>();
  LF_CUDA_CHECK(cudaEventRecord(start), "event");
  flash_attention_block_sparse_forward(params, layout, FlashVariant::Hopper, nullptr);
  LF_CUDA_CHECK(cudaEventRecord(stop), "event");
  flash::block_sparse_hopper_tuning() = {};
  synchronize_or_die("trace launch");
  float kernel_ms = 0;
  LF_CUDA_CHECK(cudaEventElapsedTime(&kernel_ms, start, stop), "event");
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  const std::vector<long long> t = download<long long>(trace.ptr, stamps);
  auto at = [&](int cta, int slot, int role, int point) {
    return t[((size_t(cta) * flash::kTraceItems + slot) * flash::kTraceRoles + role) * flash::kTracePoints + point];
  };
  const double us_per_cycle = 1e3 / double(clock_khz);
  // Consumer phases (from point a to point b of the same item), producer phases, and item-to-item gaps.
  struct Phase { const char* name; int role; int from_slot_offset; int a, b; };
  const Phase phases[] = {
      {"consumer: wait for Q (item start -> q_full)", 0, 0, flash::kTraceItemStart, flash::kTraceQReady},
      {"consumer: wait for K 0 (q_full -> k_full)", 0, 0, flash::kTraceQReady, flash::kTraceFirstK},
      {"consumer: tile 0 S + softmax", 0, 0, flash::kTraceFirstK, flash::kTraceFirstSoftmax},
      {"consumer: tiles 1.. (loop)", 0, 0, flash::kTraceFirstSoftmax, flash::kTraceLoopDone},
      {"consumer: last P V", 0, 0, flash::kTraceLoopDone, flash::kTraceLastPv},
      {"consumer: finish + store", 0, 0, flash::kTraceLastPv, flash::kTraceStored},
      {"consumer: whole item", 0, 0, flash::kTraceItemStart, flash::kTraceStored},
      {"producer: wait for q_empty", 2, 0, flash::kTraceItemStart, flash::kTraceQReady},
      {"producer: issue the item's K/V loads", 2, 0, flash::kTraceQReady, flash::kTraceFirstK},
  };
  std::printf("trace lk %5d, %2d blocks per row (%d items on %d CTAs)%s%s: kernel %.1f us\n", lk, per_row,
              heads * g.query_blocks(), ctas, early_handover ? ", early hand-over" : "",
              double_q ? ", two Q tiles + 2 stages" : "", kernel_ms * 1e3);
  for (const Phase& phase : phases) {
    std::string line = fmt::format("  {:<44}", phase.name);
    for (int role : phase.role == 2 ? std::vector<int>{2} : std::vector<int>{0, 1}) {
      double sum = 0;
      int n = 0;
      for (int cta = 0; cta < ctas; ++cta)
        for (int slot = 0; slot < flash::kTraceItems; ++slot) {
          const long long a = at(cta, slot, role, phase.a), b = at(cta, slot, role, phase.b);
          if (a == 0 || b == 0) continue;
          sum += double(b - a);
          ++n;
        }
      line += fmt::format(" {}{:7.2f} us (n {})", role == 2 ? "" : role == 0 ? "c0 " : "  c1 ",
                          n ? sum / n * us_per_cycle : 0.0, n);
    }
    std::printf("%s\n", line.c_str());
  }
  // Q load latency: the producer issued Q (its kTraceQReady) -> the consumers saw it (their kTraceQReady).
  // Item gap: a consumer's store of item s -> its start of item s + 1. CTA span: setup barrier -> last store.
  double q_latency = 0, gap = 0, span = 0, first = 0;
  int nq = 0, ng = 0, ns = 0;
  for (int cta = 0; cta < ctas; ++cta) {
    long long last = 0;
    for (int slot = 0; slot < flash::kTraceItems; ++slot)
      for (int role : {0, 1}) {
        const long long issued = at(cta, slot, 2, flash::kTraceQReady), seen = at(cta, slot, role, flash::kTraceQReady);
        if (issued && seen) q_latency += double(seen - issued), ++nq;
        const long long stored = at(cta, slot, role, flash::kTraceStored);
        if (slot + 1 < flash::kTraceItems) {
          const long long next = at(cta, slot + 1, role, flash::kTraceItemStart);
          if (stored && next) gap += double(next - stored), ++ng;
        }
        last = std::max(last, stored);
      }
    const long long begin = at(cta, 0, 2, flash::kTraceKernelStart);
    if (begin && last) span += double(last - begin), ++ns;
    const long long start0 = at(cta, 0, 0, flash::kTraceItemStart);
    if (begin && start0) first += double(start0 - begin);
  }
  std::printf("  %-44s %7.2f us\n", "producer Q issue -> consumer q_full", nq ? q_latency / nq * us_per_cycle : 0.0);
  std::printf("  %-44s %7.2f us\n", "consumer store -> next item start", ng ? gap / ng * us_per_cycle : 0.0);
  std::printf("  %-44s %7.2f us\n", "CTA setup -> first item start", ns ? first / ns * us_per_cycle : 0.0);
  std::printf("  %-44s %7.2f us (mean over CTAs)\n", "CTA setup -> last store", ns ? span / ns * us_per_cycle : 0.0);
}

void write_json(const std::string& path, const std::string& device, const std::string& commit, int argc, char** argv,
                int failures, const BenchResult& r) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) fail("cannot write {}", path);
  std::fprintf(f, "{\n  \"device\": \"%s\",\n  \"commit\": \"%s\",\n  \"command\": \"", device.c_str(), commit.c_str());
  for (int i = 0; i < argc; ++i) std::fprintf(f, "%s%s", i ? " " : "", argv[i]);
  std::fprintf(f,
               "\",\n  \"correctness_failures\": %d,\n  \"lq\": %d, \"heads\": %d, \"head_dim\": %d, "
               "\"tokens_per_frame\": %d, \"hbm_gbps\": %.1f,\n  \"dense\": [",
               failures, kBenchLq, kBenchHeads, kBenchDim, kTokensPerFrame, r.hbm_gbps);
  for (size_t i = 0; i < r.dense.size(); ++i)
    std::fprintf(f, "%s\n    {\"lk\": %d, \"variant\": \"%s\", \"launch\": \"%s\", \"ms\": %.4f, \"alone_ms\": %.4f, "
                 "\"host_launch_us\": %.2f}",
                 i ? "," : "", r.dense[i].lk, r.dense[i].variant.c_str(), r.dense[i].launch.c_str(), r.dense[i].ms,
                 r.dense[i].alone_ms, r.dense[i].host_us);
  std::fprintf(f, "\n  ],\n  \"sparse\": [");
  for (size_t i = 0; i < r.sparse.size(); ++i) {
    const SparseRow& s = r.sparse[i];
    std::fprintf(
        f,
        "%s\n    {\"lk\": %d, \"variant\": \"%s\", \"tuning\": \"%s\", \"query_block\": %d, \"key_block\": %d, "
        "\"density\": %.4f, \"token_density\": %.4f, \"sparse_ms\": %.4f, \"dense_ms\": %.4f, \"ratio\": %.3f, "
        "\"block_ratio\": %.3f, \"sparse_alone_ms\": %.4f, \"host_launch_us\": %.2f, \"memory_floor_ms\": %.4f, "
        "\"no_reuse_ms\": %.4f}",
        i ? "," : "", s.lk, s.chosen.c_str(), s.tuning.c_str(), s.query_block, s.key_block, s.density,
        s.token_density, s.sparse_ms, s.dense_ms, s.ratio, s.block_ratio, s.sparse_alone_ms, s.host_us,
        s.memory_floor_ms, s.no_reuse_ms);
  }
  std::fprintf(f, "\n  ],\n  \"planner\": [");
  for (size_t i = 0; i < r.planner.size(); ++i) {
    const PlannerRow& p = r.planner[i];
    std::fprintf(f,
                 "%s\n    {\"lk\": %d, \"block\": %d, \"pool_score_ms\": %.4f, \"topk\": %d, \"topk_ms\": %.4f, "
                 "\"hsa_topk\": %d, \"hsa_ms\": %.4f, \"topp_ms\": %.4f, \"cached_first_ms\": %.4f, "
                 "\"cached_step_ms\": %.4f, \"cached_step_queued_ms\": %.4f, \"recall_stride16_ms\": %.4f}",
                 i ? "," : "", p.lk, p.block, p.pool_score_ms, p.topk, p.topk_ms, p.hsa_topk, p.hsa_ms, p.topp_ms,
                 p.cached_first_ms, p.cached_step_ms, p.cached_step_queued_ms, p.recall_ms);
  }
  std::fprintf(f, "\n  ],\n  ");
  lab::planner::write_breakdown_json(f, r.planner_breakdown);
  std::fprintf(f, "\n}\n");
  std::fclose(f);
  std::printf("wrote %s\n", path.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  std::string json_path, commit = "unknown";
  bool check = true, bench = true, quick = false, planner_only = false, trace = false;
  int reps = 20;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--json" && i + 1 < argc)
      json_path = argv[++i];
    else if (a == "--commit" && i + 1 < argc)
      commit = argv[++i];
    else if (a == "--reps" && i + 1 < argc)
      reps = std::max(5, std::atoi(argv[++i]));
    else if (a == "--check-only")
      bench = false;
    else if (a == "--bench-only")
      check = false;
    else if (a == "--quick")
      quick = true;
    else if (a == "--planner-only")
      planner_only = true;
    else if (a == "--lk" && i + 1 < argc)
      g_filter.lk = std::atoi(argv[++i]);
    else if (a == "--density" && i + 1 < argc)
      g_filter.density = std::atof(argv[++i]);
    else if (a == "--hopper-default")
      g_filter.hopper_default = true;
    else if (a == "--no-planner")
      g_filter.planner = false;
    else if (a == "--warm")
      g_filter.warm = true;
    else if (a == "--trace")
      trace = true;
    else if (a == "--shared-rows")
      g_filter.shared_rows = true;
    else {
      std::fprintf(stderr,
                   "usage: %s [--json PATH] [--commit SHA] [--check-only] [--bench-only] [--planner-only] [--reps N] "
                   "[--quick] [--lk N] [--density D] [--hopper-default] [--no-planner] [--warm] [--shared-rows] [--trace]\n",
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
    std::printf("device: %s\n", device.c_str());
    if (trace) {  // diagnostics only: phase times of the Hopper kernel's work items
      int clock_khz = 0;
      LF_CUDA_CHECK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, 0), "clock rate");
      for (const auto& [lk, per_row] : std::vector<std::pair<int, int>>{
               {4680, 1}, {4680, 4}, {4680, 39}, {9360, 8}, {32760, 27}, {32760, 273}})
        for (bool double_q : {false, true})
          for (bool early_handover : {false, true}) trace_case(lk, per_row, clock_khz, early_handover, double_q);
      return 0;
    }
    int failures = 0;
    if (check) {
      std::printf(
          "== correctness: sparse kernel vs fp64 CPU masked reference (rel_l2 < 1e-2), full mask vs dense ==\n");
      if (!planner_only) failures += check_attention();
      std::printf("== correctness: planners at lq %d, 21 frames x %d, %d heads ==\n", kBenchLq, kTokensPerFrame,
                  kBenchHeads);
      failures += check_planners();
      std::printf("correctness: %s (%d failing case%s)\n", failures ? "FAILED" : "passed", failures,
                  failures == 1 ? "" : "s");
    }
    BenchResult result;
    if (bench && !planner_only) {
      result.hbm_gbps = measure_hbm_gbps(reps);
      std::printf("HBM: %.0f GB/s (1 GiB device-to-device copy, read + write)\n", result.hbm_gbps);
      std::printf(
          "== bench: lq %d, heads %d, head_dim %d, %d tokens/frame, median of %d; ratio = sparse / (token "
          "density x dense) ==\n",
          kBenchLq, kBenchHeads, kBenchDim, kTokensPerFrame, reps);
      const std::vector<int> lks =
          quick ? std::vector<int>{4680, 32760} : std::vector<int>{4680, 9360, 14040, 18720, 23400, 28080, 32760};
      for (int lk : g_filter.lk > 0 ? std::vector<int>{g_filter.lk} : lks)
        bench_lk(lk, reps, size_t(props.l2CacheSize), result);
    }
    if (bench && g_filter.planner) {
      std::printf("== planner breakdown: the cached planner per launch group, old / radix / pdl / fused paths, median of %d ==\n",
                  std::max(reps, 20));
      int mismatches = 0;
      result.planner_breakdown =
          lab::planner::bench_breakdown(std::max(reps, 20), size_t(props.l2CacheSize), &mismatches);
      lab::planner::print_breakdown(result.planner_breakdown);
      if (mismatches > 0) std::printf("FAIL: %d planner masks differ from the old path\n", mismatches);
      failures += mismatches;
    }
    if (!json_path.empty()) write_json(json_path, device, commit, argc, argv, check ? failures : -1, result);
    return failures ? 1 : 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lab_sparse: %s\n", e.what());
    return 1;
  }
}
