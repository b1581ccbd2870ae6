#include "model/umt5_encoder.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "core/error.h"
#include "io/checkpoint.h"
#include "ops/ops.h"

namespace lf {

namespace {

std::string block_name(size_t index, const char* rest) { return fmt::format("blocks.{}.{}", index, rest); }

// "blocks.N.<rest>" -> {N, rest}; false for other names.
bool split_block_name(const std::string& name, size_t* index, std::string* rest) {
  if (name.rfind("blocks.", 0) != 0) return false;
  const size_t dot = name.find('.', 7);
  if (dot == std::string::npos) return false;
  *index = size_t(std::stoul(name.substr(7, dot - 7)));
  *rest = name.substr(dot + 1);
  return true;
}

// A host tensor in f32 (small tensors: norms and position tables), whatever its stored dtype.
Tensor host_f32(const Tensor& tensor) { return tensor.dtype() == DType::F32 ? tensor : tensor.to(DType::F32); }

// A GEMM weight for the GPU: bf16 on the device (fp16 / fp32 / fp8 files are converted on the host first), or
// fp8 + per-row scales (--fp8).
Tensor device_matrix(const Tensor& stored, bool fp8) {
  if (fp8) return quantize_rows_f8e4m3(stored).to(Device::CUDA);
  const Tensor bf16 = stored.dtype() == DType::BF16 && !stored.scales() ? stored : stored.to(DType::F32).to(DType::BF16);
  return bf16.to(Device::CUDA);
}

}  // namespace

namespace {

// The 127 non-negative finite e4m3 values, increasing with the code (the format is monotonic).
const std::array<float, 127>& e4m3_magnitudes() {
  static const std::array<float, 127> table = [] {
    std::array<float, 127> values{};
    for (int code = 0; code < 127; ++code) values[size_t(code)] = f8e4m3_to_f32(uint8_t(code));
    return values;
  }();
  return table;
}

// Round to nearest, ties to the even code, saturating at 448: f32_to_f8e4m3 by binary search instead of its
// brute force (which is exact and slow; the test compares the two).
uint8_t nearest_e4m3(float value) {
  if (std::isnan(value)) return 0x7f;
  const uint8_t sign = std::signbit(value) ? 0x80 : 0;
  const float magnitude = std::fabs(value);
  const auto& table = e4m3_magnitudes();
  if (magnitude >= table.back()) return sign | 0x7e;
  const size_t above = size_t(std::lower_bound(table.begin(), table.end(), magnitude) - table.begin());
  if (above == 0) return sign;
  const size_t below = above - 1;
  const float to_below = magnitude - table[below], to_above = table[above] - magnitude;
  const size_t code = to_below < to_above ? below : to_above < to_below ? above : (below % 2 == 0 ? below : above);
  return uint8_t(sign | code);
}

}  // namespace

uint8_t quantize_f8e4m3(float value) { return nearest_e4m3(value); }

Tensor quantize_rows_f8e4m3(const Tensor& matrix) {
  LF_CHECK(matrix.rank() == 2 && !matrix.is_cuda(), "quantize_rows_f8e4m3: expected a host matrix, found {}",
           shape_str(matrix.shape()));
  const Tensor values = host_f32(matrix);
  const int64_t rows = matrix.dim(0), cols = matrix.dim(1);
  constexpr float kE4m3Max = 448.0f;
  Tensor quantized = Tensor::empty({rows, cols}, DType::F8E4M3);
  Tensor scales = Tensor::empty({rows});
  auto* out = static_cast<uint8_t*>(quantized.raw());
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = values.f32() + r * cols;
    float largest = 0;
    for (int64_t c = 0; c < cols; ++c) largest = std::max(largest, std::abs(row[c]));
    const float scale = largest > 0 ? largest / kE4m3Max : 1.0f;
    scales.f32()[r] = scale;
    for (int64_t c = 0; c < cols; ++c) out[r * cols + c] = nearest_e4m3(row[c] / scale);
  }
  return quantized.with_scales(scales);
}

