// Sparse attention: CAG tables from the spec, HSA selection against a brute-force reference, the block-sparse
// operator against masked dense attention, block-topk / block-topp / sliding-tile against selections derived by
// hand from their definitions (docs/sparse-attention.md), static planners, budget and config errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <numeric>

#include "attention/attention_backend.h"
#include "attention/backend_registry.h"
#include "attention/cag_schedule.h"
#include "attention/planners.h"
#include "attention/sparse_operator.h"
#include "config/config.h"
#include "core/block_geometry.h"
#include "core/embedded.h"
#include "core/error.h"
#include "ops/ops.h"
#include "test_util.h"

using namespace lf;

TEST_CASE("CAG schedules equal the spec's worked tables") {
  const std::vector<double> short_expected = {0, 0.8270, 0.8551, 0.8718, 0.8832, 0.8917, 0.8982};
  const std::vector<double> s = cag_sparsities({21, 3, 21, 0.88, 0.98});
  REQUIRE(s.size() == 7);
  for (size_t i = 0; i < 7; ++i) CHECK(s[i] == doctest::Approx(short_expected[i]).epsilon(1e-4));
  const std::vector<int64_t> topk_short = {72, 24, 31, 36, 42, 46, 51};
  for (size_t i = 0; i < 7; ++i) CHECK(topk_for(s[i], int64_t(24 * 3 * (i + 1))) == topk_short[i]);
  // Hopper advice: 0.8 / 0.9 with 128-token blocks (12 a frame).
  const std::vector<double> hopper = cag_sparsities({21, 3, 21, 0.80, 0.90});
  const std::vector<int64_t> topk_hopper = {18, 24, 29, 35, 40, 45};
  for (size_t i = 1; i < 7; ++i) CHECK(topk_for(hopper[i], int64_t(12 * 3 * (i + 1))) == topk_hopper[i - 1]);
  // Long: 63 frames, window 12.
  const std::vector<double> long_s = cag_sparsities({63, 3, 12, 0.85, 0.95});
  CHECK(long_s[1] == doctest::Approx(0.7345).epsilon(1e-4));
  CHECK(long_s[4] == doctest::Approx(0.8137).epsilon(1e-4));
  CHECK(long_s[20] == doctest::Approx(0.8835).epsilon(1e-4));
  CHECK(topk_for(long_s[3], 288) == 58);
  CHECK(topk_for(long_s[20], 288) == 33);
}

namespace {

struct CallData {
  Tensor q, k, v;
  AttentionCall call;
};

CallData random_call(int64_t chunk, int64_t frames_visible, int64_t tokens_per_frame, int64_t heads, int64_t dim,
                     uint64_t seed) {
  CallData data;
  data.q = test::random_tensor({3 * tokens_per_frame, heads, dim}, seed);
  data.k = test::random_tensor({frames_visible * tokens_per_frame, heads, dim}, seed + 1);
  data.v = test::random_tensor({frames_visible * tokens_per_frame, heads, dim}, seed + 2);
  data.call.chunk = chunk;
  data.call.q = &data.q;
  data.call.k = &data.k;
  data.call.v = &data.v;
  data.call.frames_visible = frames_visible;
  data.call.frames_in_chunk = 3;
  data.call.tokens_per_frame = tokens_per_frame;
  data.call.scale = 1.0 / std::sqrt(double(dim));
  return data;
}

// Brute force HSA, written from light-forcing.md 3.2 with plain loops over tokens.
std::vector<std::vector<int32_t>> brute_force_hsa(const CallData& data, const AttentionConfig& config,
                                                  double sparsity) {
  const int64_t tpf = data.call.tokens_per_frame, heads = data.q.dim(1), dim = data.q.dim(2);
  const int64_t frames = data.call.frames_visible, past = frames - 3;
  const int64_t per_frame = (tpf + config.key_block - 1) / config.key_block, blocks = frames * per_frame;
  const int64_t query_blocks = (data.q.dim(0) + config.query_block - 1) / config.query_block;
  const int64_t topk = int64_t((1.0 - sparsity) * double(blocks));
  auto mean = [&](const Tensor& x, int64_t h, int64_t first, int64_t last) {
    std::vector<double> m(static_cast<size_t>(dim), 0.0);
    for (int64_t t = first; t < last; ++t)
      for (int64_t d = 0; d < dim; ++d) m[size_t(d)] += x.f32()[(t * heads + h) * dim + d] / double(last - first);
    return m;
  };
  auto dot = [](const std::vector<double>& a, const std::vector<double>& b) {
    double s = 0;
    for (size_t i = 0; i < a.size(); ++i) s += double(float(a[i])) * double(float(b[i]));
    return s;
  };
  std::vector<std::vector<int32_t>> rows;
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t qb = 0; qb < query_blocks; ++qb) {
      const auto pq = mean(data.q, h, qb * config.query_block,
                           std::min<int64_t>(data.q.dim(0), (qb + 1) * config.query_block));
      std::vector<bool> frame_ok(static_cast<size_t>(frames), false);
      if (past > config.keep_frames) {
        std::vector<std::pair<double, int64_t>> middle;
        for (int64_t f = config.keep_sink; f < past - config.keep_near; ++f)
          middle.push_back({-dot(pq, mean(data.k, h, f * tpf, (f + 1) * tpf)), f});
        std::sort(middle.begin(), middle.end());
        for (int64_t i = 0; i < config.keep_frames - config.keep_sink - config.keep_near; ++i)
          frame_ok[size_t(middle[size_t(i)].second)] = true;
        for (int64_t f = 0; f < frames; ++f)
          if (f < config.keep_sink || f >= past - config.keep_near) frame_ok[size_t(f)] = true;
      } else {
        std::fill(frame_ok.begin(), frame_ok.end(), true);
      }
      std::vector<std::pair<double, int32_t>> candidates;
      for (int64_t b = 0; b < blocks; ++b) {
        const int64_t f = b / per_frame, first = f * tpf + (b % per_frame) * config.key_block;
        if (frame_ok[size_t(f)])
          candidates.push_back({-dot(pq, mean(data.k, h, first, std::min(first + config.key_block, (f + 1) * tpf))),
                                int32_t(b)});
      }
      std::sort(candidates.begin(), candidates.end());
      std::vector<int32_t> row;
      for (int64_t i = 0; i < topk; ++i) row.push_back(candidates[size_t(i)].second);
      std::sort(row.begin(), row.end());
      rows.push_back(row);
    }
  return rows;
}

