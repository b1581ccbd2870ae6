// The planners' fast paths vs the exact old paths (radix vs bitonic selection, dependent vs plain launches, fused
// vs separate score-select), bit for bit; RoPE + pooling in one pass vs rope_apply then the planner's pooling.
#include <doctest/doctest.h>

#if LF_HAVE_CUDA
#include "gpu_sparse_test_util.h"

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

#endif  // LF_HAVE_CUDA