std::vector<WeightSlot> umt5_weight_slots(const Umt5Config& config, Umt5Weights& weights) {
  const int64_t dim = config.dim, attention = config.attention_dim();
  weights.blocks.resize(size_t(config.layers));
  std::vector<WeightSlot> slots;
  slots.push_back({"token_embedding.weight", {config.vocab, dim}, &weights.token_embedding});
  if (config.shared_position_bias)
    slots.push_back({"pos_embedding.embedding.weight", {config.buckets, config.heads}, &weights.position_embedding});
  for (size_t i = 0; i < weights.blocks.size(); ++i) {
    Umt5Block& block = weights.blocks[i];
    slots.push_back({block_name(i, "norm1.weight"), {dim}, &block.norm1});
    slots.push_back({block_name(i, "attn.q.weight"), {attention, dim}, &block.q});
    slots.push_back({block_name(i, "attn.k.weight"), {attention, dim}, &block.k});
    slots.push_back({block_name(i, "attn.v.weight"), {attention, dim}, &block.v});
    slots.push_back({block_name(i, "attn.o.weight"), {dim, attention}, &block.o});
    slots.push_back({block_name(i, "norm2.weight"), {dim}, &block.norm2});
    slots.push_back({block_name(i, "ffn.gate.0.weight"), {config.ffn_dim, dim}, &block.gate});
    slots.push_back({block_name(i, "ffn.fc1.weight"), {config.ffn_dim, dim}, &block.fc1});
    slots.push_back({block_name(i, "ffn.fc2.weight"), {dim, config.ffn_dim}, &block.fc2});
    if (!config.shared_position_bias)
      slots.push_back({block_name(i, "pos_embedding.embedding.weight"), {config.buckets, config.heads},
                       &block.position_embedding});
  }
  slots.push_back({"norm.weight", {dim}, &weights.norm});
  return slots;
}

std::string umt5_hugging_face_name(const std::string& official_name) {
  if (official_name == "token_embedding.weight") return "shared.weight";
  if (official_name == "norm.weight") return "encoder.final_layer_norm.weight";
  // T5 v1 (one shared table) keeps it in block 0's attention.
  if (official_name == "pos_embedding.embedding.weight")
    return "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight";
  size_t index = 0;
  std::string rest;
  if (!split_block_name(official_name, &index, &rest)) return official_name;
  static const std::pair<const char*, const char*> kRenames[] = {
      {"norm1.weight", "layer.0.layer_norm.weight"},
      {"attn.q.weight", "layer.0.SelfAttention.q.weight"},
      {"attn.k.weight", "layer.0.SelfAttention.k.weight"},
      {"attn.v.weight", "layer.0.SelfAttention.v.weight"},
      {"attn.o.weight", "layer.0.SelfAttention.o.weight"},
      {"pos_embedding.embedding.weight", "layer.0.SelfAttention.relative_attention_bias.weight"},
      {"norm2.weight", "layer.1.layer_norm.weight"},
      {"ffn.gate.0.weight", "layer.1.DenseReluDense.wi_0.weight"},  // T5 gated-gelu: act(wi_0 h) * wi_1 h
      {"ffn.fc1.weight", "layer.1.DenseReluDense.wi_1.weight"},
      {"ffn.fc2.weight", "layer.1.DenseReluDense.wo.weight"},
  };
  for (const auto& [official, hugging_face] : kRenames)
    if (rest == official) return fmt::format("encoder.block.{}.{}", index, hugging_face);
  return official_name;
}