std::vector<int32_t> mask_row(const BlockMask& mask, int64_t row) {
  return {mask.key_indices.begin() + mask.row_offsets[size_t(row)],
          mask.key_indices.begin() + mask.row_offsets[size_t(row) + 1]};
}

}  // namespace

TEST_CASE("Light Forcing HSA selection equals a brute-force reference (1-stage and 2-stage, ragged blocks)") {
  AttentionConfig config;
  config.backend = "lightforcing";
  config.keep_frames = 4, config.keep_sink = 1, config.keep_near = 1;
  config.sparsity = 0.75, config.sparsity_base = 0.85;
  const int64_t frames = 24, tokens_per_frame = 100;  // 100 = 64 + 36: every frame has a ragged block
  auto planner = make_planner(config, frames, 3);
  const std::vector<double> s = cag_sparsities({frames, 3, config.cag_window_frames, 0.75, 0.85});
  for (int64_t chunk : {1, 3, 7}) {  // past 3 (1-stage), 9 and 21 frames (2-stage)
    CAPTURE(chunk);
    const CallData data = random_call(chunk, 3 * (chunk + 1), tokens_per_frame, 2, 16, 100 + uint64_t(chunk));
    const BlockMask mask = planner->plan(data.call);
    validate(mask);
    const auto expected = brute_force_hsa(data, config, s[size_t(chunk)]);
    REQUIRE(int64_t(expected.size()) == mask.rows());
    for (int64_t row = 0; row < mask.rows(); ++row) CHECK(mask_row(mask, row) == expected[size_t(row)]);
  }
  // Chunk 0 is dense.
  const CallData first = random_call(0, 3, tokens_per_frame, 2, 16, 7);
  CHECK(planner->plan(first.call).density() == 1.0);
}

TEST_CASE("Light Forcing keeps at least one block a row where int((1 - sparsity) K) truncates to 0") {
  // lightforcing-long's 0.85 / 0.95 on 6 one-block frames: the released formula keeps int(<= 0.15 x 6) = 0 blocks,
  // and a row would attend to nothing. The CPU planner keeps the best block, as the GPU planner does.
  AttentionConfig config;
  config.backend = "lightforcing";
  config.keep_frames = 3, config.keep_sink = 1, config.keep_near = 1;
  config.sparsity = 0.85, config.sparsity_base = 0.95;
  auto planner = make_planner(config, 6, 3);
  REQUIRE(topk_for(planner->target_sparsity(1), 6) == 0);
  const CallData data = random_call(1, 6, 64, 2, 16, 41);
  const BlockMask mask = planner->plan(data.call);
  validate(mask);
  // The definition with a budget of one block (int(0.25 x 6) = 1): the row's best-scoring block.
  const auto expected = brute_force_hsa(data, config, 0.75);
  REQUIRE(int64_t(expected.size()) == mask.rows());
  for (int64_t row = 0; row < mask.rows(); ++row) {
    CHECK(expected[size_t(row)].size() == 1);
    CHECK(mask_row(mask, row) == expected[size_t(row)]);
  }
}

