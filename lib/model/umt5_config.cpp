#include "model/umt5_config.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/embedded.h"
#include "core/error.h"

namespace lf {

Umt5Config parse_umt5_config(const std::string& yaml_text, const std::string& source) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& error) {
    fail("umT5 config '{}': YAML error at line {}: {}", source, error.mark.line + 1, error.msg);
  }
  LF_CHECK(root && root.IsMap(), "umT5 config '{}': top level must be a map", source);
  Umt5Config config;
  config.source = source;
  config.name = std::filesystem::path(source).stem().string();
  std::set<std::string> used;
  auto read = [&](const char* key, auto& out) {
    used.insert(key);
    if (!root[key]) return;
    try {
      out = root[key].as<std::remove_reference_t<decltype(out)>>();
    } catch (const YAML::Exception&) {
      fail("umT5 config '{}': key '{}': cannot read value '{}'", source, key, YAML::Dump(root[key]));
    }
  };
  read("vocab", config.vocab);
  read("dim", config.dim);
  read("heads", config.heads);
  read("head_dim", config.head_dim);
  read("ffn_dim", config.ffn_dim);
  read("layers", config.layers);
  read("buckets", config.buckets);
  read("max_distance", config.max_distance);
  read("shared_position_bias", config.shared_position_bias);
  read("eps", config.eps);
  read("max_tokens", config.max_tokens);
  read("pad_id", config.pad_id);
  read("eos_id", config.eos_id);
  for (const auto& entry : root) {
    const auto key = entry.first.as<std::string>();
    LF_CHECK(used.count(key), "umT5 config '{}': unknown key '{}'", source, key);
  }
  const std::pair<const char*, int64_t> positive[] = {
      {"vocab", config.vocab},     {"dim", config.dim},       {"heads", config.heads},
      {"head_dim", config.head_dim}, {"ffn_dim", config.ffn_dim}, {"layers", config.layers},
      {"max_tokens", config.max_tokens}};
  for (const auto& [key, value] : positive)
    LF_CHECK(value > 0, "umT5 config '{}': key '{}' must be positive, found {}", source, key, value);
  // Bidirectional buckets: half per direction, half of those exact (T5's max_exact) and at least one log bucket.
  LF_CHECK(config.buckets >= 4 && config.buckets % 4 == 0, "umT5 config '{}': key 'buckets' must be a multiple of 4 "
           ">= 4, found {}", source, config.buckets);
  LF_CHECK(config.max_distance > config.buckets / 4, "umT5 config '{}': key 'max_distance' ({}) must exceed "
           "buckets / 4 ({})", source, config.max_distance, config.buckets / 4);
  LF_CHECK(config.eps > 0, "umT5 config '{}': key 'eps' must be positive", source);
  LF_CHECK(config.pad_id >= 0 && config.pad_id < config.vocab && config.eos_id >= 0 && config.eos_id < config.vocab,
           "umT5 config '{}': pad_id {} / eos_id {} outside the vocab of {}", source, config.pad_id, config.eos_id,
           config.vocab);
  return config;
}

Umt5Config load_umt5_config(const std::string& name_or_path) {
  std::error_code ignored;
  if (std::filesystem::is_regular_file(name_or_path, ignored)) {
    std::ifstream file(name_or_path);
    LF_CHECK(file, "cannot read umT5 config '{}'", name_or_path);
    std::stringstream text;
    text << file.rdbuf();
    return parse_umt5_config(text.str(), name_or_path);
  }
  const std::string relative = "text_encoders/" + name_or_path + ".yaml";
  const char* text = find_embedded_config(relative);
  if (!text) {
    std::string known;
    for (const EmbeddedFile* entry = kEmbeddedConfigs; entry->path; ++entry) {
      const std::string path = entry->path;
      if (path.rfind("text_encoders/", 0) == 0)
        known += (known.empty() ? "" : ", ") + std::filesystem::path(path).stem().string();
    }
    fail("no umT5 config file or built-in text encoder config named '{}' (built-in: {})", name_or_path, known);
  }
  Umt5Config config = parse_umt5_config(text, "configs/" + relative + " (embedded)");
  config.name = name_or_path;
  return config;
}

}  // namespace lf
