#pragma once
// Shared by the test_gpu_sparse* files: device buffers, random bf16 data, the frame-aligned test geometry, random
// CSR masks, the fp64 masked-attention reference, device masks and the planner paths' scope.
#include <doctest/doctest.h>

#if LF_HAVE_CUDA
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "kernels/attention/flash_attention.h"
#include "attention/planners.h"
#include "core/block_geometry.h"
#include "core/dtype.h"
#include "core/error.h"
#include "kernels/ops/gpu_ops.h"
#include "kernels/sparse/block_sparse_attention.h"
#include "kernels/sparse/sparse_planner.h"
#include "kernels/sparse/sparse_recall.h"
#include "kernels/sparse/sparse_select_detail.h"
#include "test_util.h"

namespace {

using lf::gpu::BlockSparseLayout;
using lf::gpu::FlashAttentionParams;
using lf::gpu::FlashVariant;
namespace sparse = lf::gpu::sparse;

struct DeviceBuffer {
  void* ptr = nullptr;
  explicit DeviceBuffer(size_t bytes, const void* host = nullptr) {
    REQUIRE(cudaMalloc(&ptr, std::max<size_t>(bytes, 16)) == cudaSuccess);
    if (host != nullptr && bytes > 0) REQUIRE(cudaMemcpy(ptr, host, bytes, cudaMemcpyHostToDevice) == cudaSuccess);
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
inline std::vector<T> download(const void* device, size_t count) {
  std::vector<T> host(count);
  if (count > 0) REQUIRE(cudaMemcpy(host.data(), device, count * sizeof(T), cudaMemcpyDeviceToHost) == cudaSuccess);
  return host;
}

// Random bf16 bits and their float values (what the kernels see).
struct Bf16Data {
  std::vector<uint16_t> bits;
  std::vector<float> values;
};
inline Bf16Data random_bf16(int64_t count, uint64_t seed, float amplitude) {
  const lf::Tensor t = lf::test::random_tensor({count}, seed, amplitude);
  Bf16Data d;
  d.bits.resize(size_t(count));
  d.values.resize(size_t(count));
  for (int64_t i = 0; i < count; ++i) {
    d.bits[size_t(i)] = lf::f32_to_bf16(t.f32()[i]);
    d.values[size_t(i)] = lf::bf16_to_f32(d.bits[size_t(i)]);
  }
  return d;
}

inline double rel_l2(const std::vector<float>& got, const std::vector<float>& want) {
  double diff = 0, ref = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    diff += double(got[i] - want[i]) * double(got[i] - want[i]);
    ref += double(want[i]) * double(want[i]);
  }
  return ref > 0 ? std::sqrt(diff / ref) : std::sqrt(diff);
}

// ---- frame-aligned geometry (core/block_geometry.h) ----------------------------------------------------------
// The test's shapes, with the frame-aligned rules of core/block_geometry.h (the copy the kernels use).
struct Geometry {
  int tokens_per_frame, key_block, query_block, lq, frames;
  lf::BasicBlockGeometry<int> blocks() const { return {tokens_per_frame, lq, frames, query_block, key_block}; }
  int blocks_per_frame() const { return blocks().blocks_per_frame(); }
  int key_blocks() const { return blocks().key_blocks(); }
  int query_blocks() const { return blocks().query_blocks(); }
  int lk() const { return blocks().key_tokens(); }
  int block_start(int b) const { return blocks().key_block_start(b); }
  int block_length(int b) const { return blocks().key_block_length(b); }
};

struct Csr {
  std::vector<int> row_offsets{0}, key_indices;
};

// Random rows (each block kept with probability 1/2), plus: head 1's last query block empty, head 0's first full.
inline Csr random_mask(const Geometry& g, int heads, uint64_t seed) {
  Csr mask;
  uint64_t state = seed * 0x9e3779b97f4a7c15ull + 1;
  for (int h = 0; h < heads; ++h)
    for (int qb = 0; qb < g.query_blocks(); ++qb) {
      const bool empty = h == heads - 1 && qb == g.query_blocks() - 1, full = h == 0 && qb == 0;
      for (int b = 0; b < g.key_blocks() && !empty; ++b) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        if (full || (state >> 33) % 2 == 1) mask.key_indices.push_back(b);
      }
      mask.row_offsets.push_back(int(mask.key_indices.size()));
    }
  return mask;
}

inline Csr full_mask(const Geometry& g, int heads) {
  Csr mask;
  for (int r = 0; r < heads * g.query_blocks(); ++r) {
    for (int b = 0; b < g.key_blocks(); ++b) mask.key_indices.push_back(b);
    mask.row_offsets.push_back(int(mask.key_indices.size()));
  }
  return mask;
}

// fp64-accumulated masked attention on the bf16-rounded inputs; rows without keys are 0.
inline std::vector<float> reference_attention(const std::vector<float>& q, const std::vector<float>& k,
                                       const std::vector<float>& v, const Geometry& g, int heads, int dim,
                                       const Csr& mask, float scale) {
  const int lk = g.lk();
  std::vector<float> out(size_t(g.lq) * heads * dim, 0.f);
  std::vector<char> allowed(static_cast<size_t>(lk));
  std::vector<double> scores(static_cast<size_t>(lk)), acc(static_cast<size_t>(dim));
  for (int h = 0; h < heads; ++h)
    for (int row = 0; row < g.lq; ++row) {
      const int r = h * g.query_blocks() + row / g.query_block;
      std::fill(allowed.begin(), allowed.end(), 0);
      for (int i = mask.row_offsets[size_t(r)]; i < mask.row_offsets[size_t(r) + 1]; ++i) {
        const int b = mask.key_indices[size_t(i)];
        for (int t = 0; t < g.block_length(b); ++t) allowed[size_t(g.block_start(b) + t)] = 1;
      }
      double best = -INFINITY;
      const float* qr = &q[(size_t(row) * heads + h) * dim];
      for (int j = 0; j < lk; ++j) {
        if (!allowed[size_t(j)]) continue;
        const float* kr = &k[(size_t(j) * heads + h) * dim];
        double dot = 0;
        for (int d = 0; d < dim; ++d) dot += double(qr[d]) * kr[d];
        scores[size_t(j)] = dot * scale;
        best = std::max(best, scores[size_t(j)]);
      }
      if (best == -INFINITY) continue;
      std::fill(acc.begin(), acc.end(), 0.0);
      double total = 0;
      for (int j = 0; j < lk; ++j) {
        if (!allowed[size_t(j)]) continue;
        const double p = std::exp(scores[size_t(j)] - best);
        total += p;
        const float* vr = &v[(size_t(j) * heads + h) * dim];
        for (int d = 0; d < dim; ++d) acc[size_t(d)] += p * vr[d];
      }
      for (int d = 0; d < dim; ++d) out[(size_t(row) * heads + h) * dim + d] = float(acc[size_t(d)] / total);
    }
  return out;
}

struct AttentionInputs {
  Bf16Data q, k, v;
  DeviceBuffer dq, dk, dv, dout;
  int heads, dim;
  AttentionInputs(const Geometry& g, int heads_, int dim_, uint64_t seed)
      : q(random_bf16(int64_t(g.lq) * heads_ * dim_, seed, 2.f)),
        k(random_bf16(int64_t(g.lk()) * heads_ * dim_, seed + 1, 2.f)),
        v(random_bf16(int64_t(g.lk()) * heads_ * dim_, seed + 2, 1.f)),
        dq(q.bits.size() * 2, q.bits.data()),
        dk(k.bits.size() * 2, k.bits.data()),
        dv(v.bits.size() * 2, v.bits.data()),
        dout(q.bits.size() * 2),
        heads(heads_),
        dim(dim_) {}
  FlashAttentionParams params(const Geometry& g) const {
    FlashAttentionParams p;
    p.q = dq.ptr;
    p.k = dk.ptr;
    p.v = dv.ptr;
    p.out = dout.ptr;
    p.q_row_stride = p.k_row_stride = p.v_row_stride = p.out_row_stride = int64_t(heads) * dim;
    p.lq = g.lq;
    p.lk = g.lk();
    p.heads = heads;
    p.head_dim = dim;
    p.scale = 1.f / std::sqrt(float(dim));
    return p;
  }
  std::vector<float> output() const {
    const auto bits = download<uint16_t>(dout.ptr, q.bits.size());
    std::vector<float> out(bits.size());
    for (size_t i = 0; i < bits.size(); ++i) out[i] = lf::bf16_to_f32(bits[i]);
    return out;
  }
  void poison() const { REQUIRE(cudaMemset(dout.ptr, 0xff, q.bits.size() * 2) == cudaSuccess); }  // bf16 NaN
};

// Runs the sparse kernel with `mask`; returns the output, or an empty vector when the variant refuses (noted).
inline std::vector<float> run_sparse(const AttentionInputs& in, const Geometry& g, const Csr& mask,
                                     FlashVariant variant) {
  const DeviceBuffer offsets(mask.row_offsets.size() * 4, mask.row_offsets.data());
  const DeviceBuffer indices(mask.key_indices.size() * 4, mask.key_indices.data());
  BlockSparseLayout layout;
  layout.row_offsets = offsets.as<int>();
  layout.key_indices = indices.as<int>();
  layout.query_block = g.query_block;
  layout.key_block = g.key_block;
  layout.tokens_per_frame = g.tokens_per_frame;
  layout.heads = in.heads;
  layout.query_blocks = g.query_blocks();
  const FlashAttentionParams p = in.params(g);
  std::string why;
  if (!lf::gpu::flash_attention_block_sparse_supported(p, layout, variant, &why)) {
    MESSAGE("skipping " << std::string(lf::gpu::flash_variant_name(variant)) << ": " << why);  // a char* prints as an address
    return {};
  }
  in.poison();
  lf::gpu::flash_attention_block_sparse_forward(p, layout, variant, nullptr);
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  return in.output();
}



// The bf16 values as the f32 [tokens, heads, dim] tensor the CPU planners (lib/attention/planners.cpp) read.
inline lf::Tensor host_tensor(const std::vector<float>& values, int tokens, int heads, int dim) {
  lf::Tensor t = lf::Tensor::empty({tokens, heads, dim});
  std::copy(values.begin(), values.end(), t.f32());
  return t;
}

// Row r of a [rows, count] score matrix as the CPU planners' row type.
inline std::vector<float> score_row(const std::vector<float>& scores, int r, int count) {
  return {scores.begin() + size_t(r) * count, scores.begin() + size_t(r + 1) * count};
}

// Scores with exact ties and well-separated distinct values: integers spaced by 1 in random order, every fifth
// block repeating its left neighbour.
inline std::vector<float> separated_scores(int rows, int count, uint64_t seed) {
  std::vector<float> scores(size_t(rows) * count);
  uint64_t state = seed;
  for (int r = 0; r < rows; ++r) {
    std::vector<int> values(static_cast<size_t>(count));
    std::iota(values.begin(), values.end(), -count / 2);
    for (int i = count - 1; i > 0; --i) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      std::swap(values[size_t(i)], values[size_t((state >> 33) % uint64_t(i + 1))]);
    }
    for (int i = 0; i < count; ++i)
      scores[size_t(r) * count + i] = float(i % 5 == 4 ? values[size_t(i - 1)] : values[size_t(i)]);
  }
  return scores;
}