TEST_CASE("the budget invariant is enforced with a clear error") {
  AttentionConfig config;
  config.backend = "lightforcing";
  config.keep_frames = 1, config.keep_sink = 0, config.keep_near = 0;
  config.sparsity = 0.05, config.sparsity_base = 0.06;  // top-k far beyond the 4 eligible frames
  auto planner = make_planner(config, 30, 3);
  const CallData data = random_call(5, 18, 64, 1, 8, 3);
  CHECK_THROWS_WITH_AS(planner->plan(data.call), doctest::Contains("exceeds the"), Error);
}

TEST_CASE("block-sparse operator: a full mask is dense, a random ragged mask is masked dense") {
  const CallData data = random_call(2, 5, 100, 3, 32, 40);
  AttentionConfig config;
  const BlockGeometry geometry = geometry_for(data.call, config);
  const Tensor dense = ops::attention(data.q, data.k, data.v, data.call.scale);
  CHECK(test::rel_l2(block_sparse_attention(data.q, data.k, data.v, BlockMask::dense(3, geometry), data.call.scale),
                     dense) < 1e-5);
  // Random mask: each row keeps a pseudo-random subset (one row empty).
  BlockMask mask;
  mask.heads = 3;
  mask.geometry = geometry;
  mask.row_offsets.push_back(0);
  uint64_t state = 12345;
  for (int64_t row = 0; row < mask.rows(); ++row) {
    for (int64_t b = 0; b < geometry.key_blocks(); ++b) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      if (row != 4 && (state >> 60) < 6) mask.key_indices.push_back(int32_t(b));
    }
    mask.row_offsets.push_back(int32_t(mask.key_indices.size()));
  }
  validate(mask);
  const Tensor sparse = block_sparse_attention(data.q, data.k, data.v, mask, data.call.scale);
  Tensor reference = Tensor::zeros(data.q.shape());
  const int64_t heads = 3, dim = 32, keys = data.k.dim(0);
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t t = 0; t < data.q.dim(0); ++t) {
      const auto row = mask_row(mask, h * geometry.query_blocks() + t / 64);
      std::vector<double> p(static_cast<size_t>(keys), 0.0);
      double total = 0;
      for (int64_t j = 0; j < keys; ++j) {
        const int64_t block = (j / 100) * 2 + (j % 100) / 64;
        if (!std::binary_search(row.begin(), row.end(), int32_t(block))) continue;
        double s = 0;
        for (int64_t d = 0; d < dim; ++d)
          s += double(data.q.f32()[(t * heads + h) * dim + d]) * data.k.f32()[(j * heads + h) * dim + d];
        p[size_t(j)] = std::exp(s * data.call.scale);
        total += p[size_t(j)];
      }
      if (total == 0) continue;
      for (int64_t d = 0; d < dim; ++d) {
        double acc = 0;
        for (int64_t j = 0; j < keys; ++j) acc += p[size_t(j)] * data.v.f32()[(j * heads + h) * dim + d];
        reference.f32()[(t * heads + h) * dim + d] = float(acc / total);
      }
    }
  CHECK(test::rel_l2(sparse, reference) < 1e-5);
  CHECK(test::rel_l2(sparse, dense) > 1e-3);
  // Recall: a full mask keeps all the mass, the random one part of it.
  for (double r : attention_recall(data.q, data.k, BlockMask::dense(3, geometry), data.call.scale)) CHECK(r == doctest::Approx(1.0));
  for (double r : attention_recall(data.q, data.k, mask, data.call.scale)) CHECK(r < 0.9);
}

