// Block-sparse flash attention vs the fp64 masked CPU reference, and GPU sampled recall.
//   random frame-aligned masks with ragged key blocks (1560 and 100 tokens per frame, key blocks 64 and 128),
//   ragged query blocks, an empty row (must be exactly 0) and a full row, every supported (variant, query_block,
//   key_block), head_dim 128 and 64; rel-L2 < 1e-2 on a NaN-poisoned output. A full mask must give what the
//   dense kernel gives. The op (ops::block_sparse_attention / block_sparse_recall) on the GPU vs its CPU reference.
//   Planners: test_gpu_sparse_planner.cpp; fast paths and RoPE pooling: test_gpu_sparse_paths.cpp.
#include <doctest/doctest.h>

#if LF_HAVE_CUDA
#include "gpu_sparse_test_util.h"
#include "ops/ops.h"

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

// ---- the op ------------------------------------------------------------------------------------------------------
TEST_CASE("ops::block_sparse_attention and block_sparse_recall on the GPU match their CPU references") {
  // The same random ragged mask and bf16-rounded inputs through the op API on both devices: the CPU reference
  // (lib/ops/cpu/block_sparse_cpu.cpp, f32) and the CUDA path (bf16 in/out). Tolerances as for the kernel against
  // its fp64 reference above (rel-L2 < 1e-2) and for sampled recall (1e-4); NaN fails both.
  lf::ops::initialize_cuda();
  for (const Geometry g : {Geometry{1560, 128, 128, 300, 2}, Geometry{100, 64, 64, 150, 5}}) {
    const int heads = 2, dim = 128;
    const Csr mask = random_mask(g, heads, 11);
    const AttentionInputs in(g, heads, dim, 12);
    auto tensor = [&](const Bf16Data& d, int rows) {
      lf::Tensor t = lf::Tensor::empty({rows, heads, dim});
      std::copy(d.values.begin(), d.values.end(), t.f32());
      return t;
    };
    const lf::Tensor q = tensor(in.q, g.lq), k = tensor(in.k, g.lk()), v = tensor(in.v, g.lk());
    lf::ops::BlockSparseMaskView view;
    view.geometry = {g.tokens_per_frame, g.lq, g.frames, g.query_block, g.key_block};
    view.heads = heads;
    view.row_offsets = mask.row_offsets.data();
    view.key_indices = mask.key_indices.data();
    const double scale = 1.0 / std::sqrt(double(dim));
    const lf::Tensor cpu_out = lf::ops::block_sparse_attention(q, k, v, view, scale);
    const std::vector<double> cpu_recall = lf::ops::block_sparse_recall(q, k, view, scale, 3);

    auto on_gpu = [](const lf::Tensor& t) { return lf::ops::convert(t.to(lf::Device::CUDA), lf::DType::BF16); };
    const lf::Tensor gq = on_gpu(q), gk = on_gpu(k), gv = on_gpu(v);
    const DeviceBuffer offsets(mask.row_offsets.size() * 4, mask.row_offsets.data());
    const DeviceBuffer indices(std::max<size_t>(1, mask.key_indices.size()) * 4, mask.key_indices.data());
    lf::ops::BlockSparseMaskView gpu_view = view;
    gpu_view.row_offsets = offsets.as<int32_t>();
    gpu_view.key_indices = indices.as<int32_t>();
    gpu_view.device = lf::Device::CUDA;
    const lf::Tensor gpu_bf16 = lf::ops::block_sparse_attention(gq, gk, gv, gpu_view, scale);
    const lf::Tensor gpu_out = lf::ops::convert(gpu_bf16, lf::DType::F32).to(lf::Device::CPU);
    const std::vector<double> gpu_recall = lf::ops::block_sparse_recall(gq, gk, gpu_view, scale, 3);
    CAPTURE(g.tokens_per_frame);
    CHECK(rel_l2(std::vector<float>(gpu_out.f32(), gpu_out.f32() + gpu_out.numel()),
                 std::vector<float>(cpu_out.f32(), cpu_out.f32() + cpu_out.numel())) < 1e-2);
    REQUIRE(gpu_recall.size() == cpu_recall.size());
    for (size_t h = 0; h < cpu_recall.size(); ++h) CHECK(std::abs(gpu_recall[h] - cpu_recall[h]) < 1e-4);
    // A mask on the wrong device is refused naming the op, not read.
    CHECK_THROWS_WITH_AS(lf::ops::block_sparse_attention(gq, gk, gv, view, scale),
                         doctest::Contains("block_sparse_attention"), lf::Error);
  }
}

#endif  // LF_HAVE_CUDA
