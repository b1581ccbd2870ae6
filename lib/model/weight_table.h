#pragma once
// One loader for every model part (DiT, text encoders, decoders): a part lists its parameters as slots (name,
// shape, where the tensor goes), and load_weight_table fills them from any checkpoint layout, checking every
// shape and dtype with the key and the file named. The names live in the part's slot list and nowhere else.
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace lf {

class Checkpoint;

struct WeightSlot {
  std::string name;      // the part's own (official) name, e.g. "blocks.3.attn.q.weight"
  Shape shape;           // the shape in the file
  Tensor* target;        // filled by load_weight_table
  bool optional = false; // absent in the file -> target left undefined
};

struct WeightLoadOptions {
  std::string part = "weights";  // for messages: "umT5 encoder", "Wan VAE decoder", ...
  std::string prefix;            // in front of every slot name in the file ("" or e.g. "model.")
  // Slot name -> name in the file (after the prefix), for layouts that rename (Hugging Face umT5). Identity if
  // empty.
  std::function<std::string(const std::string&)> file_name;
  // true: targets are zero-copy views of the stored tensors (bf16 / fp16 / fp8 as in the file), for parts too large
  // to hold in f32 (umT5-XXL); false: f32 copies (the CPU reference computes in f32).
  bool keep_stored_dtype = false;
  // Tensors under `prefix` whose names start with one of these and that no slot claims are an error (a config
  // that does not describe the file, e.g. fewer layers); empty = everything under the prefix is checked.
  std::vector<std::string> checked_namespaces;
  bool reject_unexpected = true;
  // FP8 tensors may come with a dequantisation scale stored beside them as `<weight name><scale_suffix>`
  // (ComfyUI "scaled fp8" files: "weight" -> "scale_weight"); it is attached to the tensor (Tensor::scales).
  std::string scale_suffix_from = "weight";
  std::string scale_suffix_to = "scale_weight";
};

// Fills every slot from `checkpoint`; see WeightLoadOptions. Errors name the file, the key and both shapes.
void load_weight_table(const Checkpoint& checkpoint, const std::vector<WeightSlot>& slots,
                       const WeightLoadOptions& options);

// The first of `prefixes` under which `probe` (a name every layout of the part has) exists in the file; the error
// names the file, the part and every name tried.
std::string detect_weight_prefix(const Checkpoint& checkpoint, const std::vector<std::string>& prefixes,
                                 const std::string& probe, const std::string& part);

// Deterministic random fill of every slot (Philox keyed by seed and the slot's index): normal(0, 1/sqrt(fan_in))
// for rank >= 2, ones for names ending in "gamma" or "norm*.weight", zeros for biases. For small random models in
// tests and fixture makers.
void random_weight_table(const std::vector<WeightSlot>& slots, uint64_t seed);

}  // namespace lf
