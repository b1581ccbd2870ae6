// Block-sparse flash attention and the GPU mask planners vs in-test CPU references.
//   attention: random frame-aligned masks with ragged key blocks (1560 and 100 tokens per frame, key blocks 64 and
//              128), ragged query blocks, an empty row (must be exactly 0) and a full row, every supported
//              (variant, query_block, key_block), head_dim 128 and 64; rel-L2 < 1e-2 on a NaN-poisoned output.
//              A full mask must give what the dense kernel gives.
//   planners:  pooling and scores vs double-precision CPU means and dots (rel-L2 < 1e-5); top-k, HSA and top-p
//              selections identical to CPU selections on well-separated scores, including exact ties.
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

#include "attention/flash_attention.h"
#include "core/dtype.h"
#include "core/error.h"
#include "ops/gpu_ops.h"
#include "sparse/block_sparse_attention.h"
#include "sparse/sparse_planner.h"
#include "sparse/sparse_recall.h"
#include "sparse/sparse_select_detail.h"
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
std::vector<T> download(const void* device, size_t count) {
  std::vector<T> host(count);
  if (count > 0) REQUIRE(cudaMemcpy(host.data(), device, count * sizeof(T), cudaMemcpyDeviceToHost) == cudaSuccess);
  return host;
}

// Random bf16 bits and their float values (what the kernels see).
struct Bf16Data {
  std::vector<uint16_t> bits;
  std::vector<float> values;
};
Bf16Data random_bf16(int64_t count, uint64_t seed, float amplitude) {
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

double rel_l2(const std::vector<float>& got, const std::vector<float>& want) {
  double diff = 0, ref = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    diff += double(got[i] - want[i]) * double(got[i] - want[i]);
    ref += double(want[i]) * double(want[i]);
  }
  return ref > 0 ? std::sqrt(diff / ref) : std::sqrt(diff);
}

// ---- frame-aligned geometry (as lf::BlockGeometry) -------------------------------------------------------------
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

// Random rows (each block kept with probability 1/2), plus: head 1's last query block empty, head 0's first full.
Csr random_mask(const Geometry& g, int heads, uint64_t seed) {
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

Csr full_mask(const Geometry& g, int heads) {
  Csr mask;
  for (int r = 0; r < heads * g.query_blocks(); ++r) {
    for (int b = 0; b < g.key_blocks(); ++b) mask.key_indices.push_back(b);
    mask.row_offsets.push_back(int(mask.key_indices.size()));
  }
  return mask;
}

// fp64-accumulated masked attention on the bf16-rounded inputs; rows without keys are 0.
std::vector<float> reference_attention(const std::vector<float>& q, const std::vector<float>& k,
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
std::vector<float> run_sparse(const AttentionInputs& in, const Geometry& g, const Csr& mask, FlashVariant variant) {
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
    MESSAGE("skipping " << lf::gpu::flash_variant_name(variant) << ": " << why);
    return {};
  }
  in.poison();
  lf::gpu::flash_attention_block_sparse_forward(p, layout, variant, nullptr);
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  return in.output();
}

}  // namespace

TEST_CASE("block-sparse attention matches the masked CPU reference (ragged frame-aligned blocks, every variant)") {
  uint64_t seed = 100;
  for (int tokens_per_frame : {1560, 100, 296})
    for (int dim : {128, 64})
      for (int key_block : {64, 128})
        for (int query_block : {64, 128}) {
          const Geometry g{tokens_per_frame, key_block, query_block, tokens_per_frame == 1560 ? 300 : 150,
                           tokens_per_frame == 1560 ? 2 : tokens_per_frame == 296 ? 4 : 5};
          const int heads = 2;
          const AttentionInputs in(g, heads, dim, seed += 10);
          const Csr mask = random_mask(g, heads, seed);
          const auto want = reference_attention(in.q.values, in.k.values, in.v.values, g, heads, dim, mask,
                                                1.f / std::sqrt(float(dim)));
          for (FlashVariant variant : {FlashVariant::MmaSync, FlashVariant::Hopper, FlashVariant::Auto}) {
            CAPTURE(tokens_per_frame);
            CAPTURE(dim);
            CAPTURE(key_block);
            CAPTURE(query_block);
            const std::string name = lf::gpu::flash_variant_name(variant);
            CAPTURE(name);
            const auto got = run_sparse(in, g, mask, variant);
            if (got.empty()) continue;
            CHECK(rel_l2(got, want) < 1e-2);
            // The empty row (last query block of the last head) is exactly zero.
            bool zeros = true;
            for (int row = (g.query_blocks() - 1) * query_block; row < g.lq; ++row)
              for (int d = 0; d < dim; ++d) zeros &= got[(size_t(row) * heads + heads - 1) * dim + d] == 0.f;
            CHECK(zeros);
          }
        }
}

// The Hopper launch is persistent (one CTA per SM walking rows, the next row's loads overlapping this row's end)
// and packs frame tails of <= 64 keys into shared tiles (1560 tokens: 24-key tails, 5 a tile; 296 = 2 x 128 + 40:
// 3 a tile, partial groups when a row selects fewer). 32 heads x 10 query blocks = 320 rows > 132 SMs, so CTAs
// carry 2-3 rows each, with different tile counts per row (random masks) and an empty row among them.
TEST_CASE("block-sparse attention over more rows than SMs with packed frame tails (persistent Hopper launch)") {
  uint64_t seed = 500;
  for (int tokens_per_frame : {296, 1560}) {
    const Geometry g{tokens_per_frame, 128, 128, 1200, tokens_per_frame == 296 ? 6 : 2};
    const int heads = 32, dim = 64;
    const AttentionInputs in(g, heads, dim, seed += 10);
    const Csr mask = random_mask(g, heads, seed);
    const auto want =
        reference_attention(in.q.values, in.k.values, in.v.values, g, heads, dim, mask, 1.f / std::sqrt(float(dim)));
    for (FlashVariant variant : {FlashVariant::Hopper, FlashVariant::MmaSync}) {
      CAPTURE(tokens_per_frame);
      const std::string name = lf::gpu::flash_variant_name(variant);
      CAPTURE(name);
      const auto got = run_sparse(in, g, mask, variant);
      if (got.empty()) continue;
      CHECK(rel_l2(got, want) < 1e-2);
      bool zeros = true;
      for (int row = (g.query_blocks() - 1) * g.query_block; row < g.lq; ++row)
        for (int d = 0; d < dim; ++d) zeros &= got[(size_t(row) * heads + heads - 1) * dim + d] == 0.f;
      CHECK(zeros);
    }
  }
}