TEST_CASE("block-sparse operator is within 1e-6 of double precision (D 64 and 128, 64 and 128 blocks, long runs)") {
  // 100 tokens a frame: every frame ends in a ragged key block. Dense selections give runs of several hundred keys
  // (several key chunks: the online softmax rescales), sparse ones short ragged runs; one row selects nothing.
  for (auto [dim, block] : {std::pair<int64_t, int64_t>{64, 64}, {128, 64}, {64, 128}}) {
    CAPTURE(dim);
    CAPTURE(block);
    const int64_t heads = 2, frames = 9;
    const CallData data = random_call(2, frames, 100, heads, dim, 70 + uint64_t(dim + block));
    AttentionConfig config;
    config.query_block = config.key_block = block;
    const BlockGeometry geometry = geometry_for(data.call, config);
    BlockMask mask;
    mask.heads = heads;
    mask.geometry = geometry;
    mask.row_offsets.push_back(0);
    uint64_t state = 777;
    for (int64_t row = 0; row < mask.rows(); ++row) {
      const uint64_t keep_of_16 = row % 2 ? 14 : 5;
      for (int64_t b = 0; b < geometry.key_blocks(); ++b) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        if (row != 1 && (state >> 60) < keep_of_16) mask.key_indices.push_back(int32_t(b));
      }
      mask.row_offsets.push_back(int32_t(mask.key_indices.size()));
    }
    validate(mask);
    const Tensor out = block_sparse_attention(data.q, data.k, data.v, mask, data.call.scale);
    // Reference in double: softmax over the selected keys, and the recall (selected share of the full softmax).
    Tensor reference = Tensor::zeros(data.q.shape());
    const int64_t keys = data.k.dim(0);
    std::vector<double> recall(static_cast<size_t>(heads), 0.0);
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t t = 0; t < data.q.dim(0); ++t) {
        const auto row = mask_row(mask, h * geometry.query_blocks() + t / block);
        std::vector<double> p(static_cast<size_t>(keys));
        std::vector<char> selected(static_cast<size_t>(keys));
        double max_score = -INFINITY;
        for (int64_t j = 0; j < keys; ++j) {
          const int64_t key_block = (j / 100) * geometry.blocks_per_frame() + (j % 100) / block;
          selected[size_t(j)] = std::binary_search(row.begin(), row.end(), int32_t(key_block));
          double s = 0;
          for (int64_t d = 0; d < dim; ++d)
            s += double(data.q.f32()[(t * heads + h) * dim + d]) * data.k.f32()[(j * heads + h) * dim + d];
          p[size_t(j)] = s * data.call.scale;
          max_score = std::max(max_score, p[size_t(j)]);
        }
        double total = 0, kept = 0;
        for (int64_t j = 0; j < keys; ++j) {
          p[size_t(j)] = std::exp(p[size_t(j)] - max_score);
          total += p[size_t(j)];
          if (selected[size_t(j)]) kept += p[size_t(j)];
        }
        recall[size_t(h)] += kept / total / double(data.q.dim(0));
        if (kept == 0) continue;
        for (int64_t d = 0; d < dim; ++d) {
          double acc = 0;
          for (int64_t j = 0; j < keys; ++j)
            if (selected[size_t(j)]) acc += p[size_t(j)] * data.v.f32()[(j * heads + h) * dim + d];
          reference.f32()[(t * heads + h) * dim + d] = float(acc / kept);
        }
      }
    CHECK(test::rel_l2(out, reference) < 1e-6);
    // The empty row (head 0, query block 1) is zeros.
    CHECK(out.f32()[(block * heads) * dim] == 0.0f);
    CHECK(out.f32()[((2 * block - 1) * heads) * dim + dim - 1] == 0.0f);
    // Bit-identical on a rerun.
    CHECK(std::memcmp(block_sparse_attention(data.q, data.k, data.v, mask, data.call.scale).f32(), out.f32(),
                      out.nbytes()) == 0);
    const std::vector<double> measured = attention_recall(data.q, data.k, mask, data.call.scale);
    // Recall uses the operator's fp32 scores; the reference's are double: relative agreement ~1e-7.
    for (int64_t h = 0; h < heads; ++h) CHECK(measured[size_t(h)] == doctest::Approx(recall[size_t(h)]).epsilon(1e-6));
  }
}

TEST_CASE("static planners follow their definitions") {
  AttentionConfig config;
  config.backend = "sliding-tile";
  config.window_frames = 0, config.window_blocks = 0;
  const CallData data = random_call(2, 9, 128, 2, 8, 9);  // 2 key blocks a frame, query blocks of 64
  BlockMask tile = make_planner(config, 9, 3)->plan(data.call);
  validate(tile);
  // Query block 0: first frame of the chunk (frame 6), in-frame position 0 -> exactly key block 12.
  CHECK(mask_row(tile, 0) == std::vector<int32_t>{12});
  config.backend = "radial";
  config.radial_window_blocks = 2;
  BlockMask radial = make_planner(config, 9, 3)->plan(data.call);
  const auto row = mask_row(radial, 0);  // query frame 6, position 0
  CHECK(std::count_if(row.begin(), row.end(), [](int32_t b) { return b < 2; }) == 2);  // sink frame whole
  CHECK(std::binary_search(row.begin(), row.end(), 12));  // own frame
  CHECK(std::binary_search(row.begin(), row.end(), 13));  // own frame, band 0 is dense
  CHECK(std::binary_search(row.begin(), row.end(), 10));  // frame 5 (d = 1, band 1: window 1) position 0
  CHECK(std::binary_search(row.begin(), row.end(), 11));  // position 1 within window 1
  CHECK_FALSE(std::binary_search(row.begin(), row.end(), 3));  // frame 1: d = 5, band 3, window 0: position 1 out
  config.backend = "block-topp";
  config.top_p = 0.5;
  BlockMask topp = make_planner(config, 9, 3)->plan(data.call);
  validate(topp);
  CHECK(topp.density() < 1.0);
  CHECK(topp.row_size(0) >= 1);
}

