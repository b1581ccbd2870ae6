#pragma once
// The Wan DiT's parameters, by official name. One table (parameter_slots) drives random initialisation,
// loading from any checkpoint layout, shape checks and `inspect`, so the names live in exactly one place.
#include <map>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/tensor.h"

namespace lf {

class Checkpoint;

struct LinearWeights {
  Tensor weight;  // [out, in]
  Tensor bias;    // [out]
};

struct WanBlockWeights {
  Tensor modulation;  // [6, dim]: shift1, scale1, gate1, shift2, scale2, gate2
  LinearWeights self_q, self_k, self_v, self_o;
  Tensor self_norm_q, self_norm_k;  // [dim]: RMSNorm over all heads at once
  Tensor norm3_weight, norm3_bias;  // cross-attention pre-norm (LayerNorm with affine)
  LinearWeights cross_q, cross_k, cross_v, cross_o;
  Tensor cross_norm_q, cross_norm_k;
  LinearWeights ffn_in, ffn_out;
};

struct WanWeights {
  LinearWeights patch_embedding;  // weight stored as [dim, in_channels * ph * pw] (Conv3d kernel flattened)
  LinearWeights text_embedding_0, text_embedding_2;
  LinearWeights time_embedding_0, time_embedding_2;
  LinearWeights time_projection;  // [6 * dim, dim]
  Tensor head_modulation;         // [2, dim]: shift, scale
  LinearWeights head;             // [out_channels * ph * pw, dim]
  std::vector<WanBlockWeights> blocks;
};

// One named parameter: its official checkpoint name and shape, and where it lives in WanWeights (stored with
// `stored_shape`, which differs only by dropped unit axes: Conv3d kernel, modulation tables).
struct ParamSlot {
  std::string name;
  Shape official_shape;
  Shape stored_shape;
  Tensor* target;
  enum class Init { Weight, Bias, Norm, Modulation } init;
  int64_t fan_in;
};

std::vector<ParamSlot> parameter_slots(const ModelConfig& config, WanWeights& weights);
int64_t parameter_count(const ModelConfig& config);

// Deterministic random weights (Philox keyed by config.init_seed and the parameter's index).
WanWeights random_weights(const ModelConfig& config);

// Which layout a checkpoint uses: the prefix in front of the official names.
struct WeightLayout {
  std::string description;  // "self-forcing generator_ema", "plain wan", ...
  std::string prefix;       // e.g. "generator_ema.model."
  std::string root_prefix;  // the generator's prefix without "model." (e.g. "generator_ema."): text_encoder.* lives there
};
WeightLayout detect_layout(const Checkpoint& checkpoint, const std::string& preferred_root);

// Loads every parameter from `checkpoint`, mapping names through the detected layout, checking each shape
// against `config` (the error names the key, the expected and the found shape). preferred_root: "auto",
// "generator_ema" or "generator".
WanWeights load_weights(const ModelConfig& config, const Checkpoint& checkpoint,
                        const std::string& preferred_root = "auto");

// Saves weights under their official names as safetensors, with `extra` tensors and metadata beside them (the
// testbed's word-table encoder).
void save_weights(const ModelConfig& config, WanWeights& weights, const std::string& path, DType dtype,
                  std::vector<std::pair<std::string, Tensor>> extra = {}, std::map<std::string, std::string> metadata = {});

}  // namespace lf
