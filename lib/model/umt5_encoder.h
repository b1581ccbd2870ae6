#pragma once
// The umT5 encoder (spec section 11, wan/modules/t5.py T5Encoder): token embedding, pre-norm blocks of T5
// attention (no 1/sqrt(d) scale, a bidirectional relative-position bias on the logits) and a gated tanh-GELU FFN,
// a final RMSNorm; no biases anywhere. Written against ops/ops.h, so the same code runs on the CPU (f32 math on the
// stored bf16/fp16/fp8 weights) and on the GPU (bf16 GEMMs). Only the prompt's tokens are computed: with Wan's
// padding mask a padded key gets probability 0, so the real tokens' outputs are those of the padded batch.
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/umt5_config.h"
#include "model/weight_table.h"

namespace lf {

class Checkpoint;

struct Umt5Block {
  Tensor norm1, q, k, v, o, norm2, gate, fc1, fc2;
  Tensor position_embedding;  // [buckets, heads]; undefined when the config shares one table
};

struct Umt5Weights {
  Tensor token_embedding;     // [vocab, dim]
  Tensor position_embedding;  // [buckets, heads] when shared
  std::vector<Umt5Block> blocks;
  Tensor norm;
};

// The parameters under their official names (models_t5_umt5-xxl-enc-bf16.pth): "token_embedding.weight",
// "blocks.N.attn.q.weight", "blocks.N.ffn.gate.0.weight", "blocks.N.pos_embedding.embedding.weight", "norm.weight".
std::vector<WeightSlot> umt5_weight_slots(const Umt5Config& config, Umt5Weights& weights);

// Checkpoint layouts: the official Wan file, or Hugging Face / ComfyUI (UMT5EncoderModel state dict:
// "shared.weight", "encoder.block.N.layer.0.SelfAttention.q.weight", ...).
enum class Umt5Layout { Official, HuggingFace };
Umt5Layout detect_umt5_layout(const Checkpoint& checkpoint, const std::string& prefix = "");
// The Hugging Face name of an official slot name (identity for names it does not know).
std::string umt5_hugging_face_name(const std::string& official_name);

// Every slot from `checkpoint` as zero-copy views in the stored dtype (bf16 / fp16 / fp32 / fp8 + scales); shapes
// checked against `config` with the key and file named; tensors of blocks the config does not have are an error.
// `prefix` goes in front of every name in the file (e.g. a fixture's "weights.").
Umt5Weights load_umt5_weights(const Umt5Config& config, const Checkpoint& checkpoint, const std::string& prefix = "");
// Deterministic random weights (f32) for tests and benchmarks.
Umt5Weights random_umt5_weights(const Umt5Config& config, uint64_t seed);

// T5's bidirectional relative-position bucket of rel = key position - query position, computed as the official
// code does (fp32 log, truncation toward zero).
int64_t umt5_position_bucket(int64_t relative_position, int64_t buckets, int64_t max_distance);
// umt5_position_bucket of every offset j - i of `tokens` tokens: I32 [2 tokens - 1], offset -(tokens - 1) first;
// ops::relative_position_bias turns it and a [buckets, heads] table into the [heads, tokens, tokens] bias.
Tensor umt5_offset_buckets(int64_t tokens, int64_t buckets, int64_t max_distance);

// A matrix as fp8 e4m3 with one dequantisation scale per row (max |row| / 448; all-zero rows get 1), from any
// stored dtype: the --fp8 GPU weights, half the bytes of bf16. CPU only.
Tensor quantize_rows_f8e4m3(const Tensor& matrix);
// One value to e4m3 (nearest, ties to even, saturating): the fast equivalent of f32_to_f8e4m3.
uint8_t quantize_f8e4m3(float value);

class Umt5Encoder {
 public:
  // Weights stay where they are (mmap'd views); on the GPU each block is uploaded as bf16 when it runs and freed
  // after, unless make_resident() uploaded them all (repeated encodes, benchmarks). fp8_weights (GPU): the GEMM
  // weights go up as fp8 + per-row scales and are dequantised to bf16 right before each GEMM, halving the memory of
  // resident weights (the GEMMs stay bf16).
  Umt5Encoder(Umt5Config config, Umt5Weights weights, Device device, bool fp8_weights = false);
  ~Umt5Encoder();
  Umt5Encoder(const Umt5Encoder&) = delete;
  Umt5Encoder& operator=(const Umt5Encoder&) = delete;

  const Umt5Config& config() const { return config_; }
  Device device() const { return device_; }
  void make_resident();
  // Bytes of the resident block weights (0 before make_resident).
  int64_t resident_bytes() const;
  // ids (1..max_tokens of them, each in [0, vocab)) -> [ids.size(), dim] f32 on the host. Errors name the id.
  Tensor encode_ids(const std::vector<int64_t>& ids);

 private:
  struct DeviceBlock;
  DeviceBlock upload_block(size_t index) const;
  Tensor embed(const std::vector<int64_t>& ids) const;
  Tensor norm(const Tensor& x, const Tensor& weight) const;

  Umt5Config config_;
  Tensor gemm_weight(const Tensor& weight) const;

  Umt5Weights weights_;
  Device device_;
  bool fp8_weights_ = false;
  std::vector<std::unique_ptr<DeviceBlock>> resident_;
  Tensor final_norm_;  // on the device
  Tensor shared_position_;  // f32 [buckets, heads] on the device, for shared_position_bias configs
};

}  // namespace lf