namespace {

// Hand-made score matrices for the dynamic planners. Head h, query block r, key block b scores table[h][r][b]:
// every token of query block r is the one-hot e_r, every token of key block b of head h has component r equal to
// table[h][r][b]. Each token also carries seeded noise that cancels in pairs (+n on one token, -n on the next,
// multiples of 1/64 so every sum is exact), so the block means, and so the pooled scores, are exactly the table
// while no single token equals its block's mean (a planner that scored one token instead of the mean would fail).
// Geometry: 64 tokens a frame, 64-token blocks, 3 query frames (3 query blocks), key_blocks frames visible, D 4.
constexpr int64_t kTableTokens = 64, kTableDim = 4;
using ScoreTable = std::vector<std::vector<std::vector<int>>>;  // [head][query block][key block]

CallData table_call(const ScoreTable& table, int64_t chunk, uint64_t seed) {
  const int64_t heads = int64_t(table.size()), query_blocks = int64_t(table[0].size());
  const int64_t key_blocks = int64_t(table[0][0].size());
  REQUIRE(query_blocks == 3);  // one-hot queries in dims 0..2 of D 4
  CallData data;
  data.q = Tensor::empty({3 * kTableTokens, heads, kTableDim});
  data.k = Tensor::empty({key_blocks * kTableTokens, heads, kTableDim});
  data.v = test::random_tensor({key_blocks * kTableTokens, heads, kTableDim}, seed);
  uint64_t state = seed;
  float last = 0;
  auto paired_noise = [&](int64_t token) {  // +n, -n on consecutive tokens: n in {1..64} / 64
    if (token % 2 == 1) return -last;
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    last = float(1 + (state >> 58)) / 64.0f;
    return last;
  };
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t d = 0; d < kTableDim; ++d) {
      for (int64_t t = 0; t < data.q.dim(0); ++t)
        data.q.f32()[(t * heads + h) * kTableDim + d] = (t / kTableTokens == d ? 1.0f : 0.0f) + paired_noise(t);
      for (int64_t t = 0; t < data.k.dim(0); ++t) {
        const float mean = d < query_blocks ? float(table[size_t(h)][size_t(d)][size_t(t / kTableTokens)]) : 0.0f;
        data.k.f32()[(t * heads + h) * kTableDim + d] = mean + paired_noise(t);
      }
    }
  data.call.chunk = chunk;
  data.call.q = &data.q;
  data.call.k = &data.k;
  data.call.v = &data.v;
  data.call.frames_visible = key_blocks;
  data.call.frames_in_chunk = 3;
  data.call.tokens_per_frame = kTableTokens;
  data.call.scale = 1.0 / std::sqrt(double(kTableDim));  // 0.5, the model's 1/sqrt(D)
  return data;
}

AttentionConfig table_config(const std::string& backend) {
  AttentionConfig config;
  config.backend = backend;
  config.query_block = config.key_block = kTableTokens;
  return config;
}

std::vector<float> mask_scores(const BlockMask& mask, int64_t row) {
  return {mask.scores.begin() + mask.row_offsets[size_t(row)], mask.scores.begin() + mask.row_offsets[size_t(row) + 1]};
}

using Rows = std::vector<std::vector<int32_t>>;

void check_rows(const BlockMask& mask, const Rows& expected) {
  validate(mask);
  REQUIRE(mask.rows() == int64_t(expected.size()));
  for (int64_t row = 0; row < mask.rows(); ++row) {
    CAPTURE(row);
    CHECK(mask_row(mask, row) == expected[size_t(row)]);
  }
}

}  // namespace

