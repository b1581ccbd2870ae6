#pragma once
// Typed run configuration. YAML files (configs/ or embedded) are merged, `--set a.b=c` overrides are applied to
// the YAML tree, then the tree is read into these structs: every key must be known, every value valid.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace YAML {
class Node;
}

namespace lf {

struct ModelConfig {
  std::string name = "unnamed";
  int64_t dim = 0;
  int64_t ffn_dim = 0;
  int64_t freq_dim = 256;
  int64_t heads = 0;
  int64_t layers = 0;
  int64_t text_dim = 0;
  int64_t text_len = 0;
  int64_t in_channels = 0;
  int64_t out_channels = 0;
  std::array<int64_t, 3> patch = {1, 2, 2};  // (t, h, w)
  int64_t latent_height = 0;
  int64_t latent_width = 0;
  double eps = 1e-6;
  double rope_theta = 10000.0;
  std::string text_encoder = "embeddings";  // embeddings | word-table | umt5-xxl
  std::vector<std::string> vocabulary;      // word-table encoder of a randomly initialised model
  std::string decoder = "pixel";            // pixel | wan-vae
  int decoder_upscale = 1;                  // nearest-neighbour upscale of decoded frames (small testbed models)
  std::string weights;                      // checkpoint path, or "random" (deterministic init from init_seed)
  uint64_t init_seed = 0;

  int64_t head_dim() const { return heads ? dim / heads : 0; }
  int64_t grid_height() const { return latent_height / patch[1]; }
  int64_t grid_width() const { return latent_width / patch[2]; }
  int64_t tokens_per_frame() const { return grid_height() * grid_width(); }
  int64_t patch_dim() const { return in_channels * patch[0] * patch[1] * patch[2]; }
};

struct KvCacheConfig {
  std::string mode = "global";        // global | rolling
  int64_t window_frames = 0;          // rolling: frames kept, sink included
  int64_t sink_frames = 0;            // rolling: first frames never evicted
  std::string positions = "absolute"; // absolute (Self-Forcing: post-RoPE keys cached) | relative (re-RoPE on read)
};

struct PipelineConfig {
  int64_t chunk_frames = 3;
  int64_t frames = 21;  // latent frames to generate
  std::vector<double> denoising_steps = {1000, 750, 500, 250};
  bool warp = true;
  double shift = 5.0;
  double context_noise = 0.0;       // timestep of the clean refresh pass
  bool refresh_last_chunk = false;  // its K/V are never read; inference.py runs it, demo.py skips it
  bool recache_on_switch = true;    // prompt switch: rebuild the KV cache under the new prompt (LongLive recache)
  // Between steps: "renoise" (Self-Forcing: x0 re-noised with fresh noise, for few-step distilled models) or
  // "euler" (the flow ODE, x += (sigma' - sigma) v, for models trained by plain flow matching).
  std::string sampler = "renoise";
  uint64_t seed = 0;
  KvCacheConfig kv_cache;
};

// Attention backend = mask planner x sparse operator (docs/sparse-attention.md).
struct AttentionConfig {
  std::string backend = "dense";  // dense | lightforcing | block-topk | block-topp | sliding-tile | radial
  double sparsity = 0.88;         // lightforcing: s_target of CAG; block-topk: the fixed sparsity
  double sparsity_base = 0.98;    // lightforcing: s_base of CAG
  int64_t cag_window_frames = 21; // kv cap inside the CAG formula (the released inference.py default); -1: none
  int64_t keep_frames = 6;        // lightforcing HSA: frames kept per query block (sink + near + selected)
  int64_t keep_sink = 1;
  int64_t keep_near = 2;
  int64_t query_block = 64;       // 64 or 128 tokens
  int64_t key_block = 64;         // 64 or 128 tokens; key blocks never straddle frames (ragged last block)
  double top_p = 0.9;             // block-topp: softmax mass of pooled scores to keep
  int64_t window_frames = 1;      // sliding-tile: |frame distance| <= window_frames
  int64_t window_blocks = 4;      // sliding-tile: |in-frame block distance| <= window_blocks
  int64_t radial_window_blocks = 8;  // radial: in-frame block window of the nearest band; halves per band
  bool sparse_first_chunk = false;   // apply the planner to chunk 0 too (lightforcing keeps it dense)
  bool fused_rope_pooling = true;    // GPU: pool q / new k for the planner inside the RoPE pass (same masks)
  bool plan_beside_cache_write = true;  // GPU: with RoPE pooling, plan on a second stream during the KV-cache write
};

struct OutputConfig {
  int fps = 16;
  int crf = 18;
};

struct RunConfig {
  ModelConfig model;
  PipelineConfig pipeline;
  AttentionConfig attention;
  OutputConfig output;
  std::string source;  // where the config came from, for messages and reports
};

// Where configs come from: a file path, or a name resolved as configs/models/<name>.yaml (embedded copy).
struct ConfigSources {
  std::string model = "testbed";   // --model
  std::string attention;           // --attention preset name or file ("" = the model config's own section)
  std::vector<std::string> overrides;  // "a.b=c"
};

RunConfig load_run_config(const ConfigSources& sources);
RunConfig parse_run_config(const std::string& yaml_text, const std::string& source_name,
                           const std::vector<std::string>& overrides = {});
// Checks ranges and cross-field rules (e.g. frames a multiple of chunk_frames); names the offending key.
void validate(const RunConfig& config);
// The merged config as YAML (for reports and `--print-config`).
std::string to_yaml(const RunConfig& config);
// Applies "a.b.c=value" to a YAML tree; value parsed as YAML (numbers, bools, [lists]).
void apply_override(YAML::Node& root, const std::string& assignment);

}  // namespace lf
