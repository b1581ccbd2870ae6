#include "machine_output.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>

#include "run_setup.h"

namespace lf::cmd {

namespace {

// A YAML scalar as the JSON value it reads as: integer, then float, then boolean, else string.
nlohmann::json scalar_json(const YAML::Node& node) {
  const std::string text = node.Scalar();
  int64_t integer = 0;
  double real = 0;
  bool boolean = false;
  if (YAML::convert<int64_t>::decode(node, integer)) return integer;
  if (YAML::convert<double>::decode(node, real)) return real;
  if (YAML::convert<bool>::decode(node, boolean)) return boolean;
  return text;
}

nlohmann::json yaml_json(const YAML::Node& node) {
  if (node.IsMap()) {
    nlohmann::json object = nlohmann::json::object();
    for (const auto& entry : node) object[entry.first.as<std::string>()] = yaml_json(entry.second);
    return object;
  }
  if (node.IsSequence()) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& item : node) list.push_back(yaml_json(item));
    return list;
  }
  if (node.IsScalar()) return scalar_json(node);
  return nullptr;
}

}  // namespace

nlohmann::json config_json(const RunConfig& run) { return yaml_json(YAML::Load(to_yaml(run))); }

std::string weights_identity(const RunFlags& flags, const ModelConfig& model) {
  const std::string source = flags.weights.empty() ? model.weights : flags.weights;
  if (source == "random" || source.empty()) return source.empty() ? "none" : "random";
  std::error_code error;
  const auto size = std::filesystem::file_size(source, error);
  if (error) return std::filesystem::path(source).filename().string() + " (built in or beside the model config)";
  return fmt::format("{} ({} bytes)", std::filesystem::path(source).filename().string(), size);
}

nlohmann::json run_provenance(const RunFlags& flags, const RunConfig& run) {
  return {{"prompt", flags.prompt},
          {"text_embeddings", flags.text_embeddings},
          {"weights", weights_identity(flags, run.model)},
          {"model", run.model.name},
          {"seed", run.pipeline.seed},
          {"latent_frames", run.pipeline.frames},
          {"attention_settings", config_json(run)["attention"]}};
}

nlohmann::json versioned(nlohmann::json document, const nlohmann::json& provenance) {
  for (const auto& [key, value] : provenance.items())
    if (!document.contains(key)) document[key] = value;
  document["schema_version"] = kJsonSchemaVersion;
  return document;
}

}  // namespace lf::cmd
