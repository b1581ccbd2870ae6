#include "config/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/embedded.h"
#include "core/error.h"

namespace lf {

namespace {

// Reads one YAML map, remembering which keys were consumed so that a typo ("shfit") is an error, not a default.
class MapReader {
 public:
  MapReader(const YAML::Node& node, std::string path) : path_(std::move(path)) {
    // An absent section and an empty one ("pipeline:") both mean "all defaults".
    present_ = node && !node.IsNull();
    if (present_) node_ = node;
    LF_CHECK(!present_ || node_.IsMap(), "config section '{}' must be a map", path_);
  }

  template <typename T>
  void get(const char* key, T& out) {
    used_.insert(key);
    if (!present_ || !node_[key]) return;
    try {
      out = node_[key].as<T>();
    } catch (const YAML::Exception&) {
      fail("config key '{}': cannot read value '{}'", full(key), YAML::Dump(node_[key]));
    }
  }

  YAML::Node child(const char* key) {
    used_.insert(key);
    return present_ ? node_[key] : YAML::Node();
  }

  std::string full(const char* key) const { return path_.empty() ? key : path_ + "." + key; }

  void finish() const {
    if (!present_) return;
    for (const auto& entry : node_) {
      const auto key = entry.first.as<std::string>();
      LF_CHECK(used_.count(key), "unknown config key '{}'", path_.empty() ? key : path_ + "." + key);
    }
  }