Umt5Layout detect_umt5_layout(const Checkpoint& checkpoint, const std::string& prefix) {
  const std::string official_probe = prefix + "blocks.0.attn.q.weight";
  const std::string hugging_face_probe = prefix + "encoder.block.0.layer.0.SelfAttention.q.weight";
  if (checkpoint.contains(official_probe)) return Umt5Layout::Official;
  if (checkpoint.contains(hugging_face_probe)) return Umt5Layout::HuggingFace;
  fail("umT5 encoder '{}': not a umT5 encoder checkpoint (neither '{}' (Wan) nor '{}' (Hugging Face) found)",
       checkpoint.path(), official_probe, hugging_face_probe);
}

Umt5Weights load_umt5_weights(const Umt5Config& config, const Checkpoint& checkpoint, const std::string& prefix) {
  Umt5Weights weights;
  std::vector<WeightSlot> slots = umt5_weight_slots(config, weights);
  WeightLoadOptions options;
  options.part = "umT5 encoder";
  options.keep_stored_dtype = true;
  options.prefix = prefix;
  Tensor ignored_duplicate;
  if (detect_umt5_layout(checkpoint, prefix) == Umt5Layout::HuggingFace) {
    options.file_name = umt5_hugging_face_name;
    // Only the encoder's namespaces are checked: full T5 files also hold a decoder, ComfyUI files may hold the
    // tokenizer ("spiece_model") or an fp8 marker ("scaled_fp8").
    options.checked_namespaces = {"encoder.block.", "encoder.final_layer_norm"};
    if (!checkpoint.contains(prefix + "shared.weight") && checkpoint.contains(prefix + "encoder.embed_tokens.weight")) {
      slots.front().name = "encoder.embed_tokens.weight";
    } else {
      // The tied copy some exports keep beside shared.weight.
      slots.push_back({"encoder.embed_tokens.weight", {config.vocab, config.dim}, &ignored_duplicate, true});
    }
  } else {
    options.checked_namespaces = {"blocks.", "norm.", "token_embedding.", "pos_embedding."};
  }
  load_weight_table(checkpoint, slots, options);
  return weights;
}

Umt5Weights random_umt5_weights(const Umt5Config& config, uint64_t seed) {
  Umt5Weights weights;
  random_weight_table(umt5_weight_slots(config, weights), seed);
  return weights;
}

int64_t umt5_position_bucket(int64_t relative_position, int64_t buckets, int64_t max_distance) {
  const int64_t half = buckets / 2;
  const int64_t base = relative_position > 0 ? half : 0;
  const int64_t distance = relative_position < 0 ? -relative_position : relative_position;
  const int64_t max_exact = half / 2;
  if (distance < max_exact) return base + distance;
  // As t5.py: fp32 log of distance / max_exact over log(max_distance / max_exact), times the log buckets,
  // truncated; the boundaries (distance = max_exact * 2^k) come out exact in fp32 and in double alike.
  const float scaled = std::log(float(distance) / float(max_exact)) /
                       float(std::log(double(max_distance) / double(max_exact))) * float(half - max_exact);
  return base + std::min<int64_t>(max_exact + int64_t(scaled), half - 1);
}

Tensor umt5_offset_buckets(int64_t tokens, int64_t buckets, int64_t max_distance) {
  Tensor out = Tensor::empty({2 * tokens - 1}, DType::I32);
  auto* bucket = static_cast<int32_t*>(out.raw());
  for (int64_t offset = -(tokens - 1); offset < tokens; ++offset)
    bucket[offset + tokens - 1] = int32_t(umt5_position_bucket(offset, buckets, max_distance));
  return out;
}


// One block's weights where the math runs: the stored views themselves on the CPU, bf16 copies on the GPU.
struct Umt5Encoder::DeviceBlock {
  Tensor norm1, q, k, v, o, norm2, gate, fc1, fc2;
  Tensor position;  // f32 [buckets, heads] where the math runs, when the layer has its own table
};