TEST_CASE("block-sparse attention with a full mask reproduces the dense kernel") {
  uint64_t seed = 900;
  for (int tokens_per_frame : {1560, 1536, 296})
    for (int dim : {128, 64})
      for (int key_block : {64, 128}) {
        const Geometry g{tokens_per_frame, key_block, 128, 700, 3};
        const int heads = 2;
        const AttentionInputs in(g, heads, dim, seed += 10);
        for (FlashVariant variant : {FlashVariant::MmaSync, FlashVariant::Hopper}) {
          CAPTURE(tokens_per_frame);
          CAPTURE(dim);
          CAPTURE(key_block);
          const std::string name = lf::gpu::flash_variant_name(variant);
          CAPTURE(name);
          const auto sparse_out = run_sparse(in, g, full_mask(g, heads), variant);
          if (sparse_out.empty()) continue;
          in.poison();
          lf::gpu::flash_attention_forward(in.params(g), variant, nullptr);
          REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
          const auto dense_out = in.output();
          CHECK(rel_l2(sparse_out, dense_out) < 1e-2);
        }
      }
}

TEST_CASE("block-sparse attention refuses unsupported layouts naming the value") {
  alignas(16) static char stand_in[16];
  FlashAttentionParams p;
  p.q = p.k = p.v = stand_in;
  p.out = stand_in;
  p.q_row_stride = p.k_row_stride = p.v_row_stride = p.out_row_stride = 2 * 128;
  p.lq = 300;
  p.lk = 3120;
  p.heads = 2;
  p.head_dim = 128;
  p.scale = 0.1f;
  static const int stand_in_ints[4] = {0, 0, 0, 0};
  BlockSparseLayout layout;
  layout.row_offsets = layout.key_indices = stand_in_ints;
  layout.query_block = 128;
  layout.key_block = 96;
  layout.tokens_per_frame = 1560;
  layout.heads = 2;
  layout.query_blocks = 3;
  std::string why;
  CHECK_FALSE(lf::gpu::flash_attention_block_sparse_supported(p, layout, FlashVariant::Auto, &why));
  CHECK(why.find("96") != std::string::npos);
  CHECK_THROWS_AS(lf::gpu::flash_attention_block_sparse_forward(p, layout), lf::Error);
  layout.key_block = 64;
  layout.tokens_per_frame = 1000;  // 3120 keys are not whole frames
  CHECK_FALSE(lf::gpu::flash_attention_block_sparse_supported(p, layout, FlashVariant::MmaSync, &why));
  CHECK(why.find("3120") != std::string::npos);
  layout.tokens_per_frame = 1560;
  layout.query_blocks = 5;  // ceil(300 / 128) = 3
  CHECK_FALSE(lf::gpu::flash_attention_block_sparse_supported(p, layout, FlashVariant::MmaSync, &why));
  CHECK(why.find("5") != std::string::npos);
  layout.query_block = 64;
  layout.query_blocks = 5;
  CHECK(lf::gpu::flash_attention_block_sparse_supported(p, layout, FlashVariant::MmaSync, &why));
  if (lf::gpu::flash_attention_supported(p, FlashVariant::Hopper, nullptr)) {
    CHECK_FALSE(lf::gpu::flash_attention_block_sparse_supported(p, layout, FlashVariant::Hopper, &why));
    CHECK(why.find("query_block 64") != std::string::npos);
  }
}

// ---- planners -------------------------------------------------------------------------------------------------
namespace {

// CPU means in double: [heads, segments, dim] for segments given as (first, count).
std::vector<float> cpu_pool(const std::vector<float>& x, int heads, int dim,
                            const std::vector<std::pair<int, int>>& segments) {
  std::vector<float> out(size_t(heads) * segments.size() * dim);
  for (int h = 0; h < heads; ++h)
    for (size_t s = 0; s < segments.size(); ++s)
      for (int d = 0; d < dim; ++d) {
        double sum = 0;
        for (int t = 0; t < segments[s].second; ++t) sum += x[(size_t(segments[s].first + t) * heads + h) * dim + d];
        out[(h * segments.size() + s) * dim + d] = float(sum / segments[s].second);
      }
  return out;
}

// Highest scores first, ties toward the lower index; `eligible` (optional) ranks ineligible blocks last.
std::vector<int> cpu_order(const float* scores, int count, const std::vector<char>* eligible = nullptr) {
  std::vector<int> order(static_cast<size_t>(count));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    const bool ea = eligible == nullptr || (*eligible)[size_t(a)], eb = eligible == nullptr || (*eligible)[size_t(b)];
    if (ea != eb) return ea;
    return scores[a] > scores[b];
  });
  return order;
}

std::vector<int> first_ascending(const std::vector<int>& order, int keep) {
  std::vector<int> kept(order.begin(), order.begin() + keep);
  std::sort(kept.begin(), kept.end());
  return kept;
}

// Scores with exact ties and well-separated distinct values: integers spaced by 1 in random order, every fifth
// block repeating its left neighbour.
std::vector<float> separated_scores(int rows, int count, uint64_t seed) {
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

}  // namespace