 private:
  bool present_ = false;
  YAML::Node node_;
  std::string path_;
  std::set<std::string> used_;
};

ModelConfig read_model(const YAML::Node& node) {
  ModelConfig model;
  MapReader reader(node, "model");
  reader.get("name", model.name);
  reader.get("dim", model.dim);
  reader.get("ffn_dim", model.ffn_dim);
  reader.get("freq_dim", model.freq_dim);
  reader.get("heads", model.heads);
  reader.get("layers", model.layers);
  reader.get("text_dim", model.text_dim);
  reader.get("text_len", model.text_len);
  reader.get("in_channels", model.in_channels);
  reader.get("out_channels", model.out_channels);
  std::vector<int64_t> patch(model.patch.begin(), model.patch.end());
  reader.get("patch", patch);
  LF_CHECK(patch.size() == 3, "config key 'model.patch' needs 3 values (t, h, w), found {}", patch.size());
  std::copy(patch.begin(), patch.end(), model.patch.begin());
  reader.get("latent_height", model.latent_height);
  reader.get("latent_width", model.latent_width);
  reader.get("eps", model.eps);
  reader.get("rope_theta", model.rope_theta);
  reader.get("text_encoder", model.text_encoder);
  reader.get("vocabulary", model.vocabulary);
  reader.get("decoder", model.decoder);
  reader.get("decoder_upscale", model.decoder_upscale);
  reader.get("weights", model.weights);
  reader.get("init_seed", model.init_seed);
  reader.finish();
  return model;
}

PipelineConfig read_pipeline(const YAML::Node& node) {
  PipelineConfig pipeline;
  MapReader reader(node, "pipeline");
  reader.get("chunk_frames", pipeline.chunk_frames);
  reader.get("frames", pipeline.frames);
  reader.get("denoising_steps", pipeline.denoising_steps);
  reader.get("warp", pipeline.warp);
  reader.get("shift", pipeline.shift);
  reader.get("context_noise", pipeline.context_noise);
  reader.get("refresh_last_chunk", pipeline.refresh_last_chunk);
  reader.get("recache_on_switch", pipeline.recache_on_switch);
  reader.get("sampler", pipeline.sampler);
  reader.get("seed", pipeline.seed);
  MapReader cache(reader.child("kv_cache"), "pipeline.kv_cache");
  cache.get("mode", pipeline.kv_cache.mode);
  cache.get("window_frames", pipeline.kv_cache.window_frames);
  cache.get("sink_frames", pipeline.kv_cache.sink_frames);
  cache.get("positions", pipeline.kv_cache.positions);
  cache.finish();
  reader.finish();
  return pipeline;
}

AttentionConfig read_attention(const YAML::Node& node) {
  AttentionConfig attention;
  MapReader reader(node, "attention");
  reader.get("backend", attention.backend);
  reader.get("sparsity", attention.sparsity);
  reader.get("sparsity_base", attention.sparsity_base);
  reader.get("cag_window_frames", attention.cag_window_frames);
  reader.get("keep_frames", attention.keep_frames);
  reader.get("keep_sink", attention.keep_sink);
  reader.get("keep_near", attention.keep_near);
  reader.get("query_block", attention.query_block);
  reader.get("key_block", attention.key_block);
  reader.get("top_p", attention.top_p);
  reader.get("window_frames", attention.window_frames);
  reader.get("window_blocks", attention.window_blocks);
  reader.get("radial_window_blocks", attention.radial_window_blocks);
  reader.get("sparse_first_chunk", attention.sparse_first_chunk);
  reader.get("fused_rope_pooling", attention.fused_rope_pooling);
  reader.get("plan_beside_cache_write", attention.plan_beside_cache_write);
  reader.finish();
  return attention;
}

OutputConfig read_output(const YAML::Node& node) {
  OutputConfig output;
  MapReader reader(node, "output");
  reader.get("fps", output.fps);
  reader.get("crf", output.crf);
  reader.finish();
  return output;
}

// yaml-cpp accepts a map that repeats a key (and then reads the first), and keys that are lists or maps; the
// config refuses both, naming the line. Nesting is bounded so a hostile file cannot exhaust the stack here.
void check_map_keys(const YAML::Node& node, const std::string& source, int depth) {
  LF_CHECK(depth <= 64, "config '{}': nested deeper than 64 levels at line {}", source, node.Mark().line + 1);
  if (node.IsSequence())
    for (const auto& item : node) check_map_keys(item, source, depth + 1);
  if (!node.IsMap()) return;
  std::set<std::string> seen;
  for (const auto& entry : node) {
    LF_CHECK(entry.first.IsScalar(), "config '{}': a key at line {} is not a plain name", source,
             entry.first.Mark().line + 1);
    LF_CHECK(seen.insert(entry.first.Scalar()).second, "config '{}': key '{}' appears twice in one map (line {})",
             source, entry.first.Scalar(), entry.first.Mark().line + 1);
    check_map_keys(entry.second, source, depth + 1);
  }
}

YAML::Node parse_yaml(const std::string& text, const std::string& source) {
  try {
    YAML::Node node = YAML::Load(text);
    check_map_keys(node, source, 0);
    LF_CHECK(!node || node.IsMap(), "config '{}': top level must be a map", source);
    return node ? node : YAML::Node(YAML::NodeType::Map);
  } catch (const YAML::Exception& error) {
    fail("config '{}': YAML error at line {}, column {}: {}", source, error.mark.line + 1, error.mark.column + 1,
         error.msg);
  }
}

// Text of a config given as a path or as a name under configs/<folder>/ (embedded in the binary).
std::string read_config_text(const std::string& name_or_path, const char* folder, std::string* source) {
  std::error_code ignored;
  if (std::filesystem::is_regular_file(name_or_path, ignored)) {
    std::ifstream file(name_or_path);
    LF_CHECK(file, "cannot read config file '{}'", name_or_path);
    std::stringstream buffer;
    buffer << file.rdbuf();
    *source = name_or_path;
    return buffer.str();
  }
  const std::string relative = std::string(folder) + "/" + name_or_path + ".yaml";
  if (const char* text = find_embedded_config(relative)) {
    *source = "configs/" + relative + " (embedded)";
    return text;
  }
  std::string known;
  for (const EmbeddedFile* file = kEmbeddedConfigs; file->path; ++file) {
    const std::string path = file->path;
    if (path.rfind(std::string(folder) + "/", 0) == 0)
      known += (known.empty() ? "" : ", ") + path.substr(std::string(folder).size() + 1, path.size() - 6 -
                                                                                          std::string(folder).size());
  }
  fail("no config file or built-in {} config named '{}' (built-in: {})", folder, name_or_path, known);
}

}  // namespace

void apply_override(YAML::Node& root, const std::string& assignment) {
  const size_t equals = assignment.find('=');
  LF_CHECK(equals != std::string::npos && equals > 0, "--set '{}': expected key=value", assignment);
  const std::string key = assignment.substr(0, equals);
  const std::string value_text = assignment.substr(equals + 1);
  YAML::Node value;
  try {
    value = YAML::Load(value_text);
  } catch (const YAML::Exception& error) {
    fail("--set '{}': cannot parse value: {}", assignment, error.msg);
  }
  check_map_keys(value, "--set " + assignment, 0);
  std::vector<std::string> parts;
  std::stringstream stream(key);
  for (std::string part; std::getline(stream, part, '.');) {
    LF_CHECK(!part.empty(), "--set '{}': empty key component", assignment);
    parts.push_back(part);
  }
  // yaml-cpp nodes are handles: walk with fresh handles and assign through operator[] so the tree is updated.
  std::vector<YAML::Node> path{root};
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    YAML::Node next = path.back()[parts[i]];
    if (!next || !next.IsMap()) {
      LF_CHECK(!next || next.IsNull(), "--set '{}': '{}' is not a section", assignment, parts[i]);
      path.back()[parts[i]] = YAML::Node(YAML::NodeType::Map);
      next = path.back()[parts[i]];
    }
    path.push_back(next);
  }
  path.back()[parts.back()] = value;
}

