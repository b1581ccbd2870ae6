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
  uint64_t seed = 0;
  KvCacheConfig kv_cache;
};

struct AttentionConfig {
  std::string backend = "dense";
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
  std::string model = "tiny";      // --model
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