TEST_CASE("planner pooling and scores match double-precision CPU means and dots") {
  for (int dim : {128, 64}) {
    sparse::PlannerGeometry g;
    g.heads = 2;
    g.head_dim = dim;
    g.query_tokens = 300;  // 4 full query blocks of 64 and a ragged one of 44
    g.query_block = 64;
    g.key_frames = 5;
    g.tokens_per_frame = 100;  // key blocks of 64 and a ragged 36 per frame
    g.key_block = 64;
    const auto q = random_bf16(int64_t(g.query_tokens) * g.heads * dim, 7 + dim, 3.f);
    const auto k = random_bf16(int64_t(g.key_tokens()) * g.heads * dim, 8 + dim, 3.f);
    const DeviceBuffer dq(q.bits.size() * 2, q.bits.data()), dk(k.bits.size() * 2, k.bits.data());
    const size_t bytes = sparse::planner_workspace_bytes(g);
    const DeviceBuffer workspace(bytes);
    const sparse::PlannerBuffers b = sparse::planner_buffers(workspace.ptr, g);
    const int64_t row = int64_t(g.heads) * dim;
    sparse::pool_queries(dq.ptr, row, g, b.pooled_queries, nullptr);
    sparse::pool_keys(dk.ptr, row, g, b.pooled_keys, b.pooled_frame_keys, nullptr);
    sparse::block_scores(b.pooled_queries, b.pooled_keys, g.heads, g.query_blocks(), g.key_blocks(), dim, b.scores);
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);

    std::vector<std::pair<int, int>> query_segments, key_segments, frame_segments;
    for (int qb = 0; qb < g.query_blocks(); ++qb)
      query_segments.push_back({qb * 64, std::min(64, g.query_tokens - qb * 64)});
    const Geometry kg{g.tokens_per_frame, g.key_block, g.query_block, g.query_tokens, g.key_frames};
    for (int kb = 0; kb < kg.key_blocks(); ++kb) key_segments.push_back({kg.block_start(kb), kg.block_length(kb)});
    for (int f = 0; f < g.key_frames; ++f) frame_segments.push_back({f * g.tokens_per_frame, g.tokens_per_frame});
    const auto want_q = cpu_pool(q.values, g.heads, dim, query_segments);
    const auto want_k = cpu_pool(k.values, g.heads, dim, key_segments);
    const auto want_f = cpu_pool(k.values, g.heads, dim, frame_segments);
    CAPTURE(dim);
    CHECK(rel_l2(download<float>(b.pooled_queries, want_q.size()), want_q) < 1e-5);
    CHECK(rel_l2(download<float>(b.pooled_keys, want_k.size()), want_k) < 1e-5);
    CHECK(rel_l2(download<float>(b.pooled_frame_keys, want_f.size()), want_f) < 1e-5);

    std::vector<float> want_s(size_t(g.rows()) * g.key_blocks());
    for (int h = 0; h < g.heads; ++h)
      for (int qb = 0; qb < g.query_blocks(); ++qb)
        for (int kb = 0; kb < g.key_blocks(); ++kb) {
          double dot = 0;
          for (int d = 0; d < dim; ++d)
            dot += double(want_q[(size_t(h) * g.query_blocks() + qb) * dim + d]) *
                   want_k[(size_t(h) * g.key_blocks() + kb) * dim + d];
          want_s[(size_t(h) * g.query_blocks() + qb) * g.key_blocks() + kb] = float(dot);
        }
    CHECK(rel_l2(download<float>(b.scores, want_s.size()), want_s) < 1e-5);
  }
}

TEST_CASE("planner top-k selects the same blocks as the CPU rule (ties toward the lower index)") {
  for (int key_blocks : {525, 37, 1000}) {
    const int rows = 24;
    for (int topk : {0, 1, key_blocks / 10, key_blocks / 2, key_blocks}) {
      const auto scores = separated_scores(rows, key_blocks, uint64_t(key_blocks * 31 + topk));
      const DeviceBuffer ds(scores.size() * 4, scores.data());
      const DeviceMask mask(rows, int64_t(rows) * key_blocks);
      sparse::select_topk(ds.as<float>(), rows, key_blocks, topk, mask.output(), nullptr);
      REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
      std::vector<std::vector<int>> want;
      for (int r = 0; r < rows; ++r)
        want.push_back(first_ascending(cpu_order(&scores[size_t(r) * key_blocks], key_blocks), topk));
      CAPTURE(key_blocks);
      CAPTURE(topk);
      mask.check_rows(rows, want, scores, key_blocks);
    }
  }
}

TEST_CASE("planner HSA 2-stage selects the same blocks as the CPU rule") {
  struct Case {
    int frames, chunk, keep_frames, sink, near, tokens_per_frame, key_block, topk;
  };
  const Case cases[] = {
      {12, 3, 6, 1, 2, 1560, 64, 51},   // short config, 64-key blocks (25 per frame)
      {21, 3, 6, 1, 2, 1560, 128, 45},  // chunk 6 with 128-key blocks (13 per frame)
      {15, 3, 3, 1, 1, 1560, 64, 60},   // long config
      {10, 3, 4, 0, 0, 100, 64, 10},    // no sink / near: all frames of stage 1 chosen by score
      {8, 3, 9, 1, 2, 100, 64, 16},     // fewer middle frames than keep_middle: all middle frames eligible
  };
  uint64_t seed = 5;
  for (const Case& c : cases) {
    sparse::PlannerGeometry g;
    g.heads = 2;
    g.head_dim = 128;
    g.query_tokens = c.chunk * c.tokens_per_frame;
    g.query_block = 128;
    g.key_frames = c.frames;
    g.tokens_per_frame = c.tokens_per_frame;
    g.key_block = c.key_block;
    sparse::HsaParams hsa;
    hsa.chunk_frames = c.chunk;
    hsa.keep_frames = c.keep_frames;
    hsa.keep_sink = c.sink;
    hsa.keep_near = c.near;
    hsa.topk = c.topk;
    const int rows = g.rows(), kb = g.key_blocks(), bpf = g.blocks_per_frame();
    const auto block_scores = separated_scores(rows, kb, seed += 3);
    const auto frame_scores = separated_scores(rows, c.frames, seed += 3);
    const DeviceBuffer dbs(block_scores.size() * 4, block_scores.data()),
        dfs(frame_scores.size() * 4, frame_scores.data());
    const DeviceMask mask(rows, int64_t(rows) * kb);
    sparse::select_hsa(dbs.as<float>(), dfs.as<float>(), g, hsa, mask.output(), nullptr);
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);

    const int past = c.frames - c.chunk, middle_end = past - c.near;
    std::vector<std::vector<int>> want;
    for (int r = 0; r < rows; ++r) {
      std::vector<char> frame_ok(size_t(c.frames), 0);
      for (int f = 0; f < c.frames; ++f) frame_ok[size_t(f)] = f < c.sink || f >= middle_end;
      // Stage 1 over the middle frames only.
      std::vector<float> middle_scores;
      for (int f = c.sink; f < middle_end; ++f) middle_scores.push_back(frame_scores[size_t(r) * c.frames + f]);
      const auto middle_order = cpu_order(middle_scores.data(), int(middle_scores.size()));
      const int keep_middle = std::min(c.keep_frames - c.sink - c.near, int(middle_scores.size()));
      for (int i = 0; i < keep_middle; ++i) frame_ok[size_t(c.sink + middle_order[size_t(i)])] = 1;
      std::vector<char> eligible(static_cast<size_t>(kb));
      for (int b = 0; b < kb; ++b) eligible[size_t(b)] = frame_ok[size_t(b / bpf)];
      want.push_back(first_ascending(cpu_order(&block_scores[size_t(r) * kb], kb, &eligible), c.topk));
    }
    CAPTURE(c.frames);
    CAPTURE(c.keep_frames);
    CAPTURE(c.key_block);
    mask.check_rows(rows, want, block_scores, kb);
  }

  // topk above the eligible blocks breaks the budget invariant: refused, naming both numbers.
  sparse::PlannerGeometry g;
  g.heads = 1;
  g.head_dim = 64;
  g.query_tokens = 300;
  g.query_block = 128;
  g.key_frames = 12;
  g.tokens_per_frame = 100;
  g.key_block = 64;
  sparse::HsaParams hsa;
  hsa.topk = sparse::hsa_eligible_blocks(g, hsa) + 1;  // 9 frames x 2 blocks = 18 -> 19
  CHECK(hsa.topk == 19);
  const DeviceBuffer scratch(size_t(4096) * 4);
  try {
    sparse::select_hsa(scratch.as<float>(), scratch.as<float>(), g, hsa,
                       {scratch.as<int>(), scratch.as<int>(), nullptr}, nullptr);
    FAIL("select_hsa accepted topk above the eligible blocks");
  } catch (const lf::Error& e) {
    const std::string message = e.what();
    CHECK(message.find("19") != std::string::npos);
    CHECK(message.find("18") != std::string::npos);
  }
}