struct DeviceMask {
  DeviceBuffer offsets, indices, scores;
  DeviceMask(int rows, int64_t capacity)
      : offsets(size_t(rows + 1) * 4), indices(size_t(capacity) * 4), scores(size_t(capacity) * 4) {}
  sparse::MaskOutput output() const { return {offsets.as<int>(), indices.as<int>(), scores.as<float>()}; }
  // Row r of the downloaded CSR, checked against `want` (and the selected scores against `row_scores`).
  void check_rows(int rows, const std::vector<std::vector<int>>& want, const std::vector<float>& all_scores,
                  int key_blocks) const {
    const auto offs = download<int>(offsets.ptr, size_t(rows + 1));
    REQUIRE(offs[0] == 0);
    const auto idx = download<int>(indices.ptr, size_t(offs[size_t(rows)]));
    const auto sel = download<float>(scores.ptr, size_t(offs[size_t(rows)]));
    int mismatches = 0;
    for (int r = 0; r < rows; ++r) {
      const std::vector<int> got(idx.begin() + offs[size_t(r)], idx.begin() + offs[size_t(r) + 1]);
      if (got != want[size_t(r)] && mismatches++ < 3) {
        CAPTURE(r);
        CHECK(got == want[size_t(r)]);
      }
      for (int i = offs[size_t(r)]; i < offs[size_t(r) + 1]; ++i)
        if (sel[size_t(i)] != all_scores[size_t(r) * key_blocks + idx[size_t(i)]]) ++mismatches;
    }
    CHECK(mismatches == 0);
  }
};