TEST_CASE("block-topk keeps int((1 - sparsity) K) blocks of a hand-made score table (ties: lower index)") {
  // 2 heads x 3 query blocks x 8 key blocks; rows are head-major (row = h * 3 + r).
  const ScoreTable table = {{{5, 1, 7, 3, 2, 0, 6, 4},          // h0 r0: 7, 6, 5 at blocks 2, 6, 0
                             {-1, -2, -3, -4, -5, -6, -7, -8},  // all negative: the three least negative
                             {0, 9, 0, 9, 0, 9, 0, 9}},         // four-way tie at 9: blocks 1, 3, 5 (lower index)
                            {{2, 2, 2, 2, 2, 2, 2, 2},          // all tied: 0, 1, 2
                             {1, 2, 3, 4, 5, 6, 7, 8},          // the last three
                             {3, -8, 4, 4, -2, 1, 4, 0}}};      // three-way tie at 4: blocks 2, 3, 6
  AttentionConfig config = table_config("block-topk");
  config.sparsity = 0.6;  // top-k = int(0.4 * 8) = 3 of the 8 blocks (the released int() truncation)
  const CallData data = table_call(table, 2, 11);
  auto planner = make_planner(config, 24, 3);
  CHECK(planner->target_sparsity(2) == 0.6);
  CHECK_FALSE(planner->plans_dense(data.call));
  const BlockMask mask = planner->plan(data.call);
  check_rows(mask, {{0, 2, 6}, {0, 1, 2}, {1, 3, 5}, {0, 1, 2}, {5, 6, 7}, {2, 3, 6}});
  // The mask carries each kept block's pooled score: exactly the table's entries.
  CHECK(mask_scores(mask, 0) == std::vector<float>{5, 7, 6});
  CHECK(mask_scores(mask, 1) == std::vector<float>{-1, -2, -3});
  CHECK(mask_scores(mask, 5) == std::vector<float>{4, 4, 4});
  CHECK(mask.density() == doctest::Approx(3.0 / 8.0));

  // Sparsity 0.95: int(0.05 * 8) = 0, raised to the one-block floor: each row's best block (first of a tie).
  config.sparsity = 0.95;
  check_rows(make_planner(config, 24, 3)->plan(data.call), {{2}, {0}, {1}, {0}, {7}, {2}});

  // Chunk 0 is dense unless sparse_first_chunk, then it is planned like any other chunk.
  config.sparsity = 0.6;
  const CallData first = table_call(table, 0, 12);
  CHECK(make_planner(config, 24, 3)->plan(first.call).density() == 1.0);
  config.sparse_first_chunk = true;
  check_rows(make_planner(config, 24, 3)->plan(first.call),
             {{0, 2, 6}, {0, 1, 2}, {1, 3, 5}, {0, 1, 2}, {5, 6, 7}, {2, 3, 6}});
}

TEST_CASE("block-topp keeps the fewest blocks whose softmax(score / sqrt(D)) mass reaches top_p (hand-derived)") {
  // Masses worked out by hand from the definition (docs/sparse-attention.md), scores x 0.5:
  //  h0 r0 (8, 4, 0 x6): e^4, e^2, 1 x6 over 67.99 -> 0.803, 0.109, 0.0147 each
  //  h0 r1 (all 2): 1/8 each, exactly
  //  h0 r2: h0 r0 permuted: 0.803 at block 3, 0.109 at block 6
  //  h1 r0 (-40 x7, 0): block 7 holds 1 - 7 e^-20 of the mass (the max is subtracted before exp: no underflow)
  //  h1 r1 (6, 6, 0 x6): 0.435, 0.435, 0.0217 each (the tie at the top goes to block 0 first)
  //  h1 r2 (1..8): 0.401, 0.243, 0.147, 0.089, 0.054, ... from block 7 down
  const ScoreTable table = {
      {{8, 4, 0, 0, 0, 0, 0, 0}, {2, 2, 2, 2, 2, 2, 2, 2}, {0, 0, 0, 8, 0, 0, 4, 0}},
      {{-40, -40, -40, -40, -40, -40, -40, 0}, {6, 6, 0, 0, 0, 0, 0, 0}, {1, 2, 3, 4, 5, 6, 7, 8}}};
  const CallData data = table_call(table, 2, 21);
  AttentionConfig config = table_config("block-topp");
  config.top_p = 0.9;
  // 0.803 + 0.109 = 0.912; 7/8 = 0.875 < 0.9 so all 8; 0.870 + 0.0217 = 0.892 < 0.9, + 0.0217 = 0.913;
  // 0.401 + 0.243 + 0.147 + 0.089 = 0.881 < 0.9, + 0.054 = 0.935.
  check_rows(make_planner(config, 24, 3)->plan(data.call),
             {{0, 1}, {0, 1, 2, 3, 4, 5, 6, 7}, {3, 6}, {7}, {0, 1, 2, 3}, {3, 4, 5, 6, 7}});
  config.top_p = 0.5;
  // 4 x 1/8 = 0.5 exactly: "reaches" includes equality; 0.435 < 0.5 so both tied blocks; 0.401 + 0.243.
  check_rows(make_planner(config, 24, 3)->plan(data.call), {{0}, {0, 1, 2, 3}, {3}, {7}, {0, 1}, {6, 7}});
  config.top_p = 1e-9;  // at least one block: the best (the first of a tie)
  check_rows(make_planner(config, 24, 3)->plan(data.call), {{0}, {0}, {3}, {7}, {0}, {7}});
  // Chunk 0 is dense.
  const CallData first = table_call(table, 0, 22);
  CHECK(make_planner(config, 24, 3)->plan(first.call).density() == 1.0);
}