RunConfig parse_run_config(const std::string& yaml_text, const std::string& source_name,
                           const std::vector<std::string>& overrides) {
  YAML::Node root = parse_yaml(yaml_text, source_name);
  for (const auto& assignment : overrides) apply_override(root, assignment);
  RunConfig config;
  config.source = source_name;
  MapReader reader(root, "");
  config.model = read_model(reader.child("model"));
  config.pipeline = read_pipeline(reader.child("pipeline"));
  config.attention = read_attention(reader.child("attention"));
  config.output = read_output(reader.child("output"));
  reader.finish();
  validate(config);
  return config;
}

RunConfig load_run_config(const ConfigSources& sources) {
  std::string source;
  std::string text = read_config_text(sources.model, "models", &source);
  if (!sources.attention.empty()) {
    // An attention preset replaces the model file's attention section.
    std::string preset_source;
    YAML::Node preset = parse_yaml(read_config_text(sources.attention, "attention", &preset_source), preset_source);
    YAML::Node root = parse_yaml(text, source);
    for (const auto& entry : preset) {
      LF_CHECK(entry.first.as<std::string>() == "attention", "attention preset '{}': unknown top-level key '{}'",
               preset_source, entry.first.as<std::string>());
      root["attention"] = entry.second;
    }
    text = YAML::Dump(root);
    source += " + " + preset_source;
  }
  return parse_run_config(text, source, sources.overrides);
}

namespace {

// Product of `factors`, or -1 when it does not fit int64 (all factors are > 0 after validate's range checks).
int64_t checked_product(std::initializer_list<int64_t> factors) {
  int64_t product = 1;
  for (int64_t factor : factors)
    if (factor < 0 || __builtin_mul_overflow(product, factor, &product)) return -1;
  return product;
}

}  // namespace

RunSizes run_sizes(const RunConfig& config) {
  const ModelConfig& model = config.model;
  const PipelineConfig& pipeline = config.pipeline;
  RunSizes sizes;
  const bool rolling = pipeline.kv_cache.mode == "rolling";
  sizes.cache_frames = rolling ? std::min(pipeline.frames, pipeline.kv_cache.window_frames) : pipeline.frames;
  // Not model.tokens_per_frame(): its plain product could itself overflow for an absurd resolution.
  const int64_t tokens_per_frame = checked_product({model.grid_height(), model.grid_width()});
  sizes.latent_elements =
      checked_product({pipeline.frames, model.out_channels, model.latent_height, model.latent_width});
  sizes.kv_cache_elements = checked_product({2, model.layers, sizes.cache_frames, tokens_per_frame, model.dim});
  sizes.chunk_activation_elements = checked_product({pipeline.chunk_frames, tokens_per_frame, model.ffn_dim});
  return sizes;
}