// Sets the planner paths for a scope, restoring the previous ones (a failing CHECK must not leak a setting).
struct PathsScope {
  sparse::detail::PlannerPaths saved = sparse::detail::planner_paths();
  explicit PathsScope(sparse::detail::PlannerPaths paths) { sparse::detail::set_planner_paths(paths); }
  ~PathsScope() { sparse::detail::set_planner_paths(saved); }
};

// Scores that stress a threshold select: many exact ties (also across -0 / +0), NaN, +-inf, denormals, values
// that share their high bits (one radix digit decides nothing) and ordinary randoms.
inline std::vector<float> hostile_scores(int rows, int count, uint64_t seed) {
  std::vector<float> scores(size_t(rows) * count);
  uint64_t state = seed * 0x9e3779b97f4a7c15ull + 1;
  auto next = [&] { return (state = state * 6364136223846793005ull + 1442695040888963407ull) >> 33; };
  const float specials[] = {0.f, -0.f, NAN, INFINITY, -INFINITY, 1e-40f, -1e-40f, 1.f, -1.f, 3.4e38f};
  for (int r = 0; r < rows; ++r) {
    const int style = r % 4;
    for (int i = 0; i < count; ++i) {
      float& s = scores[size_t(r) * count + i];
      const uint64_t x = next();
      if (style == 0) s = float(int(x % 7) - 3);                                 // heavy ties
      if (style == 1) s = 1.f + float(x % 64) * 1e-7f;                           // equal high bits
      if (style == 2) s = x % 5 == 0 ? specials[x / 5 % 10] : float(x % 2001) - 1000.f;
      if (style == 3) s = (float(x % 1000000) - 5e5f) * 1e-3f;                    // mostly distinct
    }
  }
  return scores;
}