TEST_CASE("planner top-p keeps the smallest highest-scoring set with softmax mass >= p") {
  const int rows = 20;
  const float scale = 1.f / std::sqrt(128.f);
  for (int key_blocks : {525, 40}) {
    // p = 1 is left out: the last blocks' mass is below fp32 resolution of the running sum, so "mass >= 1" is
    // decided by rounding, on the CPU as on the GPU.
    for (float p : {0.5f, 0.9f, 0.97f}) {
      // Random scores (scaled logits within +-35, so the sorted masses fall off geometrically), each row redrawn
      // until no cumulative mass lies within 1e-3 of p: a cut that fp32 rounding cannot move.
      std::vector<float> scores(size_t(rows) * key_blocks);
      std::vector<std::vector<int>> want;
      uint64_t seed = 77;
      for (int r = 0; r < rows; ++r) {
        for (int attempt = 0;; ++attempt) {
          REQUIRE(attempt < 1000);
          const lf::Tensor t = lf::test::random_tensor({key_blocks}, seed++, 400.f);
          std::vector<float> row(t.f32(), t.f32() + key_blocks);
          const auto order = cpu_order(row.data(), key_blocks);
          double total = 0, top = row[size_t(order[0])];
          for (float s : row) total += std::exp((double(s) - top) * scale);
          double mass = 0;
          int keep = 0;
          bool separated = true;
          for (int j = 0; j < key_blocks; ++j) {
            mass += std::exp((double(row[size_t(order[size_t(j)])]) - top) * scale) / total;
            if (j + 1 < key_blocks && std::fabs(mass - p) < 1e-3) separated = false;
            if (keep == 0 && mass >= p - 1e-9) keep = j + 1;
          }
          if (!separated) continue;
          std::copy(row.begin(), row.end(), scores.begin() + size_t(r) * key_blocks);
          want.push_back(first_ascending(order, std::max(1, keep == 0 ? key_blocks : keep)));
          break;
        }
      }
      const DeviceBuffer ds(scores.size() * 4, scores.data());
      const DeviceMask mask(rows, int64_t(rows) * key_blocks);
      const size_t bytes = sparse::select_topp_workspace_bytes(rows, key_blocks);
      const DeviceBuffer workspace(bytes);
      sparse::select_topp(ds.as<float>(), rows, key_blocks, scale, p, mask.output(), workspace.ptr, bytes, nullptr);
      REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
      CAPTURE(key_blocks);
      CAPTURE(p);
      mask.check_rows(rows, want, scores, key_blocks);
    }
  }
}

TEST_CASE("whole planners produce valid CSR masks the sparse kernel accepts") {
  sparse::PlannerGeometry g;
  g.heads = 2;
  g.head_dim = 128;
  g.query_tokens = 3 * 100;
  g.query_block = 128;
  g.key_frames = 12;
  g.tokens_per_frame = 100;
  g.key_block = 64;
  const auto q = random_bf16(int64_t(g.query_tokens) * g.heads * g.head_dim, 3, 2.f);
  const auto k = random_bf16(int64_t(g.key_tokens()) * g.heads * g.head_dim, 4, 2.f);
  const DeviceBuffer dq(q.bits.size() * 2, q.bits.data()), dk(k.bits.size() * 2, k.bits.data());
  const size_t bytes = sparse::planner_workspace_bytes(g);
  const DeviceBuffer workspace(bytes);
  const DeviceMask mask(g.rows(), sparse::planner_max_selected(g));
  const int64_t row = int64_t(g.heads) * g.head_dim;
  sparse::HsaParams hsa;
  hsa.topk = 10;
  for (int planner = 0; planner < 3; ++planner) {
    CAPTURE(planner);
    if (planner == 0) sparse::plan_topk(dq.ptr, row, dk.ptr, row, g, 7, workspace.ptr, bytes, mask.output());
    if (planner == 1) sparse::plan_hsa(dq.ptr, row, dk.ptr, row, g, hsa, workspace.ptr, bytes, mask.output());
    if (planner == 2)
      sparse::plan_topp(dq.ptr, row, dk.ptr, row, g, 1.f / std::sqrt(128.f), 0.9f, workspace.ptr, bytes, mask.output());
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    const auto offs = download<int>(mask.offsets.ptr, size_t(g.rows() + 1));
    const auto idx = download<int>(mask.indices.ptr, size_t(offs.back()));
    bool valid = offs[0] == 0;
    for (int r = 0; r < g.rows(); ++r) {
      valid &= offs[size_t(r)] < offs[size_t(r) + 1];  // never an empty row
      for (int i = offs[size_t(r)]; i < offs[size_t(r) + 1]; ++i)
        valid &= idx[size_t(i)] >= 0 && idx[size_t(i)] < g.key_blocks() &&
                 (i == offs[size_t(r)] || idx[size_t(i) - 1] < idx[size_t(i)]);
    }
    CHECK(valid);
    if (planner == 0) CHECK(offs.back() == 7 * g.rows());
    if (planner == 1) CHECK(offs.back() == 10 * g.rows());
  }
}