void validate(const RunConfig& config) {
  const ModelConfig& model = config.model;
  auto positive = [](int64_t value, const char* key) {
    LF_CHECK(value > 0, "config key '{}' must be > 0, found {}", key, value);
  };
  positive(model.dim, "model.dim");
  positive(model.ffn_dim, "model.ffn_dim");
  positive(model.freq_dim, "model.freq_dim");
  positive(model.heads, "model.heads");
  positive(model.layers, "model.layers");
  positive(model.text_dim, "model.text_dim");
  positive(model.text_len, "model.text_len");
  positive(model.in_channels, "model.in_channels");
  positive(model.out_channels, "model.out_channels");
  positive(model.latent_height, "model.latent_height");
  positive(model.latent_width, "model.latent_width");
  LF_CHECK(model.freq_dim % 2 == 0, "config key 'model.freq_dim' must be even, found {}", model.freq_dim);
  LF_CHECK(model.dim % model.heads == 0, "model.dim {} is not a multiple of model.heads {}", model.dim, model.heads);
  LF_CHECK(model.head_dim() % 2 == 0 && model.head_dim() >= 6, "model head_dim {} must be even and >= 6 (3D RoPE)",
           model.head_dim());
  LF_CHECK(model.patch[0] == 1, "config key 'model.patch': temporal patch must be 1, found {}", model.patch[0]);
  LF_CHECK(model.patch[1] > 0 && model.patch[2] > 0, "config key 'model.patch' must be positive");
  LF_CHECK(model.latent_height % model.patch[1] == 0 && model.latent_width % model.patch[2] == 0,
           "model latent size {}x{} is not a multiple of the patch {}x{}", model.latent_height, model.latent_width,
           model.patch[1], model.patch[2]);
  // model.text_encoder and model.decoder name registry entries of lib/model (text_encoder_entry, decoder_entry),
  // checked there: the config layer does not know the parts above it.
  LF_CHECK(model.decoder_upscale >= 1 && model.decoder_upscale <= 16,
           "config key 'model.decoder_upscale' must be in 1..16, found {}", model.decoder_upscale);
  LF_CHECK(model.decoder != "pixel" || model.out_channels == 3,
           "model.decoder 'pixel' needs model.out_channels 3 (RGB), found {}", model.out_channels);
  LF_CHECK(model.in_channels == model.out_channels, "model.in_channels {} != model.out_channels {}: the chunk loop "
           "feeds predictions back as inputs", model.in_channels, model.out_channels);

  const PipelineConfig& pipeline = config.pipeline;
  positive(pipeline.chunk_frames, "pipeline.chunk_frames");
  LF_CHECK(pipeline.frames > 0, "frames must be > 0, found {}", pipeline.frames);
  LF_CHECK(pipeline.frames % pipeline.chunk_frames == 0, "frames {} is not a multiple of the chunk size {} "
           "(pipeline.chunk_frames)", pipeline.frames, pipeline.chunk_frames);
  LF_CHECK(!pipeline.denoising_steps.empty(), "config key 'pipeline.denoising_steps' is empty");
  for (double step : pipeline.denoising_steps)
    LF_CHECK(step > 0 && step <= 1000, "config key 'pipeline.denoising_steps': {} is outside (0, 1000]", step);
  for (size_t i = 1; i < pipeline.denoising_steps.size(); ++i)
    LF_CHECK(pipeline.denoising_steps[i] < pipeline.denoising_steps[i - 1],
             "config key 'pipeline.denoising_steps' must decrease strictly");
  if (pipeline.warp)
    for (double step : pipeline.denoising_steps)
      LF_CHECK(step == std::floor(step), "config key 'pipeline.denoising_steps': {} must be an integer index when "
               "pipeline.warp is true", step);
  LF_CHECK(pipeline.shift > 0, "config key 'pipeline.shift' must be > 0, found {}", pipeline.shift);
  LF_CHECK(pipeline.sampler == "renoise" || pipeline.sampler == "euler",
           "config key 'pipeline.sampler' is '{}': expected renoise or euler", pipeline.sampler);
  LF_CHECK(pipeline.context_noise >= 0 && pipeline.context_noise <= 1000,
           "config key 'pipeline.context_noise' must be in [0, 1000]");
  const KvCacheConfig& cache = pipeline.kv_cache;
  LF_CHECK(cache.mode == "global" || cache.mode == "rolling",
           "config key 'pipeline.kv_cache.mode': unknown mode '{}' (known: global, rolling)", cache.mode);
  LF_CHECK(cache.positions == "absolute" || cache.positions == "relative",
           "config key 'pipeline.kv_cache.positions': unknown '{}' (known: absolute, relative)", cache.positions);
  if (cache.mode == "rolling") {
    LF_CHECK(cache.sink_frames >= 0, "config key 'pipeline.kv_cache.sink_frames' must be >= 0");
    // Written as a difference: the sum of two huge values would overflow.
    LF_CHECK(cache.window_frames >= cache.sink_frames &&
                 cache.window_frames - cache.sink_frames >= pipeline.chunk_frames,
             "pipeline.kv_cache.window_frames {} must hold the sink ({}) plus one chunk ({})", cache.window_frames,
             cache.sink_frames, pipeline.chunk_frames);
  } else {
    LF_CHECK(cache.positions == "absolute", "pipeline.kv_cache.positions 'relative' needs kv_cache.mode 'rolling'");
  }

  const AttentionConfig& attention = config.attention;
  // attention.backend names an entry of lib/attention's registry (attention_backend_entry), checked where that
  // is reachable: make_attention_backend / make_planner and cmd's prepare_model, before any weights load.
  LF_CHECK(attention.sparsity >= 0 && attention.sparsity < 1, "config key 'attention.sparsity' must be in [0, 1), "
           "found {}", attention.sparsity);
  LF_CHECK(attention.sparsity_base >= 0 && attention.sparsity_base < 1,
           "config key 'attention.sparsity_base' must be in [0, 1), found {}", attention.sparsity_base);
  LF_CHECK(attention.keep_sink >= 0 && attention.keep_near >= 0 && attention.keep_frames >= 0,
           "config keys 'attention.keep_*' must be >= 0");
  LF_CHECK(attention.keep_sink <= attention.keep_frames - attention.keep_near,  // no overflow: all >= 0
           "attention.keep_sink ({}) + attention.keep_near ({}) > attention.keep_frames ({})", attention.keep_sink,
           attention.keep_near, attention.keep_frames);
  LF_CHECK(attention.query_block == 64 || attention.query_block == 128,
           "config key 'attention.query_block': {} is not supported (64 or 128)", attention.query_block);
  LF_CHECK(attention.key_block == 64 || attention.key_block == 128,
           "config key 'attention.key_block': {} is not supported (64 or 128)", attention.key_block);
  LF_CHECK(attention.top_p > 0 && attention.top_p <= 1, "config key 'attention.top_p' must be in (0, 1]");
  LF_CHECK(attention.window_frames >= 0 && attention.window_blocks >= 0 && attention.radial_window_blocks >= 1,
           "config keys 'attention.window_*' must be >= 0 and 'attention.radial_window_blocks' >= 1");
  // Sizes are products of config values: check they fit int64 here, so a huge --frames is named instead of
  // wrapping into a negative tensor size later.
  const RunSizes sizes = run_sizes(config);
  LF_CHECK(sizes.latent_elements > 0 && sizes.kv_cache_elements > 0,
           "pipeline.frames {} at latent size {}x{} ({} layers, dim {}): the latents or the KV cache overflow 64-bit "
           "sizes", pipeline.frames, model.latent_height, model.latent_width, model.layers, model.dim);
  LF_CHECK(sizes.chunk_activation_elements > 0, "model size too large: chunk_frames {} x {}x{} tokens/frame x ffn_dim "
           "{} overflows 64-bit sizes", pipeline.chunk_frames, model.grid_height(), model.grid_width(), model.ffn_dim);
  LF_CHECK(config.output.fps > 0 && config.output.fps <= 240, "config key 'output.fps' must be in 1..240");
  LF_CHECK(config.output.crf >= 0 && config.output.crf <= 51, "config key 'output.crf' must be in 0..51");
}