TEST_CASE("sliding-tile keeps the +-window_frames x +-window_blocks tile around each query block (hand-derived)") {
  AttentionConfig config;
  config.backend = "sliding-tile";
  config.window_frames = 1, config.window_blocks = 1;
  // 256 tokens a frame = 4 key blocks of 64 (block b = 4 f + p); 5 visible frames, the chunk is frames 2-4;
  // 12 query blocks of 64. A query block's frame and in-frame position are those of its centre token.
  const CallData data = random_call(2, 5, 256, 2, 8, 31);
  const BlockMask mask = make_planner(config, 15, 3)->plan(data.call);
  validate(mask);
  REQUIRE(mask.rows() == 24);
  // qb 0: centre token 32 -> frame 2, position 0: frames 1-3, positions 0-1.
  CHECK(mask_row(mask, 0) == std::vector<int32_t>{4, 5, 8, 9, 12, 13});
  // qb 5: centre 352 -> chunk frame 1 = frame 3, position 96 / 64 = 1: frames 2-4, positions 0-2.
  CHECK(mask_row(mask, 5) == std::vector<int32_t>{8, 9, 10, 12, 13, 14, 16, 17, 18});
  // qb 6: centre 416 -> frame 3, position 160 / 64 = 2: frames 2-4, positions 1-3.
  CHECK(mask_row(mask, 6) == std::vector<int32_t>{9, 10, 11, 13, 14, 15, 17, 18, 19});
  // qb 11: centre 736 -> frame 4 (the last), position 224 / 64 = 3: frames 3-4, positions 2-3.
  CHECK(mask_row(mask, 11) == std::vector<int32_t>{14, 15, 18, 19});
  // Static: every head has the same rows.
  for (int64_t row = 0; row < 12; ++row) CHECK(mask_row(mask, 12 + row) == mask_row(mask, row));

  // Ragged frames: 100 tokens = key blocks of 64 and 36 (b = 2 f + p); 5 query blocks, the last of 44 tokens.
  config.window_frames = 1, config.window_blocks = 0;
  const CallData ragged_data = random_call(2, 5, 100, 1, 8, 32);  // its own object: the call points into it
  const BlockMask ragged = make_planner(config, 15, 3)->plan(ragged_data.call);
  validate(ragged);
  REQUIRE(ragged.rows() == 5);
  // qb 4: tokens 256-299, centre 278 -> chunk frame 2 = frame 4, position 78 / 64 = 1: frames 3-4, position 1.
  CHECK(mask_row(ragged, 4) == std::vector<int32_t>{7, 9});
  // qb 1: tokens 64-127, centre 96 -> frame 2, position 1 (the 36-token tail block): frames 1-3, position 1.
  CHECK(mask_row(ragged, 1) == std::vector<int32_t>{3, 5, 7});
  // window_frames 0 keeps the query's own frame only; chunk 0 stays dense.
  config.window_frames = 0, config.window_blocks = 1;
  CHECK(mask_row(make_planner(config, 15, 3)->plan(ragged_data.call), 4) == std::vector<int32_t>{8, 9});
  CHECK(make_planner(config, 15, 3)->plan(random_call(0, 3, 100, 1, 8, 33).call).density() == 1.0);
}

TEST_CASE("impossible attention settings are refused naming the setting") {
  const std::string model = "model: {dim: 32, ffn_dim: 48, heads: 2, layers: 1, text_dim: 4, text_len: 2,"
                            " in_channels: 3, out_channels: 3, latent_height: 4, latent_width: 4}\n";
  CHECK_THROWS_WITH_AS(parse_run_config(model, "x", {"attention.sparsity=1.0"}), doctest::Contains("attention.sparsity"),
                       Error);
  CHECK_THROWS_WITH_AS(parse_run_config(model, "x", {"attention.keep_sink=3", "attention.keep_near=4"}),
                       doctest::Contains("keep_frames"), Error);
  CHECK_THROWS_WITH_AS(parse_run_config(model, "x", {"attention.key_block=96"}), doctest::Contains("key_block"), Error);
  CHECK_NOTHROW(parse_run_config(model, "x", {"attention.backend=lightforcing"}));
}