Umt5Encoder::Umt5Encoder(Umt5Config config, Umt5Weights weights, Device device, bool fp8_weights)
    : config_(std::move(config)), weights_(std::move(weights)), device_(device), fp8_weights_(fp8_weights) {
  LF_CHECK(!fp8_weights_ || device_ == Device::CUDA, "umT5 encoder: fp8 weights are a GPU option (the CPU computes "
           "on the stored weights)");
  LF_CHECK(int64_t(weights_.blocks.size()) == config_.layers, "umT5 encoder: {} blocks of weights for {} layers",
           weights_.blocks.size(), config_.layers);
  final_norm_ = host_f32(weights_.norm);
  if (config_.shared_position_bias) shared_position_ = host_f32(weights_.position_embedding);
  if (device_ == Device::CUDA) {
    final_norm_ = final_norm_.to(Device::CUDA);
    if (shared_position_.defined()) shared_position_ = shared_position_.to(Device::CUDA);
  }
}

Umt5Encoder::~Umt5Encoder() = default;

Umt5Encoder::DeviceBlock Umt5Encoder::upload_block(size_t index) const {
  const Umt5Block& stored = weights_.blocks[index];
  DeviceBlock block;
  block.norm1 = host_f32(stored.norm1);
  block.norm2 = host_f32(stored.norm2);
  if (!config_.shared_position_bias) block.position = host_f32(stored.position_embedding);
  if (device_ == Device::CPU) {
    block.q = stored.q, block.k = stored.k, block.v = stored.v, block.o = stored.o;
    block.gate = stored.gate, block.fc1 = stored.fc1, block.fc2 = stored.fc2;
    return block;
  }
  block.norm1 = block.norm1.to(Device::CUDA);
  block.norm2 = block.norm2.to(Device::CUDA);
  if (block.position.defined()) block.position = block.position.to(Device::CUDA);
  const bool fp8 = fp8_weights_;
  block.q = device_matrix(stored.q, fp8), block.k = device_matrix(stored.k, fp8);
  block.v = device_matrix(stored.v, fp8), block.o = device_matrix(stored.o, fp8);
  block.gate = device_matrix(stored.gate, fp8), block.fc1 = device_matrix(stored.fc1, fp8);
  block.fc2 = device_matrix(stored.fc2, fp8);
  return block;
}

void Umt5Encoder::make_resident() {
  if (!resident_.empty()) return;
  for (size_t i = 0; i < weights_.blocks.size(); ++i) resident_.push_back(std::make_unique<DeviceBlock>(upload_block(i)));
}

int64_t Umt5Encoder::resident_bytes() const {
  int64_t bytes = 0;
  for (const auto& block : resident_)
    for (const Tensor* t : {&block->norm1, &block->q, &block->k, &block->v, &block->o, &block->norm2, &block->gate,
                            &block->fc1, &block->fc2, &block->position})
      if (t->defined()) bytes += int64_t(t->nbytes()) + (t->scales() ? int64_t(t->scales()->nbytes()) : 0);
  return bytes;
}

Tensor Umt5Encoder::embed(const std::vector<int64_t>& ids) const {
  const Tensor& table = weights_.token_embedding;
  const int64_t dim = config_.dim;
  Tensor x = Tensor::empty({int64_t(ids.size()), dim});
  const auto* rows = static_cast<const uint8_t*>(table.raw());
  const size_t row_bytes = size_t(dim) * dtype_size(table.dtype());
  const Tensor* scales = table.scales();
  for (size_t t = 0; t < ids.size(); ++t) {
    float* out = x.f32() + int64_t(t) * dim;
    convert_to_f32(rows + size_t(ids[t]) * row_bytes, table.dtype(), size_t(dim), out);
    if (scales) {
      const float scale = scales->f32()[scales->numel() == 1 ? 0 : ids[t]];
      for (int64_t d = 0; d < dim; ++d) out[d] *= scale;
    }
  }
  return x;
}

// fp8 weights on the GPU become a bf16 GEMM operand just before their GEMM (a temporary of one matrix).
Tensor Umt5Encoder::gemm_weight(const Tensor& weight) const {
  return weight.is_cuda() && weight.dtype() == DType::F8E4M3 ? ops::convert(weight, DType::BF16) : weight;
}