TEST_CASE("cached planners equal the whole planners bit for bit, also when the past frames' pooled keys are reused") {
  // 12 frames of 100 tokens (64-key blocks: 64 + a ragged 36), the last 3 the current chunk. The cache is filled
  // from one (q, k), then the chunk's frames and q change (the next denoising step): pooling only frames 9..11
  // must give the mask that planning the new (q, k) from scratch gives, selected scores included.
  sparse::PlannerGeometry g;
  g.heads = 2;
  g.head_dim = 128;
  g.query_tokens = 3 * 100;
  g.query_block = 128;
  g.key_frames = 12;
  g.tokens_per_frame = 100;
  g.key_block = 64;
  const int chunk_frames = 3, past = g.key_frames - chunk_frames;
  const int64_t row = int64_t(g.heads) * g.head_dim;
  const auto q1 = random_bf16(int64_t(g.query_tokens) * row, 31, 2.f);
  const auto q2 = random_bf16(int64_t(g.query_tokens) * row, 32, 2.f);
  const auto k1 = random_bf16(int64_t(g.key_tokens()) * row, 33, 2.f);
  auto k2 = k1;  // the same past frames, a new current chunk
  const auto fresh = random_bf16(int64_t(g.key_tokens()) * row, 34, 2.f);
  std::copy(fresh.bits.begin() + int64_t(past) * g.tokens_per_frame * row, fresh.bits.end(),
            k2.bits.begin() + int64_t(past) * g.tokens_per_frame * row);
  const DeviceBuffer dq1(q1.bits.size() * 2, q1.bits.data()), dq2(q2.bits.size() * 2, q2.bits.data());
  const DeviceBuffer dk1(k1.bits.size() * 2, k1.bits.data()), dk2(k2.bits.size() * 2, k2.bits.data());
  const size_t whole_bytes = sparse::planner_workspace_bytes(g), cached_bytes = sparse::cached_planner_workspace_bytes(g);
  const DeviceBuffer whole_workspace(whole_bytes), cached_workspace(cached_bytes);
  const DeviceBuffer pooled_keys(size_t(g.heads) * g.key_blocks() * g.head_dim * 4);
  const int64_t capacity = sparse::planner_max_selected(g);
  const DeviceMask want(g.rows(), capacity), got(g.rows(), capacity);
  sparse::HsaParams hsa;
  hsa.chunk_frames = chunk_frames;
  hsa.topk = 10;
  const float scale = 1.f / std::sqrt(128.f);

  auto same_mask = [&]() {
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    const auto want_offsets = download<int>(want.offsets.ptr, size_t(g.rows() + 1));
    const auto got_offsets = download<int>(got.offsets.ptr, size_t(g.rows() + 1));
    REQUIRE(want_offsets == got_offsets);
    const size_t n = size_t(want_offsets.back());
    CHECK(n > 0);
    CHECK(download<int>(want.indices.ptr, n) == download<int>(got.indices.ptr, n));
    const auto want_scores = download<float>(want.scores.ptr, n), got_scores = download<float>(got.scores.ptr, n);
    CHECK(std::equal(want_scores.begin(), want_scores.end(), got_scores.begin(),
                     [](float a, float b) { return std::memcmp(&a, &b, 4) == 0; }));
  };
  for (int rule = 0; rule < 3; ++rule) {
    CAPTURE(rule);
    auto whole = [&](const DeviceBuffer& q, const DeviceBuffer& k) {
      if (rule == 0) sparse::plan_topk(q.ptr, row, k.ptr, row, g, 7, whole_workspace.ptr, whole_bytes, want.output());
      if (rule == 1) sparse::plan_hsa(q.ptr, row, k.ptr, row, g, hsa, whole_workspace.ptr, whole_bytes, want.output());
      if (rule == 2)
        sparse::plan_topp(q.ptr, row, k.ptr, row, g, scale, 0.9f, whole_workspace.ptr, whole_bytes, want.output());
    };
    auto cached = [&](const DeviceBuffer& q, const DeviceBuffer& k, int first_new_frame) {
      sparse::CachedPlanInputs in;
      in.q = q.ptr;
      in.q_row_stride = row;
      in.k = k.ptr;
      in.k_row_stride = row;
      in.geometry = g;
      in.first_new_frame = first_new_frame;
      in.pooled_keys = pooled_keys.as<float>();
      in.workspace = cached_workspace.ptr;
      in.workspace_bytes = cached_bytes;
      if (rule == 0) sparse::plan_topk_cached(in, 7, got.output());
      if (rule == 1) sparse::plan_hsa_cached(in, hsa, got.output());
      if (rule == 2) sparse::plan_topp_cached(in, scale, 0.9f, got.output());
    };
    whole(dq1, dk1);
    cached(dq1, dk1, 0);  // a chunk's first call: everything pooled
    same_mask();
    whole(dq2, dk2);
    cached(dq2, dk2, past);  // a later step: only the chunk's frames pooled
    same_mask();
    cached(dq2, dk2, g.key_frames);  // nothing pooled: the cache already holds k2's blocks
    same_mask();
  }
  sparse::CachedPlanInputs bad;
  bad.q = dq1.ptr;
  bad.q_row_stride = row;
  bad.k = dk1.ptr;
  bad.k_row_stride = row;
  bad.geometry = g;
  bad.pooled_keys = pooled_keys.as<float>();
  bad.workspace = cached_workspace.ptr;
  bad.workspace_bytes = cached_bytes;
  bad.first_new_frame = g.key_frames + 1;
  CHECK_THROWS_WITH_AS(sparse::plan_topk_cached(bad, 7, got.output()), doctest::Contains("first_new_frame 13"),
                       lf::Error);
  bad.first_new_frame = 0;
  bad.workspace_bytes = cached_bytes - 1;
  CHECK_THROWS_WITH_AS(sparse::plan_topk_cached(bad, 7, got.output()), doctest::Contains("workspace"), lf::Error);
  bad.workspace_bytes = cached_bytes;
  hsa.topk = sparse::hsa_eligible_blocks(g, hsa) + 1;
  CHECK_THROWS_WITH_AS(sparse::plan_hsa_cached(bad, hsa, got.output()), doctest::Contains("budget invariant"),
                       lf::Error);
}

