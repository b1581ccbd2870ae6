// Wan VAE / LightVAE configs: configs/decoders/<name>.yaml (embedded in the binary) or a YAML file. Every key is
// checked; an unknown one is an error naming the file.
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/embedded.h"
#include "core/error.h"
#include "model/wan_vae.h"

namespace lf {

std::vector<int64_t> WanVaeConfig::widths() const {
  std::vector<int64_t> widths = {dim * dim_mult.back()};
  for (auto mult = dim_mult.rbegin(); mult != dim_mult.rend(); ++mult) widths.push_back(dim * *mult);
  for (int64_t& width : widths) width = int64_t(double(width) * (1.0 - pruning_rate));
  return widths;
}

int64_t WanVaeConfig::temporal_scale() const {
  int64_t scale = 1;
  for (bool doubles : temporal_upsample) scale *= doubles ? 2 : 1;
  return scale;
}

void WanVaeConfig::validate() const {
  LF_CHECK(z_dim > 0 && dim > 0 && num_res_blocks >= 0 && dim_mult.size() >= 2,
           "decoder '{}': need z_dim, dim > 0, num_res_blocks >= 0 and at least two dim_mult entries", name);
  LF_CHECK(temporal_upsample.size() == dim_mult.size() - 1,
           "decoder '{}': temporal_upsample has {} entries, "
           "dim_mult {} needs {}",
           name, temporal_upsample.size(), dim_mult.size(), dim_mult.size() - 1);
  LF_CHECK(pruning_rate >= 0 && pruning_rate < 1, "decoder '{}': pruning_rate {} outside [0, 1)", name, pruning_rate);
  for (int64_t width : widths())
    LF_CHECK(width >= 2 && width % 2 == 0,
             "decoder '{}': stage width {} must be even and >= 2 (the up-samplers "
             "halve it)",
             name, width);
  LF_CHECK(first_frame == "official" || first_frame == "zero-cache",
           "decoder '{}': first_frame '{}' (expected official or zero-cache)", name, first_frame);
  LF_CHECK(int64_t(latent_mean.size()) == z_dim && int64_t(latent_std.size()) == z_dim,
           "decoder '{}': latent_mean / latent_std need {} entries", name, z_dim);
  for (float value : latent_std) LF_CHECK(value > 0, "decoder '{}': latent_std entries must be positive", name);
}

WanVaeConfig load_wan_vae_config(const std::string& name_or_path) {
  std::string text, source;
  std::error_code ignored;
  if (std::filesystem::is_regular_file(name_or_path, ignored)) {
    std::ifstream file(name_or_path);
    std::stringstream buffer;
    buffer << file.rdbuf();
    LF_CHECK(file, "cannot read decoder config '{}'", name_or_path);
    text = buffer.str();
    source = name_or_path;
  } else {
    const char* embedded = find_embedded_config("decoders/" + name_or_path + ".yaml");
    LF_CHECK(embedded, "no decoder config file or built-in decoder config named '{}'", name_or_path);
    text = embedded;
    source = "configs/decoders/" + name_or_path + ".yaml";
  }
  WanVaeConfig config;
  try {
    const YAML::Node root = YAML::Load(text);
    LF_CHECK(root.IsMap(), "decoder config '{}': top level must be a map", source);
    static const std::set<std::string> known = {"name",        "kind",           "z_dim",        "dim",
                                                "dim_mult",    "num_res_blocks", "pruning_rate", "temporal_upsample",
                                                "first_frame", "latent_mean",    "latent_std"};
    for (const auto& entry : root) {
      const std::string key = entry.first.as<std::string>();
      LF_CHECK(known.count(key), "decoder config '{}': unknown key '{}'", source, key);
    }
    LF_CHECK(!root["kind"] || root["kind"].as<std::string>() == "wan-vae",
             "decoder config '{}': kind '{}' is not a Wan VAE", source, root["kind"].as<std::string>());
    if (root["name"]) config.name = root["name"].as<std::string>();
    if (root["z_dim"]) config.z_dim = root["z_dim"].as<int64_t>();
    if (root["dim"]) config.dim = root["dim"].as<int64_t>();
    if (root["dim_mult"]) config.dim_mult = root["dim_mult"].as<std::vector<int64_t>>();
    if (root["num_res_blocks"]) config.num_res_blocks = root["num_res_blocks"].as<int64_t>();
    if (root["pruning_rate"]) config.pruning_rate = root["pruning_rate"].as<double>();
    if (root["temporal_upsample"]) config.temporal_upsample = root["temporal_upsample"].as<std::vector<bool>>();
    if (root["first_frame"]) config.first_frame = root["first_frame"].as<std::string>();
    if (root["latent_mean"]) config.latent_mean = root["latent_mean"].as<std::vector<float>>();
    if (root["latent_std"]) config.latent_std = root["latent_std"].as<std::vector<float>>();
  } catch (const YAML::Exception& error) {
    fail("decoder config '{}': YAML error at line {}: {}", source, error.mark.line + 1, error.msg);
  }
  config.validate();
  return config;
}

}  // namespace lf