// T5 RMSNorm. The CPU computes it on the f32 residual; the GPU's rms_norm reads bf16 (the residual rounded once,
// as the official bf16 model holds it) and writes the bf16 GEMM input.
Tensor Umt5Encoder::norm(const Tensor& x, const Tensor& weight) const {
  if (device_ == Device::CPU) return ops::rms_norm(x, weight, config_.eps);
  return ops::rms_norm(ops::convert(x, DType::BF16), weight, config_.eps);
}

Tensor Umt5Encoder::encode_ids(const std::vector<int64_t>& ids) {
  const int64_t tokens = int64_t(ids.size());
  LF_CHECK(tokens > 0, "umT5 encoder: no tokens to encode");
  LF_CHECK(tokens <= config_.max_tokens, "umT5 encoder: {} tokens, more than max_tokens {}", tokens,
           config_.max_tokens);
  for (size_t t = 0; t < ids.size(); ++t)
    LF_CHECK(ids[t] >= 0 && ids[t] < config_.vocab, "umT5 encoder: token id {} (position {}) is outside the vocab of "
             "{}", ids[t], t, config_.vocab);
  const int64_t heads = config_.heads, head_dim = config_.head_dim, attention = config_.attention_dim();
  Tensor x = embed(ids);
  if (device_ == Device::CUDA) x = x.to(Device::CUDA);
  // The bucket of every offset j - i, once; each layer (or the shared table) turns it into its bias on the device.
  Tensor buckets = umt5_offset_buckets(tokens, config_.buckets, config_.max_distance);
  if (device_ == Device::CUDA) buckets = buckets.to(Device::CUDA);
  Tensor shared_bias;
  if (config_.shared_position_bias) shared_bias = ops::relative_position_bias(shared_position_, buckets);
  for (size_t i = 0; i < weights_.blocks.size(); ++i) {
    std::unique_ptr<DeviceBlock> uploaded;
    const DeviceBlock* block = nullptr;
    if (!resident_.empty()) {
      block = resident_[i].get();
    } else {
      uploaded = std::make_unique<DeviceBlock>(upload_block(i));  // freed at the end of the iteration
      block = uploaded.get();
    }
    const Tensor bias = config_.shared_position_bias ? shared_bias : ops::relative_position_bias(block->position, buckets);
    // Self-attention: x += o(attention(norm1(x))), T5 without the 1/sqrt(d) scale.
    const Tensor h = norm(x, block->norm1);
    const Tensor q = ops::linear(h, gemm_weight(block->q), Tensor()).reshape({tokens, heads, head_dim});
    const Tensor k = ops::linear(h, gemm_weight(block->k), Tensor()).reshape({tokens, heads, head_dim});
    const Tensor v = ops::linear(h, gemm_weight(block->v), Tensor()).reshape({tokens, heads, head_dim});
    const Tensor attended = ops::attention_with_bias(q, k, v, bias, 1.0).reshape({tokens, attention});
    ops::gated_add(x, ops::linear(attended, gemm_weight(block->o), Tensor()), Tensor(), tokens);
    // Gated FFN: x += fc2(fc1(h) * gelu_tanh(gate(h))).
    const Tensor h2 = norm(x, block->norm2);
    const Tensor gated = ops::multiply(ops::linear(h2, gemm_weight(block->fc1), Tensor()),
                                       ops::linear(h2, gemm_weight(block->gate), Tensor(), ops::Activation::GeluTanh));
    ops::gated_add(x, ops::linear(gated, gemm_weight(block->fc2), Tensor()), Tensor(), tokens);
  }
  Tensor out = ops::rms_norm(device_ == Device::CPU ? x : ops::convert(x, DType::BF16), final_norm_, config_.eps);
  if (device_ == Device::CUDA) out = ops::convert(out, DType::F32).to(Device::CPU);
  return out;
}

}  // namespace lf
