#pragma once
// The attention backends, one registry entry each: the factory (make_attention_backend, make_planner), the name
// check of attention.backend, `--help`, the presets and the table in docs/sparse-attention.md all read this table.
// A backend name is compared nowhere else. Adding a planner touches its entry here, its planner file and its test.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "attention/planners.h"
#include "config/config.h"

namespace lf {

// The GPU planner a backend uses (lib/attention/gpu_planners.cpp runs it on the device from pooled blocks).
// None: the backend's mask depends on positions only; the GPU path plans it on the host and uploads it once per
// geometry.
enum class GpuPlanRule { None, TopK, LightForcingHsa, TopP };

struct AttentionBackendEntry {
  std::string name;         // the value of attention.backend
  std::string description;  // one line, for --help and the docs table
  // The attention.* settings it reads besides query_block / key_block / sparse_first_chunk, in the docs' order.
  std::vector<std::string> settings;
  // Presets in configs/attention/ whose backend this is (test_sparse checks both directions).
  std::vector<std::string> presets;
  bool exact_dense = false;           // the reference: never plans, runs dense attention
  bool needs_video_schedule = false;  // its planner needs the video's length and chunk size (CAG)
  GpuPlanRule gpu_planner = GpuPlanRule::None;
  // frames / chunk_frames: the video's (0 / 1 when unknown; needs_video_schedule backends refuse that).
  std::function<std::unique_ptr<MaskPlanner>(const AttentionConfig&, int64_t frames, int64_t chunk_frames)> make_planner;

  // Whether the planner scores mean-pooled q / k blocks (the GPU path then plans on the device, and the RoPE
  // pass may pool for it) rather than reading positions only.
  bool plans_from_pooled_blocks() const { return gpu_planner != GpuPlanRule::None; }
};

const std::vector<AttentionBackendEntry>& attention_backend_registry();
// The entry named `name`; the error names the config key 'attention.backend' and lists the known names.
const AttentionBackendEntry& attention_backend_entry(const std::string& name);
// The entry of the exact dense reference (compare-dense runs it beside the chosen backend).
const AttentionBackendEntry& dense_attention_backend();
std::string attention_backend_names();  // "dense, lightforcing, ..."
std::string attention_preset_names();   // every entry's presets, in registry order
// The registry as the markdown table of docs/sparse-attention.md (test_sparse checks that the docs hold it).
std::string attention_backends_markdown();

// The planner of config.backend (the entry's make_planner). frames / chunk_frames: the video's, for CAG.
std::unique_ptr<MaskPlanner> make_planner(const AttentionConfig& config, int64_t frames, int64_t chunk_frames);

}  // namespace lf
