// Sparse attention: CAG tables from the spec, HSA selection against a brute-force reference, the block-sparse
// operator against masked dense attention, static planners against their definitions, budget and config errors.
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
