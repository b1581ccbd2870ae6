#include "model/wan_weights.h"

#include <cmath>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/philox.h"
#include "io/checkpoint.h"
#include "model/weight_table.h"
#include "io/safetensors.h"

namespace lf {

namespace {

void add_linear(std::vector<ParamSlot>& slots, const std::string& name, LinearWeights& linear, int64_t out,
                int64_t in) {
  slots.push_back({name + ".weight", {out, in}, {out, in}, &linear.weight, ParamSlot::Init::Weight, in});
  slots.push_back({name + ".bias", {out}, {out}, &linear.bias, ParamSlot::Init::Bias, in});
}

void add_vector(std::vector<ParamSlot>& slots, const std::string& name, Tensor& tensor, int64_t size,
                ParamSlot::Init init) {
  slots.push_back({name, {size}, {size}, &tensor, init, size});
}

// Names of the official Wan layout that may wrap the model in training checkpoints.
const char* const kWrapperComponents[] = {"module.", "_fsdp_wrapped_module.", "_checkpoint_wrapped_module.",
                                          "_orig_mod."};

std::string strip_wrappers(std::string name) {
  for (const char* wrapper : kWrapperComponents) {
    for (size_t at; (at = name.find(wrapper)) != std::string::npos;) name.erase(at, std::string(wrapper).size());
  }
  return name;
}

}  // namespace

std::vector<ParamSlot> parameter_slots(const ModelConfig& config, WanWeights& weights) {
  const int64_t dim = config.dim, ffn = config.ffn_dim;
  const int64_t patch_area = config.patch[1] * config.patch[2];
  std::vector<ParamSlot> slots;
  slots.push_back({"patch_embedding.weight",
                   {dim, config.in_channels, config.patch[0], config.patch[1], config.patch[2]},
                   {dim, config.patch_dim()},
                   &weights.patch_embedding.weight,
                   ParamSlot::Init::Weight,
                   config.patch_dim()});
  slots.push_back({"patch_embedding.bias", {dim}, {dim}, &weights.patch_embedding.bias, ParamSlot::Init::Bias,
                   config.patch_dim()});
  add_linear(slots, "text_embedding.0", weights.text_embedding_0, dim, config.text_dim);
  add_linear(slots, "text_embedding.2", weights.text_embedding_2, dim, dim);
  add_linear(slots, "time_embedding.0", weights.time_embedding_0, dim, config.freq_dim);
  add_linear(slots, "time_embedding.2", weights.time_embedding_2, dim, dim);
  add_linear(slots, "time_projection.1", weights.time_projection, 6 * dim, dim);
  weights.blocks.resize(size_t(config.layers));
  for (int64_t layer = 0; layer < config.layers; ++layer) {
    WanBlockWeights& block = weights.blocks[size_t(layer)];
    const std::string prefix = "blocks." + std::to_string(layer) + ".";
    slots.push_back({prefix + "modulation", {1, 6, dim}, {6, dim}, &block.modulation, ParamSlot::Init::Modulation,
                     dim});
    add_linear(slots, prefix + "self_attn.q", block.self_q, dim, dim);
    add_linear(slots, prefix + "self_attn.k", block.self_k, dim, dim);
    add_linear(slots, prefix + "self_attn.v", block.self_v, dim, dim);
    add_linear(slots, prefix + "self_attn.o", block.self_o, dim, dim);
    add_vector(slots, prefix + "self_attn.norm_q.weight", block.self_norm_q, dim, ParamSlot::Init::Norm);
    add_vector(slots, prefix + "self_attn.norm_k.weight", block.self_norm_k, dim, ParamSlot::Init::Norm);
    add_vector(slots, prefix + "norm3.weight", block.norm3_weight, dim, ParamSlot::Init::Norm);
    add_vector(slots, prefix + "norm3.bias", block.norm3_bias, dim, ParamSlot::Init::Bias);
    add_linear(slots, prefix + "cross_attn.q", block.cross_q, dim, dim);
    add_linear(slots, prefix + "cross_attn.k", block.cross_k, dim, dim);
    add_linear(slots, prefix + "cross_attn.v", block.cross_v, dim, dim);
    add_linear(slots, prefix + "cross_attn.o", block.cross_o, dim, dim);
    add_vector(slots, prefix + "cross_attn.norm_q.weight", block.cross_norm_q, dim, ParamSlot::Init::Norm);
    add_vector(slots, prefix + "cross_attn.norm_k.weight", block.cross_norm_k, dim, ParamSlot::Init::Norm);
    add_linear(slots, prefix + "ffn.0", block.ffn_in, ffn, dim);
    add_linear(slots, prefix + "ffn.2", block.ffn_out, dim, ffn);
  }
  slots.push_back({"head.modulation", {1, 2, dim}, {2, dim}, &weights.head_modulation, ParamSlot::Init::Modulation,
                   dim});
  add_linear(slots, "head.head", weights.head, config.out_channels * patch_area, dim);
  return slots;
}

int64_t parameter_count(const ModelConfig& config) {
  WanWeights scratch;
  int64_t count = 0;
  for (const ParamSlot& slot : parameter_slots(config, scratch)) count += shape_numel(slot.official_shape);
  return count;
}

WanWeights random_weights(const ModelConfig& config) {
  WanWeights weights;
  std::vector<ParamSlot> slots = parameter_slots(config, weights);
  for (size_t index = 0; index < slots.size(); ++index) {
    ParamSlot& slot = slots[index];
    Tensor tensor = Tensor::empty(slot.stored_shape);
    fill_normal(tensor, {config.init_seed, uint32_t(index), 0xC0FFEEu});
    float* data = tensor.f32();
    // Scales keep activations O(1) through the residual stream; the exact values only need to be fixed.
    const float std_dev = slot.init == ParamSlot::Init::Weight       ? 1.0f / std::sqrt(float(slot.fan_in))
                          : slot.init == ParamSlot::Init::Modulation ? 0.1f
                                                                     : 0.02f;
    for (int64_t i = 0; i < tensor.numel(); ++i)
      data[i] = (slot.init == ParamSlot::Init::Norm ? 1.0f : 0.0f) + std_dev * data[i];
    *slot.target = tensor;
  }
  return weights;
}

WeightLayout detect_layout(const Checkpoint& checkpoint, const std::string& preferred_root) {
  LF_CHECK(preferred_root == "auto" || preferred_root == "generator" || preferred_root == "generator_ema",
           "weights root '{}' is not one of auto, generator, generator_ema", preferred_root);
  // The root: Self-Forcing / Light Forcing training checkpoints hold generator and generator_ema (EMA is what
  // the authors sample with), plain Wan files hold the model at the top level.
  std::set<std::string> roots;
  for (const TensorEntry& entry : checkpoint.entries()) {
    const std::string name = entry.name;
    for (const char* root : {"generator_ema.", "generator."})
      if (name.rfind(root, 0) == 0) roots.insert(std::string(root, std::string(root).size() - 1));
  }
  std::string root;
  if (preferred_root != "auto") {
    LF_CHECK(roots.count(preferred_root), "weights '{}': no '{}' entry in this checkpoint", checkpoint.path(),
             preferred_root);
    root = preferred_root;
  } else if (roots.count("generator_ema")) {
    root = "generator_ema";
  } else if (roots.count("generator")) {
    root = "generator";
  }
  const std::string root_prefix = root.empty() ? "" : root + ".";
  // Under the root the names may carry "model." (WanDiffusionWrapper) and wrapper components.
  bool has_model_prefix = false;
  for (const TensorEntry& entry : checkpoint.entries()) {
    if (entry.name.rfind(root_prefix, 0) != 0) continue;
    const std::string rest = strip_wrappers(entry.name.substr(root_prefix.size()));
    if (rest.rfind("model.", 0) == 0) has_model_prefix = true;
  }
  WeightLayout layout;
  layout.prefix = root_prefix + (has_model_prefix ? "model." : "");
  layout.root_prefix = root_prefix;
  layout.description = root.empty() ? (has_model_prefix ? "wan state dict with 'model.' prefix" : "plain wan")
                                    : "self-forcing checkpoint, " + root;
  return layout;
}

WanWeights load_weights(const ModelConfig& config, const Checkpoint& checkpoint, const std::string& preferred_root) {
  const WeightLayout layout = detect_layout(checkpoint, preferred_root);
  // Official name -> stored name, for every tensor under the chosen prefix.
  std::map<std::string, std::string> by_official;
  const std::string root = layout.prefix.substr(0, layout.prefix.rfind("model.") == std::string::npos
                                                       ? layout.prefix.size()
                                                       : layout.prefix.rfind("model."));
  for (const TensorEntry& entry : checkpoint.entries()) {
    if (entry.name.rfind(root, 0) != 0) continue;
    std::string official = strip_wrappers(entry.name.substr(root.size()));
    if (layout.prefix.size() > root.size()) {
      if (official.rfind("model.", 0) != 0) continue;
      official = official.substr(6);
    }
    by_official[official] = entry.name;
  }
  WanWeights weights;
  std::vector<ParamSlot> slots = parameter_slots(config, weights);
  std::vector<WeightSlot> table;
  for (ParamSlot& slot : slots) table.push_back({slot.name, slot.official_shape, slot.target});
  WeightLoadOptions options;
  options.part = "weights";
  // The names in the file are found through the layout's map (wrapper components stripped); a name the map lacks
  // is reported with the layout's prefix, as a user would look for it.
  options.file_name = [&](const std::string& official) {
    const auto found = by_official.find(official);
    return found != by_official.end() ? found->second : layout.prefix + official;
  };
  options.reject_unexpected = false;  // checked below, over the DiT's own namespaces only
  load_weight_table(checkpoint, table, options);
  std::set<std::string> used;
  for (ParamSlot& slot : slots) {
    *slot.target = slot.target->reshape(slot.stored_shape);
    used.insert(slot.name);
  }
  // Extra model tensors mean the config does not describe this checkpoint (e.g. more layers than model.layers).
  for (const auto& [official, stored_name] : by_official) {
    if (used.count(official) || official.rfind("text_encoder.", 0) == 0) continue;
    if (official.rfind("blocks.", 0) == 0 || official.rfind("head.", 0) == 0 ||
        official.rfind("patch_embedding", 0) == 0 || official.rfind("time_", 0) == 0 ||
        official.rfind("text_embedding", 0) == 0)
      fail("weights '{}': unexpected tensor '{}' (does model.layers = {} match the checkpoint?)", checkpoint.path(),
           stored_name, config.layers);
  }
  return weights;
}

void save_weights(const ModelConfig& config, WanWeights& weights, const std::string& path, DType dtype,
                  std::vector<std::pair<std::string, Tensor>> extra, std::map<std::string, std::string> metadata) {
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (ParamSlot& slot : parameter_slots(config, weights))
    tensors.emplace_back(slot.name, slot.target->reshape(slot.official_shape).to(dtype));
  for (auto& named : extra) tensors.push_back(std::move(named));
  metadata["format"] = "lightforce-wan";
  metadata["model"] = config.name;
  write_safetensors(path, tensors, metadata);
}

}  // namespace lf
