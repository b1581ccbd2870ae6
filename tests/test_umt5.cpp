// umT5 encoder: the ops it adds (attention with a bias, multiply, linear on stored bf16/fp16/fp8 weights), the
// position buckets, weight loading in both layouts, and parity with the official Wan code (fixtures made by
// tools/make_umt5_parity_fixture.py from wan/modules/t5.py, fp32 on CPU torch).
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "model/umt5_encoder.h"
#include "ops/ops.h"
#include "test_umt5_weights.h"
#include "test_util.h"

namespace {

using lf::DType;
using lf::Tensor;
using lf::test::random_tensor;
using lf::test::rel_l2;

const std::string kFixtures = std::string(LF_FIXTURES_DIR) + "/umt5/";

// Plain double-precision attention with an additive bias, independent of the ops under test.
Tensor naive_biased_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& bias, double scale) {
  const int64_t lq = q.dim(0), heads = q.dim(1), dim = q.dim(2), lk = k.dim(0);
  Tensor out = Tensor::empty(q.shape());
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < lq; ++i) {
      std::vector<double> logits(static_cast<size_t>(lk));
      double top = -INFINITY, total = 0;
      for (int64_t j = 0; j < lk; ++j) {
        double dot = 0;
        for (int64_t d = 0; d < dim; ++d) dot += double(q.f32()[(i * heads + h) * dim + d]) * k.f32()[(j * heads + h) * dim + d];
        logits[size_t(j)] = dot * scale + bias.f32()[(h * lq + i) * lk + j];
        top = std::max(top, logits[size_t(j)]);
      }
      for (double& logit : logits) total += logit = std::exp(logit - top);
      for (int64_t d = 0; d < dim; ++d) {
        double sum = 0;
        for (int64_t j = 0; j < lk; ++j) sum += logits[size_t(j)] * v.f32()[(j * heads + h) * dim + d];
        out.f32()[(i * heads + h) * dim + d] = float(sum / total);
      }
    }
  return out;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

// Every sequence of a parity fixture through `encoder`, against the official outputs.
double worst_parity_error(lf::Umt5Encoder& encoder, const lf::Checkpoint& fixture) {
  double worst = 0;
  for (int row = 0;; ++row) {
    const std::string ids_name = "ids." + std::to_string(row);
    if (!fixture.contains(ids_name)) {
      REQUIRE(row > 0);
      break;
    }
    const Tensor ids_tensor = fixture.view(ids_name);
    const auto* raw = static_cast<const int64_t*>(ids_tensor.raw());
    const std::vector<int64_t> ids(raw, raw + ids_tensor.numel());
    const Tensor expected = fixture.view("output." + std::to_string(row)).to(DType::F32);
    const Tensor got = encoder.encode_ids(ids);
    REQUIRE(got.shape() == expected.shape());
    const double error = rel_l2(got, expected);
    CAPTURE(row);
    CAPTURE(error);
    CHECK(error <= 1e-5);
    worst = std::max(worst, error);
    // Both fp32 implementations against the official model run in fp64: the engine must not be the less exact.
    const Tensor truth = fixture.view("output_fp64." + std::to_string(row)).to(DType::F32);
    const double engine_error = rel_l2(got, truth), official_error = rel_l2(expected, truth);
    MESSAGE("row " << row << " (" << ids.size() << " tokens): engine vs official fp32 " << error
                   << "; vs fp64: engine " << engine_error << ", official " << official_error);
    CHECK(engine_error <= 2 * official_error + 1e-7);
  }
  return worst;
}

}  // namespace

TEST_CASE("attention_with_bias matches a plain double implementation and dense attention without bias") {
  for (const auto& [lq, lk, heads, dim] : {std::array<int64_t, 4>{37, 37, 3, 16}, {5, 70, 2, 24}, {1, 1, 1, 8}}) {
    CAPTURE(lq);
    CAPTURE(lk);
    const Tensor q = random_tensor({lq, heads, dim}, 1), k = random_tensor({lk, heads, dim}, 2);
    const Tensor v = random_tensor({lk, heads, dim}, 3), bias = random_tensor({heads, lq, lk}, 4, 3.0f);
    const Tensor got = lf::ops::attention_with_bias(q, k, v, bias, 1.0);
    CHECK(rel_l2(got, naive_biased_attention(q, k, v, bias, 1.0)) < 1e-6);
    CHECK(rel_l2(lf::ops::attention_with_bias(q, k, v, Tensor::zeros({heads, lq, lk}), 0.25),
                 lf::ops::attention(q, k, v, 0.25)) < 1e-6);
  }
  const Tensor q = random_tensor({4, 2, 8}, 5);
  CHECK_THROWS_WITH_AS(lf::ops::attention_with_bias(q, q, q, Tensor::zeros({2, 4, 5}), 1.0),
                       doctest::Contains("attention_with_bias bias"), lf::Error);
}

