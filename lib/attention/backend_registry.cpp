// The attention backend registry: one entry per backend, read by the factory, the config's name check, --help,
// the presets' test and the docs table.
#include "attention/backend_registry.h"

#include "core/error.h"
#include "core/registry.h"

namespace lf {

const std::vector<AttentionBackendEntry>& attention_backend_registry() {
  static const std::vector<AttentionBackendEntry> registry = [] {
    std::vector<AttentionBackendEntry> entries;
    AttentionBackendEntry dense;
    dense.name = "dense";
    dense.description = "exact attention over the whole visible KV cache (the reference)";
    dense.presets = {"dense"};
    dense.exact_dense = true;
    dense.make_planner = [](const AttentionConfig& config, int64_t, int64_t) { return make_dense_planner(config); };
    entries.push_back(dense);

    AttentionBackendEntry lightforcing;
    lightforcing.name = "lightforcing";
    lightforcing.description = "Light Forcing: CAG sparsity per chunk, HSA frame-then-block top-k (chunk 0 dense)";
    lightforcing.settings = {"sparsity", "sparsity_base", "cag_window_frames", "keep_frames", "keep_sink", "keep_near"};
    lightforcing.presets = {"lightforcing-short", "lightforcing-long", "lightforcing-hopper"};
    lightforcing.needs_video_schedule = true;
    lightforcing.gpu_planner = GpuPlanRule::LightForcingHsa;
    lightforcing.make_planner = [](const AttentionConfig& config, int64_t frames, int64_t chunk_frames) {
      return make_lightforcing_planner(config, frames, chunk_frames);
    };
    entries.push_back(lightforcing);

    AttentionBackendEntry topk;
    topk.name = "block-topk";
    topk.description = "one fixed top-k fraction of mean-pooled block scores (the paper's 1D ablation)";
    topk.settings = {"sparsity"};
    topk.presets = {"block-topk"};
    topk.gpu_planner = GpuPlanRule::TopK;
    topk.make_planner = [](const AttentionConfig& config, int64_t, int64_t) { return make_block_topk_planner(config); };
    entries.push_back(topk);

    AttentionBackendEntry topp;
    topp.name = "block-topp";
    topp.description = "the fewest blocks whose softmax mass of pooled scores reaches top_p (SpargeAttn / XAttention)";
    topp.settings = {"top_p"};
    topp.presets = {"block-topp"};
    topp.gpu_planner = GpuPlanRule::TopP;
    topp.make_planner = [](const AttentionConfig& config, int64_t, int64_t) { return make_block_topp_planner(config); };
    entries.push_back(topp);

    AttentionBackendEntry sliding;
    sliding.name = "sliding-tile";
    sliding.description = "static window of +-window_frames frames and +-window_blocks in-frame blocks (STA)";
    sliding.settings = {"window_frames", "window_blocks"};
    sliding.presets = {"sliding-tile"};
    sliding.make_planner = [](const AttentionConfig& config, int64_t, int64_t) {
      return make_sliding_tile_planner(config);
    };
    entries.push_back(sliding);

    AttentionBackendEntry radial;
    radial.name = "radial";
    radial.description = "static energy-decay mask: the in-frame window halves per log2 band of frame distance";
    radial.settings = {"radial_window_blocks"};
    radial.presets = {"radial"};
    radial.make_planner = [](const AttentionConfig& config, int64_t, int64_t) { return make_radial_planner(config); };
    entries.push_back(radial);
    return entries;
  }();
  return registry;
}

std::string attention_backend_names() { return registry_names(attention_backend_registry()); }

std::string attention_preset_names() {
  std::string names;
  for (const AttentionBackendEntry& entry : attention_backend_registry())
    for (const std::string& preset : entry.presets) names += (names.empty() ? "" : ", ") + preset;
  return names;
}

std::string attention_backends_markdown() {
  auto joined = [](const std::vector<std::string>& items, const char* quote) {
    std::string text;
    for (const std::string& item : items) text += (text.empty() ? "" : ", ") + (quote + item + quote);
    return text.empty() ? std::string("-") : text;
  };
  auto gpu_planner = [](const AttentionBackendEntry& entry) -> std::string {
    if (entry.exact_dense) return "- (dense kernel)";
    switch (entry.gpu_planner) {
      case GpuPlanRule::None: return "host plan, uploaded once per geometry";
      case GpuPlanRule::TopK: return "top-k";
      case GpuPlanRule::LightForcingHsa: return "HSA (top-k while past frames <= keep_frames)";
      case GpuPlanRule::TopP: return "top-p";
    }
    return "?";
  };
  std::string table = "| backend | what it does | settings (attention.*) | presets | GPU planner |\n|---|---|---|---|---|\n";
  for (const AttentionBackendEntry& entry : attention_backend_registry())
    table += "| `" + entry.name + "` | " + entry.description + " | " + joined(entry.settings, "`") + " | " +
             joined(entry.presets, "`") + " | " + gpu_planner(entry) + " |\n";
  return table;
}

const AttentionBackendEntry& attention_backend_entry(const std::string& name) {
  return registry_entry(attention_backend_registry(), name, "attention.backend", "attention backend");
}

const AttentionBackendEntry& dense_attention_backend() {
  for (const AttentionBackendEntry& entry : attention_backend_registry())
    if (entry.exact_dense) return entry;
  fail("attention backend registry: no exact dense entry");
}

std::unique_ptr<MaskPlanner> make_planner(const AttentionConfig& config, int64_t frames, int64_t chunk_frames) {
  return attention_backend_entry(config.backend).make_planner(config, frames, chunk_frames);
}

}  // namespace lf