struct MaskBits {
  std::vector<int> offsets, indices;
  std::vector<uint32_t> score_bits;
  bool operator==(const MaskBits& o) const {
    return offsets == o.offsets && indices == o.indices && score_bits == o.score_bits;
  }
};
inline MaskBits mask_bits(const DeviceMask& mask, int rows) {
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  MaskBits m;
  m.offsets = download<int>(mask.offsets.ptr, size_t(rows + 1));
  m.indices = download<int>(mask.indices.ptr, size_t(m.offsets.back()));
  m.score_bits = download<uint32_t>(mask.scores.ptr, size_t(m.offsets.back()));
  return m;
}


// The bench shape's frame layout (1560 tokens, a 3-frame chunk of queries in 128-blocks) with 12 visible frames.
inline sparse::PlannerGeometry bench_frames_geometry(int heads, int key_block) {
  sparse::PlannerGeometry g;
  g.heads = heads;
  g.head_dim = 128;
  g.query_tokens = 3 * 1560;
  g.query_block = 128;
  g.key_frames = 12;
  g.tokens_per_frame = 1560;
  g.key_block = key_block;
  return g;
}

template <class T>
inline std::vector<T> download_all(const void* device, size_t count) {
  std::vector<T> host(count);
  REQUIRE(cudaMemcpy(host.data(), device, count * sizeof(T), cudaMemcpyDeviceToHost) == cudaSuccess);
  return host;
}

}  // namespace

#endif  // LF_HAVE_CUDA