TEST_CASE("multiply is elementwise and checks shapes") {
  const Tensor a = random_tensor({7, 5}, 6), b = random_tensor({7, 5}, 7);
  const Tensor product = lf::ops::multiply(a, b);
  for (int64_t i = 0; i < a.numel(); ++i) REQUIRE(product.f32()[i] == a.f32()[i] * b.f32()[i]);
  CHECK_THROWS_AS(lf::ops::multiply(a, random_tensor({5, 7}, 8)), lf::Error);
}

TEST_CASE("linear on bf16 / fp16 / fp8 weights equals linear on their f32 conversion, bit for bit") {
  for (const auto& [rows, in, out] : {std::array<int64_t, 3>{30, 256, 70}, {1, 37, 5}, {9, 4096, 3}}) {
    CAPTURE(in);
    const Tensor x = random_tensor({rows, in}, 9);
    const Tensor weight = random_tensor({out, in}, 10, 0.5f);
    for (const DType dtype : {DType::BF16, DType::F16, DType::F8E4M3}) {
      CAPTURE(lf::dtype_name(dtype));
      const Tensor stored = weight.to(dtype);
      CHECK(same_bits(lf::ops::linear(x, stored, Tensor()), lf::ops::linear(x, stored.to(DType::F32), Tensor())));
    }
    // FP8 with per-row and per-tensor scales (ComfyUI scaled fp8).
    Tensor row_scales = random_tensor({out}, 11);
    for (int64_t i = 0; i < out; ++i) row_scales.f32()[i] = 0.5f + std::abs(row_scales.f32()[i]);
    for (const Tensor& scales : {row_scales, Tensor::zeros({1})}) {
      Tensor scale = scales.clone();
      if (scale.numel() == 1) scale.f32()[0] = 0.37f;
      const Tensor stored = weight.to(DType::F8E4M3).with_scales(scale);
      const Tensor got = lf::ops::linear(x, stored, Tensor());
      CHECK(same_bits(got, lf::ops::linear(x, stored.to(DType::F32), Tensor())));
      CHECK(rel_l2(got, lf::ops::linear(x, weight, Tensor())) > 1e-3);  // the scales are applied, not ignored
    }
  }
  CHECK_THROWS_WITH_AS(lf::ops::linear(random_tensor({2, 4}, 1), Tensor::zeros({3, 4}, DType::I32), Tensor()),
                       doctest::Contains("not f32, bf16"), lf::Error);
}

TEST_CASE("relative position buckets: bidirectional, 8 exact then log-spaced to max_distance") {
  // Values from the bucket rule of spec section 11 worked by hand (32 buckets, max distance 128).
  const std::pair<int64_t, int64_t> expected[] = {
      {0, 0},    {-1, 1},   {1, 17},   {-7, 7},   {7, 23},   {-8, 8},    {8, 24},   {-11, 8},   {-12, 9},
      {-16, 10}, {16, 26},  {-32, 12}, {-64, 14}, {64, 30},  {-127, 15}, {-128, 15}, {128, 31}, {-5000, 15},
      {5000, 31}};
  for (const auto& [relative, bucket] : expected) {
    CAPTURE(relative);
    CHECK(lf::umt5_position_bucket(relative, 32, 128) == bucket);
  }
}