// ---- fast paths vs the exact old paths ------------------------------------------------------------------------
namespace {

// Sets the planner paths for a scope, restoring the previous ones (a failing CHECK must not leak a setting).
struct PathsScope {
  sparse::detail::PlannerPaths saved = sparse::detail::planner_paths();
  explicit PathsScope(sparse::detail::PlannerPaths paths) { sparse::detail::set_planner_paths(paths); }
  ~PathsScope() { sparse::detail::set_planner_paths(saved); }
};

// Scores that stress a threshold select: many exact ties (also across -0 / +0), NaN, +-inf, denormals, values
// that share their high bits (one radix digit decides nothing) and ordinary randoms.
std::vector<float> hostile_scores(int rows, int count, uint64_t seed) {
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
MaskBits mask_bits(const DeviceMask& mask, int rows) {
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  MaskBits m;
  m.offsets = download<int>(mask.offsets.ptr, size_t(rows + 1));
  m.indices = download<int>(mask.indices.ptr, size_t(m.offsets.back()));
  m.score_bits = download<uint32_t>(mask.scores.ptr, size_t(m.offsets.back()));
  return m;
}

}  // namespace

TEST_CASE("radix top-k / HSA selection equals the bitonic sort bit for bit (ties, NaN, -0, infinities)") {
  const int rows = 24;
  for (int key_blocks : {1, 31, 33, 273, 525, 1000, 4096}) {
    const auto scores = hostile_scores(rows, key_blocks, uint64_t(key_blocks));
    const DeviceBuffer ds(scores.size() * 4, scores.data());
    for (int topk : {0, 1, key_blocks / 7, key_blocks / 2, key_blocks - 1, key_blocks}) {
      if (topk < 0) continue;
      const DeviceMask fast(rows, int64_t(rows) * key_blocks), exact(rows, int64_t(rows) * key_blocks);
      {
        const PathsScope paths({true, true});
        sparse::select_topk(ds.as<float>(), rows, key_blocks, topk, fast.output(), nullptr);
      }
      {
        const PathsScope paths({false, false});
        sparse::select_topk(ds.as<float>(), rows, key_blocks, topk, exact.output(), nullptr);
      }
      CAPTURE(key_blocks);
      CAPTURE(topk);
      CHECK(mask_bits(fast, rows) == mask_bits(exact, rows));
    }
  }
  struct Case {
    int frames, chunk, keep_frames, sink, near, tokens_per_frame, key_block;
  };
  const Case cases[] = {{21, 3, 6, 1, 2, 1560, 64},  {21, 3, 6, 1, 2, 1560, 128}, {15, 3, 3, 1, 1, 1560, 64},
                        {10, 3, 4, 0, 0, 100, 64},   {8, 3, 9, 1, 2, 100, 64},     {40, 3, 6, 1, 2, 100, 128}};
  for (const Case& c : cases) {
    sparse::PlannerGeometry g;
    g.heads = 3;
    g.head_dim = 64;
    g.query_tokens = 1000;
    g.query_block = 128;
    g.key_frames = c.frames;
    g.tokens_per_frame = c.tokens_per_frame;
    g.key_block = c.key_block;
    sparse::HsaParams hsa;
    hsa.chunk_frames = c.chunk;
    hsa.keep_frames = c.keep_frames;
    hsa.keep_sink = c.sink;
    hsa.keep_near = c.near;
    const int rows = g.rows(), kb = g.key_blocks(), eligible = sparse::hsa_eligible_blocks(g, hsa);
    const auto block_scores = hostile_scores(rows, kb, uint64_t(kb) + 7);
    const auto frame_scores = hostile_scores(rows, c.frames, uint64_t(c.frames) + 11);
    const DeviceBuffer dbs(block_scores.size() * 4, block_scores.data()),
        dfs(frame_scores.size() * 4, frame_scores.data());
    for (int topk : {0, 1, eligible / 3, eligible}) {
      hsa.topk = topk;
      const DeviceMask fast(rows, int64_t(rows) * kb), exact(rows, int64_t(rows) * kb);
      {
        const PathsScope paths({true, true});
        sparse::select_hsa(dbs.as<float>(), dfs.as<float>(), g, hsa, fast.output(), nullptr);
      }
      {
        const PathsScope paths({false, false});
        sparse::select_hsa(dbs.as<float>(), dfs.as<float>(), g, hsa, exact.output(), nullptr);
      }
      CAPTURE(c.frames);
      CAPTURE(c.key_block);
      CAPTURE(topk);
      CHECK(mask_bits(fast, rows) == mask_bits(exact, rows));
    }
  }
}

// The bench shape's frame layout (1560 tokens, a 3-frame chunk of queries in 128-blocks) with 12 visible frames.
static sparse::PlannerGeometry bench_frames_geometry(int heads, int key_block) {
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

TEST_CASE("cached planners with the fast paths equal the exact old paths bit for bit, queued back to back") {
  // The bench shape's frame layout (1560 tokens, 64- and 128-key blocks), fewer heads and frames; ten plans
  // queued without a host synchronisation (dependent launches overlap), each checked against the old path.
  for (int block : {64, 128}) {
    const sparse::PlannerGeometry g = bench_frames_geometry(2, block);
    const int64_t row = int64_t(g.heads) * g.head_dim;
    const auto q = random_bf16(int64_t(g.query_tokens) * row, 41 + block, 2.f);
    const auto k = random_bf16(int64_t(g.key_tokens()) * row, 42 + block, 2.f);
    const DeviceBuffer dq(q.bits.size() * 2, q.bits.data()), dk(k.bits.size() * 2, k.bits.data());
    const size_t bytes = sparse::cached_planner_workspace_bytes(g);
    const DeviceBuffer workspace(bytes), pooled(size_t(g.heads) * g.key_blocks() * g.head_dim * 4);
    sparse::HsaParams hsa;
    hsa.topk = std::min(int(0.15 * g.key_blocks()), sparse::hsa_eligible_blocks(g, hsa));
    sparse::CachedPlanInputs in;
    in.q = dq.ptr;
    in.q_row_stride = row;
    in.k = dk.ptr;
    in.k_row_stride = row;
    in.geometry = g;
    in.pooled_keys = pooled.as<float>();
    in.workspace = workspace.ptr;
    in.workspace_bytes = bytes;
    const int64_t capacity = sparse::planner_max_selected(g);
    for (int rule = 0; rule < 3; ++rule) {
      auto plan = [&](const DeviceMask& mask, int first_new_frame) {
        in.first_new_frame = first_new_frame;
        if (rule == 0) sparse::plan_topk_cached(in, hsa.topk, mask.output());
        if (rule == 1) sparse::plan_hsa_cached(in, hsa, mask.output());
        if (rule == 2) sparse::plan_topp_cached(in, 1.f / std::sqrt(128.f), 0.9f, mask.output());
      };
      const DeviceMask exact(g.rows(), capacity);
      {
        const PathsScope paths({false, false});
        plan(exact, 0);
      }
      const MaskBits want = mask_bits(exact, g.rows());
      // The default (fused score + select for top-k / HSA) and the radix path with separate score and select
      // launches, both as dependent launches.
      for (const bool fused : {true, false}) {
        std::vector<std::unique_ptr<DeviceMask>> fast;
        {
          const PathsScope paths({true, true, fused});
          for (int i = 0; i < 10; ++i) {
            fast.push_back(std::make_unique<DeviceMask>(g.rows(), capacity));
            plan(*fast.back(), i == 0 ? 0 : g.key_frames - hsa.chunk_frames);
          }
        }
        CAPTURE(block);
        CAPTURE(rule);
        CAPTURE(fused);
        for (const auto& mask : fast) CHECK(mask_bits(*mask, g.rows()) == want);
      }
    }
  }
}

// ---- RoPE + pooling in one pass -------------------------------------------------------------------------------
template <class T>
std::vector<T> download_all(const void* device, size_t count) {
  std::vector<T> host(count);
  REQUIRE(cudaMemcpy(host.data(), device, count * sizeof(T), cudaMemcpyDeviceToHost) == cudaSuccess);
  return host;
}

TEST_CASE("rope_and_pool equals rope_apply then the planner's pooling bit for bit (queries and frame-aligned keys)") {
  struct Case {
    int heads, dim, frames, tokens_per_frame, grid_width, block;
    bool frame_aligned;
  };
  const Case cases[] = {
      {12, 128, 3, 1560, 52, 128, false},  // the bench shape's queries: 36 blocks of 128 and a ragged 72
      {12, 128, 3, 1560, 52, 128, true},   // its keys: 12 blocks of 128 and a 24-key tail per frame
      {6, 128, 3, 100, 10, 64, true},      // heads not a multiple of the CTA's 4, ragged 36-key tails
      {3, 64, 2, 100, 10, 64, false},      // head_dim 64 (more token lanes), 3 heads
  };
  uint64_t seed = 70;
  for (const Case& c : cases) {
    const int tokens = c.frames * c.tokens_per_frame;
    const int64_t row = int64_t(c.heads) * c.dim;
    const auto x = random_bf16(int64_t(tokens) * row, seed += 2, 3.f);
    const std::vector<int64_t> positions = {7, 8, 9};  // absolute frames: non-zero temporal angles
    lf::gpu::RopeLayout layout;
    layout.heads = c.heads;
    layout.head_dim = c.dim;
    layout.tokens_per_frame = c.tokens_per_frame;
    layout.grid_width = c.grid_width;
    const DeviceBuffer fused(x.bits.size() * 2, x.bits.data()), plain(x.bits.size() * 2, x.bits.data());
    const int64_t blocks = sparse::rope_pool_blocks(tokens, c.tokens_per_frame, c.block, c.frame_aligned);
    const size_t pooled_count = size_t(c.heads) * blocks * c.dim;
    const DeviceBuffer got(pooled_count * 4);
    sparse::rope_and_pool(fused.as<uint16_t>(), 0, tokens, layout, positions.data(), c.frames, c.block,
                          c.frame_aligned, got.as<float>());
    lf::gpu::rope_apply(plain.as<uint16_t>(), 0, tokens, layout, positions.data(), c.frames, nullptr);
    sparse::PlannerGeometry g;
    g.heads = c.heads;
    g.head_dim = c.dim;
    g.query_tokens = tokens;
    g.query_block = c.block;
    g.key_frames = c.frames;
    g.tokens_per_frame = c.tokens_per_frame;
    g.key_block = c.block;
    const DeviceBuffer want(pooled_count * 4);
    if (c.frame_aligned) sparse::pool_keys(plain.ptr, row, g, want.as<float>(), nullptr);
    else sparse::pool_queries(plain.ptr, row, g, want.as<float>());
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    CAPTURE(c.heads);
    CAPTURE(c.dim);
    CAPTURE(c.frame_aligned);
    CHECK(int64_t(c.frame_aligned ? g.key_blocks() : g.query_blocks()) == blocks);
    CHECK(download_all<uint16_t>(fused.ptr, x.bits.size()) == download_all<uint16_t>(plain.ptr, x.bits.size()));
    const auto got_pooled = download_all<uint32_t>(got.ptr, pooled_count);
    const auto want_pooled = download_all<uint32_t>(want.ptr, pooled_count);
    CHECK(got_pooled == want_pooled);
    // And the x really moved (RoPE at frames 7..9 changes every pair but those at angle 0).
    CHECK(download_all<uint16_t>(fused.ptr, x.bits.size()) != x.bits);
  }
  // Refusals name the value.
  lf::gpu::RopeLayout layout;
  layout.heads = 2;
  layout.head_dim = 128;
  layout.tokens_per_frame = 100;
  layout.grid_width = 10;
  const DeviceBuffer x(size_t(150) * 256 * 2), out(size_t(2) * 4 * 128 * 4);
  const std::vector<int64_t> positions = {0, 1};
  CHECK_THROWS_WITH_AS(sparse::rope_and_pool(x.as<uint16_t>(), 0, 150, layout, positions.data(), 2, 64, true,
                                             out.as<float>()),
                       doctest::Contains("150"), lf::Error);
}

TEST_CASE("cached planners with pooled blocks given by rope_and_pool equal planning the roped q and k") {
  // The engine's use: the chunk's q and keys are roped (and pooled) in one pass; the planner takes the pooled
  // blocks and reads neither again. The chunk's first call (past frames pooled into the cache) and a later call
  // (nothing left to pool: no pooling launch) must both give the masks of the planner pooling everything itself.
  for (int block : {64, 128}) {
    const sparse::PlannerGeometry g = bench_frames_geometry(4, block);
    const int chunk = 3, past = g.key_frames - chunk;
    const int64_t row = int64_t(g.heads) * g.head_dim;
    const auto q = random_bf16(int64_t(g.query_tokens) * row, 90 + block, 2.f);
    const auto k = random_bf16(int64_t(g.key_tokens()) * row, 91 + block, 2.f);
    lf::gpu::RopeLayout layout;
    layout.heads = g.heads;
    layout.head_dim = g.head_dim;
    layout.tokens_per_frame = g.tokens_per_frame;
    layout.grid_width = 52;
    const std::vector<int64_t> positions = {9, 10, 11};
    // Fused: rope_and_pool on q and on the chunk's rows of k, in place.
    const DeviceBuffer fq(q.bits.size() * 2, q.bits.data()), fk(k.bits.size() * 2, k.bits.data());
    const DeviceBuffer given_q(size_t(g.heads) * g.query_blocks() * g.head_dim * 4);
    const DeviceBuffer given_k(size_t(g.heads) * chunk * g.blocks_per_frame() * g.head_dim * 4);
    uint16_t* chunk_rows = fk.as<uint16_t>() + int64_t(past) * g.tokens_per_frame * row;
    sparse::rope_and_pool(fq.as<uint16_t>(), 0, g.query_tokens, layout, positions.data(), chunk, g.query_block, false,
                          given_q.as<float>());
    sparse::rope_and_pool(chunk_rows, 0, int64_t(chunk) * g.tokens_per_frame, layout, positions.data(), chunk,
                          g.key_block, true, given_k.as<float>());
    // Plain: rope_apply on copies, and the planner pools everything.
    const DeviceBuffer pq(q.bits.size() * 2, q.bits.data()), pk(k.bits.size() * 2, k.bits.data());
    lf::gpu::rope_apply(pq.as<uint16_t>(), 0, g.query_tokens, layout, positions.data(), chunk, nullptr);
    lf::gpu::rope_apply(pk.as<uint16_t>() + int64_t(past) * g.tokens_per_frame * row, 0,
                        int64_t(chunk) * g.tokens_per_frame, layout, positions.data(), chunk, nullptr);
    const size_t bytes = sparse::cached_planner_workspace_bytes(g);
    const DeviceBuffer workspace(bytes), pooled_plain(size_t(g.heads) * g.key_blocks() * g.head_dim * 4),
        pooled_fused(size_t(g.heads) * g.key_blocks() * g.head_dim * 4);
    sparse::HsaParams hsa;
    hsa.topk = std::min(int(0.15 * g.key_blocks()), sparse::hsa_eligible_blocks(g, hsa));
    const int64_t capacity = sparse::planner_max_selected(g);
    for (int rule = 0; rule < 3; ++rule) {
      for (int first_new_frame : {0, past}) {
        auto plan = [&](const DeviceMask& mask, bool given) {
          sparse::CachedPlanInputs in;
          in.q = given ? fq.ptr : pq.ptr;
          in.k = given ? fk.ptr : pk.ptr;
          in.q_row_stride = in.k_row_stride = row;
          in.geometry = g;
          in.first_new_frame = first_new_frame;
          in.pooled_keys = (given ? pooled_fused : pooled_plain).as<float>();
          in.workspace = workspace.ptr;
          in.workspace_bytes = bytes;
          if (given) {
            in.given_pooled_queries = given_q.as<float>();
            in.given_key_blocks = given_k.as<float>();
            in.given_first_frame = past;
          }
          if (rule == 0) sparse::plan_topk_cached(in, hsa.topk, mask.output());
          if (rule == 1) sparse::plan_hsa_cached(in, hsa, mask.output());
          if (rule == 2) sparse::plan_topp_cached(in, 1.f / std::sqrt(128.f), 0.9f, mask.output());
        };
        const DeviceMask want(g.rows(), capacity), got(g.rows(), capacity);
        plan(want, false);
        const MaskBits want_bits = mask_bits(want, g.rows());
        plan(got, true);
        CAPTURE(block);
        CAPTURE(rule);
        CAPTURE(first_new_frame);
        CHECK(mask_bits(got, g.rows()) == want_bits);
        CHECK(want_bits.offsets.back() > 0);
      }
    }
  }
}

// ---- sampled recall ------------------------------------------------------------------------------------------
TEST_CASE("GPU sampled recall equals the double-precision kept softmax mass of each sampled row") {
  for (int dim : {128, 64})
    for (int query_block : {128, 64})
      for (int stride : {1, 7}) {
        CAPTURE(dim);
        CAPTURE(query_block);
        CAPTURE(stride);
        // 5 frames of 100 tokens (ragged 64-key blocks), lq 300 (a ragged last query block); random rows with
        // head 0's first row full and head 1's last row empty.
        const Geometry g{100, 64, query_block, 300, 5};
        const int heads = 2;
        const Csr mask = random_mask(g, heads, 11 + uint64_t(dim) + uint64_t(query_block));
        const AttentionInputs in(g, heads, dim, 40 + uint64_t(dim));
        const DeviceBuffer offsets(mask.row_offsets.size() * 4, mask.row_offsets.data());
        const DeviceBuffer indices(std::max<size_t>(1, mask.key_indices.size()) * 4, mask.key_indices.data());
        sparse::PlannerGeometry pg;
        pg.heads = heads;
        pg.head_dim = dim;
        pg.query_tokens = g.lq;
        pg.query_block = g.query_block;
        pg.key_frames = g.frames;
        pg.tokens_per_frame = g.tokens_per_frame;
        pg.key_block = g.key_block;
        const int sampled = sparse::recall_sampled_rows(g.lq, stride);
        CHECK(sampled == (g.lq - 1) / stride + 1);
        const DeviceBuffer out(size_t(heads) * sampled * 4);
        const float scale = 1.f / std::sqrt(float(dim));
        sparse::sampled_recall(in.dq.ptr, int64_t(heads) * dim, in.dk.ptr, int64_t(heads) * dim, pg,
                               offsets.as<int>(), indices.as<int>(), stride, scale, out.as<float>());
        REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
        const auto got = download<float>(out.ptr, size_t(heads) * sampled);
        double worst = 0;
        for (int h = 0; h < heads; ++h)
          for (int i = 0; i < sampled; ++i) {
            const int row = i * stride, r = h * g.query_blocks() + row / g.query_block;
            std::vector<char> kept(size_t(g.lk()), 0);
            for (int e = mask.row_offsets[size_t(r)]; e < mask.row_offsets[size_t(r) + 1]; ++e) {
              const int b = mask.key_indices[size_t(e)];
              for (int t = 0; t < g.block_length(b); ++t) kept[size_t(g.block_start(b) + t)] = 1;
            }
            std::vector<double> scores(size_t(g.lk()));
            double best = -INFINITY;
            for (int j = 0; j < g.lk(); ++j) {
              double dot = 0;
              for (int d = 0; d < dim; ++d)
                dot += double(in.q.values[(size_t(row) * heads + h) * dim + d]) *
                       in.k.values[(size_t(j) * heads + h) * dim + d];
              scores[size_t(j)] = dot * scale;
              best = std::max(best, scores[size_t(j)]);
            }
            double total = 0, mass = 0;
            for (int j = 0; j < g.lk(); ++j) {
              const double p = std::exp(scores[size_t(j)] - best);
              total += p;
              if (kept[size_t(j)]) mass += p;
            }
            worst = std::max(worst, std::abs(double(got[size_t(h) * sampled + i]) - mass / total));
            if (h == 0 && row < g.query_block) CHECK(got[size_t(i)] == 1.f);  // the full row
            if (h == heads - 1 && r == heads * g.query_blocks() - 1) CHECK(got[size_t(h) * sampled + i] == 0.f);
          }
        CHECK(worst < 1e-4);
      }
  sparse::PlannerGeometry pg;
  pg.heads = 1;
  pg.head_dim = 256;
  pg.query_tokens = 10;
  pg.key_frames = 1;
  pg.tokens_per_frame = 10;
  const DeviceBuffer scratch(4096);
  CHECK_THROWS_WITH_AS(sparse::sampled_recall(scratch.ptr, 256, scratch.ptr, 256, pg, scratch.as<int>(),
                                              scratch.as<int>(), 1, 1.f, scratch.as<float>()),
                       doctest::Contains("head_dim 256"), lf::Error);
}

#endif  // LF_HAVE_CUDA