std::string to_yaml(const RunConfig& config) {
  YAML::Emitter out;
  // 15 significant digits (DBL_DIG): every value that came from decimal text in a config prints as that text
  // (0.98, not yaml-cpp's default 17 digits, 0.97999999999999998) and reads back as the same double.
  out.SetDoublePrecision(15);
  const ModelConfig& model = config.model;
  out << YAML::BeginMap;
  out << YAML::Key << "model" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << model.name;
  out << YAML::Key << "dim" << YAML::Value << model.dim;
  out << YAML::Key << "ffn_dim" << YAML::Value << model.ffn_dim;
  out << YAML::Key << "freq_dim" << YAML::Value << model.freq_dim;
  out << YAML::Key << "heads" << YAML::Value << model.heads;
  out << YAML::Key << "layers" << YAML::Value << model.layers;
  out << YAML::Key << "text_dim" << YAML::Value << model.text_dim;
  out << YAML::Key << "text_len" << YAML::Value << model.text_len;
  out << YAML::Key << "in_channels" << YAML::Value << model.in_channels;
  out << YAML::Key << "out_channels" << YAML::Value << model.out_channels;
  out << YAML::Key << "patch" << YAML::Value << YAML::Flow
      << std::vector<int64_t>(model.patch.begin(), model.patch.end());
  out << YAML::Key << "latent_height" << YAML::Value << model.latent_height;
  out << YAML::Key << "latent_width" << YAML::Value << model.latent_width;
  out << YAML::Key << "eps" << YAML::Value << model.eps;
  out << YAML::Key << "rope_theta" << YAML::Value << model.rope_theta;
  out << YAML::Key << "text_encoder" << YAML::Value << model.text_encoder;
  if (!model.vocabulary.empty()) out << YAML::Key << "vocabulary" << YAML::Value << YAML::Flow << model.vocabulary;
  out << YAML::Key << "decoder" << YAML::Value << model.decoder;
  out << YAML::Key << "decoder_upscale" << YAML::Value << model.decoder_upscale;
  out << YAML::Key << "weights" << YAML::Value << model.weights;
  out << YAML::Key << "init_seed" << YAML::Value << model.init_seed;
  out << YAML::EndMap;
  const PipelineConfig& pipeline = config.pipeline;
  out << YAML::Key << "pipeline" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "chunk_frames" << YAML::Value << pipeline.chunk_frames;
  out << YAML::Key << "frames" << YAML::Value << pipeline.frames;
  out << YAML::Key << "denoising_steps" << YAML::Value << YAML::Flow << pipeline.denoising_steps;
  out << YAML::Key << "warp" << YAML::Value << pipeline.warp;
  out << YAML::Key << "shift" << YAML::Value << pipeline.shift;
  out << YAML::Key << "context_noise" << YAML::Value << pipeline.context_noise;
  out << YAML::Key << "refresh_last_chunk" << YAML::Value << pipeline.refresh_last_chunk;
  out << YAML::Key << "recache_on_switch" << YAML::Value << pipeline.recache_on_switch;
  out << YAML::Key << "sampler" << YAML::Value << pipeline.sampler;
  out << YAML::Key << "seed" << YAML::Value << pipeline.seed;
  out << YAML::Key << "kv_cache" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "mode" << YAML::Value << pipeline.kv_cache.mode;
  out << YAML::Key << "window_frames" << YAML::Value << pipeline.kv_cache.window_frames;
  out << YAML::Key << "sink_frames" << YAML::Value << pipeline.kv_cache.sink_frames;
  out << YAML::Key << "positions" << YAML::Value << pipeline.kv_cache.positions;
  out << YAML::EndMap << YAML::EndMap;
  const AttentionConfig& a = config.attention;
  out << YAML::Key << "attention" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "backend" << YAML::Value << a.backend;
  out << YAML::Key << "sparsity" << YAML::Value << a.sparsity;
  out << YAML::Key << "sparsity_base" << YAML::Value << a.sparsity_base;
  out << YAML::Key << "cag_window_frames" << YAML::Value << a.cag_window_frames;
  out << YAML::Key << "keep_frames" << YAML::Value << a.keep_frames;
  out << YAML::Key << "keep_sink" << YAML::Value << a.keep_sink;
  out << YAML::Key << "keep_near" << YAML::Value << a.keep_near;
  out << YAML::Key << "query_block" << YAML::Value << a.query_block;
  out << YAML::Key << "key_block" << YAML::Value << a.key_block;
  out << YAML::Key << "top_p" << YAML::Value << a.top_p;
  out << YAML::Key << "window_frames" << YAML::Value << a.window_frames;
  out << YAML::Key << "window_blocks" << YAML::Value << a.window_blocks;
  out << YAML::Key << "radial_window_blocks" << YAML::Value << a.radial_window_blocks;
  out << YAML::Key << "sparse_first_chunk" << YAML::Value << a.sparse_first_chunk;
  out << YAML::Key << "fused_rope_pooling" << YAML::Value << a.fused_rope_pooling;
  out << YAML::Key << "plan_beside_cache_write" << YAML::Value << a.plan_beside_cache_write;
  out << YAML::EndMap;
  out << YAML::Key << "output" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "fps" << YAML::Value << config.output.fps;
  out << YAML::Key << "crf" << YAML::Value << config.output.crf << YAML::EndMap;
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace lf