TEST_CASE("relative position bias: table[bucket(j - i), h] for every head and pair, bad buckets refused") {
  const int64_t tokens = 37, buckets = 32, heads = 3;
  const Tensor table = random_tensor({buckets, heads}, 21);
  const Tensor offsets = lf::umt5_offset_buckets(tokens, buckets, 128);
  REQUIRE(offsets.dim(0) == 2 * tokens - 1);
  const Tensor bias = lf::ops::relative_position_bias(table, offsets);
  REQUIRE(bias.shape() == lf::Shape{heads, tokens, tokens});
  // The definition, written out: the bucket of j - i straight from umt5_position_bucket, the row of the table.
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < tokens; ++i)
      for (int64_t j = 0; j < tokens; ++j) {
        const int64_t bucket = lf::umt5_position_bucket(j - i, buckets, 128);
        REQUIRE(bias.f32()[(h * tokens + i) * tokens + j] == table.f32()[bucket * heads + h]);
      }
  Tensor bad = offsets.clone();
  static_cast<int32_t*>(bad.raw())[5] = int32_t(buckets);
  CHECK_THROWS_WITH_AS(lf::ops::relative_position_bias(table, bad), doctest::Contains("outside the table's 32 buckets"),
                       lf::Error);
  CHECK_THROWS_WITH_AS(lf::ops::relative_position_bias(table, offsets.slice_rows(0, 4)),
                       doctest::Contains("[2 tokens - 1]"), lf::Error);
}

TEST_CASE("umT5 configs: the shipped XXL size and the rejections") {
  const lf::Umt5Config xxl = lf::load_umt5_config("umt5-xxl");
  CHECK(xxl.vocab == 256384);
  CHECK(xxl.dim == 4096);
  CHECK(xxl.attention_dim() == 4096);
  CHECK(xxl.ffn_dim == 10240);
  CHECK(xxl.layers == 24);
  CHECK(!xxl.shared_position_bias);
  CHECK_THROWS_WITH_AS(lf::parse_umt5_config("dim: 8\nheds: 2\n", "x.yaml"), doctest::Contains("unknown key 'heds'"),
                       lf::Error);
  CHECK_THROWS_WITH_AS(lf::parse_umt5_config("vocab: 10\ndim: 8\nheads: 2\nhead_dim: 4\nffn_dim: 0\nlayers: 1\n", "x"),
                       doctest::Contains("'ffn_dim' must be positive"), lf::Error);
  CHECK_THROWS_WITH_AS(lf::load_umt5_config("umt5-huge"), doctest::Contains("built-in: umt5-tiny, umt5-xxl"),
                       lf::Error);
}

TEST_CASE("parity with the official Wan T5Encoder: small sizes, per-block and shared position tables (fp32)") {
  for (const char* name : {"small", "shared"}) {
    CAPTURE(name);
    const lf::Umt5Config config = lf::load_umt5_config(kFixtures + "parity-" + name + ".yaml");
    const auto fixture = lf::Checkpoint::open(kFixtures + "parity-" + name + ".safetensors");
    lf::Umt5Encoder encoder(config, lf::load_umt5_weights(config, *fixture, "weights."), lf::Device::CPU);
    const double worst = worst_parity_error(encoder, *fixture);
    MESSAGE(std::string(name) << ": worst rel-L2 vs official " << worst);
  }
}

TEST_CASE("parity with the official Wan T5Encoder at the full umT5-XXL layout (2 blocks, bf16 weights)") {
  const lf::Umt5Config config = lf::load_umt5_config(kFixtures + "parity-xxl-layout.yaml");
  REQUIRE(config.dim == 4096);
  REQUIRE(config.heads == 64);
  REQUIRE(config.ffn_dim == 10240);
  const auto fixture = lf::Checkpoint::open(kFixtures + "parity-xxl-layout.safetensors");
  REQUIRE(fixture->metadata().at("seed") == "13");
  lf::Umt5Encoder encoder(config, lf::test::seeded_weights(config, 13), lf::Device::CPU);
  const double worst = worst_parity_error(encoder, *fixture);
  MESSAGE("xxl layout: worst rel-L2 vs official " << worst);
}