TEST_CASE("the frame-aligned block geometry: 1560-token frames split into 64- and 128-key blocks") {
  // 1560 = 24 x 64 + 24 = 12 x 128 + 24: a ragged 24-token tail ends every frame, never straddling into the next.
  BlockGeometry g;
  g.tokens_per_frame = 1560;
  g.query_tokens = 3 * 1560;
  g.key_frames = 5;
  for (const int64_t key_block : {int64_t(64), int64_t(128)}) {
    g.key_block = key_block;
    const int64_t per_frame = key_block == 64 ? 25 : 13;
    CAPTURE(key_block);
    CHECK(g.blocks_per_frame() == per_frame);
    CHECK(g.key_blocks() == 5 * per_frame);
    CHECK(frame_blocks::frame_tail_length(g.tokens_per_frame, key_block) == 24);
    int64_t covered = 0;
    for (int64_t b = 0; b < g.key_blocks(); ++b) {
      const int64_t frame = b / per_frame, inside = b % per_frame;
      CHECK(g.key_block_frame(b) == frame);
      CHECK(g.key_block_start(b) == frame * 1560 + inside * key_block);
      CHECK(g.key_block_length(b) == (inside == per_frame - 1 ? 24 : key_block));
      CHECK(frame_blocks::is_frame_tail(b, per_frame) == (inside == per_frame - 1));
      CHECK(g.key_block_start(b) == covered);  // blocks tile the keys in order, without gaps
      covered += g.key_block_length(b);
    }
    CHECK(covered == g.key_tokens());
  }
  g.query_block = 128;  // 4680 = 36 x 128 + 72
  CHECK(g.query_blocks() == 37);
  CHECK(g.query_block_length(35) == 128);
  CHECK(g.query_block_length(36) == 72);
  // The kernels compute the same rules in int.
  const BasicBlockGeometry<int> gi{1560, 4680, 5, 128, 128};
  CHECK(gi.key_blocks() == 65);
  CHECK(gi.key_block_start(25) == 1560 + 12 * 128);
  CHECK(gi.key_block_length(25) == 24);
}

TEST_CASE("attention backend registry: names checked with the key, presets and factories from the entries") {
  CHECK_THROWS_WITH_AS(attention_backend_entry("magic"), doctest::Contains("config key 'attention.backend'"), Error);
  CHECK_THROWS_WITH_AS(attention_backend_entry("magic"), doctest::Contains("'magic'"), Error);
  CHECK_THROWS_WITH_AS(attention_backend_entry("magic"), doctest::Contains(attention_backend_names().c_str()), Error);
  CHECK(dense_attention_backend().exact_dense);
  // Every preset an entry lists exists and selects that entry's backend; every embedded preset is listed.
  int64_t listed = 0, embedded = 0;
  for (const AttentionBackendEntry& entry : attention_backend_registry()) {
    CAPTURE(entry.name);
    CHECK(&attention_backend_entry(entry.name) == &entry);
    CHECK_FALSE(entry.description.empty());
    for (const std::string& preset : entry.presets) {
      CAPTURE(preset);
      CHECK(load_run_config({.model = "tiny", .attention = preset, .overrides = {}}).attention.backend == entry.name);
      ++listed;
    }
    // The factory builds the entry's planner and backend (video length given for CAG).
    PipelineConfig pipeline;
    AttentionConfig config;
    config.backend = entry.name;
    CHECK(make_planner(config, pipeline.frames, pipeline.chunk_frames) != nullptr);
    CHECK(make_attention_backend(config, &pipeline)->name() == entry.name);
    if (entry.needs_video_schedule)
      CHECK_THROWS_WITH_AS(make_attention_backend(config), doctest::Contains(entry.name.c_str()), Error);
  }
  for (const EmbeddedFile* file = kEmbeddedConfigs; file->path != nullptr; ++file)
    if (std::string(file->path).rfind("attention/", 0) == 0) ++embedded;
  CHECK(listed == embedded);
  CHECK(listed > 0);
  // The docs' backend table is the registry's (regenerate it with attention_backends_markdown when this fails).
  std::ifstream docs(std::string(LF_SOURCE_DIR) + "/docs/sparse-attention.md");
  REQUIRE(docs.good());
  const std::string text((std::istreambuf_iterator<char>(docs)), std::istreambuf_iterator<char>());
  CHECK(text.find(attention_backends_markdown()) != std::string::npos);
}
