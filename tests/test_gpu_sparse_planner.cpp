// The GPU mask planners vs the CPU planners (lib/attention/planners.cpp): pooling and scores vs their
// double-precision means and dots (rel-L2 < 1e-5); top-k, HSA and top-p selections identical to the CPU rules on
// well-separated scores, including exact ties; whole and cached planners.
#include <doctest/doctest.h>

#if LF_HAVE_CUDA
#include "gpu_sparse_test_util.h"

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

    // The CPU planners' pooling (double sums) and their dot product are the reference.
    const lf::PooledBlocks want = lf::pool_blocks(host_tensor(q.values, g.query_tokens, g.heads, dim),
                                                  host_tensor(k.values, g.key_tokens(), g.heads, dim),
                                                  {g.tokens_per_frame, g.query_tokens, g.key_frames, g.query_block,
                                                   g.key_block});
    CAPTURE(dim);
    CHECK(rel_l2(download<float>(b.pooled_queries, want.queries.size()), want.queries) < 1e-5);
    CHECK(rel_l2(download<float>(b.pooled_keys, want.keys.size()), want.keys) < 1e-5);
    CHECK(rel_l2(download<float>(b.pooled_frame_keys, want.frame_keys.size()), want.frame_keys) < 1e-5);

    std::vector<float> want_s(size_t(g.rows()) * g.key_blocks());
    for (int h = 0; h < g.heads; ++h)
      for (int qb = 0; qb < g.query_blocks(); ++qb)
        for (int kb = 0; kb < g.key_blocks(); ++kb)
          want_s[(size_t(h) * g.query_blocks() + qb) * g.key_blocks() + kb] =
              float(lf::dot(want.query(h, qb), want.key(h, kb), dim));
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
        want.push_back(lf::top_blocks(score_row(scores, r, key_blocks), nullptr, topk));
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

    // The CPU planner's rules (lib/attention/planners.cpp): stage 1 picks frames, stage 2 top-k of their blocks.
    std::vector<std::vector<int>> want;
    for (int r = 0; r < rows; ++r) {
      const std::vector<char> frame_ok = lf::hsa_eligible_frames(score_row(frame_scores, r, c.frames),
                                                                 c.frames - c.chunk, c.keep_frames, c.sink, c.near);
      std::vector<char> eligible(static_cast<size_t>(kb));
      for (int b = 0; b < kb; ++b) eligible[size_t(b)] = frame_ok[size_t(b / bpf)];
      want.push_back(lf::top_blocks(score_row(block_scores, r, kb), &eligible, c.topk));
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
          std::vector<int> order(static_cast<size_t>(key_blocks));
          std::iota(order.begin(), order.end(), 0);
          std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return row[size_t(a)] > row[size_t(b)]; });
          double total = 0, top = row[size_t(order[0])];
          for (float s : row) total += std::exp((double(s) - top) * scale);
          double mass = 0;
          bool separated = true;
          for (int j = 0; j + 1 < key_blocks; ++j) {
            mass += std::exp((double(row[size_t(order[size_t(j)])]) - top) * scale) / total;
            if (std::fabs(mass - p) < 1e-3) separated = false;
          }
          if (!separated) continue;
          std::copy(row.begin(), row.end(), scores.begin() + size_t(r) * key_blocks);
          want.push_back(lf::topp_blocks(row, scale, p));  // the CPU planner's rule
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

#endif  // LF_HAVE_CUDA