TEST_CASE("Hugging Face / ComfyUI names load the same encoder as the official names") {
  const lf::Umt5Config config = lf::load_umt5_config(kFixtures + "parity-small.yaml");
  const auto fixture = lf::Checkpoint::open(kFixtures + "parity-small.safetensors");
  lf::Umt5Weights official = lf::load_umt5_weights(config, *fixture, "weights.");
  // Rewrite the fixture's weights under HF names (bf16, as umt5_xxl_fp16/bf16 files), plus tensors a ComfyUI file
  // may carry that are not the encoder's.
  lf::Umt5Weights scratch;
  std::vector<std::pair<std::string, Tensor>> renamed;
  for (const lf::WeightSlot& slot : lf::umt5_weight_slots(config, official))
    renamed.emplace_back(lf::umt5_hugging_face_name(slot.name), slot.target->to(DType::F32).to(DType::BF16));
  renamed.emplace_back("encoder.embed_tokens.weight", renamed.front().second);
  renamed.emplace_back("spiece_model", Tensor::zeros({16}, DType::U8));
  CHECK(renamed[1].first == "encoder.block.0.layer.0.layer_norm.weight");
  const std::string path = lf::test::tmp_path("umt5_hf_names.safetensors");
  lf::write_safetensors(path, renamed);
  const auto hf_file = lf::Checkpoint::open(path);
  CHECK(lf::detect_umt5_layout(*hf_file) == lf::Umt5Layout::HuggingFace);
  lf::Umt5Encoder from_hf(config, lf::load_umt5_weights(config, *hf_file), lf::Device::CPU);
  // The same bf16 weights under official names.
  std::vector<std::pair<std::string, Tensor>> official_bf16;
  for (const lf::WeightSlot& slot : lf::umt5_weight_slots(config, official))
    official_bf16.emplace_back(slot.name, slot.target->to(DType::F32).to(DType::BF16));
  const std::string official_path = lf::test::tmp_path("umt5_official_names.safetensors");
  lf::write_safetensors(official_path, official_bf16);
  const auto official_file = lf::Checkpoint::open(official_path);
  lf::Umt5Encoder from_official(config, lf::load_umt5_weights(config, *official_file), lf::Device::CPU);
  const std::vector<int64_t> ids = {5, 17, 99, 3, 42, 1};
  const Tensor a = from_hf.encode_ids(ids), b = from_official.encode_ids(ids);
  CHECK(same_bits(a, b));
  // ... and the bf16-rounded weights stay near the official fp32 result: what is left is the weights' rounding
  // (measured 8.1e-3 on this fixture; bound 2e-2, 2.5x). A misread layout (wi_0 / wi_1 swapped, a transposed table) is
  // off by O(1).
  const Tensor expected = fixture->view("output.0").to(DType::F32);
  const auto* raw = static_cast<const int64_t*>(fixture->view("ids.0").raw());
  const Tensor bf16_out = from_hf.encode_ids(std::vector<int64_t>(raw, raw + expected.dim(0)));
  const double bf16_error = rel_l2(bf16_out, expected);
  MESSAGE("bf16 weights (Hugging Face names) vs official fp32: rel-L2 " << bf16_error);
  CHECK(bf16_error < 2e-2);
}

TEST_CASE("umT5 weights: wrong layout, wrong shape, extra blocks and bad ids are named") {
  const lf::Umt5Config config = lf::load_umt5_config(kFixtures + "parity-small.yaml");
  const auto fixture = lf::Checkpoint::open(kFixtures + "parity-small.safetensors");
  CHECK_THROWS_WITH_AS(lf::load_umt5_weights(config, *fixture), doctest::Contains("not a umT5 encoder checkpoint"),
                       lf::Error);
  lf::Umt5Config wider = config;
  wider.ffn_dim = 96;
  CHECK_THROWS_WITH_AS(lf::load_umt5_weights(wider, *fixture, "weights."),
                       doctest::Contains("'weights.blocks.0.ffn.gate.0.weight' has shape [80, 48], expected [96, 48]"),
                       lf::Error);
  lf::Umt5Config fewer = config;
  fewer.layers = 2;
  CHECK_THROWS_WITH_AS(lf::load_umt5_weights(fewer, *fixture, "weights."),
                       doctest::Contains("unexpected tensor 'weights.blocks.2."), lf::Error);
  lf::Umt5Encoder encoder(config, lf::random_umt5_weights(config, 3), lf::Device::CPU);
  CHECK_THROWS_WITH_AS(encoder.encode_ids({4, 100, 1}), doctest::Contains("token id 100 (position 1)"), lf::Error);
  CHECK_THROWS_WITH_AS(encoder.encode_ids({}), doctest::Contains("no tokens"), lf::Error);
}

TEST_CASE("umT5 encodes deterministically and only the real tokens matter") {
  const lf::Umt5Config config = lf::load_umt5_config("umt5-tiny");
  lf::Umt5Encoder encoder(config, lf::random_umt5_weights(config, 7), lf::Device::CPU);
  const Tensor a = encoder.encode_ids({9, 8, 7, 1});
  CHECK(same_bits(a, encoder.encode_ids({9, 8, 7, 1})));
  CHECK(a.shape() == lf::Shape{4, 64});
  for (int64_t i = 0; i < a.numel(); ++i) REQUIRE(std::isfinite(a.f32()[i]));
  // Relative positions, not absolute ones: a different prefix changes every row (attention is bidirectional).
  const Tensor b = encoder.encode_ids({10, 8, 7, 1});
  CHECK(rel_l2(b.slice_rows(3, 4).clone(), a.slice_rows(3, 4).clone()) > 1e-4);
}

TEST_CASE("fast e4m3 rounding equals the brute-force reference f32_to_f8e4m3") {
  const Tensor values = random_tensor({20000}, 41, 600.0f);  // past 448: saturation too
  for (int64_t i = 0; i < values.numel(); ++i) {
    const float value = values.f32()[i] / float(1 + (i % 7) * 97);  // down into the subnormals
    REQUIRE(lf::quantize_f8e4m3(value) == lf::f32_to_f8e4m3(value));
  }
  for (int code = 0; code < 127; ++code) {  // every exact value and every midpoint (ties to even)
    const float value = lf::f8e4m3_to_f32(uint8_t(code));
    REQUIRE(lf::quantize_f8e4m3(value) == lf::f32_to_f8e4m3(value));
    REQUIRE(lf::quantize_f8e4m3(-value) == lf::f32_to_f8e4m3(-value));
    const float midpoint = (value + lf::f8e4m3_to_f32(uint8_t(code + 1))) / 2;
    if (code < 126) REQUIRE(lf::quantize_f8e4m3(midpoint) == lf::f32_to_f8e4m3(midpoint));
  }
}

TEST_CASE("fp8 per-row quantisation (the --fp8 GPU weights): rounding bound, zero rows, and the encoder's error") {
  const Tensor matrix = random_tensor({9, 300}, 21, 3.0f);
  Tensor with_zero_row = matrix.clone();
  std::fill(with_zero_row.f32() + 300, with_zero_row.f32() + 600, 0.0f);
  const Tensor quantized = lf::quantize_rows_f8e4m3(with_zero_row);
  REQUIRE(quantized.dtype() == DType::F8E4M3);
  REQUIRE(quantized.scales() != nullptr);
  CHECK(quantized.scales()->f32()[1] == 1.0f);
  const Tensor back = quantized.to(DType::F32);
  for (int64_t r = 0; r < 9; ++r) {
    float largest = 0;
    for (int64_t c = 0; c < 300; ++c) largest = std::max(largest, std::abs(with_zero_row.f32()[r * 300 + c]));
    for (int64_t c = 0; c < 300; ++c) {
      const float value = with_zero_row.f32()[r * 300 + c], got = back.f32()[r * 300 + c];
      // e4m3: 3 mantissa bits, so rounding is within 2^-4 of the value for normals; subnormals (below 2^-6 of the
      // row's scale, i.e. 2^-6 * largest / 448) within half their step 2^-9 * largest / 448.
      REQUIRE(std::abs(got - value) <= std::max(std::abs(value) / 16, largest / 448 / 512 * 1.0001f));
    }
  }
  // The XXL layout through the CPU path on fp8 weights: the error the quantisation alone costs (the GPU's --fp8
  // bound in test_gpu_umt5 adds the bf16 one to it).
  const lf::Umt5Config config = lf::load_umt5_config(kFixtures + "parity-xxl-layout.yaml");
  const auto fixture = lf::Checkpoint::open(kFixtures + "parity-xxl-layout.safetensors");
  lf::Umt5Weights weights = lf::test::seeded_weights(config, 13);
  for (lf::Umt5Block& block : weights.blocks)
    for (Tensor* matrix : {&block.q, &block.k, &block.v, &block.o, &block.gate, &block.fc1, &block.fc2})
      *matrix = lf::quantize_rows_f8e4m3(*matrix);
  lf::Umt5Encoder encoder(config, std::move(weights), lf::Device::CPU);
  const Tensor ids_tensor = fixture->view("ids.0");
  const auto* raw = static_cast<const int64_t*>(ids_tensor.raw());
  const double error = rel_l2(encoder.encode_ids(std::vector<int64_t>(raw, raw + ids_tensor.numel())),
                              fixture->view("output.0").to(DType::F32));
  MESSAGE("fp8 per-row weights (XXL layout, 2 blocks) vs official fp32: rel-L2 " << error);
  CHECK(error < 0.13);  // measured 0.086 (e4m3 keeps 3 mantissa bits); bound 1.5x
  CHECK(error > 1e-4);  // the weights really were quantised
}
